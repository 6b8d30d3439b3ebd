package consumer_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// fileLog is a handler that appends "<shard> <data>" per record to a file
// and syncs it before answering, so what it reports handled survives a
// kill -9.
type fileLog struct {
	mu sync.Mutex
	f  *os.File
}

func (h *fileLog) Invoke(_ context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	var b strings.Builder
	for _, r := range ev.Records {
		fmt.Fprintf(&b, "%s %s\n", shardOf(r.EventID), r.Kinesis.Data)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.f.WriteString(b.String()); err != nil {
		return nil, err
	}
	return nil, h.f.Sync()
}

// TestWorkerChildProcess is the worker process of
// TestKilledWorkerProcess; it does nothing unless started by it.
func TestWorkerChildProcess(t *testing.T) {
	if os.Getenv("RUNNEL_CONSUMER_CHILD") != "1" {
		t.Skip("run by TestKilledWorkerProcess")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	f, err := os.OpenFile(os.Getenv("RUNNEL_CHILD_LOG"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer f.Close()
	db := (&testserver.DynamoDBServer{URL: os.Getenv("RUNNEL_CHILD_DYNAMODB")}).Client()
	store, err := consumer.NewDynamoDBStore(ctx, db, "app")
	require.NoError(t, err)
	kc := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(os.Getenv("RUNNEL_CHILD_KINESIS")),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
	cfg := consumer.Config{
		Application:  "app",
		Stream:       "s",
		Kinesis:      kc,
		Leases:       store,
		Handler:      &fileLog{f: f},
		WorkerID:     os.Getenv("RUNNEL_CHILD_ID"),
		BatchSize:    20,
		PollInterval: 20 * time.Millisecond,
	}
	leaseTimings(&cfg)
	w, err := consumer.NewWorker(cfg)
	require.NoError(t, err)
	require.NoError(t, w.Run(ctx))
}

// readLog returns the records a child logged, per shard in log order.
func readLog(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return out
	}
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		shard, data, ok := strings.Cut(sc.Text(), " ")
		if ok { // a line torn by the kill is ignored; its batch was not acknowledged
			out[shard] = append(out[shard], data)
		}
	}
	return out
}

// TestKilledWorkerProcess runs two worker processes sharing a DynamoDB
// lease table, kills one with SIGKILL while records flow, and checks that
// the other takes its shards after lease expiry and that every record is
// handled at least once, in order per shard.
func TestKilledWorkerProcess(t *testing.T) {
	dyn := testserver.DynamoDB(t)
	e := start(t)
	const shards = 4
	e.createStream(t, "s", shards)
	dir := t.TempDir()
	spawn := func(id string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerChildProcess$")
		cmd.Env = append(os.Environ(),
			"RUNNEL_CONSUMER_CHILD=1",
			"RUNNEL_CHILD_ID="+id,
			"RUNNEL_CHILD_LOG="+filepath.Join(dir, id+".log"),
			"RUNNEL_CHILD_KINESIS="+e.srv.URL,
			"RUNNEL_CHILD_DYNAMODB="+dyn.URL,
		)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		return cmd
	}
	logged := func(id string) int {
		n := 0
		for _, rs := range readLog(t, filepath.Join(dir, id+".log")) {
			n += len(rs)
		}
		return n
	}
	doomed := spawn("doomed")
	spawn("survivor")
	// Records keep coming, a round at a time, until both workers have
	// handled some: the first to start may handle a whole round alone
	// before the other takes its share of the leases.
	var want []string
	both := func() bool { return logged("doomed") > 0 && logged("survivor") > 0 }
	deadline := time.Now().Add(60 * time.Second)
	for round := 0; !both(); round++ {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s of puts, records handled by doomed: %d, by survivor: %d", logged("doomed"), logged("survivor"))
		}
		want = append(want, e.put(t, "s", 200, 100, fmt.Sprintf("a%d-", round))...)
		for wait := time.Now().Add(time.Second); !both() && time.Now().Before(wait); {
			<-time.After(20 * time.Millisecond)
		}
	}
	want = append(want, e.put(t, "s", 1000, 100, "b-")...)
	require.NoError(t, doomed.Process.Signal(syscall.SIGKILL))
	killedAt := time.Now()
	want = append(want, e.put(t, "s", 1000, 100, "c-")...)

	seen := func() map[string]bool {
		m := map[string]bool{}
		for _, id := range []string{"doomed", "survivor"} {
			for _, rs := range readLog(t, filepath.Join(dir, id+".log")) {
				for _, r := range rs {
					m[r] = true
				}
			}
		}
		return m
	}
	eventually(t, 60*time.Second, "every record handled", func() bool {
		m := seen()
		for _, w := range want {
			if !m[w] {
				return false
			}
		}
		return true
	})
	t.Logf("every record handled %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	// Each process handled its shards in order (first deliveries by data
	// index per partition key, which shares a shard).
	for _, id := range []string{"doomed", "survivor"} {
		for shard, rs := range readLog(t, filepath.Join(dir, id+".log")) {
			last := map[string]string{}
			first := map[string]bool{}
			for _, r := range rs {
				if first[r] {
					continue
				}
				first[r] = true
				key := strings.SplitN(strings.SplitN(r, "-", 2)[1], "/", 2)[0]
				if prev, ok := last[key]; ok {
					require.True(t, recordIndex(prev) < recordIndex(r), "%s %s: %s after %s", id, shard, r, prev)
				}
				last[key] = r
			}
		}
	}
	// The survivor holds every shard.
	store, err := consumer.NewDynamoDBStore(context.Background(), dyn.Client(), "app")
	require.NoError(t, err)
	eventually(t, 10*time.Second, "survivor holds every shard", func() bool {
		h := heldBy(t, store)
		return len(h) == 1 && h["survivor"] == shards
	})
}

// recordIndex orders data "<prefix>-k<n>/<i>" as it was put: the rounds
// a0-, a1-, … first, then b- and c-, and by the put index i within each.
func recordIndex(data string) int {
	prefix, rest, _ := strings.Cut(data, "-")
	_, i, _ := strings.Cut(rest, "/")
	var n, round int
	fmt.Sscan(i, &n)
	if len(prefix) > 1 {
		fmt.Sscan(prefix[1:], &round)
	}
	return map[string]int{"a": 0, "b": 1, "c": 2}[prefix[:1]]*1_000_000_000 + round*1_000_000 + n
}
