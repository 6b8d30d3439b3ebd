package yamlpos

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type fuzzDoc struct {
	Name   string            `yaml:"name"`
	N      int               `yaml:"n"`
	P      *int              `yaml:"p"`
	F      float64           `yaml:"f"`
	B      bool              `yaml:"b"`
	D      time.Duration     `yaml:"d"`
	Tags   map[string]string `yaml:"tags"`
	Any    map[string]any    `yaml:"any"`
	Items  []fuzzDoc         `yaml:"items"`
	Child  *fuzzDoc          `yaml:"child"`
	hidden int
}

func TestDecodePlacesEveryProblem(t *testing.T) {
	src := "name: a\nn: 1\np: 2\ntags: {k: 3}\nany: {x: [1, 2]}\nitems:\n  - {name: b, b: true}\n  - {nme: c, n: x}\nchild: {child: {f: nope}}\n"
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &root))
	var d fuzzDoc
	err := Decode("f.yaml", &root, &d)
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *Error
		require.True(t, errors.As(e, &pe))
		got = append(got, e.Error())
	}
	require.Equal(t, []string{
		"f.yaml:8:6: items[1].nme: unknown field; did you mean n?",
		`f.yaml:8:17: items[1].n: must be an integer, got the string "x"`,
		`f.yaml:9:20: child.child.f: must be a number, got the string "nope"`,
	}, got)
	require.Equal(t, "a", d.Name)
	require.Equal(t, 2, *d.P)
	require.Equal(t, map[string]string{"k": "3"}, d.Tags)
	require.Equal(t, map[string]any{"x": []any{1, 2}}, d.Any)
	require.True(t, d.Items[0].B)
}

func TestDecodeRefusesAliasLoops(t *testing.T) {
	for src, want := range map[string]string{
		"child: &c {child: *c}\n": "f.yaml:1:19: child.child.child: the alias *c refers to a value that contains it",
		"items: &l [*l]\n":        "f.yaml:1:8: items[0]: must be a mapping, got a list",
	} {
		var root yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(src), &root))
		var d fuzzDoc
		require.EqualError(t, Decode("f.yaml", &root, &d), want)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("name: a\nitems: [{n: 1}, {child: {d: 1s}}]\n"))
	f.Add([]byte("a: &x {n: 1}\nchild: *x\n"))
	f.Add([]byte("items: &l [*l]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var root yaml.Node
		if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
			return
		}
		var d fuzzDoc
		err := Decode("f.yaml", &root, &d)
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				var pe *Error
				if !errors.As(e, &pe) || pe.File != "f.yaml" {
					t.Fatalf("%T: %v", e, e)
				}
			}
		}
	})
}
