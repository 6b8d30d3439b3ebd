package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = e.main(t.Context(), args)
	return code, out.String(), errb.String()
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte(`streams: [{name: s}]
pipelines:
  - name: p
    source: s
    handler: {type: builtin, name: log}
`), 0o644))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`pipelines:
  - name: p
    source: s
    batchSize: 0
    handler: {type: builtin, name: nope}
  - name: q
    source: s
    handler:
      type: builtin
      name: count
      options:
        key: "{page}"
        redis: {adr: "127.0.0.1:6379"}
        expire: soon
        decode: {format: csv}
`), 0o644))

	code, stdout, stderr := runCLI(t, "config", "check", good)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, good+": ok (1 streams, 1 pipelines)\n", stdout)

	code, stdout, stderr = runCLI(t, "config", "check", good, bad)
	require.Equal(t, 1, code)
	require.Contains(t, stdout, good+": ok")
	require.Contains(t, stderr, bad+":4:16: pipelines[0].batchSize: must be between 1 and 10000, got 0")
	require.Contains(t, stderr, bad+`:5:36: pipelines[0].handler.name: unknown built-in processor "nope"; built-in processors: `)
	// A built-in processor's options are placed at their line and column.
	require.Contains(t, stderr, bad+":13:17: pipelines[1].handler.options.redis.adr: unknown option; did you mean addr?")
	require.Contains(t, stderr, bad+`:14:17: pipelines[1].handler.options.expire: must be a duration such as 24h or 90m, got "soon"`)
	require.Contains(t, stderr, bad+":15:9: pipelines[1].handler.options.decode.columns: the csv format needs the column names")
	// So are the pipeline's own fields: a misspelt one with the closest
	// name, a value of the wrong kind at its column.
	typo := filepath.Join(dir, "typo.yaml")
	require.NoError(t, os.WriteFile(typo, []byte(`pipelines:
  - name: p
    sorce: s
    parallelization: many
    handler: {type: builtin, name: log}
`), 0o644))
	code, _, typoErr := runCLI(t, "config", "check", typo)
	require.Equal(t, 1, code)
	require.Contains(t, typoErr, typo+":3:5: pipelines[0].sorce: unknown field; did you mean source?")
	require.Contains(t, typoErr, typo+`:4:22: pipelines[0].parallelization: must be an integer, got the string "many"`)
	names := pipelineBuiltins()
	require.Contains(t, names, "noop")
	for name := range names {
		require.Contains(t, stderr, name, "the message lists every built-in processor")
	}

	code, _, _ = runCLI(t, "config", "check")
	require.Equal(t, 2, code)

	// runnel run refuses an invalid file before doing anything.
	code, _, stderr = runCLI(t, "--endpoint", "http://127.0.0.1:1", "run", bad)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "batchSize")
}

func TestMain(m *testing.M) { runneltest.Main(m) }

type handledLine struct {
	ShardID        string         `json:"shardId"`
	SequenceNumber string         `json:"sequenceNumber"`
	Data           map[string]any `json:"data"`
}

func readHandled(t *testing.T, path string) []handledLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out []handledLine
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		var h handledLine
		require.NoError(t, json.Unmarshal([]byte(line), &h), line)
		out = append(out, h)
	}
	return out
}

func seqBefore(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

var (
	statusRe = regexp.MustCompile(`msg="status listening".*url=(http://127\.0\.0\.1:[1-9][0-9]*/status)`)
)

// TestRunEndToEnd runs runnel serve and runnel run as processes, with the
// Go example handler as a command handler, and checks that every record
// put with the SDK is handled in order per shard, and that the poison
// record ends in the on-failure file.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	t.Parallel()
	dir := t.TempDir()
	handlerBin := runneltest.Build(t, "github.com/runnel-dev/runnel/examples/handler-go")

	srv := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"), "--fsync", "never")
	url := srv.URL

	handled := filepath.Join(dir, "handled.jsonl")
	yml := fmt.Sprintf(`streams:
  - name: events
    shards: 3
pipelines:
  - name: events-go
    source: events
    batchSize: 10
    maxRetries: 2
    bisectOnError: true
    reportBatchItemFailures: true
    timeout: 20s
    onFailure:
      file: failed.jsonl
    handler:
      type: command
      command: [%q]
      env:
        HANDLED_LOG: %q
`, handlerBin, handled)
	cfgPath := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yml), 0o644))

	run := runneltest.Start(t, nil, "--endpoint", url, "run", cfgPath, "--status-listen", "127.0.0.1:0")
	statusURL := run.WaitFor(t, statusRe, 60*time.Second)[1]

	client := kinesistest.NewClient(url)
	ctx := t.Context()
	sum, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("events")})
	require.NoError(t, err, "runnel run creates declared streams before it reports status")
	require.EqualValues(t, 3, aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount))

	const n, poison = 300, 137
	for start := 0; start < n; start += 100 {
		var entries []types.PutRecordsRequestEntry
		for i := start; i < start+100; i++ {
			data := fmt.Sprintf(`{"n":%d}`, i)
			if i == poison {
				data = fmt.Sprintf(`{"n":%d,"fail":true}`, i)
			}
			entries = append(entries, types.PutRecordsRequestEntry{
				PartitionKey: aws.String(fmt.Sprintf("user-%d", i%17)), Data: []byte(data),
			})
		}
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("events"), Records: entries})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	}

	failed := filepath.Join(dir, "failed.jsonl")
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := map[int]bool{}
		for _, h := range readHandled(t, handled) {
			got[int(h.Data["n"].(float64))] = true
		}
		fb, _ := os.ReadFile(failed)
		if len(got) == n-1 && bytes.Contains(fb, []byte("KinesisBatchInfo")) {
			break
		}
		if time.Now().After(deadline) {
			stderr := run.Stderr()
			t.Fatalf("after 90s: %d of %d records handled, on-failure file %q\n%s", len(got), n-1, fb, stderr)
		}
		<-time.After(50 * time.Millisecond)
	}

	// Every record but the poison one was handled; per shard, first
	// deliveries are in sequence order (retries may deliver again).
	seen := map[int]bool{}
	first := map[string]bool{}
	last := map[string]string{}
	for _, h := range readHandled(t, handled) {
		seen[int(h.Data["n"].(float64))] = true
		key := h.ShardID + "/" + h.SequenceNumber
		if first[key] {
			continue
		}
		first[key] = true
		if l := last[h.ShardID]; l != "" {
			require.True(t, seqBefore(l, h.SequenceNumber), "shard %s: %s handled after %s", h.ShardID, h.SequenceNumber, l)
		}
		last[h.ShardID] = h.SequenceNumber
	}
	require.False(t, seen[poison], "the poison record was handled")
	require.Len(t, last, 3, "records of every shard were handled")

	// The poison record, with its payload, is in the on-failure file.
	var poisoned bool
	fb, err := os.ReadFile(failed)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(fb)), "\n") {
		var f struct {
			RequestContext struct{ Condition string } `json:"requestContext"`
			Payload        struct {
				Records []struct {
					Kinesis struct{ Data []byte } `json:"kinesis"`
				}
			} `json:"payload"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &f), line)
		require.Equal(t, "RetryAttemptsExhausted", f.RequestContext.Condition)
		for _, r := range f.Payload.Records {
			if string(r.Kinesis.Data) == fmt.Sprintf(`{"n":%d,"fail":true}`, poison) {
				poisoned = true
			}
		}
	}
	require.True(t, poisoned, "poison record not in the on-failure file:\n%s", fb)

	// The status endpoint reports the pipeline's shards.
	res, err := http.Get(statusURL)
	require.NoError(t, err)
	var status struct {
		Pipelines []struct {
			Name   string
			Worker struct {
				Shards []struct {
					ShardID       string
					Checkpoint    string
					Invocations   int64
					ToDestination int64
				}
			}
		}
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&status))
	res.Body.Close()
	require.Len(t, status.Pipelines, 1)
	require.Equal(t, "events-go", status.Pipelines[0].Name)
	require.Len(t, status.Pipelines[0].Worker.Shards, 3)
	var invocations, toDest int64
	for _, s := range status.Pipelines[0].Worker.Shards {
		invocations += s.Invocations
		toDest += s.ToDestination
	}
	require.GreaterOrEqual(t, invocations, int64(3))
	// The records given up on are the poison one and those after it in its
	// last batch, as Lambda gives up on the retried rest of a batch.
	require.GreaterOrEqual(t, toDest, int64(1))

	// SIGUSR1 prints the status; SIGTERM stops gracefully and prints it
	// once more.
	require.NoError(t, run.Signal(syscall.SIGUSR1))
	deadline = time.Now().Add(30 * time.Second)
	for {
		stdout := run.Stdout()
		if strings.Contains(stdout, "pipeline events-go") {
			break
		}
		require.False(t, time.Now().After(deadline), "no status on stdout after SIGUSR1")
		<-time.After(20 * time.Millisecond)
	}
	require.NoError(t, run.Signal(syscall.SIGTERM))
	select {
	case <-run.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("runnel run did not stop within 60s of SIGTERM")
	}
	stdout, stderr := run.Stdout(), run.Stderr()
	require.NoError(t, run.Err(), stderr)
	require.Equal(t, 2, strings.Count(stdout, "pipeline events-go"), stdout)
}

// TestServePipelines runs pipelines inside runnel serve: the built-in log
// processor prints each record put with the SDK.
func TestServePipelines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	t.Parallel()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`streams:
  - name: logs
    shards: 2
pipelines:
  - name: print
    source: logs
    handler: {type: builtin, name: log}
`), 0o644))
	srv := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"), "--fsync", "never", "--pipelines", cfgPath)
	url := srv.URL
	srv.WaitFor(t, regexp.MustCompile(`msg="pipeline starting".* pipeline=print`), 60*time.Second)

	client := kinesistest.NewClient(url)
	const n = 20
	for i := range n {
		_, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{
			StreamName: aws.String("logs"), PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte(fmt.Sprintf("line-%d", i)),
		})
		require.NoError(t, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		stdout, stderr := srv.Stdout(), srv.Stderr()
		missing := 0
		for i := range n {
			if !strings.Contains(stdout, fmt.Sprintf(`"data":"line-%d"`, i)) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records not printed\nstdout:\n%s\nstderr:\n%s", missing, n, stdout, stderr)
		}
		<-time.After(20 * time.Millisecond)
	}
	require.NoError(t, srv.Signal(syscall.SIGTERM))
	select {
	case <-srv.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("runnel serve did not stop within 60s of SIGTERM")
	}
	stderr := srv.Stderr()
	require.NoError(t, srv.Err(), stderr)
}

// TestGivenUpBatchNamesItsCause runs a command handler that fails every
// invocation with a Lambda error: the batch given up on is logged as a
// WARN line naming the condition and the handler's error, and its
// on-failure record carries the same error.
func TestGivenUpBatchNamesItsCause(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	t.Parallel()
	dir := t.TempDir()
	srv := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"), "--fsync", "never")
	const cause = "no EC2 IMDS role found"
	cfgPath := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`streams:
  - name: events
    shards: 1
pipelines:
  - name: failing
    source: events
    maxRetries: 1
    onFailure: {file: failed.jsonl}
    handler:
      type: command
      command: [sh, -c, 'while read -r event; do echo "{\"errorType\":\"CredentialsError\",\"errorMessage\":\"%s\"}"; done']
`, cause)), 0o644))
	run := runneltest.Start(t, nil, "--endpoint", srv.URL, "run", cfgPath, "--state-dir", filepath.Join(dir, "state"))
	run.WaitFor(t, regexp.MustCompile(`msg="pipeline starting"`), 60*time.Second)

	client := kinesistest.NewClient(srv.URL)
	_, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{
		StreamName: aws.String("events"), PartitionKey: aws.String("k"), Data: []byte(`{"n":1}`),
	})
	require.NoError(t, err)

	line := run.WaitFor(t, regexp.MustCompile(`level=WARN msg="records given up on; sent to the on-failure destination".*`), 60*time.Second)[0]
	require.Contains(t, line, "condition=RetryAttemptsExhausted")
	require.Contains(t, line, "invocations=2")
	require.Regexp(t, `err="[^"]*function error: CredentialsError: `+cause+`"`, line)

	b, err := os.ReadFile(filepath.Join(dir, "failed.jsonl"))
	require.NoError(t, err)
	var f struct {
		RequestContext struct {
			Condition              string `json:"condition"`
			ApproximateInvokeCount int    `json:"approximateInvokeCount"`
		} `json:"requestContext"`
		ResponseContext struct {
			FunctionError string `json:"functionError"`
			ErrorMessage  string `json:"errorMessage"`
		} `json:"responseContext"`
	}
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(b), &f), string(b))
	require.Equal(t, "RetryAttemptsExhausted", f.RequestContext.Condition)
	require.Equal(t, 2, f.RequestContext.ApproximateInvokeCount)
	require.Equal(t, "Unhandled", f.ResponseContext.FunctionError)
	require.Contains(t, f.ResponseContext.ErrorMessage, "function error: CredentialsError: "+cause)
}
