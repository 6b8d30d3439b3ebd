package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// handledRecord is a line the example handlers append to $HANDLED_LOG.
type handledRecord struct {
	ShardID        string         `json:"shardId"`
	SequenceNumber string         `json:"sequenceNumber"`
	PartitionKey   string         `json:"partitionKey"`
	Data           map[string]any `json:"data"`
}

func readJSONLines[T any](t *testing.T, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	// A line without its newline yet is still being written.
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []T
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var v T
		require.NoError(t, json.Unmarshal([]byte(line), &v), line)
		out = append(out, v)
	}
	return out
}

// seqLess compares decimal sequence numbers.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// checkHandled verifies that records 0..n-1 except poison were all handled,
// and that per shard the first deliveries are in sequence order.
func checkHandled(t *testing.T, recs []handledRecord, n int, poison ...int) {
	t.Helper()
	seen := map[int]bool{}
	first := map[string]bool{}
	last := map[string]string{}
	for _, r := range recs {
		v, ok := r.Data["n"].(float64)
		require.True(t, ok, "record without n: %+v", r)
		seen[int(v)] = true
		key := r.ShardID + "/" + r.SequenceNumber
		if first[key] {
			continue // a redelivery (at least once)
		}
		first[key] = true
		if l := last[r.ShardID]; l != "" {
			require.True(t, seqLess(l, r.SequenceNumber), "shard %s: %s handled after %s", r.ShardID, r.SequenceNumber, l)
		}
		last[r.ShardID] = r.SequenceNumber
	}
	for i := range n {
		if slices.Contains(poison, i) {
			require.False(t, seen[i], "poison record %d was handled", i)
			continue
		}
		require.True(t, seen[i], "record %d not handled", i)
	}
}

func TestMain(m *testing.M) { runneltest.Main(m) }

func buildExample(t *testing.T) string {
	t.Helper()
	return runneltest.Build(t, "github.com/runnel-dev/runnel/examples/handler-go")
}

func TestRunnerCommandPipeline(t *testing.T) {
	t.Run("go", func(t *testing.T) {
		command, err := json.Marshal([]string{buildExample(t)})
		require.NoError(t, err)
		testRunnerCommandPipeline(t, "type: command\n      command: "+string(command))
	})
	t.Run("python", func(t *testing.T) {
		script, err := filepath.Abs("../../examples/handler-python/handler.py")
		require.NoError(t, err)
		command, err := json.Marshal([]string{needProgram(t, "python3"), script})
		require.NoError(t, err)
		testRunnerCommandPipeline(t, "type: command\n      command: "+string(command))
	})
	// The same file as a Lambda function: runnel's runner calls
	// handler(event, context), the file's own runner is not used.
	t.Run("python lambda", func(t *testing.T) {
		needProgram(t, "python3")
		dir, err := filepath.Abs("../../examples/handler-python")
		require.NoError(t, err)
		testRunnerCommandPipeline(t, fmt.Sprintf("runtime: python\n      handler: handler.handler\n      dir: %q", dir))
	})
	// A Node function that throws for a batch with a poison record: the
	// batch is bisected down to the record, which goes to the on-failure
	// destination with the function's error.
	t.Run("node lambda error", func(t *testing.T) {
		needProgram(t, "node")
		dir, err := filepath.Abs("testdata/lambda")
		require.NoError(t, err)
		failed := testRunnerCommandPipeline(t, fmt.Sprintf("type: lambda\n      runtime: nodejs20.x\n      handler: index.handler\n      dir: %q", dir))
		var msgs []string
		for _, f := range failed {
			msgs = append(msgs, f.ResponseContext.ErrorMessage)
		}
		require.Contains(t, strings.Join(msgs, "\n"), "function error: Error: poison record")
	})
}

// needProgram returns the path of program, skipping the test when it is
// not in PATH unless RUNNEL_INTEGRATION=required.
func needProgram(t *testing.T, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatalf("%s not found and RUNNEL_INTEGRATION=required: %v", program, err)
		}
		t.Skipf("%s not found", program)
	}
	return p
}

// testRunnerCommandPipeline runs a pipeline whose handler (handlerYAML,
// the lines of the handler mapping) runs one of the example handlers
// against a real server, and returns what went to the on-failure file.
func testRunnerCommandPipeline(t *testing.T, handlerYAML string) []consumer.Failure {
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	dir := t.TempDir()
	yml := fmt.Sprintf(`streams:
  - name: orders
    shards: 2
    retention: 48h
pipelines:
  - name: orders-go
    source: orders
    batchSize: 7
    maxRetries: 1
    reportBatchItemFailures: true
    bisectOnError: true
    timeout: 10s
    onFailure: {file: failed.jsonl}
    handler:
      %s
      env: {HANDLED_LOG: %q}
`, handlerYAML, filepath.Join(dir, "handled.jsonl"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newTestRunner(ctx, t, client, dir, yml, nil)
	require.NoError(t, r.EnsureStreams(ctx))
	require.NoError(t, r.EnsureStreams(ctx), "existing streams are left alone")
	sum, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	require.NoError(t, err)
	require.EqualValues(t, 2, aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount))
	require.EqualValues(t, 48, aws.ToInt32(sum.StreamDescriptionSummary.RetentionPeriodHours))

	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()

	const n, poison = 60, 23
	for i := range n {
		data := fmt.Sprintf(`{"n":%d}`, i)
		if i == poison {
			data = fmt.Sprintf(`{"n":%d,"fail":true}`, i)
		}
		_, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String("orders"), PartitionKey: aws.String(fmt.Sprintf("key-%d", i%5)), Data: []byte(data),
		})
		require.NoError(t, err)
	}

	handled := filepath.Join(dir, "handled.jsonl")
	failed := filepath.Join(dir, "failed.jsonl")
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs := readJSONLines[handledRecord](t, handled)
		fails := readJSONLines[consumer.Failure](t, failed)
		got := map[float64]bool{}
		for _, r := range recs {
			got[r.Data["n"].(float64)] = true
		}
		if len(got) == n-1 && len(fails) > 0 {
			break
		}
		require.False(t, time.Now().After(deadline), "handled %d of %d records, %d failures", len(got), n-1, len(fails))
		<-time.After(20 * time.Millisecond)
	}
	checkHandled(t, readJSONLines[handledRecord](t, handled), n, poison)
	fails := readJSONLines[consumer.Failure](t, failed)
	var poisoned []string
	for _, f := range fails {
		require.NotNil(t, f.Payload)
		for _, rec := range f.Payload.Records {
			poisoned = append(poisoned, string(rec.Kinesis.Data))
		}
	}
	require.Contains(t, poisoned, fmt.Sprintf(`{"n":%d,"fail":true}`, poison))

	// Status, as JSON over HTTP.
	hs := httptest.NewServer(r)
	defer hs.Close()
	res, err := hs.Client().Get(hs.URL + "/status")
	require.NoError(t, err)
	var st struct{ Pipelines []PipelineStatus }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&st))
	res.Body.Close()
	require.Len(t, st.Pipelines, 1)
	require.Equal(t, "orders-go", st.Pipelines[0].Name)
	var invocations, toDest int64
	for _, s := range st.Pipelines[0].Worker.Shards {
		invocations += s.Invocations
		toDest += s.ToDestination
	}
	require.Positive(t, invocations)
	require.Positive(t, toDest)
	var text bytes.Buffer
	r.WriteStatus(&text)
	require.Contains(t, text.String(), "pipeline orders-go")

	cancel()
	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// The exit summary, taken after every lease was released, still
	// holds each shard's totals.
	var records int64
	for _, s := range r.Status()[0].Worker.Shards {
		records += s.Records
	}
	require.EqualValues(t, n, records, "records handled or sent to the destination, over the run")
	return fails
}

// newTestRunner writes yml as dir/pipelines.yaml and builds its runner
// against client, with state in dir/state and quick polling; tune, when
// set, adjusts each pipeline's consumer configuration further.
func newTestRunner(ctx context.Context, t *testing.T, client Client, dir, yml string, tune func(*consumer.Config)) *Runner {
	t.Helper()
	path := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yml), 0o644))
	cfg, err := Load(path, testBuiltins)
	require.NoError(t, err)
	r, err := New(ctx, cfg, Options{
		Kinesis:  client,
		StateDir: filepath.Join(dir, "state"),
		Logger:   slog.New(slog.NewTextHandler(testLog{t}, nil)),
		Tune: func(c *consumer.Config) {
			c.PollInterval = 20 * time.Millisecond
			c.TakeInterval = 100 * time.Millisecond
			if tune != nil {
				tune(c)
			}
		},
	})
	require.NoError(t, err)
	return r
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
