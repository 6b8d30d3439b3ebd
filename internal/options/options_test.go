package options

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type testConfig struct {
	Name    string            `yaml:"name"`
	Mode    string            `yaml:"mode"`
	Count   int               `yaml:"count"`
	Ratio   float64           `yaml:"ratio"`
	On      bool              `yaml:"on"`
	Every   time.Duration     `yaml:"every"`
	Tags    []string          `yaml:"tags"`
	Labels  map[string]string `yaml:"labels"`
	Inner   testInner         `yaml:"inner"`
	TLS     *testTLS          `yaml:"tls"`
	Pair    pair              `yaml:"pair"`
	Cols    []testCol         `yaml:"cols"`
	private int
}

type testCol struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
}

type testInner struct {
	Addr string `yaml:"addr"`
	DB   int    `yaml:"db"`
}

type testTLS struct {
	CAFile string `yaml:"caFile"`
}

// pair decodes itself from "a/b".
type pair [2]string

func (p *pair) UnmarshalYAML(n *yaml.Node) error {
	a, b, ok := strings.Cut(n.Value, "/")
	if n.Kind != yaml.ScalarNode || !ok {
		return fmt.Errorf("want a/b, got %q", n.Value)
	}
	*p = pair{a, b}
	return nil
}

var testSpec = New(func(c *testConfig) error {
	var errs []error
	if c.Name == "bad" {
		errs = append(errs, Errorf("name", "must not be bad"))
	}
	if c.Count > 10 {
		errs = append(errs, Errorf("count", "must be at most 10, got %d", c.Count))
	}
	if c.Name == "" {
		errs = append(errs, Errorf("name", "is required: the thing's name"))
	}
	if c.Count < 0 {
		errs = append(errs, errors.New("a plain error"))
	}
	return errors.Join(errs...)
},
	Field{Name: "name", Required: true, Doc: "The name."},
	Field{Name: "mode", Default: "fast", Enum: []string{"fast", "slow"}, Doc: "How."},
	Field{Name: "count", Default: "3", Doc: "How many."},
	Field{Name: "ratio", Doc: "A ratio."},
	Field{Name: "on", Doc: "Switched on."},
	Field{Name: "every", Doc: "How often."},
	Field{Name: "tags", Doc: "Tags."},
	Field{Name: "labels", Doc: "Labels."},
	Field{Name: "inner", Doc: "Inner.", Fields: []Field{
		{Name: "addr", Default: "127.0.0.1:1", Doc: "Where."},
		{Name: "db", Doc: "Which."},
	}},
	Field{Name: "tls", Switch: true, Doc: "TLS.", Fields: []Field{{Name: "caFile", Doc: "CAs."}}},
	Field{Name: "pair", Type: "a/b", Doc: "A pair."},
	Field{Name: "cols", Doc: "Columns.", Fields: []Field{
		{Name: "name", Required: true, Doc: "Name."},
		{Name: "type", Default: "int", Enum: []string{"int", "text"}, Doc: "Type."},
	}},
)

func decode(t *testing.T, src string) (testConfig, error) {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &n))
	return testSpec.Decode(&n)
}

// messages renders each problem as line:column: path: message.
func messages(err error) []string {
	var out []string
	for _, e := range Unjoin(err) {
		var oe *Error
		if errors.As(e, &oe) {
			out = append(out, fmt.Sprintf("%d:%d: %s", oe.Line, oe.Column, oe.Error()))
		} else {
			out = append(out, "?: "+e.Error())
		}
	}
	return out
}

func TestDecodeEveryType(t *testing.T) {
	t.Parallel()
	c, err := decode(t, `
name: n
mode: slow
count: 7
ratio: 0.5
on: true
every: 90s
tags: [a, b]
labels: {x: "1"}
inner: {db: 2}
tls: {caFile: ca.pem}
pair: a/b
cols: [{name: a}, {name: b, type: text}]
`)
	require.NoError(t, err)
	require.Equal(t, testConfig{
		Name: "n", Mode: "slow", Count: 7, Ratio: 0.5, On: true, Every: 90 * time.Second,
		Tags: []string{"a", "b"}, Labels: map[string]string{"x": "1"},
		Inner: testInner{Addr: "127.0.0.1:1", DB: 2}, TLS: &testTLS{CAFile: "ca.pem"}, Pair: pair{"a", "b"},
		Cols: []testCol{{Name: "a", Type: "int"}, {Name: "b", Type: "text"}},
	}, c)
}

func TestDecodeDefaults(t *testing.T) {
	t.Parallel()
	c, err := decode(t, "name: n\nmode: ~\n")
	require.NoError(t, err)
	require.Equal(t, testConfig{Name: "n", Mode: "fast", Count: 3, Inner: testInner{Addr: "127.0.0.1:1"}}, c)

	c, err = decode(t, "name: n\ntls: true\n")
	require.NoError(t, err)
	require.Equal(t, &testTLS{}, c.TLS)
	c, err = decode(t, "name: n\ntls: false\n")
	require.NoError(t, err)
	require.Nil(t, c.TLS)

	c, err = testSpec.DecodeMap(map[string]any{"name": "m", "tags": []any{"x"}, "inner": map[string]any{"addr": "h:1"}})
	require.NoError(t, err)
	require.Equal(t, testConfig{Name: "m", Mode: "fast", Count: 3, Tags: []string{"x"}, Inner: testInner{Addr: "h:1"}}, c)
}

// TestDecodeProblems checks that every problem is reported at once, each
// at the line and column of its option (the key for an unknown or
// doubled option, the value for a bad value, the mapping for a missing
// one).
func TestDecodeProblems(t *testing.T) {
	t.Parallel()
	_, err := decode(t, `mode: quick
count: many
ratio: x
on: "yes"
every: 10
tags: [a, "", 3]
labels: [x]
inner: {adr: h, db: one}
tls: sometimes
pair: ab
nmae: n
ratio: 1
cols: [{name: a, type: x}, 3, {type: int}]
`)
	require.Equal(t, []string{
		// The processor's own words for the missing name replace "is required".
		`1:1: name: is required: the thing's name`,
		`1:7: mode: must be fast or slow, got "quick"`,
		`2:8: count: must be an integer, got the string "many"`,
		`3:8: ratio: must be a number, got the string "x"`,
		`4:5: on: must be true or false, got the string "yes"`,
		`5:8: every: must be a duration such as 24h or 90m, got the number 10`,
		`6:11: tags[1]: must be a non-empty string, got the string ""`,
		`6:15: tags[2]: must be a non-empty string, got the number 3`,
		`7:9: labels: must be a mapping of names to strings, got a list`,
		`8:9: inner.adr: unknown option; did you mean addr?`,
		`8:21: inner.db: must be an integer, got the string "one"`,
		`9:6: tls: must be true, false or an object {caFile}, got the string "sometimes"`,
		`10:7: pair: want a/b, got "ab"`,
		`11:1: nmae: unknown option; did you mean name?`,
		`12:1: ratio: is given twice`,
		`13:24: cols[0].type: must be int or text, got "x"`,
		`13:28: cols[1]: must be an object {name, type}, got the number 3`,
		`13:31: cols[2].name: is required`,
	}, messages(err))
}

func TestValidateIsPlaced(t *testing.T) {
	t.Parallel()
	_, err := decode(t, "name: bad\ncount: 11\n")
	require.Equal(t, []string{"1:7: name: must not be bad", "2:8: count: must be at most 10, got 11"}, messages(err))

	// A value reported malformed is not reported again by validate.
	_, err = decode(t, "name: bad\ncount: -1\nmode: 1\n")
	require.Equal(t, []string{"1:1: a plain error", "1:7: name: must not be bad", `3:7: mode: must be a string, got the number 1`}, messages(err))

	// Without a file there is no position, but the path stays.
	_, err = testSpec.DecodeMap(map[string]any{"name": "bad"})
	require.EqualError(t, err, "name: must not be bad")
}

func TestDecodeNotAMapping(t *testing.T) {
	t.Parallel()
	_, err := decode(t, "[a]\n")
	require.Equal(t, []string{"1:1: want a mapping of options, got a list"}, messages(err))
	_, err = testSpec.Decode(nil)
	require.Equal(t, []string{"0:0: name: is required: the thing's name"}, messages(err))
}

func TestNewPanicsOnMismatch(t *testing.T) {
	t.Parallel()
	type two struct {
		A string `yaml:"a"`
		B string `yaml:"b"`
	}
	require.PanicsWithValue(t, `options: options.two: the field tagged yaml:"b" has no Field`, func() { New[two](nil, Field{Name: "a"}) })
	require.PanicsWithValue(t, `options: options.two has no field tagged yaml:"c"`, func() { New[two](nil, Field{Name: "a"}, Field{Name: "b"}, Field{Name: "c"}) })
	require.Panics(t, func() { New[two](nil, Field{Name: "a", Default: "[x"}, Field{Name: "b"}) })
	require.Panics(t, func() { New[testConfig](nil, testSpec.Fields()[:10]...) }, "pair needs a Type")
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	names := []string{"table", "endpoint", "createTable", "partitionKey"}
	for in, want := range map[string]string{
		"tabel": "table", "Table": "table", "create_table": "createTable", "partition": "partitionKey",
		"endpoit": "endpoint", "region": "", "x": "",
	} {
		require.Equal(t, want, Suggest(in, names), in)
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("a:\n  b: [x, y]\n  c: 1\n"), &n))
	root := n.Content[0]
	for path, want := range map[string][2]int{
		"a": {1, 1}, "a.b": {2, 3}, "a.b[1]": {2, 10}, "a.c": {3, 6}, "a.missing": {1, 1}, "zz": {1, 1}, "": {1, 1},
	} {
		at := Locate(root, path)
		require.Equal(t, want, [2]int{at.Line, at.Column}, path)
	}
}

// FuzzDecode checks that any YAML decodes without a panic, and that every
// problem of a document read from text has a path or a position.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("name: n\ncount: 3\ninner: {addr: x}\n"))
	f.Add([]byte("tls: true\ntags: [a, b]\nlabels: {a: b}\n"))
	f.Add([]byte("mode: &m slow\nname: *m\npair: a/b\n"))
	f.Add([]byte("- a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var n yaml.Node
		if yaml.Unmarshal(data, &n) != nil {
			return
		}
		_, err := testSpec.Decode(&n)
		for _, e := range Unjoin(err) {
			var oe *Error
			if !errors.As(e, &oe) {
				t.Fatalf("not an *Error: %v", e)
			}
			if oe.Path == "" && oe.Line == 0 && oe.Msg != "a plain error" {
				t.Fatalf("a problem with neither path nor position: %v", oe)
			}
		}
	})
}
