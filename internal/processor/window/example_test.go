package window_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/pipeline/pipelinetest"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/processor/window"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// reading is one Wild Rydes sensor reading.
type reading struct {
	Name                      string
	At                        time.Time
	Distance                  float64
	HealthPoints, MagicPoints int
}

func (r reading) json() string {
	return fmt.Sprintf(`{"Name":%q,"StatusTime":%q,"Latitude":40.749,"Longitude":-73.985,"Distance":%s,"HealthPoints":%d,"MagicPoints":%d}`,
		r.Name, r.At.Format("2006-01-02 15:04:05.000"), strconv.FormatFloat(r.Distance, 'f', -1, 64), r.HealthPoints, r.MagicPoints)
}

// summary is one expected item of UnicornSensorDataSummary.
type summary struct {
	distance                 float64
	minMagic, maxMagic       int
	minHealth, maxHealth     int
	statusTime, windowEnd, n string
}

// summarize computes the per-unicorn, per-minute summary of readings
// without the processor: Name/StatusTime → item.
func summarize(readings []reading) map[string]*summary {
	out := map[string]*summary{}
	for _, r := range readings {
		m := r.At.Truncate(time.Minute)
		k := r.Name + "/" + m.Format(time.RFC3339)
		s := out[k]
		if s == nil {
			s = &summary{minMagic: math.MaxInt, maxMagic: math.MinInt, minHealth: math.MaxInt, maxHealth: math.MinInt,
				statusTime: m.Format(time.RFC3339), windowEnd: m.Add(time.Minute).Format(time.RFC3339), n: r.Name}
			out[k] = s
		}
		s.distance += r.Distance
		s.minMagic, s.maxMagic = min(s.minMagic, r.MagicPoints), max(s.maxMagic, r.MagicPoints)
		s.minHealth, s.maxHealth = min(s.minHealth, r.HealthPoints), max(s.maxHealth, r.HealthPoints)
	}
	return out
}

// TestUnicornSensorsExample runs examples/unicorn-sensors/pipelines.yaml
// as shipped (only the DynamoDB endpoint pointed at the test's dynalite;
// an empty HOME and no AWS_* variable) on known sensor readings, and
// compares the per-minute summary items with a computation of its own
// from the same readings; every reading is also an item of
// UnicornSensorData.
func TestUnicornSensorsExample(t *testing.T) {
	db := testserver.DynamoDB(t)
	testserver.WithoutAWSCredentials(t)
	yml, err := os.ReadFile("../../../examples/unicorn-sensors/pipelines.yaml")
	require.NoError(t, err)
	require.Contains(t, string(yml), "http://127.0.0.1:8000")
	client := kinesistest.Start(t).Client(t)
	r := pipelinetest.Start(t, client, strings.ReplaceAll(string(yml), "http://127.0.0.1:8000", db.URL),
		pipeline.Builtins{"table": table.Builtin, "window": window.Builtin})

	// Three unicorns, one reading a second each for four minutes and a
	// bit, as `runnel produce sensor` makes them.
	rnd := rand.New(rand.NewPCG(17, 3))
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	names := []string{"Shadowfax", "Rocinante", "Bucephalus"}
	var readings []reading
	for sec := range 4*60 + 5 {
		for i, n := range names {
			readings = append(readings, reading{
				Name: n, At: start.Add(time.Duration(sec)*time.Second + time.Duration(i*100)*time.Millisecond),
				Distance:     float64(2800+rnd.IntN(400)) / 100,
				HealthPoints: 100 + rnd.IntN(60), MagicPoints: 120 + rnd.IntN(40),
			})
		}
	}
	ctx := t.Context()
	for from := 0; from < len(readings); from += 250 {
		var entries []types.PutRecordsRequestEntry
		for _, rd := range readings[from:min(from+250, len(readings))] {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(rd.Name), Data: []byte(rd.json())})
		}
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("wildrydes"), Records: entries})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	}

	// The minutes before the last reading's have closed: 4 × 3 items.
	want := summarize(beforeLastMinute(readings, func(r reading) time.Time { return r.At }))
	require.Len(t, want, 12)
	deadline := time.Now().Add(90 * time.Second)
	var items []map[string]dbtypes.AttributeValue
	for {
		items = db.Scan(t, "UnicornSensorDataSummary")
		if len(items) >= len(want) {
			break
		}
		require.False(t, time.Now().After(deadline), "%d of %d summary items written", len(items), len(want))
		<-time.After(200 * time.Millisecond)
	}
	all := summarize(readings) // the last minute closes too when the stream stays idle long enough
	seen := 0
	for _, it := range items {
		name, statusTime := str(t, it["Name"]), str(t, it["StatusTime"])
		k := name + "/" + statusTime
		w, ok := all[k]
		require.True(t, ok, "unexpected item %s", k)
		if _, closed := want[k]; closed {
			seen++
		}
		require.Len(t, it, 8, "Name, StatusTime, windowEnd and five aggregates: %v", it)
		require.Equal(t, w.windowEnd, str(t, it["windowEnd"]))
		require.InDelta(t, w.distance, num(t, it["Distance"]), 1e-6, k)
		require.Equal(t, float64(w.minMagic), num(t, it["MinMagicPoints"]), k)
		require.Equal(t, float64(w.maxMagic), num(t, it["MaxMagicPoints"]), k)
		require.Equal(t, float64(w.minHealth), num(t, it["MinHealthPoints"]), k)
		require.Equal(t, float64(w.maxHealth), num(t, it["MaxHealthPoints"]), k)
	}
	require.Equal(t, len(want), seen, "every closed minute has its item")

	deadline = time.Now().Add(60 * time.Second)
	for len(db.Scan(t, "UnicornSensorData")) < len(readings) {
		require.False(t, time.Now().After(deadline), "readings not all written")
		<-time.After(200 * time.Millisecond)
	}
	for _, f := range []string{"failed.jsonl", "failed-summary.jsonl"} {
		b, err := os.ReadFile(filepath.Join(r.Dir, f))
		if err == nil {
			require.Empty(t, string(b), f)
		}
	}
}

func str(t *testing.T, v dbtypes.AttributeValue) string {
	t.Helper()
	s, ok := v.(*dbtypes.AttributeValueMemberS)
	require.True(t, ok, "want a string, got %T", v)
	return s.Value
}

func num(t *testing.T, v dbtypes.AttributeValue) float64 {
	t.Helper()
	n, ok := v.(*dbtypes.AttributeValueMemberN)
	require.True(t, ok, "want a number, got %T", v)
	f, err := strconv.ParseFloat(n.Value, 64)
	require.NoError(t, err)
	return f
}
