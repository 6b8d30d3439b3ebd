package options

import (
	"fmt"
	"strings"
)

// Markdown renders fields (as Spec.Fields returns them) as a Markdown table: one row per option, the
// members of an object option after it under their dotted names.
func Markdown(fields []Field) string {
	var b strings.Builder
	b.WriteString("| option | type | default | description |\n|---|---|---|---|\n")
	rows(&b, fields, "")
	return b.String()
}

func rows(b *strings.Builder, fields []Field, prefix string) {
	for _, f := range fields {
		name := prefix + f.Name
		def := ""
		switch {
		case f.Required:
			def = "required"
		case f.Default != "":
			def = "`" + f.Default + "`"
		case f.DefaultDoc != "":
			def = f.DefaultDoc
		}
		doc := f.Doc
		if len(f.Enum) > 0 {
			quoted := make([]string, len(f.Enum))
			for i, e := range f.Enum {
				quoted[i] = "`" + e + "`"
			}
			doc += " One of " + strings.Join(quoted, ", ") + "."
		}
		if f.Example != "" {
			doc += " Example: `" + f.Example + "`."
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", name, f.Type, cell(def), cell(doc))
		rows(b, f.Fields, name+".")
	}
}

// cell keeps text inside one table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
