package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// startDynalite runs dynalite for the test (skipping without node and
// dynalite unless RUNNEL_INTEGRATION=required) and returns a client.
func startDynalite(t *testing.T) *dynamodb.Client {
	t.Helper()
	return testserver.DynamoDB(t).Client()
}

func dynamoStore(t *testing.T, db *dynamodb.Client, table string) *consumer.DynamoDBStore {
	t.Helper()
	s, err := consumer.NewDynamoDBStore(context.Background(), db, table)
	require.NoError(t, err)
	return s
}

// testLeaseStore is the conformance suite every LeaseStore passes.
func testLeaseStore(t *testing.T, s consumer.LeaseStore) {
	ctx := context.Background()
	ls, err := s.ListLeases(ctx)
	require.NoError(t, err)
	require.Empty(t, ls)

	l := consumer.Lease{Key: "shardId-000000000002", Checkpoint: consumer.Checkpoint{SequenceNumber: consumer.SentinelTrimHorizon}, ParentShardIDs: []string{"shardId-000000000000", "shardId-000000000001"}}
	require.NoError(t, s.CreateLease(ctx, l))
	require.ErrorIs(t, s.CreateLease(ctx, l), consumer.ErrLeaseExists)
	_, err = s.GetLease(ctx, "nope")
	require.ErrorIs(t, err, consumer.ErrLeaseNotFound)

	got, err := s.GetLease(ctx, l.Key)
	require.NoError(t, err)
	require.Equal(t, l, got)

	// Take: counter-guarded.
	a, err := s.TakeLease(ctx, got, "a", false)
	require.NoError(t, err)
	require.Equal(t, "a", a.Owner)
	require.Equal(t, int64(1), a.Counter)
	require.Equal(t, int64(1), a.OwnerSwitchesSinceCheckpoint)
	_, err = s.TakeLease(ctx, got, "b", false) // stale counter
	require.ErrorIs(t, err, consumer.ErrLeaseConflict)

	// Renew: counter- and owner-guarded.
	a2, err := s.RenewLease(ctx, a)
	require.NoError(t, err)
	require.Equal(t, int64(2), a2.Counter)
	_, err = s.RenewLease(ctx, a)
	require.ErrorIs(t, err, consumer.ErrLeaseConflict)
	wrongOwner := a2
	wrongOwner.Owner = "b"
	_, err = s.RenewLease(ctx, wrongOwner)
	require.ErrorIs(t, err, consumer.ErrLeaseConflict)

	// Checkpoint with a sub-sequence number.
	cp := consumer.Checkpoint{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequenceNumber: 7}
	a3, err := s.UpdateCheckpoint(ctx, a2, cp)
	require.NoError(t, err)
	require.Equal(t, cp, a3.Checkpoint)
	require.Equal(t, int64(3), a3.Counter)
	require.Zero(t, a3.OwnerSwitchesSinceCheckpoint)
	_, err = s.UpdateCheckpoint(ctx, a2, cp)
	require.ErrorIs(t, err, consumer.ErrLeaseConflict)

	// Steal with a hand-off: b owns, a must hand off.
	b, err := s.TakeLease(ctx, a3, "b", true)
	require.NoError(t, err)
	require.Equal(t, "b", b.Owner)
	require.Equal(t, "a", b.CheckpointOwner)
	require.Equal(t, int64(1), b.OwnerSwitchesSinceCheckpoint)
	_, err = s.RenewLease(ctx, a3) // a has lost it
	require.ErrorIs(t, err, consumer.ErrLeaseConflict)
	b2, err := s.RenewLease(ctx, b)
	require.NoError(t, err)
	_, err = s.HandOff(ctx, l.Key, "c", nil)
	require.ErrorIs(t, err, consumer.ErrLeaseConflict)
	final := consumer.Checkpoint{SequenceNumber: "49590338271490256608559692538361571095921575989136588899"}
	h, err := s.HandOff(ctx, l.Key, "a", &final)
	require.NoError(t, err)
	require.Empty(t, h.CheckpointOwner)
	require.Equal(t, final, h.Checkpoint)
	require.Equal(t, b2.Counter, h.Counter, "a hand-off leaves the counter alone")
	b3, err := s.RenewLease(ctx, b2)
	require.NoError(t, err)
	require.Equal(t, final, b3.Checkpoint)

	// Evict, then anyone may take it.
	ev, err := s.EvictLease(ctx, b3)
	require.NoError(t, err)
	require.Empty(t, ev.Owner)
	c, err := s.TakeLease(ctx, ev, "c", true)
	require.NoError(t, err)
	require.Empty(t, c.CheckpointOwner, "no hand-off from nobody")

	// Concurrent takes of one lease: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", i)
			if _, err := s.TakeLease(ctx, c, owner, false); err == nil {
				wins <- owner
			} else if !errors.Is(err, consumer.ErrLeaseConflict) {
				t.Errorf("take: %v", err)
			}
		}()
	}
	wg.Wait()
	close(wins)
	require.Len(t, wins, 1)

	require.NoError(t, s.CreateLease(ctx, consumer.Lease{Key: "shardId-000000000000", Checkpoint: consumer.Checkpoint{SequenceNumber: consumer.SentinelShardEnd}}))
	ls, err = s.ListLeases(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 2)
	require.Equal(t, "shardId-000000000000", ls[0].Key)
	require.True(t, ls[0].Checkpoint.ShardEnd())
	require.ErrorIs(t, s.DeleteLease(ctx, consumer.Lease{Key: ls[0].Key, Counter: 99}), consumer.ErrLeaseConflict)
	require.NoError(t, s.DeleteLease(ctx, ls[0]))
	ls, err = s.ListLeases(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 1)
}

func TestMemoryStore(t *testing.T) { testLeaseStore(t, memStore(t)) }

func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases", "app.json")
	s, err := consumer.NewFileStore(context.Background(), path)
	require.NoError(t, err)
	testLeaseStore(t, s)
	before, err := s.ListLeases(context.Background())
	require.NoError(t, err)
	reopened, err := consumer.NewFileStore(context.Background(), path)
	require.NoError(t, err)
	after, err := reopened.ListLeases(context.Background())
	require.NoError(t, err)
	require.Equal(t, before, after)
}

func TestDynamoDBStore(t *testing.T) {
	db := startDynalite(t)
	testLeaseStore(t, dynamoStore(t, db, "app-leases"))
	// Opening an existing table is fine.
	s := dynamoStore(t, db, "app-leases")
	ls, err := s.ListLeases(context.Background())
	require.NoError(t, err)
	require.Len(t, ls, 1)
}

func TestTwoWorkersBalanceOverDynamoDB(t *testing.T) {
	db := startDynalite(t)
	testBalance(t, dynamoStore(t, db, "app"), 2)
}

func TestThreeWorkersBalanceOverDynamoDB(t *testing.T) {
	db := startDynalite(t)
	testBalance(t, dynamoStore(t, db, "app"), 3)
}
