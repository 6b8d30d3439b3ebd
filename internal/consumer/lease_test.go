package consumer_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// An invocation runs to its own timeout however many lease renewals pass
// meanwhile: a handler slower than the whole lease duration finishes, its
// batch is checkpointed once, and no lease is lost.
func TestInvocationLongerThanTheLeaseDurationFinishes(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 2)
	want := e.put(t, "s", 40, 4, "")
	h := &recorder{fn: func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		// Three lease durations, without blocking past a cancellation.
		select {
		case <-time.After(1500 * time.Millisecond):
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	cfg := baseConfig(e, "s", memStore(t), h)
	cfg.LeaseDuration = 500 * time.Millisecond
	cfg.RenewInterval = 100 * time.Millisecond
	cfg.InvocationTimeout = 20 * time.Second
	cfg.MaximumRetryAttempts = intp(0)
	w := startWorker(t, cfg)
	eventually(t, 30*time.Second, "every record handled and checkpointed", func() bool {
		st := w.w.Status()
		var recs int64
		for _, s := range st.Shards {
			recs += s.Records
		}
		return recs == int64(len(want)) && st.RecordsBehind == 0
	})
	requireOnce(t, h, want)
	st := w.w.Status()
	require.Zero(t, st.LeasesLost)
	for _, s := range st.Shards {
		require.Zero(t, s.Errors, "shard %s: %s", s.ShardID, s.LastError)
		require.Zero(t, s.ToDestination)
		require.False(t, s.Stalled)
	}
}

// A lease really lost (another worker took it) stops the invocation in
// flight at once and loudly: the batch is not checkpointed, the worker
// logs a WARN, counts the lost lease and says why in the shard's status;
// the batch is handled again once the shard comes back.
func TestLostLeaseAbandonsTheBatchLoudly(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	want := e.put(t, "s", 10, 2, "")
	var cancelled atomic.Bool
	var calls atomic.Int64
	entered := make(chan struct{})
	h := &recorder{fn: func(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
		if calls.Add(1) == 1 {
			close(entered)
			select {
			case <-ctx.Done():
				cancelled.Store(true)
				return nil, ctx.Err()
			case <-time.After(30 * time.Second):
				return nil, nil
			}
		}
		return nil, nil
	}}
	store := memStore(t)
	logs := &runneltest.SyncBuffer{}
	cfg := baseConfig(e, "s", store, h)
	cfg.LeaseDuration = 600 * time.Millisecond
	cfg.InvocationTimeout = 60 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	w := startWorker(t, cfg)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no invocation within 20s")
	}
	// Another worker takes the lease while the batch is in flight.
	l, err := store.GetLease(t.Context(), "shardId-000000000000")
	require.NoError(t, err)
	_, err = store.TakeLease(t.Context(), l, "intruder", false)
	require.NoError(t, err)

	eventually(t, 10*time.Second, "the invocation in flight cancelled", cancelled.Load)
	eventually(t, 10*time.Second, "the lost lease in status", func() bool {
		st := w.w.Status()
		return st.LeasesLost == 1 && strings.Contains(st.Shards[0].LeaseLost, "intruder")
	})
	require.Contains(t, logs.String(), "level=WARN msg=\"lease lost; batch in flight abandoned without checkpoint")
	l, err = store.GetLease(t.Context(), "shardId-000000000000")
	require.NoError(t, err)
	require.Equal(t, consumer.SentinelTrimHorizon, l.Checkpoint.SequenceNumber, "the abandoned batch was not checkpointed")

	// The intruder never renews: the worker takes the shard back after a
	// lease duration and handles the batch again.
	eventually(t, 20*time.Second, "every record handled after the lease came back", func() bool {
		st := w.w.Status()
		return st.Held == 1 && st.RecordsBehind == 0 && st.Shards[0].Records == int64(len(want))
	})
	checkInOrder(t, h.deliveries(), want)
	require.Contains(t, w.w.Status().Shards[0].LeaseLost, "intruder", "the last loss stays in the status")
}

// hangingRenewals is a lease store whose renewals of one lease never
// answer until their context ends, as a lease-store call stuck on a dead
// connection would.
type hangingRenewals struct {
	*consumer.MemoryStore
	key string
}

func (s hangingRenewals) RenewLease(ctx context.Context, l consumer.Lease) (consumer.Lease, error) {
	if l.Key == s.key {
		<-ctx.Done()
		return consumer.Lease{}, ctx.Err()
	}
	return s.MemoryStore.RenewLease(ctx, l)
}

// One renewal that hangs delays no other lease: the other shard's lease is
// renewed on time and its records handled, while the hanging one's
// renewal gives up at the lease's validity and the shard is stopped
// loudly as not renewed in time.
func TestHangingRenewalDelaysNoOtherLease(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 2)
	mem := memStore(t)
	store := hangingRenewals{MemoryStore: mem, key: "shardId-000000000000"}
	h := &recorder{}
	cfg := baseConfig(e, "s", store, h)
	cfg.LeaseDuration = time.Second
	cfg.RenewInterval = 100 * time.Millisecond
	w := startWorker(t, cfg)
	eventually(t, 20*time.Second, "both shards held", func() bool { return w.w.Status().Held == 2 })
	before, err := mem.GetLease(t.Context(), "shardId-000000000001")
	require.NoError(t, err)

	eventually(t, 20*time.Second, "the hanging lease lost as not renewed in time", func() bool {
		for _, s := range w.w.Status().Shards {
			if s.ShardID == "shardId-000000000000" && strings.Contains(s.LeaseLost, "not renewed in time") {
				return true
			}
		}
		return false
	})
	after, err := mem.GetLease(t.Context(), "shardId-000000000001")
	require.NoError(t, err)
	require.Equal(t, w.w.ID(), after.Owner)
	// At least a lease duration passed at a renewal every 100 ms.
	require.Greater(t, after.Counter-before.Counter, int64(5), "the other lease kept being renewed")
	require.Positive(t, w.w.Status().LeasesLost)
}
