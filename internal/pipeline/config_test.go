package pipeline

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testBuiltins = Builtins{"noop": Noop, "log": Log}

func TestParseValid(t *testing.T) {
	src := `
streams:
  - name: clicks
    shards: 4
    retention: 48h
  - name: clicks-failed
pipelines:
  - name: enrich
    source: clicks
    startingPosition: LATEST
    batchSize: 500
    batchingWindow: 2
    maxRetries: 5
    maxRecordAge: 1h
    bisectOnError: true
    reportBatchItemFailures: true
    parallelization: 2
    timeout: 30s
    onFailure: {stream: clicks-failed}
    handler:
      type: command
      command: python3 handler.py
      env: {LEVEL: debug}
      dir: handlers
  - name: hook
    source: clicks
    handler: {type: http, url: "http://127.0.0.1:9000/events", headers: {X-Token: abc}}
    onFailure: {file: failed.jsonl}
  - name: print
    source: clicks
    tumblingWindow: 1m
    fanOut: print-efo
    handler: {type: builtin, name: log}
  - name: unicorns
    source: clicks
    handler: {runtime: nodejs, handler: index.handler, dir: ./fn}
`
	c, err := Parse("/etc/runnel/pipelines.yaml", []byte(src), testBuiltins)
	require.NoError(t, err)
	require.Len(t, c.Streams, 2)
	require.Equal(t, 4, c.Streams[0].Shards)
	require.Equal(t, 48*time.Hour, c.Streams[0].Retention.D)
	require.Equal(t, 1, c.Streams[1].Shards)
	require.Equal(t, 24*time.Hour, c.Streams[1].Retention.D)

	p := c.Pipelines[0]
	require.Equal(t, "LATEST", p.StartingPosition)
	require.Equal(t, 2*time.Second, p.BatchingWindow.D)
	require.Equal(t, 5, *p.MaxRetries)
	require.Equal(t, time.Hour, p.MaxRecordAge.D)
	require.Equal(t, Argv{"python3", "handler.py"}, p.Handler.Command)
	require.Equal(t, 2, p.Handler.Processes, "processes default to parallelization")
	require.Equal(t, "/etc/runnel/handlers", c.Resolve(p.Handler.Dir))

	d := c.Pipelines[1]
	require.Equal(t, "TRIM_HORIZON", d.StartingPosition)
	require.Equal(t, 100, d.BatchSize)
	require.Equal(t, -1, *d.MaxRetries, "Lambda's default: until the records expire")
	require.Equal(t, 60*time.Second, d.Timeout.D)
	require.Equal(t, "/etc/runnel/failed.jsonl", c.Resolve(d.OnFailure.File))
	require.Equal(t, time.Minute, c.Pipelines[2].TumblingWindow.D)
	require.Equal(t, "print-efo", c.Pipelines[2].FanOut)
	require.Empty(t, p.FanOut, "polling by default")
	u := c.Pipelines[3].Handler
	require.Equal(t, TypeLambda, u.Type, "a handler with a runtime is a lambda handler")
	require.Equal(t, "index.handler", u.Function)
	require.Equal(t, 1, u.Processes)
	require.Equal(t, "/etc/runnel/fn", c.Resolve(u.Dir))
}

// problems returns the messages of a joined error, one per problem.
func problems(t *testing.T, err error) []string {
	t.Helper()
	require.Error(t, err)
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			var pe *Error
			require.True(t, errors.As(e, &pe), "%T is not *Error: %v", e, e)
			out = append(out, e.Error())
		}
		return out
	}
	var pe *Error
	require.True(t, errors.As(err, &pe), "%T is not *Error: %v", err, err)
	return []string{err.Error()}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	src := `streams:
  - name: clicks
    shards: 0
    retention: 90m
  - name: clicks
pipelines:
  - name: bad name
    source: clicks
    batchSize: 0
    batchingWindow: soon
    maxRetries: -2
    maxRecordAge: 10s
    parallelization: 11
    tumblingWindow: 1h
    timeout: 0s
    startingPosition: EARLIEST
    onFailure: {stream: clicks}
    handler:
      type: command
      url: http://127.0.0.1:1/
      processes: 0
  - source: clicks
    startingPosition: AT_TIMESTAMP
    onFailure: {}
    handler: {type: lambda, runtime: ruby3.3, handler: index, url: "http://x"}
  - name: b
    source: clicks
    handler: {type: builtin, name: counter}
  - name: c
    source: clicks
    startingPosition: AT_TIMESTAMP
    startingTimestamp: yesterday
    handler: {type: http, url: "ftp://x"}
  - name: d
    source: clicks
    handler: {type: builtin, name: log, options: {level: 3}}
  - name: e
    source: clicks
    fanOut: "e efo"
    handler: {type: builtin, name: noop}
  - name: f
    source: clicks
    handler: {runtime: nodejs, processes: 101}
`
	_, err := Parse("pipelines.yaml", []byte(src), testBuiltins)
	got := problems(t, err)
	want := []string{
		"pipelines.yaml:3:13: streams[0].shards: must be between 1 and 10000, got 0",
		"pipelines.yaml:4:16: streams[0].retention: must be whole hours from 24h to 8760h, got 1h30m0s",
		`pipelines.yaml:5:11: streams[1].name: stream "clicks" is declared twice`,
		`pipelines.yaml:7:11: pipelines[0].name: "bad name": a pipeline name is 1–128 letters, digits, '.', '_' or '-'`,
		`pipelines.yaml:16:23: pipelines[0].startingPosition: must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, got "EARLIEST"`,
		"pipelines.yaml:9:16: pipelines[0].batchSize: must be between 1 and 10000, got 0",
		`pipelines.yaml:10:21: pipelines[0].batchingWindow: want a duration such as 500ms, 30s or 24h, or a number of seconds; got "soon"`,
		"pipelines.yaml:11:17: pipelines[0].maxRetries: must be between 0 and 10000, or -1 for until the records expire, got -2",
		"pipelines.yaml:12:19: pipelines[0].maxRecordAge: must be between 1m0s and 168h0m0s, or -1 for no limit, got 10s",
		"pipelines.yaml:13:22: pipelines[0].parallelization: must be between 1 and 10, got 11",
		"pipelines.yaml:14:21: pipelines[0].tumblingWindow: must be between 0s and 15m0s, got 1h0m0s",
		"pipelines.yaml:15:14: pipelines[0].timeout: must be between 1s and 900s, got 0s",
		`pipelines.yaml:17:25: pipelines[0].onFailure.stream: must not be the source stream "clicks": failures would be consumed again`,
		"pipelines.yaml:20:12: pipelines[0].handler.url: is not used by handler type command",
		"pipelines.yaml:18:5: pipelines[0].handler.command: is required: the program and its arguments, e.g. [python3, handler.py]",
		"pipelines.yaml:21:18: pipelines[0].handler.processes: must be between 1 and 100, got 0",
		"pipelines.yaml:22:5: pipelines[1].name: is required",
		"pipelines.yaml:22:5: pipelines[1].startingTimestamp: is required with startingPosition AT_TIMESTAMP",
		"pipelines.yaml:24:5: pipelines[1].onFailure: set stream: NAME or file: PATH",
		`pipelines.yaml:25:38: pipelines[1].handler.runtime: must be nodejs or python (or a versioned name such as nodejs20.x or python3.12), got "ruby3.3"`,
		`pipelines.yaml:25:56: pipelines[1].handler.handler: want MODULE.FUNCTION as Lambda takes it, e.g. index.handler or handler.handler; got "index"`,
		`pipelines.yaml:25:68: pipelines[1].handler.url: is not used by handler type lambda`,
		`pipelines.yaml:43:5: pipelines[6].handler.handler: is required: MODULE.FUNCTION as Lambda takes it, e.g. index.handler`,
		`pipelines.yaml:43:43: pipelines[6].handler.processes: must be between 1 and 100, got 101`,
		`pipelines.yaml:28:36: pipelines[2].handler.name: unknown built-in processor "counter"; built-in processors: log, noop`,
		`pipelines.yaml:32:24: pipelines[3].startingTimestamp: want an RFC 3339 time such as 2024-05-01T12:00:00Z, got "yesterday"`,
		`pipelines.yaml:33:32: pipelines[3].handler.url: want an http:// or https:// URL, got "ftp://x"`,
		"pipelines.yaml:36:41: pipelines[4].handler.options: log: takes no options",
		`pipelines.yaml:39:13: pipelines[5].fanOut: "e efo": a stream consumer name is 1–128 letters, digits, '.', '_' or '-'`,
	}
	require.ElementsMatch(t, want, got, "got:\n%s", strings.Join(got, "\n"))
}

func TestUnknownFieldsAndTypeErrors(t *testing.T) {
	src := `streams:
  - name: s
    shardCount: 2
pipelines:
  - name: p
    source: s
    batchsize: 10
    batchSize: many
    handler:
      type: builtin
      name: noop
      flavour: plain
    onFailure: {queue: q}
extra: 1
`
	_, err := Parse("p.yaml", []byte(src), testBuiltins)
	got := problems(t, err)
	want := []string{
		"p.yaml:3:5: streams[0].shardCount: unknown field; known fields are name, shards, retention",
		"p.yaml:7:5: pipelines[0].batchsize: unknown field; did you mean batchSize?",
		"p.yaml:12:7: pipelines[0].handler.flavour: unknown field; known fields are type, command, runtime, handler, env, dir, processes, url, headers, name, options",
		"p.yaml:13:17: pipelines[0].onFailure.queue: unknown field; known fields are stream, file",
		"p.yaml:14:1: extra: unknown field; known fields are streams, pipelines",
		`p.yaml:8:16: pipelines[0].batchSize: must be an integer, got the string "many"`,
	}
	require.ElementsMatch(t, want, got, "got:\n%s", strings.Join(got, "\n"))

	// Type errors in flow mappings and lists are placed at their value,
	// every one reported at once.
	src = `streams: [{name: s, shards: two}]
pipelines:
  - {name: p, source: s, maxRetries: x, bisectOnError: maybe, handler: {type: command, command: run, env: [A]}}
  - name: q
    name: q2
    source: s
    leases: yes
    handler: {type: builtin, name: noop}
`
	_, err = Parse("p.yaml", []byte(src), testBuiltins)
	got = problems(t, err)
	want = []string{
		`p.yaml:1:29: streams[0].shards: must be an integer, got the string "two"`,
		`p.yaml:3:38: pipelines[0].maxRetries: must be an integer, got the string "x"`,
		`p.yaml:3:56: pipelines[0].bisectOnError: must be true or false, got the string "maybe"`,
		`p.yaml:3:107: pipelines[0].handler.env: must be a mapping, got a list`,
		`p.yaml:5:5: pipelines[1].name: is given twice`,
		`p.yaml:7:13: pipelines[1].leases: must be a mapping, got the string "yes"`,
	}
	require.ElementsMatch(t, want, got, "got:\n%s", strings.Join(got, "\n"))
}

func TestParseSyntaxAndEmpty(t *testing.T) {
	_, err := Parse("p.yaml", []byte("pipelines:\n  - name: [\n"), nil)
	got := problems(t, err)
	require.Len(t, got, 1)
	require.Regexp(t, `^p\.yaml:\d+: `, got[0])

	_, err = Parse("p.yaml", []byte("# nothing\n"), nil)
	require.EqualError(t, err, "p.yaml: file is empty; want streams: and pipelines:")

	_, err = Parse("p.yaml", []byte("streams: []\n"), nil)
	require.EqualError(t, err, "p.yaml:1:1: pipelines: at least one pipeline is required")

	_, err = Parse("p.yaml", []byte("- a\n"), nil)
	require.EqualError(t, err, "p.yaml:1:1: want a mapping with streams: and pipelines:")
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir()+"/missing.yaml", nil)
	require.ErrorContains(t, err, "reading pipelines file")
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("pipelines:\n  - name: p\n    source: s\n    handler: {type: builtin, name: noop}\n"))
	f.Add([]byte("streams: [{name: a, retention: 1}]\npipelines: [{name: p, timeout: x}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data, testBuiltins)
		if err == nil && len(c.Pipelines) == 0 {
			t.Fatal("accepted a file without pipelines")
		}
	})
}

// FuzzParseEvent checks that a test event either is refused or decodes
// to an event that encodes and decodes to itself.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"Records":[{"kinesis":{"partitionKey":"k","sequenceNumber":"7","data":"aGk=","approximateArrivalTimestamp":1.7e9},"eventID":"shardId-000000000000:7"}]}`))
	f.Add([]byte(`{"Records":[]}`))
	f.Add([]byte(`{"Records":[{"kinesis":{"data":"!!"}}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := ParseEvent(raw)
		if err != nil {
			return
		}
		again, err := json.Marshal(ev)
		require.NoError(t, err)
		ev2, err := ParseEvent(again)
		require.NoError(t, err, "%s", again)
		require.Equal(t, ev, ev2)
	})
}
