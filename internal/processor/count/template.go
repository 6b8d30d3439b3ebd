package count

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/processor"
)

// template is a parsed key template: literal text, {field.path}
// placeholders and {ts:LAYOUT} placeholders. "{{" and "}}" stand for
// literal braces.
type template struct {
	parts []part
	// fields are the field paths used, in order of first use.
	fields []string
	// usesTime says whether any part is {ts:LAYOUT}.
	usesTime bool
}

type part struct {
	literal string
	field   string // a field path, when set
	layout  string // a Go time layout for the event time, when set
}

// validPath reports whether p is names separated by single dots.
func validPath(p string) bool {
	if p == "" {
		return false
	}
	for name := range strings.SplitSeq(p, ".") {
		if name == "" {
			return false
		}
	}
	return true
}

func parseTemplate(s string) (*template, error) {
	t := &template{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, fmt.Errorf("unmatched } at offset %d (write }} for a literal brace)", i)
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed { at offset %d (write {{ for a literal brace)", i)
			}
			body := s[i+1 : i+1+end]
			if strings.Contains(body, "{") {
				return nil, fmt.Errorf("{ inside the placeholder at offset %d", i)
			}
			flush()
			name, layout, isTime := strings.Cut(body, ":")
			switch {
			case isTime && name != "ts":
				return nil, fmt.Errorf("placeholder {%s}: only ts takes a layout ({ts:2006-01-02}); field names cannot hold ':'", body)
			case isTime && layout == "":
				return nil, errors.New("placeholder {ts:}: the layout is empty (for example {ts:2006-01-02T15})")
			case isTime:
				t.parts = append(t.parts, part{layout: layout})
				t.usesTime = true
			case !validPath(name):
				return nil, fmt.Errorf("placeholder {%s}: not a field path (names separated by single dots)", body)
			default:
				t.parts = append(t.parts, part{field: name})
				if !slices.Contains(t.fields, name) {
					t.fields = append(t.fields, name)
				}
			}
			i += end + 1
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// errMissing is wrapped by render when a field is missing and missing
// fields are rejected.
var errMissing = errors.New("missing")

// render appends the key of ev at event time ts to buf. With reject, a
// field that is absent or null fails (the error names it); otherwise it
// renders as "".
func (t *template) render(buf []byte, ev *processor.Event, ts time.Time, reject bool) ([]byte, error) {
	for i := range t.parts {
		p := &t.parts[i]
		switch {
		case p.field != "":
			if reject {
				if v, ok := ev.Lookup(p.field); !ok || v == nil {
					return buf, fmt.Errorf("key field %q is %w", p.field, errMissing)
				}
			}
			buf = append(buf, ev.String(p.field)...)
		case p.layout != "":
			buf = ts.AppendFormat(buf, p.layout)
		default:
			buf = append(buf, p.literal...)
		}
	}
	return buf, nil
}
