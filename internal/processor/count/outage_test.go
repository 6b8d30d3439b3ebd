package count

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/pipeline/pipelinetest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// countPipeline runs yml (a pipelines file using the count built-in)
// against a fresh stream server until the test ends. It returns the
// pipelines and the server's client.
func countPipeline(t *testing.T, yml string) (*pipelinetest.Running, *kinesis.Client) {
	t.Helper()
	client := kinesistest.Start(t).Client(t)
	return pipelinetest.Start(t, client, yml, pipeline.Builtins{"count": Builtin}), client
}

// waitBlocked polls until some shard has been blocked for at least d
// with a reason naming each of want, and returns that reason. The reason
// is the last failed attempt's: on a busy machine the first attempts
// after Redis stops may end in the invocation's timeout before the
// refused connection that follows is seen.
func waitBlocked(t *testing.T, r *pipelinetest.Running, d time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(d + 30*time.Second)
	last := ""
	for {
		if blocked, longest := r.Blocked(); longest >= d && len(blocked) > 0 {
			last = blocked[0]
			if containsAll(last, want) {
				return last
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no shard blocked for %v with a reason naming %q; last reason: %q", d, want, last)
		}
		<-time.After(50 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// requireUnblocked polls until no shard is blocked.
func requireUnblocked(t *testing.T, r *pipelinetest.Running) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		blocked, _ := r.Blocked()
		if len(blocked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %s", blocked)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// countYAML is a count pipeline on a stream of three shards; the first
// %s is more of the pipeline's settings, the second Redis's address.
const countYAML = `streams:
  - name: clicks
    shards: 3
pipelines:
  - name: counter
    source: clicks
    onFailure: {file: failed.jsonl}
%s    handler:
      type: builtin
      name: count
      options:
        key: "{ts:2006-01-02}:{page}:{section}:{element}:{eventType}_{campaignId}"
        timeField: timestamp
        redis: {addr: %q, keyPrefix: "clicks:"}
`

// shortBudget gives the pipeline a retry budget far shorter than the
// outages the tests make: one retry, a two-second timeout.
const shortBudget = "    batchSize: 50\n    maxRetries: 1\n    timeout: 2s\n"

// TestRedisOutage stops Redis (with its append-only file on, so it keeps
// its data) for longer than the pipeline's whole retry budget while
// events keep coming: the shards wait, visibly, and once Redis is back
// every event is counted exactly once and none went to the on-failure
// file.
func TestRedisOutage(t *testing.T) {
	rs := testserver.RedisWithConfig(t, testserver.RedisConfig{Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	rc := redisClient(t, rs.Addr)
	r, client := countPipeline(t, fmt.Sprintf(countYAML, shortBudget, rs.Addr))

	events := clickstreamEvents(3000)
	putClicks(t, client, "clicks", events[:1000])
	waitForCounts(t, rc, 1000, 60*time.Second)

	rs.Stop(t)
	putClicks(t, client, "clicks", events[1000:])
	waitBlocked(t, r, 4*time.Second, "redis "+rs.Addr, "connection refused")
	rs.Start(t)

	got := waitForCounts(t, rc, len(events), 60*time.Second)
	require.Equal(t, exactCounts(t, "clicks:", events), got)
	requireUnblocked(t, r)
	failed, err := os.ReadFile(filepath.Join(r.Dir, "failed.jsonl"))
	require.NoError(t, err)
	require.Empty(t, string(failed), "nothing goes to the on-failure file")
}

// TestRedisRestartedEmpty restarts Redis without persistence: the counts
// made before are gone with it, and counting goes on from the pipeline's
// checkpoint, so Redis then holds exactly the events that came after,
// none twice and none lost (the documented behaviour).
func TestRedisRestartedEmpty(t *testing.T) {
	rs := testserver.Redis(t)
	rc := redisClient(t, rs.Addr)
	r, client := countPipeline(t, fmt.Sprintf(countYAML, shortBudget, rs.Addr))

	events := clickstreamEvents(2000)
	putClicks(t, client, "clicks", events[:1000])
	require.Equal(t, exactCounts(t, "clicks:", events[:1000]), waitForCounts(t, rc, 1000, 60*time.Second))

	rs.Stop(t)
	rs.Start(t)
	require.Empty(t, dump(t, rc), "redis-server without persistence restarts empty")
	putClicks(t, client, "clicks", events[1000:])
	got := waitForCounts(t, rc, 1000, 60*time.Second)
	require.Equal(t, exactCounts(t, "clicks:", events[1000:]), got)
	requireUnblocked(t, r)
	failed, err := os.ReadFile(filepath.Join(r.Dir, "failed.jsonl"))
	require.NoError(t, err)
	require.Empty(t, string(failed), "nothing goes to the on-failure file")
}
