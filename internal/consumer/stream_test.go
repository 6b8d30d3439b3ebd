package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/kpl"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/stream"
)

func (e *env) waitActive(t testing.TB, name string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		out, err := e.c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(c, err)
		require.Equal(c, types.StreamStatusActive, out.StreamDescriptionSummary.StreamStatus)
	}, 10*time.Second, 10*time.Millisecond)
}

func (e *env) shards(t testing.TB, name string) []types.Shard {
	t.Helper()
	out, err := e.c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	return out.Shards
}

func TestReshardingChildrenWaitForEveryParent(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	store := memStore(t)
	h := &recorder{}
	var ws []*runningWorker
	for i := 0; i < 2; i++ {
		cfg := baseConfig(e, "s", store, h)
		cfg.WorkerID = fmt.Sprintf("w%d", i)
		cfg.BatchSize = 25
		leaseTimings(&cfg)
		ws = append(ws, startWorker(t, cfg))
	}
	ctx := context.Background()
	want := e.put(t, "s", 300, 30, "a-")
	// Split the only shard in two while records are read...
	_, err := e.c.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName:         aws.String("s"),
		ShardToSplit:       aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	})
	require.NoError(t, err)
	e.waitActive(t, "s")
	want = append(want, e.put(t, "s", 300, 30, "b-")...)
	// ...then merge the two children back into one.
	_, err = e.c.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName:           aws.String("s"),
		ShardToMerge:         aws.String("shardId-000000000001"),
		AdjacentShardToMerge: aws.String("shardId-000000000002"),
	})
	require.NoError(t, err)
	e.waitActive(t, "s")
	want = append(want, e.put(t, "s", 300, 30, "c-")...)

	eventually(t, 30*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	got := h.deliveries()
	checkInOrder(t, got, want)

	// Per shard, the positions (in delivery order) of its first and last
	// first-time deliveries.
	firstAt, lastAt := map[string]int{}, map[string]int{}
	seen := map[string]bool{}
	for i, d := range got {
		if seen[d.data] {
			continue
		}
		seen[d.data] = true
		if _, ok := firstAt[d.shard]; !ok {
			firstAt[d.shard] = i
		}
		lastAt[d.shard] = i
	}
	shards := e.shards(t, "s")
	require.Len(t, shards, 4)
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p == nil {
				continue
			}
			require.Less(t, lastAt[*p], firstAt[id], "shard %s began before its parent %s was finished", id, *p)
		}
	}
	require.Contains(t, firstAt, "shardId-000000000003")

	// The parents' leases are finished; the child of the merge runs.
	eventually(t, 10*time.Second, "leases finished", func() bool {
		ls, err := store.ListLeases(ctx)
		require.NoError(t, err)
		ends := 0
		for _, l := range ls {
			if l.Checkpoint.ShardEnd() {
				ends++
			}
		}
		return len(ls) == 4 && ends == 3
	})
	ls, err := store.ListLeases(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"shardId-000000000001", "shardId-000000000002"}, ls[3].ParentShardIDs)
}

func TestAggregatedRecordsKeepSubSequenceNumbersAcrossRestart(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	ctx := context.Background()
	var want []string
	for a := 0; a < 2; a++ {
		var users []kpl.Record
		for i := 0; i < 10; i++ {
			d := fmt.Sprintf("agg%d-%d", a, i)
			users = append(users, producer.Record{PartitionKey: "k" + strconv.Itoa(i%3), Data: []byte(d)})
			want = append(want, d)
		}
		agg, err := kpl.Aggregate(users)
		require.NoError(t, err)
		_, err = e.c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(agg.PartitionKey), Data: agg.Data})
		require.NoError(t, err)
	}
	want = append(want, e.put(t, "s", 5, 1, "plain-")...)

	store := memStore(t)
	first := &recorder{}
	var calls atomic.Int32
	var w1 atomic.Pointer[runningWorker]
	first.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		if calls.Add(1) == 3 {
			// Stop the worker while this batch is in flight.
			r := w1.Load()
			r.cancel()
			eventually(t, 10*time.Second, "worker stopping", func() bool { return r.w.Status().Stopping })
		}
		return nil, nil
	}
	cfg := baseConfig(e, "s", store, first)
	cfg.BatchSize = 3
	cfg.Handler = &gate{h: first, ready: make(chan struct{})}
	w := startWorker(t, cfg)
	w1.Store(w)
	close(cfg.Handler.(*gate).ready)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		t.Fatal("first worker did not stop")
	}
	require.NoError(t, w.err)
	l, err := store.GetLease(ctx, "shardId-000000000000")
	require.NoError(t, err)
	require.Empty(t, l.Owner)
	t.Logf("stopped at checkpoint %s", l.Checkpoint)
	require.Greater(t, l.Checkpoint.SubSequenceNumber, int64(0), "stopped inside an aggregate")

	second := &recorder{}
	cfg.Handler = second
	startWorker(t, cfg)
	eventually(t, 20*time.Second, "rest delivered", func() bool { return first.distinct()+second.distinct() == len(want) })
	all := append(first.deliveries(), second.deliveries()...)
	require.Len(t, all, len(want), "nothing repeated, nothing skipped")
	checkInOrder(t, all, want)
	last := first.deliveries()[len(first.deliveries())-1]
	next := second.deliveries()[0]
	require.Equal(t, l.Checkpoint.SequenceNumber, last.seq)
	require.Equal(t, l.Checkpoint.SubSequenceNumber, last.sub)
	if next.seq == last.seq {
		require.Equal(t, last.sub+1, next.sub)
	} else {
		require.Zero(t, next.sub)
	}
}

// gate holds invocations until ready is closed.
type gate struct {
	h     lambda.Handler
	ready chan struct{}
}

func (g *gate) Invoke(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	<-g.ready
	return g.h.Invoke(ctx, ev)
}

func TestTumblingWindowCarriesStateAndEndsWithFinalInvoke(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	type final struct {
		start, end string
		count      int
	}
	var mu sync.Mutex
	var finals []final
	var invokes []lambda.KinesisEvent
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		invokes = append(invokes, *ev)
		n, _ := strconv.Atoi(ev.State["count"])
		n += len(ev.Records)
		if ev.IsFinalInvokeForWindow != nil && *ev.IsFinalInvokeForWindow {
			finals = append(finals, final{ev.Window.Start, ev.Window.End, n})
			return &lambda.Response{State: map[string]string{}}, nil
		}
		return &lambda.Response{State: map[string]string{"count": strconv.Itoa(n)}}, nil
	}
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.BatchSize = 10
	cfg.TumblingWindow = time.Second
	w := startWorker(t, cfg)
	total := len(e.put(t, "s", 45, 3, "a-"))
	// Wait for the next second, so later records fall in a later window.
	began := time.Now().Truncate(time.Second)
	eventually(t, 3*time.Second, "next second", func() bool { return time.Now().Truncate(time.Second).After(began) })
	total += len(e.put(t, "s", 25, 3, "b-"))

	eventually(t, 20*time.Second, "every window closed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, f := range finals {
			n += f.count
		}
		return n == total
	})
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(finals), 2)
	for _, f := range finals {
		s, err := time.Parse(time.RFC3339, f.start)
		require.NoError(t, err)
		en, err := time.Parse(time.RFC3339, f.end)
		require.NoError(t, err)
		require.Equal(t, time.Second, en.Sub(s))
	}
	for _, ev := range invokes {
		require.NotNil(t, ev.Window)
		require.NotNil(t, ev.State)
		require.Equal(t, "shardId-000000000000", ev.ShardID)
		require.NotEmpty(t, ev.EventSourceARN)
		require.NotNil(t, ev.IsWindowTerminatedEarly)
		if *ev.IsFinalInvokeForWindow {
			require.Empty(t, ev.Records)
		} else {
			require.LessOrEqual(t, len(ev.Records), 10)
		}
	}
	eventually(t, 10*time.Second, "checkpoint past the windows", func() bool { return w.w.Status().Shards[0].RecordsBehind == 0 })
}

func TestParallelizationFactorKeepsPerKeyOrder(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 2000, 50, "")
	var inFlight, most atomic.Int32
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		t := time.NewTimer(2 * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return nil, nil
	}
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.BatchSize = 20
	cfg.ParallelizationFactor = 4
	w := startWorker(t, cfg)
	eventually(t, 30*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	got := h.deliveries()
	require.Len(t, got, len(want))
	// Order per partition key.
	last := map[string]string{}
	for _, d := range got {
		if p, ok := last[d.key]; ok {
			require.True(t, seqLess(p, d.seq), "key %s out of order", d.key)
		}
		last[d.key] = d.seq
	}
	require.Greater(t, most.Load(), int32(1), "batches ran concurrently")
	require.LessOrEqual(t, most.Load(), int32(4))
	eventually(t, 10*time.Second, "checkpoint at the last record", func() bool {
		st := w.w.Status()
		return st.Shards[0].RecordsBehind == 0
	})
	l, err := w.w.Status(), error(nil)
	require.NoError(t, err)
	maxSeq := ""
	for _, d := range got {
		if maxSeq == "" || seqLess(maxSeq, d.seq) {
			maxSeq = d.seq
		}
	}
	require.Equal(t, maxSeq, l.Shards[0].Checkpoint)
}

func TestStatusFlagsAStalledShard(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	e.put(t, "s", 3, 1, "")
	h := &recorder{}
	release := make(chan struct{})
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.StallAfter = 200 * time.Millisecond
	w := startWorker(t, cfg)
	eventually(t, 10*time.Second, "stalled", func() bool {
		st := w.w.Status()
		return len(st.Shards) == 1 && st.Shards[0].Stalled && st.Shards[0].RecordsBehind == 3 && st.RecordsBehind == 3
	})
	require.Contains(t, w.w.Status().Shards[0].StallReason, "handler invocation in flight for")
	close(release)
	eventually(t, 10*time.Second, "moving again", func() bool {
		st := w.w.Status()
		return !st.Shards[0].Stalled && st.Shards[0].RecordsBehind == 0 && st.Shards[0].Records == 3
	})
	require.Equal(t, consumer.ShardRunning, w.w.Status().Shards[0].State)
	require.Empty(t, w.w.Status().Shards[0].StallReason)

	// The figures outlive the lease: after the worker stops they are
	// still there for the exit summary.
	w.stop(t)
	st := w.w.Status()
	require.Zero(t, st.Held)
	require.Equal(t, int64(3), st.Shards[0].Records)
	require.Equal(t, int64(1), st.Shards[0].Invocations)
}

func TestExpiredIteratorIsRenewedWithoutLossOrReplay(t *testing.T) {
	var skew atomic.Int64
	srv := kinesistest.StartConfig(t, stream.Config{NoSync: true, Now: func() time.Time {
		return time.Now().Add(time.Duration(skew.Load()))
	}})
	e := envFor(t, srv)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 100, 5, "a-")
	h := &recorder{}
	w := startWorker(t, baseConfig(e, "s", memStore(t), h))
	eventually(t, 20*time.Second, "first records", func() bool { return h.distinct() == len(want) })
	// The server's clock jumps past the iterator lifetime: the iterator
	// the worker holds expires.
	skew.Store(int64(stream.IteratorTTL + time.Minute))
	eventually(t, 10*time.Second, "expiry noticed", func() bool {
		return strings.Contains(w.w.Status().Shards[0].LastError, "xpired")
	})
	want = append(want, e.put(t, "s", 100, 5, "b-")...)
	eventually(t, 20*time.Second, "later records", func() bool { return h.distinct() == len(want) })
	got := h.deliveries()
	require.Len(t, got, len(want), "nothing replayed")
	checkInOrder(t, got, want)
}

func TestChildShardsStartWithinASecondOfTheirParentsEnd(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 50, 5, "a-")
	_, err := e.c.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName:         aws.String("s"),
		ShardToSplit:       aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	})
	require.NoError(t, err)
	e.waitActive(t, "s")
	want = append(want, e.put(t, "s", 50, 5, "b-")...)

	var mu sync.Mutex
	lastParent, firstChild := time.Time{}, map[string]time.Time{}
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, r := range ev.Records {
			if s := shardOf(r.EventID); s == "shardId-000000000000" {
				lastParent = now
			} else if _, ok := firstChild[s]; !ok {
				firstChild[s] = now
			}
		}
		return nil, nil
	}
	// Default take and poll intervals: children must not wait for them.
	cfg := consumer.Config{Application: "app", Stream: "s", Kinesis: e.c, Leases: memStore(t), Handler: h, Logger: testLogger(t)}
	startWorker(t, cfg)
	eventually(t, 20*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	checkInOrder(t, h.deliveries(), want)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, firstChild, 2)
	for s, at := range firstChild {
		gap := at.Sub(lastParent)
		t.Logf("%s started %s after its parent's last batch", s, gap.Round(time.Millisecond))
		require.Positive(t, gap)
		require.Less(t, gap, time.Second)
	}
}

func TestLeaseOfAnAgedOutShardIsDeleted(t *testing.T) {
	var skew atomic.Int64
	srv := kinesistest.StartConfig(t, stream.Config{NoSync: true, RetentionInterval: 20 * time.Millisecond, Now: func() time.Time {
		return time.Now().Add(time.Duration(skew.Load()))
	}})
	e := envFor(t, srv)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 20, 2, "a-")
	_, err := e.c.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName:         aws.String("s"),
		ShardToSplit:       aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	})
	require.NoError(t, err)
	e.waitActive(t, "s")
	store := memStore(t)
	h := &recorder{}
	cfg := baseConfig(e, "s", store, h)
	cfg.ShardSyncInterval = 50 * time.Millisecond
	startWorker(t, cfg)
	eventually(t, 20*time.Second, "parent finished", func() bool {
		l, err := store.GetLease(context.Background(), "shardId-000000000000")
		return err == nil && l.Checkpoint.ShardEnd() && h.distinct() == len(want)
	})
	// A day later the closed parent has aged out of the stream.
	skew.Store(int64(25 * time.Hour))
	eventually(t, 10*time.Second, "parent lease deleted", func() bool {
		_, err := store.GetLease(context.Background(), "shardId-000000000000")
		return errors.Is(err, consumer.ErrLeaseNotFound)
	})
	more := e.put(t, "s", 20, 2, "b-")
	eventually(t, 10*time.Second, "children still run", func() bool { return h.distinct() == len(want)+len(more) })
}
