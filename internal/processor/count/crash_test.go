package count

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

func TestMain(m *testing.M) { runneltest.Main(m) }

// runEnv is the environment of `runnel run`: static credentials for the
// local server.
var runEnv = []string{"AWS_ACCESS_KEY_ID=runnel", "AWS_SECRET_ACCESS_KEY=runnel", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}

func kinesisClient(url string) *kinesis.Client { return kinesistest.NewClient(url) }

// putClicks puts events into the stream, partitioned by session.
func putClicks(t *testing.T, client *kinesis.Client, stream string, events []string) {
	t.Helper()
	ctx := context.Background()
	p, err := producer.New(client, producer.Config{Stream: stream, Linger: 5 * time.Millisecond})
	require.NoError(t, err)
	for _, e := range events {
		var f struct{ SessionID string }
		require.NoError(t, json.Unmarshal([]byte(e), &f))
		require.NoError(t, p.Write(ctx, producer.Record{PartitionKey: f.SessionID, Data: []byte(e)}))
	}
	st, err := p.Close(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Failed)
}

// counted returns the sum of the counters under prefix, and the counters.
func counted(ctx context.Context, rc *redis.Client, prefix string) (int, map[string]string, error) {
	var keys []string
	iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if !strings.Contains(iter.Val(), "__applied:") {
			keys = append(keys, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return 0, nil, err
	}
	out := make(map[string]string, len(keys))
	sum := 0
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 500)]
		keys = keys[len(chunk):]
		vals, err := rc.MGet(ctx, chunk...).Result()
		if err != nil {
			return 0, nil, err
		}
		for i, v := range vals {
			s, _ := v.(string)
			n, err := strconv.Atoi(s)
			if err != nil {
				return 0, nil, fmt.Errorf("key %s holds %q", chunk[i], s)
			}
			out[chunk[i]] = s
			sum += n
		}
	}
	return sum, out, nil
}

func writePipelines(t *testing.T, dir, redisAddr string, batchSize int) string {
	t.Helper()
	path := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`streams:
  - name: clickstream
    shards: 4
pipelines:
  - name: click-counter
    source: clickstream
    batchSize: %d
    handler:
      type: builtin
      name: count
      options:
        key: "{ts:2006-01-02}:{page}:{section}:{element}:{eventType}_{campaignId}"
        timeField: timestamp
        redis: {addr: %q, keyPrefix: "c:"}
`, batchSize, redisAddr)), 0o644))
	return path
}

// TestKillRunMidCountCountsExactlyOnce kills `runnel run` with SIGKILL at
// random moments while it counts, restarts it, and checks that the final
// counts equal the exact counts of the input.
func TestKillRunMidCountCountsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs runnel processes")
	}
	t.Parallel()
	const n, rounds = 20000, 4
	rs := testserver.Redis(t)
	rc := redisClient(t, rs.Addr)
	dir := t.TempDir()
	url := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"), "--fsync", "never").URL
	cfg := writePipelines(t, dir, rs.Addr, 100)
	client := kinesisClient(url)
	_, err := client.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String("clickstream"), ShardCount: aws.Int32(4)})
	require.NoError(t, err)
	waiter := kinesis.NewStreamExistsWaiter(client)
	require.NoError(t, waiter.Wait(context.Background(), &kinesis.DescribeStreamInput{StreamName: aws.String("clickstream")}, 30*time.Second))

	events := clickstreamEvents(n)
	putClicks(t, client, "clickstream", events)
	want := exactCounts(t, "c:", events)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	ctx := context.Background()
	stateDir := filepath.Join(dir, "state")
	killedMidway := 0
	for round := 1; round <= rounds; round++ {
		before, _, err := counted(ctx, rc, "c:")
		require.NoError(t, err)
		if before >= n {
			break
		}
		// Kill once a random share of what is left has been counted.
		target := before + 1 + rng.IntN(max(1, (n-before)/3))
		run := runneltest.Start(t, runEnv, "--endpoint", url, "run", cfg, "--state-dir", stateDir)
		deadline := time.Now().Add(90 * time.Second)
		for {
			sum, _, err := counted(ctx, rc, "c:")
			require.NoError(t, err)
			if sum >= target {
				break
			}
			select {
			case <-run.Done():
				t.Fatalf("runnel run exited:\n%s", run.Stderr())
			default:
			}
			require.False(t, time.Now().After(deadline), "round %d: counted %d, waiting for %d:\n%s", round, sum, target, run.Stderr())
			<-time.After(time.Duration(rng.IntN(5)+1) * time.Millisecond)
		}
		run.Kill()
		sum, _, err := counted(ctx, rc, "c:")
		require.NoError(t, err)
		require.LessOrEqual(t, sum, n, "round %d: more counted than put", round)
		if sum < n {
			killedMidway++
		}
		t.Logf("round %d: killed with %d of %d counted", round, sum, n)
	}
	require.Positive(t, killedMidway, "no kill happened before the end")

	run := runneltest.Start(t, runEnv, "--endpoint", url, "run", cfg, "--state-dir", stateDir)
	deadline := time.Now().Add(120 * time.Second)
	for {
		sum, _, err := counted(ctx, rc, "c:")
		require.NoError(t, err)
		if sum >= n {
			break
		}
		require.False(t, time.Now().After(deadline), "counted %d of %d:\n%s", sum, n, run.Stderr())
		<-time.After(50 * time.Millisecond)
	}
	if err := run.Stop(60 * time.Second); errors.Is(err, runneltest.ErrStillRunning) {
		t.Fatal("runnel run did not stop on SIGTERM")
	}
	_, got, err := counted(ctx, rc, "c:")
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// TestServePipelinesCount runs the count pipeline inside `runnel serve
// --pipelines`, kills the server once counting has begun, restarts it, and
// checks the exact counts. Half the events are put only after the
// restart, so the kill always falls before everything is counted, however
// slow the machine.
func TestServePipelinesCount(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs runnel processes")
	}
	t.Parallel()
	const n = 20000
	rs := testserver.Redis(t)
	rc := redisClient(t, rs.Addr)
	dir := t.TempDir()
	cfg := writePipelines(t, dir, rs.Addr, 100)
	data := filepath.Join(dir, "data")

	// The first half is put by a server without pipelines, so that the
	// pipeline has a backlog to count when it starts.
	srv := runneltest.Serve(t, "--data-dir", data)
	client := kinesisClient(srv.URL)
	_, err := client.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String("clickstream"), ShardCount: aws.Int32(4)})
	require.NoError(t, err)
	require.NoError(t, kinesis.NewStreamExistsWaiter(client).Wait(context.Background(), &kinesis.DescribeStreamInput{StreamName: aws.String("clickstream")}, 30*time.Second))
	events := clickstreamEvents(n)
	putClicks(t, client, "clickstream", events[:n/2])
	want := exactCounts(t, "c:", events)
	require.NoError(t, srv.Signal(syscall.SIGTERM))
	<-srv.Done()

	srv = runneltest.Start(t, runEnv, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--pipelines", cfg)
	ctx := context.Background()

	// Kill the server once it has counted something.
	deadline := time.Now().Add(90 * time.Second)
	for {
		sum, _, err := counted(ctx, rc, "c:")
		require.NoError(t, err)
		if sum > 0 {
			break
		}
		require.False(t, time.Now().After(deadline), "nothing counted:\n%s", srv.Stderr())
		<-time.After(2 * time.Millisecond)
	}
	srv.Kill()
	sum, _, err := counted(ctx, rc, "c:")
	require.NoError(t, err)
	require.LessOrEqual(t, sum, n/2, "more counted than put")
	t.Logf("killed runnel serve with %d of the %d events put so far counted", sum, n/2)

	srv = runneltest.Serve(t, "--data-dir", data, "--pipelines", cfg)
	putClicks(t, kinesisClient(srv.URL), "clickstream", events[n/2:])
	deadline = time.Now().Add(120 * time.Second)
	for {
		sum, _, err := counted(ctx, rc, "c:")
		require.NoError(t, err)
		if sum >= n {
			break
		}
		require.False(t, time.Now().After(deadline), "counted %d of %d:\n%s", sum, n, srv.Stderr())
		<-time.After(50 * time.Millisecond)
	}
	_, got, err := counted(ctx, rc, "c:")
	require.NoError(t, err)
	require.Equal(t, want, got)
}
