package consumer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/producer"
)

func countOf(ds []delivery, data string) int {
	n := 0
	for _, d := range ds {
		if d.data == data {
			n++
		}
	}
	return n
}

func readFailures(t *testing.T, path string) []consumer.Failure {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []consumer.Failure
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var fl consumer.Failure
		require.NoError(t, json.Unmarshal(sc.Bytes(), &fl))
		out = append(out, fl)
	}
	require.NoError(t, sc.Err())
	return out
}

func TestPartialBatchFailureRewindsToLowestFailedRecord(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 30, 3, "")
	var once sync.Once
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		var resp *lambda.Response
		for _, r := range ev.Records {
			if string(r.Kinesis.Data) == "k2/14" || string(r.Kinesis.Data) == "k1/19" {
				once.Do(func() {
					// Two failures; the lowest (k2/14) decides.
					resp = &lambda.Response{BatchItemFailures: []lambda.BatchItemFailure{
						{ItemIdentifier: ev.Records[19].Kinesis.SequenceNumber},
						{ItemIdentifier: ev.Records[14].Kinesis.SequenceNumber},
					}}
				})
			}
		}
		return resp, nil
	}
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.BatchSize = 100
	cfg.ReportBatchItemFailures = true
	startWorker(t, cfg)
	eventually(t, 20*time.Second, "all delivered", func() bool { return h.distinct() == len(want) && len(h.deliveries()) >= 30+16 })
	got := h.deliveries()
	checkInOrder(t, got, want)
	for i, w := range want {
		n := countOf(got, w)
		if i < 14 {
			require.Equal(t, 1, n, "record %s before the failure delivered once", w)
		} else {
			require.Equal(t, 2, n, "record %s at or after the failure retried once", w)
		}
	}
	require.Equal(t, 2, h.events)
}

func TestUnknownItemIdentifierFailsWholeBatch(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 10, 2, "")
	var calls int
	var mu sync.Mutex
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return &lambda.Response{BatchItemFailures: []lambda.BatchItemFailure{{ItemIdentifier: "12345"}}}, nil
		}
		if calls == 2 {
			return &lambda.Response{BatchItemFailures: []lambda.BatchItemFailure{{ItemIdentifier: ""}}}, nil
		}
		return &lambda.Response{BatchItemFailures: []lambda.BatchItemFailure{}}, nil // empty list: success
	}
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.ReportBatchItemFailures = true
	w := startWorker(t, cfg)
	eventually(t, 20*time.Second, "delivered three times", func() bool { return len(h.deliveries()) >= 30 })
	eventually(t, 10*time.Second, "checkpoint at the end", func() bool {
		st := w.w.Status()
		return len(st.Shards) == 1 && st.Shards[0].RecordsBehind == 0 && st.Shards[0].Checkpoint != consumer.SentinelTrimHorizon
	})
	got := h.deliveries()
	for _, d := range want {
		require.Equal(t, 3, countOf(got, d), "record %s", d)
	}
	st := w.w.Status()
	require.Equal(t, int64(3), st.Shards[0].Invocations)
	require.Equal(t, int64(2), st.Shards[0].Errors)
	require.Contains(t, st.Shards[0].LastError, "not a sequence number of the batch")
}

func TestBisectIsolatesPoisonRecordToDestinationFile(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 40, 4, "")
	poison := want[21]
	ok := &recorder{} // records of successful invocations only
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		for _, r := range ev.Records {
			if string(r.Kinesis.Data) == poison {
				return nil, errors.New("cannot parse " + poison)
			}
		}
		return ok.Invoke(ctx, ev)
	}
	path := filepath.Join(t.TempDir(), "failed.jsonl")
	dest, err := consumer.NewFileDestination(path)
	require.NoError(t, err)
	t.Cleanup(func() { dest.Close() })

	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.BatchSize = 16
	cfg.BisectBatchOnFunctionError = true
	cfg.MaximumRetryAttempts = intp(2)
	cfg.OnFailure = dest
	w := startWorker(t, cfg)
	eventually(t, 20*time.Second, "the rest delivered", func() bool { return ok.distinct() == len(want)-1 })
	eventually(t, 10*time.Second, "checkpoint at the end", func() bool {
		st := w.w.Status()
		return st.Shards[0].RecordsBehind == 0 && st.Shards[0].ToDestination == 1
	})
	checkInOrder(t, ok.deliveries(), append(append([]string{}, want[:21]...), want[22:]...))
	require.Zero(t, countOf(ok.deliveries(), poison))

	fs := readFailures(t, path)
	require.Len(t, fs, 1)
	f := fs[0]
	require.Equal(t, consumer.ConditionRetryAttemptsExhausted, f.RequestContext.Condition)
	require.Equal(t, 3, f.RequestContext.ApproximateInvokeCount, "first attempt and two retries")
	require.Equal(t, "arn:aws:lambda:us-east-1:000000000000:function:app", f.RequestContext.FunctionARN)
	require.Len(t, f.RequestContext.RequestID, 36)
	require.Equal(t, "1.0", f.Version)
	require.Equal(t, "Unhandled", f.ResponseContext.FunctionError)
	require.Contains(t, f.ResponseContext.ErrorMessage, "cannot parse")
	require.Equal(t, 1, f.KinesisBatchInfo.BatchSize)
	require.Equal(t, "shardId-000000000000", f.KinesisBatchInfo.ShardID)
	require.Equal(t, "arn:aws:kinesis:us-east-1:000000000000:stream/s", f.KinesisBatchInfo.StreamARN)
	require.Equal(t, f.KinesisBatchInfo.StartSequenceNumber, f.KinesisBatchInfo.EndSequenceNumber)
	_, err = time.Parse(time.RFC3339Nano, f.KinesisBatchInfo.ApproximateArrivalOfFirstRecord)
	require.NoError(t, err)
	require.NotNil(t, f.Payload)
	require.Len(t, f.Payload.Records, 1)
	require.Equal(t, poison, string(f.Payload.Records[0].Kinesis.Data))
	require.Equal(t, f.KinesisBatchInfo.StartSequenceNumber, f.Payload.Records[0].Kinesis.SequenceNumber)

	// The raw document uses Lambda's field names.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, k := range []string{`"requestContext"`, `"approximateInvokeCount":3`, `"KinesisBatchInfo"`, `"approximateArrivalOfLastRecord"`, `"streamArn"`, `"version":"1.0"`, `"payload"`} {
		require.True(t, strings.Contains(string(raw), k), "missing %s in %s", k, raw)
	}
}

func TestRetriesAreBoundedThenTheShardMovesOn(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	first := e.put(t, "s", 5, 1, "")
	var mu sync.Mutex
	failing := 0
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		for _, r := range ev.Records {
			if string(r.Kinesis.Data) == first[2] {
				mu.Lock()
				failing++
				mu.Unlock()
				return nil, errors.New("boom")
			}
		}
		return nil, nil
	}
	path := filepath.Join(t.TempDir(), "failed.jsonl")
	dest, err := consumer.NewFileDestination(path)
	require.NoError(t, err)
	t.Cleanup(func() { dest.Close() })
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.OnFailure = dest
	cfg.MaximumRetryAttempts = intp(3) // and no bisection
	w := startWorker(t, cfg)
	eventually(t, 20*time.Second, "batch given up on", func() bool { return len(readFailures(t, path)) == 1 })
	later := e.put(t, "s", 5, 1, "later-")
	eventually(t, 20*time.Second, "later records delivered", func() bool {
		return h.distinct() == 10
	})
	mu.Lock()
	require.Equal(t, 1+3, failing)
	mu.Unlock()
	fs := readFailures(t, path)
	require.Equal(t, 5, fs[0].KinesisBatchInfo.BatchSize)
	require.Equal(t, 4, fs[0].RequestContext.ApproximateInvokeCount)
	require.Len(t, fs[0].Payload.Records, 5)
	for _, d := range later {
		require.Equal(t, 1, countOf(h.deliveries(), d))
	}
	eventually(t, 10*time.Second, "checkpoint at the end", func() bool { return w.w.Status().Shards[0].RecordsBehind == 0 })
}

func TestRecordsOlderThanMaximumAgeGoToDestinationUnseen(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 8, 2, "")
	h := &recorder{}
	path := filepath.Join(t.TempDir(), "failed.jsonl")
	dest, err := consumer.NewFileDestination(path)
	require.NoError(t, err)
	t.Cleanup(func() { dest.Close() })
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.OnFailure = dest
	cfg.MaximumRecordAge = time.Minute
	// The worker's clock runs two minutes ahead of the server's, so every
	// record is two minutes old when read.
	cfg.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	w := startWorker(t, cfg)
	eventually(t, 20*time.Second, "records discarded", func() bool {
		n := 0
		for _, f := range readFailures(t, path) {
			n += f.KinesisBatchInfo.BatchSize
		}
		return n == len(want)
	})
	require.Empty(t, h.deliveries(), "the handler never sees expired records")
	fs := readFailures(t, path)
	require.Equal(t, consumer.ConditionRecordAgeExceeded, fs[0].RequestContext.Condition)
	require.Equal(t, 0, fs[0].RequestContext.ApproximateInvokeCount)
	require.Equal(t, want[0], string(fs[0].Payload.Records[0].Kinesis.Data))
	eventually(t, 10*time.Second, "checkpoint at the end", func() bool { return w.w.Status().Shards[0].RecordsBehind == 0 })
}

func TestInvocationTimeoutCountsAsFunctionError(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	e.put(t, "s", 3, 1, "")
	var mu sync.Mutex
	calls := 0
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			<-ctx.Done() // hangs until the runtime gives up
			return nil, ctx.Err()
		}
		return nil, nil
	}
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.InvocationTimeout = 200 * time.Millisecond
	w := startWorker(t, cfg)
	eventually(t, 20*time.Second, "retried after the timeout", func() bool {
		st := w.w.Status()
		return len(st.Shards) == 1 && st.Shards[0].Invocations == 2 && st.Shards[0].RecordsBehind == 0
	})
	st := w.w.Status()
	require.Contains(t, st.Shards[0].LastError, "timed out after 200ms")
	require.Equal(t, int64(1), st.Shards[0].Errors)
}

func TestOnFailureDestinationStream(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	e.createStream(t, "dlq", 1)
	want := e.put(t, "s", 6, 1, "")
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		for _, r := range ev.Records {
			if string(r.Kinesis.Data) == want[3] {
				return nil, errors.New("poison")
			}
		}
		return nil, nil
	}
	p, err := producer.New(e.c, producer.Config{Stream: "dlq", Linger: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = p.Close(context.Background()) })
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.BisectBatchOnFunctionError = true
	cfg.MaximumRetryAttempts = intp(0)
	cfg.OnFailure = &consumer.StreamDestination{W: p}
	startWorker(t, cfg)

	it, err := e.c.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{
		StreamName: aws.String("dlq"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	iter := it.ShardIterator
	var docs []consumer.Failure
	eventually(t, 20*time.Second, "failure document in the stream", func() bool {
		out, err := e.c.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: iter})
		require.NoError(t, err)
		iter = out.NextShardIterator
		for _, r := range out.Records {
			var f consumer.Failure
			require.NoError(t, json.Unmarshal(r.Data, &f))
			docs = append(docs, f)
		}
		return len(docs) > 0
	})
	require.Len(t, docs, 1)
	require.Equal(t, 1, docs[0].KinesisBatchInfo.BatchSize)
	require.Equal(t, 1, docs[0].RequestContext.ApproximateInvokeCount)
	require.Equal(t, want[3], string(docs[0].Payload.Records[0].Kinesis.Data))
	require.Equal(t, "shardId-000000000000", docs[0].KinesisBatchInfo.ShardID)
}
