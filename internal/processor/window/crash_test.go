package window_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

func TestMain(m *testing.M) { runneltest.Main(m) }

// TestKillDuringWindowPipeline runs runnel serve and runnel run with a
// window pipeline as real processes, kills runnel run with SIGKILL while
// it applies batches, restarts it, and checks that the emitted windows
// hold exactly the counts and sums computed from the input. It runs with
// the short form of the options, and with named aggregates and late
// events updating their emitted windows (one event in a hundred 90 s
// late): each late event counts once in its window, however the kills
// fall between the update and its writing.
func TestKillDuringWindowPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the runnel binary")
	}
	t.Run("short form", func(t *testing.T) { killDuringWindowPipeline(t, false) })
	t.Run("named aggregates, late updates", func(t *testing.T) { killDuringWindowPipeline(t, true) })
}

func killDuringWindowPipeline(t *testing.T, lateUpdates bool) {
	t.Setenv("AWS_ACCESS_KEY_ID", "windowtest")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "windowtest")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	url := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data")).URL
	client := kinesistest.NewClient(url)
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("events"), ShardCount: aws.Int32(2)})
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("events")})
		if err == nil && s.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			break
		}
		require.False(t, time.Now().After(deadline), "stream not active")
		<-time.After(20 * time.Millisecond)
	}

	// 3000 events, 20 per second of event time, over 6 countries; each
	// shard's events are in time order, so none is late.
	const n = 3000
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	countries := []string{"DE", "FR", "US", "BR", "JP", "IN"}
	type key struct{ window, country string }
	wantCount := map[key]int{}
	wantSum := map[key]int{}
	var entries []types.PutRecordsRequestEntry
	flush := func() {
		if len(entries) == 0 {
			return
		}
		o, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("events"), Records: entries})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(o.FailedRecordCount))
		entries = nil
	}
	for i := range n {
		at := base.Add(time.Duration(i) * 50 * time.Millisecond)
		c := countries[i%len(countries)]
		k := key{at.Truncate(time.Minute).Format(time.RFC3339), c}
		wantCount[k]++
		wantSum[k] += i % 7
		entries = append(entries, types.PutRecordsRequestEntry{
			PartitionKey: aws.String(c),
			Data:         fmt.Appendf(nil, `{"country":%q,"ts":%q,"v":%d}`, c, at.Format(time.RFC3339Nano), i%7),
		})
		if lateUpdates && i%100 == 99 {
			// After its key's later events: late once its minute closed.
			lateAt := at.Add(-90 * time.Second)
			k := key{lateAt.Truncate(time.Minute).Format(time.RFC3339), c}
			wantCount[k]++
			wantSum[k] += 5
			entries = append(entries, types.PutRecordsRequestEntry{
				PartitionKey: aws.String(c),
				Data:         fmt.Appendf(nil, `{"country":%q,"ts":%q,"v":5}`, c, lateAt.Format(time.RFC3339Nano)),
			})
		}
		if len(entries) >= 500 {
			flush()
		}
	}
	// One event an hour later on each shard moves both watermarks past
	// every window above.
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	for _, h := range []string{"0", half.String()} {
		entries = append(entries, types.PutRecordsRequestEntry{
			PartitionKey: aws.String("end"), ExplicitHashKey: aws.String(h),
			Data: fmt.Appendf(nil, `{"country":"ZZ","ts":%q,"v":0}`, base.Add(time.Hour).Format(time.RFC3339)),
		})
	}
	flush()

	outDir := filepath.Join(dir, "minutes")
	stateDir := filepath.Join(dir, "state")
	aggregates := "field: v"
	if lateUpdates {
		aggregates = "aggregates: {count: count(), sum: sum(v)}\n        late: update"
	}
	yml := fmt.Sprintf(`pipelines:
  - name: minutes
    source: events
    batchSize: 25
    onFailure: {file: %q}
    handler:
      type: builtin
      name: window
      options:
        size: 1m
        timeField: ts
        groupBy: [country]
        %s
        idleTimeout: 1h
        output: {dir: %q}
`, filepath.Join(dir, "failed.jsonl"), aggregates, outDir)
	pfile := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(pfile, []byte(yml), 0o644))
	env := []string{"AWS_ENDPOINT_URL=" + url}

	// progress is the sum of the shards' applied sequence numbers' last
	// digits changing: any change of the state files.
	stateOf := func() string {
		var b strings.Builder
		files, _ := filepath.Glob(filepath.Join(stateDir, "minutes.window", "shard-*.json"))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			var s struct {
				Seq string `json:"lastSequenceNumber"`
			}
			_ = json.Unmarshal(data, &s)
			b.WriteString(s.Seq + ",")
		}
		return b.String()
	}
	const rounds = 4
	kills := 0
	for round := range rounds {
		before := stateOf()
		p := runneltest.Start(t, env, "run", pfile, "--state-dir", stateDir)
		// Kill once this round has applied something (the state moved).
		deadline := time.Now().Add(60 * time.Second)
		for stateOf() == before && time.Now().Before(deadline) {
			select {
			case <-p.Done():
				t.Fatalf("round %d: runnel run exited", round)
			case <-time.After(2 * time.Millisecond):
			}
		}
		require.NotEqual(t, before, stateOf(), "round %d: no progress in 60s", round)
		// A little further in, at a varying point.
		<-time.After(time.Duration(round*7) * time.Millisecond)
		p.Kill()
		kills++
	}

	// The last run goes to the end.
	p := runneltest.Start(t, env, "run", pfile, "--state-dir", stateDir)
	wantWindows := map[string]bool{}
	for k := range wantCount {
		wantWindows[k.window] = true
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(outDir, "*.jsonl"))
		if len(files) >= len(wantWindows) {
			break
		}
		require.False(t, time.Now().After(deadline), "%d of %d windows emitted", len(files), len(wantWindows))
		<-time.After(20 * time.Millisecond)
	}
	require.NoError(t, p.Signal(os.Interrupt))
	<-p.Done()

	gotCount := map[key]int{}
	gotSum := map[key]int{}
	files, _ := filepath.Glob(filepath.Join(outDir, "*.jsonl"))
	require.Len(t, files, len(wantWindows))
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r struct {
				WindowStart string  `json:"windowStart"`
				Country     string  `json:"country"`
				Count       int     `json:"count"`
				Sum         float64 `json:"sum"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &r))
			k := key{r.WindowStart, r.Country}
			require.NotContains(t, gotCount, k, "result repeated in the output")
			gotCount[k], gotSum[k] = r.Count, int(r.Sum)
		}
	}
	require.Equal(t, wantCount, gotCount, "counts after %d kills", kills)
	require.Equal(t, wantSum, gotSum)
	failed, err := os.ReadFile(filepath.Join(dir, "failed.jsonl"))
	if !os.IsNotExist(err) {
		require.NoError(t, err)
	}
	require.Empty(t, string(failed), "no event was late or rejected")
}
