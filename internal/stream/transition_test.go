package stream

import (
	"context"
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

	// Resharding takes effect at once, reports UPDATING, and refuses
	// further changes meanwhile; reads and writes go on.
	prev, err := s.UpdateShardCount(ctx, "s", 4)
	require.NoError(t, err)
	require.Equal(t, 2, prev)
	d, _ = s.Describe("s")
	require.Equal(t, StatusUpdating, d.Status)
	require.Equal(t, 4, d.OpenShardCount)
	_, err = s.UpdateShardCount(ctx, "s", 2)
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorIs(t, s.SetRetention(ctx, "s", 48, true), ErrInUse)
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("x")}})
	require.NoError(t, err)
	// A refused change does not extend the UPDATING state.
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000099", "1"), ErrInUse)
	c.Advance(2 * time.Second)
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
