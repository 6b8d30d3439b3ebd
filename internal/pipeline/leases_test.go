package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesislocal"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// recorder is a built-in processor that remembers the records it saw.
type recorder struct {
	mu   sync.Mutex
	seen map[string]int // data → deliveries
}

func (r *recorder) Invoke(_ context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range ev.Records {
		r.seen[string(rec.Kinesis.Data)]++
	}
	return nil, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// Two runners, each with a state directory of its own (as two runnel run
// processes, or runnel serve --pipelines, which reads in process, and a
// runnel run), share one pipeline's shards through a DynamoDB lease table.
func TestDynamoDBLeasesShareShards(t *testing.T) {
	t.Run("two runs", func(t *testing.T) { testDynamoDBLeasesShareShards(t, false) })
	t.Run("serve plus run", func(t *testing.T) { testDynamoDBLeasesShareShards(t, true) })
}

func testDynamoDBLeasesShareShards(t *testing.T, inProcess bool) {
	ddb := testserver.DynamoDB(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "runnel")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "runnel")
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	rec := &recorder{seen: map[string]int{}}
	builtins := Builtins{"record": {Doc: "records what it sees", New: func(context.Context, BuiltinEnv) (lambda.Handler, error) { return rec, nil }}}

	src := fmt.Sprintf(`streams:
  - {name: orders, shards: 4}
pipelines:
  - name: orders-app
    source: orders
    leases: {dynamodbTable: orders-app, endpoint: %q, region: us-east-1}
    handler: {type: builtin, name: record}
`, ddb.URL)
	cfg, err := Parse(filepath.Join(t.TempDir(), "pipelines.yaml"), []byte(src), builtins)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var runners []*Runner
	ran := make(chan error, 2)
	for i := range 2 {
		var kc Client = client
		if inProcess && i == 0 {
			kc = kinesislocal.New(srv.Service)
		}
		r, err := New(ctx, cfg, Options{
			Kinesis: kc, Builtins: builtins, StateDir: t.TempDir(),
			Logger: slog.New(slog.NewTextHandler(testLog{t}, nil)),
			Tune: func(c *consumer.Config) {
				c.WorkerID = fmt.Sprint("worker-", i)
				c.PollInterval = 20 * time.Millisecond
				c.TakeInterval = 100 * time.Millisecond
				c.LeaseDuration = 2 * time.Second
			},
		})
		require.NoError(t, err)
		require.NoError(t, r.EnsureStreams(ctx))
		runners = append(runners, r)
		go func() { ran <- r.Run(ctx) }()
	}

	const n = 200
	for i := range n {
		_, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"),
			PartitionKey: aws.String(fmt.Sprint("key-", i)), Data: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	ddbClient := ddb.Client()
	deadline := time.Now().Add(60 * time.Second)
	for {
		owners := map[string]int{}
		out, err := ddbClient.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("orders-app")})
		require.NoError(t, err)
		for _, item := range out.Items {
			if v, ok := item["leaseOwner"].(*ddbtypes.AttributeValueMemberS); ok {
				owners[v.Value]++
			}
		}
		if rec.count() == n && len(out.Items) == 4 && len(owners) == 2 {
			break
		}
		require.False(t, time.Now().After(deadline), "handled %d of %d, %d leases, owners %v", rec.count(), n, len(out.Items), owners)
		<-time.After(50 * time.Millisecond)
	}
	cancel()
	for range runners {
		<-ran
	}
}

func TestLeasesNeedATable(t *testing.T) {
	src := `pipelines:
  - name: p
    source: s
    leases: {endpoint: "http://127.0.0.1:8000"}
    handler: {type: builtin, name: noop}
`
	_, err := Parse("pipelines.yaml", []byte(src), testBuiltins)
	require.ErrorContains(t, err, "pipelines.yaml:4:5: pipelines[0].leases: set dynamodbTable")
}

// TestReleaseLeasesOfAnExitedRun checks that the leases a killed run left
// owned are free to take at once, checkpoints kept.
func TestReleaseLeasesOfAnExitedRun(t *testing.T) {
	ctx := t.Context()
	store, err := consumer.NewMemoryStore(ctx, nil)
	require.NoError(t, err)
	cp := consumer.Checkpoint{SequenceNumber: "49590338271490256608559692538361571095921575989136588898"}
	for _, key := range []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002"} {
		require.NoError(t, store.CreateLease(ctx, consumer.Lease{Key: key}))
		l, err := store.GetLease(ctx, key)
		require.NoError(t, err)
		if key == "shardId-000000000002" {
			continue // never owned
		}
		l, err = store.TakeLease(ctx, l, "killed-worker", false)
		require.NoError(t, err)
		_, err = store.UpdateCheckpoint(ctx, l, cp)
		require.NoError(t, err)
	}
	require.NoError(t, releaseLeases(ctx, store, slog.New(slog.DiscardHandler)))
	leases, err := store.ListLeases(ctx)
	require.NoError(t, err)
	require.Len(t, leases, 3)
	for _, l := range leases {
		require.Empty(t, l.Owner, l.Key)
		require.Empty(t, l.CheckpointOwner, l.Key)
		if l.Key != "shardId-000000000002" {
			require.Equal(t, cp, l.Checkpoint, l.Key)
		}
	}
}
