// Package options declares the options of a built-in processor once, as a
// Spec: each option's name, type, default, documentation and allowed
// values. The spec decodes the options from their YAML nodes into the
// processor's config struct, reports every problem with the line and
// column it is on (unknown options with the closest known name), and
// renders the option tables of the documentation, so decoding, checking
// and docs cannot drift apart.
//
// A Spec is bound to its config struct by the struct's yaml tags: every
// tagged field has exactly one Field and every Field one tagged field; New
// panics otherwise, so a mismatch fails the first test that loads the
// processor.
package options

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Field declares one option.
type Field struct {
	// Name is the option's YAML key.
	Name string
	// Doc says what the option does, in a sentence or two.
	Doc string
	// Type names the option's type in the docs. Default: derived from the
	// Go type (string, boolean, integer, number, duration, list of
	// strings, map of strings, object); required for a type that decodes
	// itself (implements yaml.Unmarshaler).
	Type string
	// Default is the YAML text of the value used when the option is left
	// out, applied by Decode; "" for none.
	Default string
	// DefaultDoc describes a default that is worked out when the processor
	// starts (it depends on other options or the environment); shown in
	// the docs, not applied by Decode.
	DefaultDoc string
	// Required makes leaving the option out an error.
	Required bool
	// Example is shown in the docs and in the error for a missing
	// required option.
	Example string
	// Enum lists the allowed values of a string option.
	Enum []string
	// Switch lets an object option (a pointer to a struct) be given as
	// true (every member at its default) or false (off).
	Switch bool
	// Fields are the members of an object option.
	Fields []Field
}

// Error is one problem with the options. Path is the option's dotted path
// under the options (redis.tls.caFile, groupBy[1]); Line and Column (1-based)
// place it in the YAML file, 0 when unknown.
type Error struct {
	Path   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errorf returns an *Error for the option at path, for a processor's own
// validation of values that depend on each other; Check places it in the
// file.
func Errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Spec is the options of one processor, decoded into a T.
type Spec[T any] struct {
	bound    []binding
	validate func(*T) error
}

// binding ties a Field to a struct field.
type binding struct {
	Field
	index []int
	typ   reflect.Type
	sub   []binding
}

var (
	typeOfUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	typeOfDuration    = reflect.TypeFor[time.Duration]()
)

// New returns the spec of the options fields, decoded into a T (a struct
// whose yaml tags name the options). validate, when not nil, checks what
// the fields cannot check alone (values that depend on each other) on the
// decoded value; it reports problems as *Error (see Errorf), joined. New
// panics when fields and T disagree.
func New[T any](validate func(*T) error, fields ...Field) *Spec[T] {
	s := &Spec[T]{validate: validate}
	s.bound = bind(reflect.TypeFor[T](), fields, reflect.TypeFor[T]().String())
	return s
}

func bind(t reflect.Type, fields []Field, where string) []binding {
	tagged := map[string]reflect.StructField{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			tagged[name] = f
		}
	}
	var out []binding
	for _, f := range fields {
		sf, ok := tagged[f.Name]
		if !ok {
			panic(fmt.Sprintf("options: %s has no field tagged yaml:%q", where, f.Name))
		}
		delete(tagged, f.Name)
		b := binding{Field: f, index: sf.Index, typ: sf.Type}
		if b.Type == "" {
			b.Type = typeName(sf.Type)
			if b.Type == "" {
				panic(fmt.Sprintf("options: %s.%s: give the Type of a %s", where, f.Name, sf.Type))
			}
		}
		if st := structType(sf.Type); st != nil {
			b.sub = bind(st, f.Fields, where+"."+f.Name)
		} else if len(f.Fields) > 0 {
			panic(fmt.Sprintf("options: %s.%s has Fields but is not a struct", where, f.Name))
		}
		if f.Switch && sf.Type.Kind() != reflect.Pointer {
			panic(fmt.Sprintf("options: %s.%s: a Switch option is a pointer to a struct", where, f.Name))
		}
		if f.Default != "" {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(f.Default), &n); err != nil || len(n.Content) == 0 {
				panic(fmt.Sprintf("options: %s.%s: default %q is not YAML", where, f.Name, f.Default))
			}
			d := &decoder{}
			d.value(n.Content[0], reflect.New(sf.Type).Elem(), b, f.Name)
			if len(d.errs) > 0 {
				panic(fmt.Sprintf("options: %s.%s: default %q: %v", where, f.Name, f.Default, d.errs[0]))
			}
		}
		out = append(out, b)
	}
	for name := range tagged {
		panic(fmt.Sprintf("options: %s: the field tagged yaml:%q has no Field", where, name))
	}
	return out
}

// structType returns the struct type that t (a struct, a pointer to one
// or a list of them) decodes member by member, nil for other types.
func structType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(typeOfUnmarshaler) {
		return nil
	}
	return t
}

func typeName(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(typeOfUnmarshaler) {
		return ""
	}
	if t == typeOfDuration {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "list of strings"
		}
		if structType(t) != nil {
			return "list of objects"
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			return "map of strings"
		}
	case reflect.Struct:
		return "object"
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Struct {
			return "object"
		}
	}
	return ""
}

// Fields returns the declared options, for documentation, each with its
// Type.
func (s *Spec[T]) Fields() []Field { return fieldsOf(s.bound) }

func fieldsOf(bs []binding) []Field {
	var out []Field
	for _, b := range bs {
		f := b.Field
		f.Fields = fieldsOf(b.sub)
		out = append(out, f)
	}
	return out
}

// Decode decodes the options node n (a mapping; nil or null for none)
// into a T, applying defaults and the fields' checks, then validate. The
// error joins one *Error per problem, each with its path and, when n came
// from a file, its line and column.
func (s *Spec[T]) Decode(n *yaml.Node) (T, error) {
	var v T
	d := &decoder{}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n == nil || n.Kind == 0 || n.Kind == yaml.DocumentNode || isNull(n) { // nothing given
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, "", "want a mapping of options, got %s", Describe(n))
		return v, d.err()
	}
	d.object(n, reflect.ValueOf(&v).Elem(), s.bound, "")
	if s.validate != nil {
		reported := map[string]int{} // path → index in d.errs
		for i, e := range d.errs {
			reported[e.Path] = i
		}
		for _, err := range Unjoin(s.validate(&v)) {
			var oe *Error
			if !errors.As(err, &oe) {
				oe = &Error{Msg: err.Error()}
			}
			e := *oe
			if e.Line == 0 {
				at := Locate(n, e.Path)
				e.Line, e.Column = at.Line, at.Column
			}
			i, ok := reported[e.Path]
			switch {
			case !ok:
				d.errs = append(d.errs, &e)
			case d.required[i]:
				// The processor's own words for a missing option.
				d.errs[i].Msg = e.Msg
				d.required[i] = false
			}
			// Otherwise the value was already reported as malformed.
		}
	}
	// In the order of the file; problems without a place last.
	slices.SortStableFunc(d.errs, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			return cmp.Compare(b.Line, a.Line)
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return v, d.err()
}

// DecodeMap is Decode for options given as a map (a pipeline built in Go,
// or options decoded earlier); errors carry no line.
func (s *Spec[T]) DecodeMap(m map[string]any) (T, error) {
	if m == nil {
		return s.Decode(nil)
	}
	var n yaml.Node
	if err := n.Encode(m); err != nil {
		var v T
		return v, &Error{Msg: fmt.Sprintf("options do not encode: %v", err)}
	}
	return s.Decode(&n)
}

// Check decodes n and reports its problems, discarding the value.
func (s *Spec[T]) Check(n *yaml.Node) error {
	_, err := s.Decode(n)
	return err
}

// Unjoin returns the errors joined in err (errors.Join, recursively), or
// err alone; nil for nil.
func Unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

type decoder struct {
	errs     []*Error
	required map[int]bool // errs that say only "is required"
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Path: path, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error {
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// object decodes the mapping n into the struct v.
func (d *decoder) object(n *yaml.Node, v reflect.Value, fields []binding, path string) {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	given := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !slices.Contains(names, k.Value) {
			msg := "unknown option"
			if s := Suggest(k.Value, names); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += "; known options are " + strings.Join(names, ", ")
			}
			d.fail(k, join(path, k.Value), "%s", msg)
			continue
		}
		if _, dup := given[k.Value]; dup {
			d.fail(k, join(path, k.Value), "is given twice")
			continue
		}
		given[k.Value] = val
	}
	for _, f := range fields {
		p := join(path, f.Name)
		fv := v.FieldByIndex(f.index)
		val, ok := given[f.Name]
		if ok && !isNull(val) {
			d.value(val, fv, f, p)
			continue
		}
		switch {
		case f.Required:
			at := n
			if ok {
				at = val
			}
			msg := "is required"
			if f.Example != "" {
				msg += ", e.g. " + f.Example
			}
			d.fail(at, p, "%s", msg)
			if d.required == nil {
				d.required = map[int]bool{}
			}
			d.required[len(d.errs)-1] = true
		case f.Default != "":
			var dn yaml.Node
			_ = yaml.Unmarshal([]byte(f.Default), &dn) // checked by New
			d.value(dn.Content[0], fv, f, p)
		case f.typ.Kind() == reflect.Struct && f.sub != nil:
			// An object left out still gets its members' defaults.
			d.object(&yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}, fv, f.sub, p)
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// value decodes n into v, the struct field of f.
func (d *decoder) value(n *yaml.Node, v reflect.Value, f binding, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	t := v.Type()
	if reflect.PointerTo(t).Implements(typeOfUnmarshaler) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%s", strings.TrimPrefix(err.Error(), f.Name+": "))
		}
		return
	}
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		if f.Switch && n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
			if b, _ := strconv.ParseBool(n.Value); b {
				v.Set(reflect.New(t.Elem()))
				d.object(&yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}, v.Elem(), f.sub, path)
			}
			return
		}
		if n.Kind != yaml.MappingNode {
			if f.Switch {
				d.fail(n, path, "must be true, false or an object {%s}, got %s", strings.Join(memberNames(f.sub), ", "), Describe(n))
			} else {
				d.fail(n, path, "must be an object, got %s", Describe(n))
			}
			return
		}
		v.Set(reflect.New(t.Elem()))
		d.object(n, v.Elem(), f.sub, path)
		return
	}
	if t == typeOfDuration {
		dur, err := time.ParseDuration(n.Value)
		switch {
		case n.Kind != yaml.ScalarNode || n.Tag != "!!str":
			d.fail(n, path, "must be a duration such as 24h or 90m, got %s", Describe(n))
		case err != nil:
			d.fail(n, path, "must be a duration such as 24h or 90m, got %q", n.Value)
		default:
			v.SetInt(int64(dur))
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		if !scalar(n, "!!str") {
			d.fail(n, path, "must be a string, got %s", Describe(n))
			return
		}
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, n.Value) {
			d.fail(n, path, "must be %s, got %q", orList(f.Enum), n.Value)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if !scalar(n, "!!bool") || err != nil {
			d.fail(n, path, "must be true or false, got %s", Describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, t.Bits())
		if !scalar(n, "!!int") || err != nil {
			d.fail(n, path, "must be an integer, got %s", Describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		x, err := strconv.ParseFloat(n.Value, 64)
		if !(scalar(n, "!!int") || scalar(n, "!!float")) || err != nil {
			d.fail(n, path, "must be a number, got %s", Describe(n))
			return
		}
		v.SetFloat(x)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			d.objects(n, v, f, path)
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "must be a list of strings, got %s", Describe(n))
			return
		}
		list := reflect.MakeSlice(t, 0, len(n.Content))
		for i, c := range n.Content {
			if !scalar(c, "!!str") || c.Value == "" {
				d.fail(c, fmt.Sprintf("%s[%d]", path, i), "must be a non-empty string, got %s", Describe(c))
				continue
			}
			list = reflect.Append(list, reflect.ValueOf(c.Value))
		}
		v.Set(list)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping of names to strings, got %s", Describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, c := n.Content[i], n.Content[i+1]
			if !scalar(c, "!!str") {
				d.fail(c, join(path, k.Value), "must be a string, got %s", Describe(c))
				continue
			}
			m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(c.Value))
		}
		v.Set(m)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be an object, got %s", Describe(n))
			return
		}
		d.object(n, v, f.sub, path)
	}
}

// objects decodes the list of mappings n into the slice of structs v.
func (d *decoder) objects(n *yaml.Node, v reflect.Value, f binding, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list of objects {%s}, got %s", strings.Join(memberNames(f.sub), ", "), Describe(n))
		return
	}
	list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		if c.Kind != yaml.MappingNode {
			d.fail(c, p, "must be an object {%s}, got %s", strings.Join(memberNames(f.sub), ", "), Describe(c))
			continue
		}
		d.object(c, list.Index(i), f.sub, p)
	}
	v.Set(list)
}

func memberNames(fields []binding) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return names
}

func scalar(n *yaml.Node, tag string) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == tag
}

// Describe names what n is, for "must be X, got Y".
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		case "!!null":
			return "null"
		}
	}
	return fmt.Sprintf("%q", n.Value)
}

// orList renders a, b or c.
func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Locate returns the node of the option at path (as in Error.Path) under
// the options mapping n, or of its nearest ancestor present: a scalar
// value itself, the key of an object or list (where it starts), a list
// item itself.
func Locate(n *yaml.Node, path string) *yaml.Node {
	at, _ := walk(n, path)
	return at
}

// Lookup returns the value at path under n; nil when there is none.
func Lookup(n *yaml.Node, path string) *yaml.Node {
	_, val := walk(n, path)
	return val
}

// walk follows path from n. It returns where the deepest node found
// starts (see Locate), and the value at path (nil when path goes further
// than the document).
func walk(n *yaml.Node, path string) (at, val *yaml.Node) {
	at = n
	for _, step := range splitPath(path) {
		if n == nil {
			return at, nil
		}
		var next, pos *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == s {
						pos, next = n.Content[i], n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				pos, next = n.Content[s], n.Content[s]
			}
		}
		n = next
		if next == nil {
			continue
		}
		at = pos
		if next.Kind == yaml.ScalarNode {
			at = next
		}
	}
	return at, n
}

// splitPath splits a.b[1].c into "a", "b", 1, "c".
func splitPath(path string) []any {
	var out []any
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			out = append(out, name)
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil {
				return out
			}
			out = append(out, i)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

// Suggest returns the name in names closest to s, when one is close: the
// same but for case, '_' and '-', a prefix either way, or one or two
// edits away.
func Suggest(s string, names []string) string {
	norm := func(x string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(x)) }
	ls := norm(s)
	for _, n := range names {
		if norm(n) == ls {
			return n
		}
	}
	for _, n := range names {
		ln := norm(n)
		if len(ls) >= 3 && (strings.HasPrefix(ln, ls) || strings.HasPrefix(ls, ln)) {
			return n
		}
	}
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(ls, norm(n)); d < bestD && d < len(ls)/2+1 {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
