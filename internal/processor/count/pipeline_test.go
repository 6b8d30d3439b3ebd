package count

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// clickKey is the key the example template gives a clickstream event,
// computed without the processor.
func clickKey(t testing.TB, event string) string {
	var f map[string]any
	require.NoError(t, json.Unmarshal([]byte(event), &f))
	str := func(k string) string { s, _ := f[k].(string); return s }
	return str("timestamp")[:10] + ":" + str("page") + ":" + str("section") + ":" + str("element") + ":" + str("eventType") + "_" + str("campaignId")
}

// exactCounts counts the keys of events.
func exactCounts(t testing.TB, prefix string, events []string) map[string]string {
	n := map[string]int{}
	for _, e := range events {
		n[prefix+clickKey(t, e)]++
	}
	out := make(map[string]string, len(n))
	for k, v := range n {
		out[k] = strconv.Itoa(v)
	}
	return out
}

// waitForCounts polls Redis until the counts add up to total, then
// returns them.
func waitForCounts(t testing.TB, rc *redis.Client, total int, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := dump(t, rc)
		sum := 0
		for _, v := range got {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			sum += n
		}
		if sum >= total {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("counted %d of %d events after %v", sum, total, timeout)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// TestPipeline runs count as a built-in of pipelines.yaml against a real
// stream server and redis-server, with KPL-aggregated records, and
// records that do not decode going to the on-failure file.
func TestPipeline(t *testing.T) {
	rs := testserver.Redis(t)
	rc := redisClient(t, rs.Addr)
	r, client := countPipeline(t, fmt.Sprintf(countYAML, "    batchSize: 100\n", rs.Addr))
	ctx := context.Background()

	events := clickstreamEvents(3000)
	poison := []string{`not json`, `{"truncated":`, `[1,2]`}
	for i, agg := range []bool{false, true} {
		p, err := producer.New(client, producer.Config{Stream: "clicks", Aggregate: agg, Linger: 5 * time.Millisecond})
		require.NoError(t, err)
		half := events[i*len(events)/2 : (i+1)*len(events)/2]
		for j, e := range half {
			var f struct{ SessionID string }
			require.NoError(t, json.Unmarshal([]byte(e), &f))
			require.NoError(t, p.Write(ctx, producer.Record{PartitionKey: f.SessionID, Data: []byte(e)}))
			if j%700 == 100 { // 100 and 800 of the first half, 100 of the second
				if k := i*2 + j/700; k < len(poison) {
					require.NoError(t, p.Write(ctx, producer.Record{PartitionKey: "poison", Data: []byte(poison[k])}))
				}
			}
		}
		st, err := p.Close(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Failed, "records the producer gave up on")
	}

	want := exactCounts(t, "clicks:", events)
	got := waitForCounts(t, rc, len(events), 60*time.Second)
	require.Equal(t, want, got)

	// The records that do not decode are in the on-failure file, once
	// each, with the reason.
	failed := filepath.Join(r.Dir, "failed.jsonl")
	deadline := time.Now().Add(30 * time.Second)
	var fails []consumer.Failure
	for {
		fails = fails[:0]
		if b, err := os.ReadFile(failed); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var f consumer.Failure
				require.NoError(t, json.Unmarshal([]byte(line), &f), line)
				fails = append(fails, f)
			}
		}
		if len(fails) >= 3 || time.Now().After(deadline) {
			break
		}
		<-time.After(50 * time.Millisecond)
	}
	require.Len(t, fails, 3)
	var rejectedData []string
	for _, f := range fails {
		require.Equal(t, "RecordRejected", f.RequestContext.Condition)
		require.Contains(t, f.ResponseContext.ErrorMessage, "record does not decode")
		require.Len(t, f.Payload.Records, 1)
		rejectedData = append(rejectedData, string(f.Payload.Records[0].Kinesis.Data))
	}
	require.ElementsMatch(t, []string{poison[0], poison[1], poison[2]}, rejectedData)

	// Every shard has a marker.
	markers, err := rc.Keys(ctx, "clicks:__applied:counter:*").Result()
	require.NoError(t, err)
	require.Len(t, markers, 3)
}

// TestExamplePipelines checks the shipped example against the count
// processor's options.
func TestExamplePipelines(t *testing.T) {
	cfg, err := pipeline.Load("../../../examples/clickstream-counter/pipelines.yaml", pipeline.Builtins{"count": Builtin})
	require.NoError(t, err)
	require.Len(t, cfg.Pipelines, 1)
	c, err := ParseOptions(cfg.Pipelines[0].Handler.Options)
	require.NoError(t, err)
	require.Equal(t, "timestamp", c.TimeField)
	tmpl, err := parseTemplate(c.Key)
	require.NoError(t, err)
	require.Equal(t, []string{"page", "section", "element", "eventType", "campaignId"}, tmpl.fields)
}
