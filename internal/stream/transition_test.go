package stream

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTransitionDelay(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, err := Open(t.Context(), Config{InMemory: true, Now: c.Now, TransitionDelay: 2 * time.Second})
	require.NoError(t, err)
	defer s.Close()

	require.NoError(t, s.CreateStream(ctx, "s", 2, CreateOptions{}))
	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, StatusCreating, d.Status)
	require.Equal(t, StatusCreating, s.List()[0].Status)
	// As on Kinesis, the stream is not found for reads and writes until
	// it is ACTIVE.
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("x")}})
	require.ErrorIs(t, err, ErrNotFound, "no writes while CREATING")
	require.ErrorContains(t, err, "Stream s under account 000000000000 not found.")
	_, err = s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.ErrorIs(t, err, ErrNotFound, "no reads while CREATING")

	c.Advance(2 * time.Second)
	d, _ = s.Describe("s")
	require.Equal(t, StatusActive, d.Status)
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("x")}})
	require.NoError(t, err)

	// As on Kinesis, a resharding is answered at once, reports UPDATING
	// and refuses further changes meanwhile, while the old shards stay
	// the layout: they take reads and writes, and the children appear
	// only when the stream returns to ACTIVE.
	prev, err := s.UpdateShardCount(ctx, "s", 4)
	require.NoError(t, err)
	require.Equal(t, 2, prev)
	d, _ = s.Describe("s")
	require.Equal(t, StatusUpdating, d.Status)
	require.Equal(t, 2, d.OpenShardCount)
	require.Len(t, d.Shards, 2)
	_, err = s.UpdateShardCount(ctx, "s", 2)
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorIs(t, s.SetRetention(ctx, "s", 48, true), ErrInUse)
	res, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("x")}})
	require.NoError(t, err)
	require.Contains(t, []string{"shardId-000000000000", "shardId-000000000001"}, res[0].ShardID)
	// Due but not yet made: still UPDATING, never ACTIVE with the old layout.
	c.Advance(2 * time.Second)
	d, _ = s.Describe("s")
	require.Equal(t, StatusUpdating, d.Status)
	require.Zero(t, s.settleLayouts(ctx))
	d, _ = s.Describe("s")
	require.Equal(t, StatusActive, d.Status)
	require.Equal(t, 4, d.OpenShardCount)
	res, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("x")}})
	require.NoError(t, err)
	require.NotContains(t, []string{"shardId-000000000000", "shardId-000000000001"}, res[0].ShardID)

	// A split waits the same way.
	require.NoError(t, s.SplitShard(ctx, "s", d.Shards[len(d.Shards)-1].ID, splitHashRange(8)[7].String()))
	d, _ = s.Describe("s")
	require.Equal(t, StatusUpdating, d.Status)
	require.Equal(t, 4, d.OpenShardCount)
	require.Equal(t, 2*time.Second, s.settleLayouts(ctx), "not due yet")
	c.Advance(2 * time.Second)
	require.Zero(t, s.settleLayouts(ctx))
	d, _ = s.Describe("s")
	require.Equal(t, StatusActive, d.Status)
	require.Equal(t, 5, d.OpenShardCount)
	// A refused change is refused when asked, not when due.
	require.ErrorIs(t, s.MergeShards(ctx, "s", d.Shards[2].ID, d.Shards[len(d.Shards)-1].ID), ErrInvalidArgument)
	require.NoError(t, s.MergeShards(ctx, "s", d.Shards[len(d.Shards)-2].ID, d.Shards[len(d.Shards)-1].ID))
	// A refused change does not extend the UPDATING state.
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000099", "1"), ErrInUse)
	c.Advance(2 * time.Second)
	require.Zero(t, s.settleLayouts(ctx))
	d, _ = s.Describe("s")
	require.Equal(t, 4, d.OpenShardCount)
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000099", "1"), ErrNotFound)
	d, _ = s.Describe("s")
	require.Equal(t, StatusActive, d.Status, "a failed change does not report UPDATING")
	require.NoError(t, s.SetRetention(ctx, "s", 48, true))
	d, _ = s.Describe("s")
	require.Equal(t, StatusUpdating, d.Status)
	c.Advance(2 * time.Second)
	// A retention period equal to the current one changes nothing: the
	// stream stays ACTIVE.
	require.NoError(t, s.SetRetention(ctx, "s", 48, true))
	require.NoError(t, s.SetRetention(ctx, "s", 48, false))
	d, _ = s.Describe("s")
	require.Equal(t, StatusActive, d.Status)

	// A deleted stream is gone for reads and writes at once, reports
	// DELETING for the delay, and its name cannot be reused meanwhile.
	require.NoError(t, s.DeleteStream(ctx, "s", false))
	d, err = s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, StatusDeleting, d.Status)
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("x")}})
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, s.CreateStream(ctx, "s", 1, CreateOptions{}), ErrInUse)
	c.Advance(2 * time.Second)
	_, err = s.Describe("s")
	require.ErrorIs(t, err, ErrNotFound)
	require.Empty(t, s.List())
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
}

// A layout change accepted under a transition delay is persisted: a
// restart before it is due makes it when the engine opens, rather than
// losing it.
func TestPendingLayoutSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	cfg := Config{Dir: dir, NoSync: true, Now: c.Now, TransitionDelay: time.Hour}
	s, err := Open(t.Context(), cfg)
	require.NoError(t, err)
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	c.Advance(time.Hour)
	require.NoError(t, s.SplitShard(ctx, "s", "shardId-000000000000", splitHashRange(2)[1].String()))
	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, StatusUpdating, d.Status)
	require.Equal(t, 1, d.OpenShardCount)
	require.NoError(t, s.Close())

	s, err = Open(t.Context(), cfg)
	require.NoError(t, err)
	defer s.Close()
	require.Eventually(t, func() bool {
		d, err := s.Describe("s")
		return err == nil && d.Status == StatusActive
	}, 10*time.Second, 5*time.Millisecond)
	d, err = s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, 2, d.OpenShardCount)
}

// A pending split is cleared in the write that makes it: a crash right
// after that write (before any other) does not leave the change to be
// made again at open, where it would no longer apply.
func TestPendingLayoutClearedWithTheChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	var logs strings.Builder
	var logsMu sync.Mutex
	cfg := Config{Dir: dir, NoSync: true, Now: c.Now, TransitionDelay: time.Hour,
		Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			logsMu.Lock()
			defer logsMu.Unlock()
			return logs.Write(p)
		}), nil))}
	s, err := Open(t.Context(), cfg)
	require.NoError(t, err)
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	c.Advance(time.Hour)
	require.NoError(t, s.SplitShard(ctx, "s", "shardId-000000000000", splitHashRange(2)[1].String()))

	// Make the change as settleLayout does, and stop there, as a crash
	// would.
	s.metaMu.Lock()
	s.mu.RLock()
	st, err := s.lookup("s")
	var pending layoutChange
	if err == nil && st.meta.PendingLayout != nil {
		pending = *st.meta.PendingLayout
	}
	s.mu.RUnlock()
	if err == nil {
		_, err = s.makeLayoutChange(ctx, st, pending, true)
	}
	s.metaMu.Unlock()
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = Open(t.Context(), cfg)
	require.NoError(t, err)
	defer s.Close()
	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, 2, d.OpenShardCount)
	s.mu.RLock()
	st, err = s.lookup("s")
	var stillPending *layoutChange
	if err == nil {
		stillPending = st.meta.PendingLayout
	}
	s.mu.RUnlock()
	require.NoError(t, err)
	require.Nil(t, stillPending, "the change made is not pending after a restart")
	logsMu.Lock()
	defer logsMu.Unlock()
	require.NotContains(t, logs.String(), "dropping a pending shard layout change")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
