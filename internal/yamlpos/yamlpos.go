// Package yamlpos decodes YAML files whose every problem is placed in
// the file: a decoder that takes positions from the yaml.Node tree,
// paths of map keys and sequence indexes, the lines they start on, and
// errors that read file:line:column: field: message.
package yamlpos

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/options"
)

// Error is one problem in a YAML file.
type Error struct {
	File   string
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Field  string // dotted YAML path such as pipelines[0].batchSize; "" when none
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Syntax turns an error of the YAML parser (the file is not YAML) into
// an *Error. The parser reports its position only in its message
// ("yaml: line N: ..."), so the line is read from there.
func Syntax(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Msg: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, m, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				e.Line, e.Msg = line, m
			}
		}
	}
	return e
}

// Decode decodes the node n (a document or its content) into v, a pointer
// to a struct whose yaml tags name the fields, accepting what yaml.v3's
// decoder accepts. Unlike that decoder it reports every problem at the
// line and column of the node it is about: a key no field declares (with
// the closest known name), a key given twice, a value of the wrong kind.
// A type that implements yaml.Unmarshaler decodes itself; its error is
// placed at its node. The error joins one *Error per problem.
func Decode(file string, n *yaml.Node, v any) error {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	d := &decoder{file: file}
	d.value(n, reflect.ValueOf(v).Elem(), nil)
	return errors.Join(d.errs...)
}

var typeOfUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

type decoder struct {
	file      string
	errs      []error
	aliases   int                 // expanded so far
	expanding map[*yaml.Node]bool // alias targets being decoded
}

// maxAliases bounds the aliases one document may expand, so a small file
// cannot make the decoder build an exponentially large value.
const maxAliases = 10000

func (d *decoder) fail(n *yaml.Node, p Path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Field: p.String(), Msg: fmt.Sprintf(format, args...)})
}

// value decodes n into v (settable).
func (d *decoder) value(n *yaml.Node, v reflect.Value, p Path) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		d.aliases++
		switch {
		case d.expanding[n.Alias]:
			d.fail(n, p, "the alias *%s refers to a value that contains it", n.Value)
			return
		case d.aliases > maxAliases:
			d.fail(n, p, "more than %d aliases expanded", maxAliases)
			return
		}
		if d.expanding == nil {
			d.expanding = map[*yaml.Node]bool{}
		}
		d.expanding[n.Alias] = true
		defer delete(d.expanding, n.Alias)
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.SetZero() // as yaml.v3: null leaves the zero value, unmarshalers uncalled
		return
	}
	t := v.Type()
	if reflect.PointerTo(t).Implements(typeOfUnmarshaler) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, p, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		e := reflect.New(t.Elem())
		d.value(n, e.Elem(), p)
		v.Set(e)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, p, "must be a mapping, got %s", options.Describe(n))
			return
		}
		d.object(n, v, p)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, p, "must be a list, got %s", options.Describe(n))
			return
		}
		list := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, list.Index(i), p.With(i))
		}
		v.Set(list)
	case reflect.Map:
		if n.Kind != yaml.MappingNode || t.Key().Kind() != reflect.String {
			d.fail(n, p, "must be a mapping, got %s", options.Describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			e := reflect.New(t.Elem()).Elem()
			d.value(n.Content[i+1], e, p.With(k.Value))
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
		}
		v.Set(m)
	default:
		// Scalars and interfaces: yaml.v3's own rules, placed here.
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n, p, "must be %s, got %s", kindName(t), options.Describe(n))
		}
	}
}

// object decodes the mapping n into the struct v.
func (d *decoder) object(n *yaml.Node, v reflect.Value, p Path) {
	t := v.Type()
	index := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		index[name] = i
		names = append(names, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		fi, ok := index[k.Value]
		switch {
		case !ok:
			msg := "unknown field"
			if s := options.Suggest(k.Value, names); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += "; known fields are " + strings.Join(names, ", ")
			}
			d.fail(k, p.With(k.Value), "%s", msg)
		case seen[k.Value]:
			d.fail(k, p.With(k.Value), "is given twice")
		default:
			seen[k.Value] = true
			d.value(n.Content[i+1], v.Field(fi), p.With(k.Value))
		}
	}
}

// kindName names what a value of type t is written as.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// Path is a position in a YAML document: map keys (string) and sequence
// indexes (int).
type Path []any

// String returns the path as in pipelines[0].handler.type.
func (p Path) String() string {
	var b strings.Builder
	for _, e := range p {
		switch e := e.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e)
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		}
	}
	return b.String()
}

// With returns a new path, p followed by e.
func (p Path) With(e ...any) Path {
	return append(append(Path(nil), p...), e...)
}

// Line returns the line of the node at p under n, or of its nearest
// ancestor present in the document; 0 when n is nil.
func Line(n *yaml.Node, p Path) int {
	line, _ := Pos(n, p)
	return line
}

// Pos returns the line and column of the node at p under n, or of its
// nearest ancestor present in the document (see options.Locate); 0, 0
// when n is nil.
func Pos(n *yaml.Node, p Path) (line, col int) {
	if n == nil {
		return 0, 0
	}
	at := options.Locate(n, p.String())
	return at.Line, at.Column
}

// Node returns the node at p under n; nil when n is nil or the document
// has nothing at p.
func Node(n *yaml.Node, p Path) *yaml.Node {
	return options.Lookup(n, p.String())
}
