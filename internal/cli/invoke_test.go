package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// invokeFixture writes a pipelines file with a pipeline of each handler
// kind, and the functions they run, into a new directory.
func invokeFixture(t *testing.T, hookURL string) string {
	t.Helper()
	for _, p := range []string{"node", "python3"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("RUNNEL_INTEGRATION") == "required" {
				t.Fatalf("%s not found and RUNNEL_INTEGRATION=required", p)
			}
			t.Skipf("%s not found", p)
		}
	}
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	write("fn/index.js", `exports.handler = async (event, context) => {
  const data = event.Records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString());
  console.log('got', data.join('|'));
  return { records: event.Records.length, data, source: event.Records[0].eventSourceARN, fn: context.functionName,
    kinesisEndpoint: process.env.AWS_ENDPOINT_URL_KINESIS, keyId: process.env.AWS_ACCESS_KEY_ID !== undefined };
};
`)
	write("py/handler.py", `def handler(event, context):
    print("failing on purpose")
    raise KeyError("Name")
`)
	script, err := filepath.Abs("../../examples/handler-python/handler.py")
	require.NoError(t, err)
	write("pipelines.yaml", fmt.Sprintf(`streams: [{name: clicks}]
pipelines:
  - name: node-fn
    source: clicks
    handler: {runtime: nodejs, handler: index.handler, dir: fn}
  - name: python-fn
    source: clicks
    timeout: 20s
    handler: {runtime: python, handler: handler.handler, dir: py}
  - name: command
    source: arn:aws:kinesis:us-east-1:000000000000:stream/orders
    reportBatchItemFailures: true
    handler: {type: command, command: [python3, %q]}
  - name: printer
    source: clicks
    handler: {type: builtin, name: log}
  - name: hook
    source: clicks
    handler: {type: http, url: %q}
`, script, hookURL))
	return dir
}

// responseOf returns the JSON between "Response:" and "Function Logs:".
func responseOf(t *testing.T, stdout string) map[string]any {
	t.Helper()
	_, after, ok := strings.Cut(stdout, "Response:\n")
	require.True(t, ok, stdout)
	body, _, ok := strings.Cut(after, "\nFunction Logs:")
	require.True(t, ok, stdout)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(body)), &v), stdout)
	return v
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Records []json.RawMessage }
		_ = json.NewDecoder(r.Body).Decode(&ev)
		fmt.Fprintf(w, `{"batchItemFailures": [], "seen": %d}`, len(ev.Records))
	}))
	t.Cleanup(hook.Close)
	dir := invokeFixture(t, hook.URL)
	cfg := filepath.Join(dir, "pipelines.yaml")

	t.Run("sample event", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "invoke", "node-fn", "--config", cfg)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		resp := responseOf(t, stdout)
		require.EqualValues(t, 1, resp["records"])
		require.Equal(t, []any{"Hello, this is a test 123."}, resp["data"])
		require.Equal(t, "arn:aws:kinesis:us-east-1:000000000000:stream/clicks", resp["source"])
		require.Equal(t, "node-fn", resp["fn"])
		require.Equal(t, "http://127.0.0.1:4567", resp["kinesisEndpoint"], "runnel's endpoint")
		require.Equal(t, true, resp["keyId"], "credentials")
		_, logs, _ := strings.Cut(stdout, "Function Logs:\n")
		require.Regexp(t, `(?m)^START RequestId: [0-9a-f-]{36} Version: \$LATEST$`, logs)
		require.Regexp(t, `(?m)^\S+Z\t[0-9a-f-]{36}\tINFO\t got Hello, this is a test 123\.$`, logs)
		require.Regexp(t, `(?m)^END RequestId: [0-9a-f-]{36}$`, logs)
		require.Regexp(t, `(?m)^REPORT RequestId: [0-9a-f-]{36}\tDuration: [0-9.]+ ms`, logs)
	})
	t.Run("data", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "invoke", "node-fn", "--config", cfg, "--data", `{"Name":"Shadowfax"}`, "--data", "two")
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		require.Equal(t, []any{`{"Name":"Shadowfax"}`, "two"}, responseOf(t, stdout)["data"])
	})
	t.Run("event file", func(t *testing.T) {
		t.Parallel()
		event := filepath.Join(t.TempDir(), "event.json")
		require.NoError(t, os.WriteFile(event, []byte(`{"Records":[{"kinesis":{"partitionKey":"k","sequenceNumber":"7","data":"aGk=","approximateArrivalTimestamp":1.7e9},
"eventSource":"aws:kinesis","eventID":"shardId-000000000003:7","eventSourceARN":"arn:aws:kinesis:eu-west-1:123456789012:stream/other"}]}`), 0o644))
		code, stdout, stderr := runCLI(t, "invoke", "node-fn", "--config", cfg, "--event", event)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		resp := responseOf(t, stdout)
		require.Equal(t, []any{"hi"}, resp["data"])
		require.Equal(t, "arn:aws:kinesis:eu-west-1:123456789012:stream/other", resp["source"])
	})
	t.Run("function error", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "invoke", "python-fn", "--config", cfg)
		require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		resp := responseOf(t, stdout)
		require.Equal(t, "KeyError", resp["errorType"])
		require.Equal(t, "'Name'", resp["errorMessage"])
		require.Contains(t, stdout, "failing on purpose")
		require.Contains(t, stderr, "invocation failed: handler process 0: function error: KeyError: 'Name'")
	})
	t.Run("command", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "invoke", "command", "--config", cfg, "--data", `{"n":1}`, "--data", `{"fail":true}`)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		resp := responseOf(t, stdout)
		require.Equal(t, []any{map[string]any{"itemIdentifier": "49545115243490985018280067714973144582180062593244200962"}}, resp["batchItemFailures"])
		require.Contains(t, stdout, "asked to fail", "the handler's stderr is in the logs")
	})
	t.Run("builtin", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "invoke", "printer", "--config", cfg, "--data", "hello")
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		require.Contains(t, stdout, `"data":"hello"`, "the log processor printed the record")
		require.Equal(t, map[string]any{}, responseOf(t, stdout))
	})
	t.Run("http", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "invoke", "hook", "--config", cfg, "--data", "a", "--data", "b")
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
		require.EqualValues(t, 2, responseOf(t, stdout)["seen"], "the endpoint's answer as it wrote it")
	})
	t.Run("unknown pipeline", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runCLI(t, "invoke", "nope", "--config", cfg)
		require.Equal(t, exitUsage, code)
		require.Contains(t, stderr, `declares no pipeline "nope"; its pipelines: [node-fn python-fn command printer hook]`)
	})
	t.Run("bad event", func(t *testing.T) {
		t.Parallel()
		event := filepath.Join(t.TempDir(), "event.json")
		require.NoError(t, os.WriteFile(event, []byte(`{"Records":[]}`), 0o644))
		code, _, stderr := runCLI(t, "invoke", "node-fn", "--config", cfg, "--event", event)
		require.Equal(t, exitUsage, code)
		require.Contains(t, stderr, "not a Kinesis event: no Records")
	})
}
