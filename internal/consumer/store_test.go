package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
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

func TestEmbeddedStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "leases")
	db, err := consumer.OpenLeaseDB(ctx, dir, nil)
	require.NoError(t, err)
	s, err := db.Store(ctx, "app")
	require.NoError(t, err)
	testLeaseStore(t, s)
	other, err := db.Store(ctx, "other-app")
	require.NoError(t, err)
	ls, err := other.ListLeases(ctx)
	require.NoError(t, err)
	require.Empty(t, ls, "applications do not see each other's leases")
	before, err := s.ListLeases(ctx)
	require.NoError(t, err)

	// A second opener of the same store is refused, saying what to use.
	_, err = consumer.OpenLeaseDB(ctx, dir, nil)
	require.ErrorIs(t, err, consumer.ErrLeaseDBInUse)
	require.ErrorContains(t, err, "dynamodbTable")

	require.NoError(t, db.Close())
	db, err = consumer.OpenLeaseDB(ctx, dir, nil)
	require.NoError(t, err)
	defer db.Close()
	reopened, err := db.Store(ctx, "app")
	require.NoError(t, err)
	after, err := reopened.ListLeases(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after)
}

// The JSON lease file of earlier versions is imported once, then set aside.
func TestEmbeddedStoreImportsALeaseFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "app.leases.json")
	require.NoError(t, os.WriteFile(file, []byte(`[{"leaseKey":"shardId-000000000000","leaseOwner":"w","leaseCounter":7,"checkpoint":{"sequenceNumber":"123"},"ownerSwitchesSinceCheckpoint":0}]`), 0o644))
	db, err := consumer.OpenLeaseDB(ctx, filepath.Join(dir, "leases"), nil)
	require.NoError(t, err)
	defer db.Close()
	n, err := db.ImportJSON(ctx, "app", file)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	s, err := db.Store(ctx, "app")
	require.NoError(t, err)
	l, err := s.GetLease(ctx, "shardId-000000000000")
	require.NoError(t, err)
	require.Equal(t, "123", l.Checkpoint.SequenceNumber)
	require.EqualValues(t, 7, l.Counter)
	require.NoFileExists(t, file)
	require.FileExists(t, file+".imported")
	n, err = db.ImportJSON(ctx, "app", file)
	require.NoError(t, err)
	require.Zero(t, n)
}

// BenchmarkLeaseRenew measures one renewal of one of n held leases in the
// embedded store (each renewal is a synced pebble write of one lease).
func BenchmarkLeaseRenew(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			ctx := context.Background()
			db, err := consumer.OpenLeaseDB(ctx, b.TempDir(), nil)
			require.NoError(b, err)
			defer db.Close()
			s, err := db.Store(ctx, "app")
			require.NoError(b, err)
			held := make([]consumer.Lease, n)
			for i := range held {
				l := consumer.Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: consumer.Checkpoint{SequenceNumber: consumer.SentinelTrimHorizon}}
				require.NoError(b, s.CreateLease(ctx, l))
				held[i], err = s.TakeLease(ctx, l, "w", false)
				require.NoError(b, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % n
				if held[k], err = s.RenewLease(ctx, held[k]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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
