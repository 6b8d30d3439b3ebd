package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/lambda"
)

// balanceLimit bounds the wait for workers to reach their fair share
// once one joins, with the lease timings of leaseTimings. On an idle
// machine it takes 1–3 s (the tests log it); the bound is wide because a
// heavily loaded one, where the DynamoDB server and the workers share two
// cores with everything else, has taken more than 8 s.
const balanceLimit = 30 * time.Second

// leaseTimings makes expiry and balancing quick enough for tests.
func leaseTimings(cfg *consumer.Config) {
	cfg.LeaseDuration = 1500 * time.Millisecond
	cfg.RenewInterval = 300 * time.Millisecond
	cfg.TakeInterval = 200 * time.Millisecond
}

// heldBy counts the unfinished leases per owner.
func heldBy(t testing.TB, store consumer.LeaseStore) map[string]int {
	t.Helper()
	ls, err := store.ListLeases(context.Background())
	require.NoError(t, err)
	out := map[string]int{}
	for _, l := range ls {
		if !l.Checkpoint.ShardEnd() && l.CheckpointOwner == "" {
			out[l.Owner]++
		}
	}
	return out
}

// balanced reports whether every worker holds its fair share and every
// worker's Status agrees (each runs exactly what it owns).
func balanced(t testing.TB, store consumer.LeaseStore, shards int, ws ...*runningWorker) bool {
	counts := heldBy(t, store)
	lo, hi := shards/len(ws), (shards+len(ws)-1)/len(ws)
	total := 0
	for _, w := range ws {
		n := counts[w.w.ID()]
		if n < lo || n > hi || w.w.Status().Held != n {
			return false
		}
		total += n
	}
	return total == shards
}

// testBalance runs n workers on a 12-shard stream: they join one after
// another, each join must balance within balanceLimit, and records put
// throughout are all handled, in order per shard, with no replays (the
// hand-offs are graceful).
func testBalance(t *testing.T, store consumer.LeaseStore, n int) {
	e := start(t)
	const shards = 12
	e.createStream(t, "s", shards)
	h := &recorder{}
	var want []string
	var ws []*runningWorker
	for i := 0; i < n; i++ {
		cfg := baseConfig(e, "s", store, h)
		cfg.WorkerID = fmt.Sprintf("w%d", i)
		cfg.BatchSize = 10
		leaseTimings(&cfg)
		ws = append(ws, startWorker(t, cfg))
		joined := time.Now()
		want = append(want, e.put(t, "s", 300, 60, fmt.Sprintf("p%d-", i))...)
		eventually(t, balanceLimit, fmt.Sprintf("balance over %d workers", i+1), func() bool { return balanced(t, store, shards, ws...) })
		t.Logf("%d workers balanced in %s: %v", i+1, time.Since(joined).Round(time.Millisecond), heldBy(t, store))
	}
	want = append(want, e.put(t, "s", 300, 60, "end-")...)
	eventually(t, 20*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	got := h.deliveries()
	checkInOrder(t, got, want)
	requireReplaysExplained(t, got, ws)
}

// requireReplaysExplained asserts that graceful hand-offs replay nothing:
// a record is delivered twice only on a shard whose lease some worker
// reports lost while processing it (not renewed in time, which a machine
// busy enough can cause with the tests' 1.5 s leases; the batch in flight
// is then abandoned and redelivered, as the KCL does). A replay without
// such a report is a silent duplicate and fails the test.
func requireReplaysExplained(t *testing.T, got []delivery, ws []*runningWorker) {
	t.Helper()
	lost := map[string]string{}
	for _, w := range ws {
		for _, s := range w.w.Status().Shards {
			if s.LeaseLost != "" {
				lost[s.ShardID] = s.LeaseLost
			}
		}
	}
	seen := make(map[string]bool, len(got))
	replays := map[string]int{}
	for _, d := range got {
		if seen[d.data] {
			replays[d.shard]++
		}
		seen[d.data] = true
	}
	for shard, n := range replays {
		why, ok := lost[shard]
		if !ok {
			t.Fatalf("shard %s: %d records delivered twice though no worker lost its lease (graceful hand-offs replay nothing)", shard, n)
		}
		t.Logf("shard %s: %d records redelivered after its lease was lost: %s", shard, n, why)
	}
}

func TestTwoWorkersBalance(t *testing.T)   { testBalance(t, memStore(t), 2) }
func TestThreeWorkersBalance(t *testing.T) { testBalance(t, memStore(t), 3) }

// partitionedStore cuts a worker off from the lease store, as a crash or
// a network partition would.
type partitionedStore struct {
	consumer.LeaseStore
	cut atomic.Bool
}

var errPartitioned = errors.New("lease store unreachable")

func (s *partitionedStore) ListLeases(ctx context.Context) ([]consumer.Lease, error) {
	if s.cut.Load() {
		return nil, errPartitioned
	}
	return s.LeaseStore.ListLeases(ctx)
}

func (s *partitionedStore) RenewLease(ctx context.Context, l consumer.Lease) (consumer.Lease, error) {
	if s.cut.Load() {
		return consumer.Lease{}, errPartitioned
	}
	return s.LeaseStore.RenewLease(ctx, l)
}

func (s *partitionedStore) UpdateCheckpoint(ctx context.Context, l consumer.Lease, cp consumer.Checkpoint) (consumer.Lease, error) {
	if s.cut.Load() {
		return consumer.Lease{}, errPartitioned
	}
	return s.LeaseStore.UpdateCheckpoint(ctx, l, cp)
}

func (s *partitionedStore) EvictLease(ctx context.Context, l consumer.Lease) (consumer.Lease, error) {
	if s.cut.Load() {
		return consumer.Lease{}, errPartitioned
	}
	return s.LeaseStore.EvictLease(ctx, l)
}

// timedRecorder notes, per shard, when each worker last and first
// invoked its handler.
type timedRecorder struct {
	recorder
	mu    sync.Mutex
	first map[string]time.Time
	last  map[string]time.Time
}

func newTimedRecorder() *timedRecorder {
	r := &timedRecorder{first: map[string]time.Time{}, last: map[string]time.Time{}}
	return r
}

func (r *timedRecorder) Invoke(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	now := time.Now()
	r.mu.Lock()
	for _, rec := range ev.Records {
		s := shardOf(rec.EventID)
		if _, ok := r.first[s]; !ok {
			r.first[s] = now
		}
		r.last[s] = now
	}
	r.mu.Unlock()
	resp, err := r.recorder.Invoke(ctx, ev)
	r.mu.Lock()
	for _, rec := range ev.Records {
		r.last[shardOf(rec.EventID)] = time.Now()
	}
	r.mu.Unlock()
	return resp, err
}

func TestDeadWorkersShardsMoveAfterLeaseExpiry(t *testing.T) {
	e := start(t)
	const shards = 6
	e.createStream(t, "s", shards)
	store := memStore(t)
	cut := &partitionedStore{LeaseStore: store}
	deadH, liveH := newTimedRecorder(), newTimedRecorder()

	cfgA := baseConfig(e, "s", cut, nil)
	cfgA.Handler = deadH
	cfgA.WorkerID = "doomed"
	leaseTimings(&cfgA)
	a := startWorker(t, cfgA)
	cfgB := baseConfig(e, "s", store, nil)
	cfgB.Handler = liveH
	cfgB.WorkerID = "survivor"
	leaseTimings(&cfgB)
	b := startWorker(t, cfgB)
	eventually(t, balanceLimit, "balance", func() bool { return balanced(t, store, shards, a, b) })
	want := e.put(t, "s", 600, 60, "")
	eventually(t, 20*time.Second, "records flowing on both", func() bool { return deadH.distinct()+liveH.distinct() >= len(want) })

	doomed := map[string]bool{}
	ls, err := store.ListLeases(context.Background())
	require.NoError(t, err)
	for _, l := range ls {
		if l.Owner == "doomed" {
			doomed[l.Key] = true
		}
	}
	require.Len(t, doomed, shards/2)

	cut.cut.Store(true)
	cutAt := time.Now()
	eventually(t, 3*cfgB.LeaseDuration+balanceLimit, "survivor holds every shard", func() bool {
		return heldBy(t, store)["survivor"] == shards && b.w.Status().Held == shards
	})
	t.Logf("shards moved %s after the partition", time.Since(cutAt).Round(time.Millisecond))
	// The doomed worker noticed it could not renew and stopped its shards.
	eventually(t, 5*time.Second, "doomed worker stops", func() bool { return a.w.Status().Held == 0 })

	more := e.put(t, "s", 600, 60, "after-")
	eventually(t, 20*time.Second, "later records delivered", func() bool {
		return countPrefixed(liveH.deliveries(), "after-") == len(more)
	})
	// On every moved shard the dead worker's last invocation ended before
	// the survivor's first.
	deadH.mu.Lock()
	liveH.mu.Lock()
	for s := range doomed {
		last, ok := deadH.last[s]
		if !ok {
			continue
		}
		first := liveH.first[s]
		require.True(t, last.Before(first), "shard %s: doomed worker invoked at %s, survivor started at %s", s, last, first)
	}
	liveH.mu.Unlock()
	deadH.mu.Unlock()
	all := append(deadH.deliveries(), liveH.deliveries()...)
	checkInOrderPerShardSets(t, deadH.deliveries(), liveH.deliveries())
	seen := map[string]bool{}
	for _, d := range all {
		seen[d.data] = true
	}
	for _, w := range append(want, more...) {
		require.True(t, seen[w], "record %s never delivered", w)
	}
}

func countPrefixed(ds []delivery, prefix string) int {
	m := map[string]bool{}
	for _, d := range ds {
		if len(d.data) >= len(prefix) && d.data[:len(prefix)] == prefix {
			m[d.data] = true
		}
	}
	return len(m)
}

// checkInOrderPerShardSets checks that each worker's first deliveries are
// in order per shard.
func checkInOrderPerShardSets(t *testing.T, sets ...[]delivery) {
	t.Helper()
	for _, ds := range sets {
		checkInOrder(t, ds, nil)
	}
}

func TestGracefulHandOffReplaysAtMostTheBatchInFlight(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 2)
	store := memStore(t)
	// A slow handler keeps a batch in flight when the lease moves.
	h := &recorder{}
	h.fn = func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		t := time.NewTimer(20 * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, nil
	}
	cfg := baseConfig(e, "s", store, h)
	cfg.BatchSize = 5
	leaseTimings(&cfg)
	cfg.WorkerID = "first"
	a := startWorker(t, cfg)
	want := e.put(t, "s", 400, 20, "")
	eventually(t, 10*time.Second, "first worker busy", func() bool { return h.distinct() > 50 })
	cfg.WorkerID = "second"
	b := startWorker(t, cfg)
	eventually(t, balanceLimit, "balance", func() bool { return balanced(t, store, 2, a, b) })
	eventually(t, 30*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	got := h.deliveries()
	checkInOrder(t, got, want)
	replays := len(got) - len(want)
	t.Logf("replayed %d records after the hand-off", replays)
	require.LessOrEqual(t, replays, cfg.BatchSize, "a hand-off replays at most the batch in flight")
}
