package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// TestCommandHandlerPoison runs a command handler that crashes on, answers
// garbage to, or hangs on its poison records, with one process shared by
// four shards and a retry budget far shorter than the restarts and
// timeouts add up to: every good record is handled, and the on-failure
// file holds exactly the poison records, each once.
func TestCommandHandlerPoison(t *testing.T) {
	bin := runneltest.Build(t, "./testdata/poisoned")
	for _, tc := range []struct {
		kind      string
		n, every  int
		batchSize int
		timeout   string
	}{
		{kind: "crash", n: 800, every: 100, batchSize: 10, timeout: "5s"},
		{kind: "garbage", n: 800, every: 100, batchSize: 10, timeout: "5s"},
		{kind: "hang", n: 300, every: 300, batchSize: 4, timeout: "1s"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			testCommandHandlerPoison(t, bin, tc.kind, tc.n, tc.every, tc.batchSize, tc.timeout)
		})
	}
}

// testCommandHandlerPoison puts n records, every every-th of them (from
// every/2) poison of the given kind, and checks the outcome.
func testCommandHandlerPoison(t *testing.T, bin, kind string, n, every, batchSize int, timeout string) {
	var poison []string
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	dir := t.TempDir()
	handled := filepath.Join(dir, "handled.jsonl")
	yml := fmt.Sprintf(`streams:
  - name: orders
    shards: 4
pipelines:
  - name: poisoned
    source: orders
    batchSize: %d
    maxRetries: 1
    bisectOnError: true
    timeout: %s
    onFailure: {file: failed.jsonl}
    handler:
      type: command
      command: [%q]
      env: {HANDLED_LOG: %q}
`, batchSize, timeout, bin, handled)
	path := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yml), 0o644))
	cfg, err := Load(path, testBuiltins)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	r, err := New(ctx, cfg, Options{
		Kinesis:  client,
		StateDir: filepath.Join(dir, "state"),
		Logger:   slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Tune: func(c *consumer.Config) {
			c.PollInterval = 20 * time.Millisecond
			c.TakeInterval = 100 * time.Millisecond
		},
	})
	require.NoError(t, err)
	require.NoError(t, r.EnsureStreams(ctx))
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-ran:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}()

	var poisonAt []int
	var entries []types.PutRecordsRequestEntry
	for i := range n {
		data := fmt.Sprintf(`{"n":%d}`, i)
		if i%every == every/2 {
			data = fmt.Sprintf(`{"n":%d,"poison":%q}`, i, kind)
			poison = append(poison, data)
			poisonAt = append(poisonAt, i)
		}
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%d", i%16)), Data: []byte(data)})
	}
	for chunk := range slices.Chunk(entries, 100) {
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: chunk})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	}

	failed := filepath.Join(dir, "failed.jsonl")
	var diverted []string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := map[float64]bool{}
		for _, rec := range readJSONLines[handledRecord](t, handled) {
			got[rec.Data["n"].(float64)] = true
		}
		diverted = diverted[:0]
		for _, f := range readJSONLines[consumer.Failure](t, failed) {
			for _, rec := range f.Payload.Records {
				diverted = append(diverted, string(rec.Kinesis.Data))
			}
		}
		if len(got) == n-len(poison) && len(diverted) >= len(poison) {
			break
		}
		require.False(t, time.Now().After(deadline), "handled %d of %d good records; %d of %d poison records diverted",
			len(got), n-len(poison), len(diverted), len(poison))
		<-time.After(50 * time.Millisecond)
	}
	require.ElementsMatch(t, poison, diverted, "the on-failure file holds exactly the poison records")
	checkHandled(t, readJSONLines[handledRecord](t, handled), n, poisonAt...)
}
