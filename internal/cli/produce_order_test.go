package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/pipeline/pipelinetest"
)

// minuteKey is one group of the country-minutes example.
type minuteKey struct {
	start   string // RFC 3339, UTC
	country string
}

// writeCountryEvents writes n events over the given minutes from
// 2024-05-01T10:00:00Z, in time order, with countries drawn at random
// (fixed seed) so that keys interleave as in a real log, and returns the
// count of each minute and country, computed from the rows written.
func writeCountryEvents(t *testing.T, path string, n, minutes int) map[minuteKey]int {
	t.Helper()
	countries := []string{"DE", "FR", "US", "JP", "BR", "NG", "IN"}
	weights := []int{30, 20, 25, 10, 8, 4, 3}
	total := 0
	for _, w := range weights {
		total += w
	}
	rng := rand.New(rand.NewPCG(17, 42))
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	step := time.Duration(minutes) * time.Minute / time.Duration(n)
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "timestamp\tcountry\tuser\tms")
	want := make(map[minuteKey]int)
	for i := range n {
		ts := start.Add(time.Duration(i) * step)
		c := countries[len(countries)-1]
		for j, x := 0, rng.IntN(total); j < len(weights); j++ {
			if x < weights[j] {
				c = countries[j]
				break
			}
			x -= weights[j]
		}
		fmt.Fprintf(w, "%s\t%s\tu%02d\t%d\n", ts.Format(time.RFC3339Nano), c, rng.IntN(50), 10+rng.IntN(500))
		want[minuteKey{ts.Truncate(time.Minute).Format(time.RFC3339), c}]++
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return want
}

// readMinutes returns the counts in the window output files under dir.
func readMinutes(t *testing.T, dir string) map[minuteKey]int {
	t.Helper()
	got := make(map[minuteKey]int)
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			var r struct {
				WindowStart string `json:"windowStart"`
				Country     string `json:"country"`
				Count       int    `json:"count"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &r), line)
			got[minuteKey{r.WindowStart, r.Country}] += r.Count
		}
	}
	return got
}

// The country-minutes example, run as its README says: the file is
// replayed with the default command (calls in flight across the stream's
// two shards), and every minute's count per country, computed by the
// window pipeline, equals the count computed from the file itself.
func TestProduceFileReplayGivesExactCountryMinutes(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	yml, err := os.ReadFile("../../examples/country-minutes/pipelines.yaml")
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "minutes")
	// The example as it is, but for where the minutes are written. Its
	// 15 s idle timeout closes the last minutes; a shorter one could
	// close every minute while a busy machine holds the replay back.
	cfg := strings.Replace(string(yml), "output: {dir: minutes}", fmt.Sprintf("output: {dir: %q}", out), 1)
	require.NotEqual(t, string(yml), cfg, "the example's pipelines file changed; update this test")
	r := pipelinetest.Start(t, client, cfg, pipelineBuiltins())

	// 30 minutes of 7 countries: 210 groups, an event every 86 ms, so a
	// 500-record batch stored out of file order is 43 s late, well past
	// the example's 10 s of allowed lateness.
	const n, minutes = 21000, 30
	path := filepath.Join(t.TempDir(), "events.tsv")
	want := writeCountryEvents(t, path, n, minutes)
	require.Len(t, want, 210)

	code, stdout, stderr := runProduce(t.Context(), nil, "file", path, "--key", "country", "--stream", "events", "--json", "--endpoint", srv.URL)
	require.Equal(t, 0, code, stderr)
	s := summaryOf(t, stdout)
	require.Equal(t, int64(n), s.Delivered)
	require.Zero(t, s.Reordered)

	deadline := time.Now().Add(2 * time.Minute)
	var got map[minuteKey]int
	var late int
	for {
		got = readMinutes(t, out)
		sum := 0
		for _, c := range got {
			sum += c
		}
		b, _ := os.ReadFile(filepath.Join(r.Dir, "late-or-bad.jsonl"))
		late = strings.Count(string(b), "\n")
		if sum+late >= n {
			break
		}
		require.False(t, time.Now().After(deadline), "after 2 min the window output counts %d of %d events in %d groups, %d late", sum, n, len(got), late)
		<-time.After(100 * time.Millisecond)
	}
	exact := 0
	for k, c := range want {
		if got[k] == c {
			exact++
		}
	}
	t.Logf("%d of %d groups exact, %d events late", exact, len(want), late)
	require.Zero(t, late, "events late or bad")
	require.Equal(t, want, got)
}
