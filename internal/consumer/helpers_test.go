package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// env is a running server with a client.
type env struct {
	srv *kinesistest.Server
	c   *kinesis.Client
	// putter writes the test's records: a fresh connection per call and
	// no retries. aws-sdk-go-v2 now and then loses a kept-alive
	// connection while reading an answer and retries the call
	// (aws/aws-sdk-go-v2#2737); a retried PutRecords that had succeeded
	// stores its records twice under new sequence numbers, which a test
	// counting deliveries would blame on the consumer.
	putter *kinesis.Client
}

func start(t testing.TB) *env {
	t.Helper()
	return envFor(t, kinesistest.Start(t))
}

// envFor is start for a server the test started itself.
func envFor(t testing.TB, srv *kinesistest.Server) *env {
	t.Helper()
	putter := kinesis.New(kinesis.Options{
		BaseEndpoint:     aws.String(srv.URL),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
		HTTPClient:       &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		RetryMaxAttempts: 1,
	})
	return &env{srv: srv, c: srv.Client(t), putter: putter}
}

func (e *env) createStream(t testing.TB, name string, shards int32) {
	t.Helper()
	ctx := context.Background()
	_, err := e.c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		out, err := e.c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(c, err)
		require.Equal(c, types.StreamStatusActive, out.StreamDescriptionSummary.StreamStatus)
	}, 10*time.Second, 10*time.Millisecond)
}

// put writes n records "<key>/<i>" spread over keys partition keys and
// returns their data in put order.
func (e *env) put(t testing.TB, stream string, n, keys int, prefix string) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i += 500 {
		var entries []types.PutRecordsRequestEntry
		for j := i; j < n && j < i+500; j++ {
			key := fmt.Sprintf("k%d", j%keys)
			data := fmt.Sprintf("%s%s/%d", prefix, key, j)
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte(data)})
			out = append(out, data)
		}
		e.putOnce(t, stream, entries)
	}
	return out
}

// putOnce stores entries exactly once. The putter does not retry, since a
// retry after a lost answer would store the call twice; when the SDK
// loses an answer (aws/aws-sdk-go-v2#2737: "use of closed network
// connection" while reading a 200), the stream is read to learn whether
// the call was stored, and it is sent again only if it was not.
func (e *env) putOnce(t testing.TB, stream string, entries []types.PutRecordsRequestEntry) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		res, err := e.putter.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err == nil {
			require.Zero(t, aws.ToInt32(res.FailedRecordCount))
			return
		}
		if e.stored(t, stream, string(entries[0].Data)) {
			t.Logf("PutRecords answer lost (%v); the call was stored", err)
			return
		}
		require.Less(t, attempt, 3, "PutRecords failed three times and stored nothing: %v", err)
		t.Logf("PutRecords answer lost (%v); the call was not stored, sending it again", err)
	}
}

// stored reports whether a record with data is in the stream.
func (e *env) stored(t testing.TB, stream, data string) bool {
	t.Helper()
	ctx := context.Background()
	shards, err := e.c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	for _, sh := range shards.Shards {
		it, err := e.c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		for iter := it.ShardIterator; iter != nil; {
			out, err := e.c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			require.NoError(t, err)
			for _, r := range out.Records {
				if string(r.Data) == data {
					return true
				}
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return false
}

// delivery is one record as a handler saw it.
type delivery struct {
	shard string
	seq   string
	sub   int64
	key   string
	data  string
}

// recorder is a lambda.Handler that records every record it sees and
// answers with fn (success when fn is nil).
type recorder struct {
	mu   sync.Mutex
	seen []delivery
	// events counts invocations.
	events int
	fn     func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error)
}

func (r *recorder) Invoke(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	r.mu.Lock()
	r.events++
	for _, rec := range ev.Records {
		d := delivery{
			shard: shardOf(rec.EventID),
			seq:   rec.Kinesis.SequenceNumber,
			key:   rec.Kinesis.PartitionKey,
			data:  string(rec.Kinesis.Data),
		}
		if rec.Kinesis.SubSequenceNumber != nil {
			d.sub = *rec.Kinesis.SubSequenceNumber
		}
		r.seen = append(r.seen, d)
	}
	r.mu.Unlock()
	if r.fn != nil {
		return r.fn(ctx, ev)
	}
	return nil, nil
}

func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.seen...)
}

// distinct counts the distinct data values seen.
func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]bool, len(r.seen))
	for _, d := range r.seen {
		m[d.data] = true
	}
	return len(m)
}

func shardOf(eventID string) string {
	for i := len(eventID) - 1; i >= 0; i-- {
		if eventID[i] == ':' {
			return eventID[:i]
		}
	}
	return eventID
}

func seqLess(a, b string) bool {
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y) < 0
}

// checkInOrder asserts every record in want was delivered, and that per
// shard the first deliveries came in sequence order with nothing seen
// for the first time behind a later record.
func checkInOrder(t *testing.T, got []delivery, want []string) {
	t.Helper()
	seen := make(map[string]bool, len(got))
	lastNew := map[string]delivery{}
	for _, d := range got {
		if seen[d.data] {
			continue
		}
		seen[d.data] = true
		if prev, ok := lastNew[d.shard]; ok {
			if !(seqLess(prev.seq, d.seq) || prev.seq == d.seq && prev.sub < d.sub) {
				t.Fatalf("shard %s: %s (%s/%d) first seen after %s (%s/%d)", d.shard, d.data, d.seq, d.sub, prev.data, prev.seq, prev.sub)
			}
		}
		lastNew[d.shard] = d
	}
	missing := 0
	for _, w := range want {
		if !seen[w] {
			missing++
			if missing < 5 {
				t.Errorf("record %s never delivered", w)
			}
		}
	}
	require.Zero(t, missing, "records never delivered")
}

// eventually waits for cond (runneltest.Eventually), naming what it waits for.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	runneltest.Eventually(t, d, cond, "timed out waiting for %s", what)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RUNNEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runningWorker is a Worker running in a goroutine.
type runningWorker struct {
	w      *consumer.Worker
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error
}

// stop stops the worker gracefully and waits for it.
func (r *runningWorker) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		require.NoError(t, r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop within 30s")
	}
}

// startWorker runs a worker with cfg; it is stopped when the test ends.
func startWorker(t testing.TB, cfg consumer.Config) *runningWorker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w, err := consumer.NewWorker(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningWorker{w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop within 30s")
		}
	})
	return r
}

func intp(n int) *int { return &n }
