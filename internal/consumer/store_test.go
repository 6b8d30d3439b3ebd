package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
)

// dynalite finds dynalite's cli.js: $RUNNEL_DYNALITE (the cli.js, the
// package directory, or an npm prefix holding it), else the npm prefix
// <user cache dir>/runnel/dynalite that .ci/run installs into.
func dynalite() (string, bool) {
	var roots []string
	if p := os.Getenv("RUNNEL_DYNALITE"); p != "" {
		roots = append(roots, p)
	}
	if d, err := os.UserCacheDir(); err == nil {
		roots = append(roots, filepath.Join(d, "runnel", "dynalite"))
	}
	for _, r := range roots {
		for _, c := range []string{r, filepath.Join(r, "cli.js"), filepath.Join(r, "node_modules", "dynalite", "cli.js")} {
			if st, err := os.Stat(c); err == nil && !st.IsDir() {
				return c, true
			}
		}
	}
	return "", false
}

// startDynalite runs dynalite on a free 127.0.0.1 port for the test and
// returns a DynamoDB client for it. It skips when node or dynalite is
// missing, unless RUNNEL_INTEGRATION=required.
func startDynalite(t *testing.T) *dynamodb.Client {
	t.Helper()
	node, err := exec.LookPath("node")
	cli, ok := dynalite()
	if err != nil || !ok {
		msg := "node and dynalite are needed: npm install --prefix ~/.cache/runnel/dynalite dynalite, or set RUNNEL_DYNALITE"
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	cmd := exec.Command(node, cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--createTableMs", "0", "--deleteTableMs", "0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	eventually(t, 15*time.Second, "dynalite listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return dynamodb.New(dynamodb.Options{
		BaseEndpoint: aws.String("http://" + addr),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
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
