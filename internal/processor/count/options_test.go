package count

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// optionsOf decodes YAML as pipelines.yaml's handler.options would be.
func optionsOf(t *testing.T, y string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(y), &m))
	if m == nil {
		m = map[string]any{}
	}
	return m
}

func TestParseOptionsDefaults(t *testing.T) {
	c, err := ParseOptions(optionsOf(t, `key: "{page}"`))
	require.NoError(t, err)
	require.Equal(t, Config{
		Key: "{page}", Missing: MissingEmpty,
		Decode: processor.DecodeConfig{Format: processor.FormatJSON},
		Redis:  RedisConfig{Addr: "127.0.0.1:6379"},
	}, c)
}

func TestParseOptionsAll(t *testing.T) {
	c, err := ParseOptions(optionsOf(t, `
key: "{ts:2006-01-02T15}:{country}"
missing: reject
timeField: when
timeLayout: "2006-01-02 15:04"
decode: {format: csv, columns: [when, country, n], delimiter: "\t"}
redis:
  addr: redis.internal:6380
  username: counter
  password: secret
  db: 2
  tls: {insecureSkipVerify: true, serverName: redis}
  keyPrefix: "clicks:"
hash: by-hour
expire: 48h
increment: n
`))
	require.NoError(t, err)
	require.Equal(t, Config{
		Key: "{ts:2006-01-02T15}:{country}", Missing: MissingReject,
		TimeField: "when", TimeLayout: "2006-01-02 15:04",
		Decode: processor.DecodeConfig{Format: "csv", Columns: []string{"when", "country", "n"}, Delimiter: "\t"},
		Redis: RedisConfig{
			Addr: "redis.internal:6380", Username: "counter", Password: "secret", DB: 2,
			TLS: &TLSConfig{InsecureSkipVerify: true, ServerName: "redis"}, KeyPrefix: "clicks:",
		},
		Hash: "by-hour", Expire: 48 * time.Hour, Increment: "n",
	}, c)
	require.NotContains(t, c.Redis.String(), "secret")
}

func TestParseOptionsTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want *TLSConfig
	}{
		{"absent", `{}`, nil},
		{"false", `{tls: false}`, nil},
		{"true", `{tls: true}`, &TLSConfig{}},
		{"object", `{tls: {caFile: ca.pem}}`, &TLSConfig{CAFile: "ca.pem"}},
		{"client certificate", `{tls: {certFile: c.pem, keyFile: k.pem}}`, &TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := optionsOf(t, `key: k`)
			o["redis"] = optionsOf(t, tc.yaml)
			c, err := ParseOptions(o)
			require.NoError(t, err)
			require.Equal(t, tc.want, c.Redis.TLS)
		})
	}
}

// TestCheckNamesEveryProblem checks that each bad option is reported with
// its field's name, and that all problems are reported at once.
func TestCheckNamesEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"no key", `{}`, []string{"key: required"}},
		{"unknown option", `{key: k, keys: k}`, []string{"keys: unknown option"}},
		{"key not a string", `{key: 3}`, []string{"key: must be a string, got the number 3"}},
		{"unclosed placeholder", `{key: "{page"}`, []string{"key: unclosed {"}},
		{"unmatched brace", `{key: "page}"}`, []string{"key: unmatched }"}},
		{"empty placeholder", `{key: "{}"}`, []string{"key: placeholder {}: not a field path"}},
		{"bad path", `{key: "{a..b}"}`, []string{"key: placeholder {a..b}: not a field path"}},
		{"layout on a field", `{key: "{page:x}"}`, []string{"key: placeholder {page:x}: only ts takes a layout"}},
		{"empty layout", `{key: "{ts:}"}`, []string{"key: placeholder {ts:}: the layout is empty"}},
		{"missing", `{key: k, missing: drop}`, []string{`missing: must be empty or reject, got "drop"`}},
		{"timeLayout alone", `{key: k, timeLayout: "2006"}`, []string{"timeLayout: needs timeField"}},
		{"timeField path", `{key: k, timeField: "a."}`, []string{`timeField: "a." is not a field path`}},
		{"increment path", `{key: k, increment: ".n"}`, []string{`increment: ".n" is not a field path`}},
		{"expire not a duration", `{key: k, expire: soon}`, []string{`expire: must be a duration such as 24h or 90m, got "soon"`}},
		{"expire a number", `{key: k, expire: 60}`, []string{"expire: must be a duration such as 24h or 90m, got the number 60"}},
		{"expire too short", `{key: k, expire: 10ms}`, []string{"expire: must be at least 1s"}},
		{"decode format", `{key: k, decode: {format: xml}}`, []string{`decode.format: must be json, csv, text or raw, got "xml"`}},
		{"decode csv without columns", `{key: k, decode: {format: csv}}`, []string{"decode.columns: the csv format needs the column names"}},
		{"decode columns", `{key: k, decode: {format: csv, columns: [a, 1]}}`, []string{"decode.columns[1]: must be a non-empty string"}},
		{"decode unknown", `{key: k, decode: {formats: csv}}`, []string{"decode.formats: unknown option"}},
		{"raw has no fields", `{key: "{a}", decode: {format: raw}, timeField: t, increment: n}`, []string{
			"key: the raw format has no fields", "timeField: the raw format has no fields", "increment: the raw format has no fields"}},
		{"redis not an object", `{key: k, redis: localhost}`, []string{`redis: must be an object, got the string "localhost"`}},
		{"redis unknown", `{key: k, redis: {host: x}}`, []string{"redis.host: unknown option"}},
		{"redis db", `{key: k, redis: {db: one}}`, []string{`redis.db: must be an integer, got the string "one"`}},
		{"redis db negative", `{key: k, redis: {db: -1}}`, []string{"redis.db: must not be negative"}},
		{"redis username without password", `{key: k, redis: {username: u}}`, []string{"redis.password: required with redis.username"}},
		{"redis tls kind", `{key: k, redis: {tls: yes please}}`, []string{"redis.tls: must be true, false or an object"}},
		{"redis tls unknown", `{key: k, redis: {tls: {verify: false}}}`, []string{"redis.tls.verify: unknown option"}},
		{"redis tls insecure kind", `{key: k, redis: {tls: {insecureSkipVerify: "no"}}}`, []string{"redis.tls.insecureSkipVerify: must be true or false"}},
		{"redis tls cert without key", `{key: k, redis: {tls: {certFile: c.pem}}}`, []string{"redis.tls: certFile and keyFile go together"}},
		{"redis tls missing CA file", `{key: k, redis: {tls: {caFile: /nonexistent/ca.pem}}}`, []string{"redis.tls.caFile: open /nonexistent/ca.pem"}},
		{"several at once", `{hash: 1, missing: no, expire: x, redis: {addr: 1}}`, []string{
			"hash: must be a string", "key: required", "missing: must be", "expire: must be a duration", "redis.addr: must be a string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(optionsOf(t, tc.yaml))
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "one line per problem: %v", err)
		})
	}
}

func TestCheckTLSFiles(t *testing.T) {
	files := testserver.NewTLSFiles(t)
	require.NoError(t, Check(optionsOf(t, `{key: k, redis: {tls: {caFile: `+files.CAFile+`}}}`)))
	require.NoError(t, Check(optionsOf(t, `{key: k, redis: {tls: {caFile: `+files.CAFile+`, certFile: `+files.CertFile+`, keyFile: `+files.KeyFile+`}}}`)))
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	err := Check(optionsOf(t, `{key: k, redis: {tls: {caFile: `+notPEM+`}}}`))
	require.ErrorContains(t, err, "redis.tls.caFile: no PEM certificate")
	err = Check(optionsOf(t, `{key: k, redis: {tls: {certFile: `+files.CAFile+`, keyFile: `+files.CAFile+`}}}`))
	require.ErrorContains(t, err, "redis.tls.certFile, redis.tls.keyFile:")
}

func TestTemplate(t *testing.T) {
	ts := time.Date(2015, 12, 17, 9, 5, 7, 0, time.UTC)
	ev := &processor.Event{Fields: map[string]any{
		"page": "cart", "element": "checkoutnow", "event": "impression",
		"campaign": mustNumber("2276"), "ok": true, "none": nil,
		"user": map[string]any{"country": "DE", "tags": []any{"a", "b"}},
	}}
	for _, tc := range []struct {
		tmpl, want string
		missing    string // the field reject mode reports, "" when it renders
	}{
		{"{ts:2006-01-02}:{page}:{section}:{element}:{event}_{campaign}", "2015-12-17:cart::checkoutnow:impression_2276", "section"},
		{"{ts:2006-01-02T15:04}", "2015-12-17T09:05", ""},
		{"{ts:15:04:05}", "09:05:07", ""},
		{"{user.country}/{user.city}", "DE/", "user.city"},
		{"{user.tags}|{ok}|{none}", `["a","b"]|true|`, "none"},
		{"{{literal}}:{page}", "{literal}:cart", ""},
		{"plain", "plain", ""},
		{"", "", ""},
		{"{page.x}", "", "page.x"},
	} {
		t.Run(tc.tmpl, func(t *testing.T) {
			tmpl, err := parseTemplate(tc.tmpl)
			require.NoError(t, err)
			got, err := tmpl.render(nil, ev, ts, false)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
			_, err = tmpl.render(nil, ev, ts, true)
			if tc.missing == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, `key field "`+tc.missing+`" is missing`)
			}
		})
	}
}

func TestPositionCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"9", "10", -1},
		{"10", "9", 1},
		{"123", "123", 0},
		{"123", "124", -1},
		{"123/1", "123", 1},
		{"123/2", "123/10", -1},
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899", -1},
	} {
		require.Equal(t, tc.want, parsePosition(tc.a).compare(parsePosition(tc.b)), "%s vs %s", tc.a, tc.b)
	}
}

func mustNumber(s string) any {
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	return v
}
