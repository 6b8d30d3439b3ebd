package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/lambda"
)

// slowHandler is a command handler (a real shell process) that logs every
// event it receives as one line, waits DELAY (sleep's argument: seconds,
// or "infinity" to hang), then answers success.
const slowHandler = `while IFS= read -r line; do
  printf '%s\n' "$line" >> "$EVENTS"
  sleep "$DELAY"
  echo '{}'
done`

type slowResult struct {
	deliveries map[string]int // record data → times the handler got it
	failed     map[string]int // record data → times sent to the on-failure file
	status     PipelineStatus
}

// runSlowHandler runs one pipeline whose command handler takes delay per
// event, with the lease timings shortened so every invocation outlives
// several renewals and the whole lease duration, until every one of n
// records is handled or sent to the on-failure file.
func runSlowHandler(t *testing.T, delay, timeout string, maxRetries, n int) slowResult {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	dir := t.TempDir()
	events := filepath.Join(dir, "events.jsonl")
	yml := fmt.Sprintf(`streams:
  - {name: s, shards: 2}
pipelines:
  - name: slow
    source: s
    batchSize: 100
    batchingWindow: 300ms
    maxRetries: %d
    timeout: %s
    onFailure: {file: failed.jsonl}
    handler:
      type: command
      command: [/bin/sh, -c, %q]
      env: {EVENTS: %q, DELAY: %q}
`, maxRetries, timeout, slowHandler, events, delay)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newTestRunner(ctx, t, client, dir, yml, func(c *consumer.Config) {
		c.LeaseDuration = time.Second
		c.RenewInterval = 200 * time.Millisecond
	})
	require.NoError(t, r.EnsureStreams(ctx))
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()

	for i := range n {
		_, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String("s"), PartitionKey: aws.String(fmt.Sprint("key-", i)), Data: []byte(fmt.Sprint("r", i)),
		})
		require.NoError(t, err)
	}

	var res slowResult
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Status first: the files are complete for what it counts.
		st := r.Status()[0]
		var done int64
		for _, s := range st.Worker.Shards {
			done += s.Records
		}
		res.deliveries = map[string]int{}
		for _, ev := range readJSONLines[lambda.KinesisEvent](t, events) {
			for _, rec := range ev.Records {
				res.deliveries[string(rec.Kinesis.Data)]++
			}
		}
		res.failed = map[string]int{}
		for _, f := range readJSONLines[consumer.Failure](t, filepath.Join(dir, "failed.jsonl")) {
			for _, rec := range f.Payload.Records {
				res.failed[string(rec.Kinesis.Data)]++
			}
		}
		if done == int64(n) && st.Worker.RecordsBehind == 0 {
			res.status = st
			break
		}
		require.False(t, time.Now().After(deadline), "%d of %d records done; status %+v", done, n, st.Worker)
		<-time.After(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	return res
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A handler slower than the whole lease duration (1.5 s against 1 s, with
// renewals every 200 ms) within its 20 s timeout: every record is handled
// exactly once, none fails, no lease is lost and no shard stalls.
func TestCommandHandlerSlowerThanTheLeaseDuration(t *testing.T) {
	const n = 20
	res := runSlowHandler(t, "1.5", "20s", 0, n)
	require.Len(t, res.deliveries, n)
	for data, times := range res.deliveries {
		require.Equal(t, 1, times, "record %s handled more than once", data)
	}
	require.Empty(t, res.failed)
	require.Zero(t, res.status.Worker.LeasesLost)
	for _, s := range res.status.Worker.Shards {
		require.False(t, s.Stalled, "shard %s: %s", s.ShardID, s.StallReason)
		require.Zero(t, s.Errors, "shard %s: %s", s.ShardID, s.LastError)
	}
}

// A handler slower than its timeout, and one that never answers: each
// batch is invoked once and retried once (maxRetries: 1), its process
// killed on each timeout, and then every record of it is in the
// on-failure file, exactly once; the shards move on.
func TestCommandHandlerOverItsTimeoutIsRetriedThenGivenUpOn(t *testing.T) {
	for _, tc := range []struct{ name, delay string }{
		{"slower than the timeout", "3"},
		{"hangs", "infinity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 10
			res := runSlowHandler(t, tc.delay, "1s", 1, n)
			require.Len(t, res.failed, n, "every record given up on: %v", keysOf(res.failed))
			for data, times := range res.failed {
				require.Equal(t, 1, times, "record %s in the on-failure file more than once", data)
				require.Equal(t, 2, res.deliveries[data], "record %s: invoked once and retried once", data)
			}
			for _, s := range res.status.Worker.Shards {
				require.EqualValues(t, s.Records, s.ToDestination)
				require.True(t, s.Invocations == 0 || strings.Contains(s.LastError, "timed out"), "shard %s: %s", s.ShardID, s.LastError)
			}
		})
	}
}
