// Package yamlpos places problems in a YAML file: paths of map keys and
// sequence indexes, the lines they start on, and errors that read
// file:line: field: message.
package yamlpos

import (
	"errors"
	"fmt"
	"regexp"
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

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// DecodeErrors turns an error from decoding file into one *Error per
// problem, joined, with lines. When root is not nil, an error on a line
// that holds one value also names its field.
func DecodeErrors(file string, root *yaml.Node, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var fields map[int]string
	if root != nil {
		fields = map[int]string{}
		fieldsByLine(root, nil, fields)
	}
	var errs []error
	for _, m := range msgs {
		e := &Error{File: file, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
			e.Field = fields[e.Line]
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// fieldsByLine maps each line holding exactly one scalar value to its
// path.
func fieldsByLine(n *yaml.Node, p Path, out map[int]string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			fieldsByLine(n.Content[i+1], p.With(n.Content[i].Value), out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			fieldsByLine(c, p.With(i), out)
		}
	case yaml.ScalarNode:
		if _, dup := out[n.Line]; dup {
			out[n.Line] = "" // ambiguous: a flow mapping or list
		} else {
			out[n.Line] = p.String()
		}
	}
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
