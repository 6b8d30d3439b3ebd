package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/dashboard"
	"github.com/runnel-dev/runnel/internal/runneltest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// The demo, as a newcomer runs it: serve --demo creates the stream,
// generates clicks, counts them in the local store (read back with
// runnel counts) and archives them; once the generator is stopped, the
// counts and the archive hold exactly the events it delivered.
// summaryRecords matches a shard line of an exit summary.
var summaryRecords = regexp.MustCompile(`^  shardId-\d+ .* records (\d+) `)

func TestServeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := runneltest.Binary(t)
	data := filepath.Join(dir, "data")
	p := runneltest.Serve(t, "--demo", "--data-dir", data,
		"--demo-store", "local", "--demo-rate", "200")
	url := p.URL
	p.WaitFor(t, regexp.MustCompile(`msg="demo running`), time.Minute)
	archiveDir := filepath.Join(data, "archive")

	counts := func() CountsAnswer {
		t.Helper()
		out, err := exec.Command(bin, "counts", "--endpoint", url, "--json", "--top", "5").Output()
		require.NoError(t, err)
		var ans CountsAnswer
		require.NoError(t, json.Unmarshal(out, &ans), string(out))
		require.Equal(t, "clickstream-counter", ans.Pipeline)
		require.Equal(t, "local", ans.Store)
		return ans
	}
	// archived counts the events in the archive's objects, all under
	// Hive-style dt=/hour= folders.
	archived := func() (objects, events int) {
		t.Helper()
		err := filepath.WalkDir(archiveDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && path != archiveDir {
				// The archive's own spool and temporary files.
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(archiveDir, path)
			require.Regexp(t, `^dt=\d{4}-\d\d-\d\d/hour=\d\d/`, filepath.ToSlash(rel))
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			objects++
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(nil, 16<<20)
			for sc.Scan() {
				events++
			}
			return sc.Err()
		})
		if os.IsNotExist(err) {
			return 0, 0
		}
		require.NoError(t, err)
		return objects, events
	}
	poll := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				stderr := p.Stderr()
				t.Fatalf("no %s within %v\n%s", what, d, stderr)
			}
			<-time.After(100 * time.Millisecond)
		}
	}

	poll("counts and an archive object", time.Minute, func() bool {
		objects, _ := archived()
		ans := counts()
		return ans.Total > 0 && len(ans.Top) > 0 && objects > 0
	})

	// Stop the generator through the dashboard's API, and wait until what
	// it buffered is delivered.
	resp, err := http.Post(url+"/api/generator/stop", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var gen dashboard.GeneratorAnswer
	poll("the generator's buffered events delivered", time.Minute, func() bool {
		resp, err := http.Get(url + "/api/generator")
		require.NoError(t, err)
		defer resp.Body.Close()
		gen = dashboard.GeneratorAnswer{}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&gen))
		st := gen.Status
		return st != nil && !st.Running && st.EventsDelivered+st.Failures == st.EventsSent
	})
	require.Zero(t, gen.Status.Failures)
	delivered := gen.Status.EventsDelivered
	require.Positive(t, delivered)

	// Counted exactly once each, and archived (within the archive's 10s
	// interval) exactly once each.
	var last CountsAnswer
	poll("counts equal to the events delivered", time.Minute, func() bool {
		last = counts()
		return last.Total >= delivered
	})
	require.Equal(t, delivered, last.Total, "events counted")
	var events int
	poll("the archive to hold every event delivered", time.Minute, func() bool {
		_, events = archived()
		return int64(events) >= delivered
	})
	require.Equal(t, delivered, int64(events), "events archived")

	// /metrics says the same of the generator, the counter and the
	// archive. An object is in place a moment before the archive adds it
	// to its figures, so wait for them to agree first.
	objects, _ := archived()
	fams := scrapeMetrics(t, url)
	poll("the archive's figures to count every object and event", time.Minute, func() bool {
		fams = scrapeMetrics(t, url)
		return metricValue(fams, "runnel_archive_records_total", "pipeline", "clickstream-archive") == float64(delivered) &&
			metricValue(fams, "runnel_archive_objects_total", "pipeline", "clickstream-archive") == float64(objects)
	})
	require.Equal(t, float64(delivered), metricValue(fams, "runnel_generator_events_delivered_total", "stream", "clickstream"))
	require.Equal(t, float64(delivered), metricValue(fams, "runnel_count_records_total", "pipeline", "clickstream-counter"))
	require.Equal(t, float64(delivered), metricValue(fams, "runnel_archive_records_total", "pipeline", "clickstream-archive"))
	require.Equal(t, float64(objects), metricValue(fams, "runnel_archive_objects_total", "pipeline", "clickstream-archive"))
	require.Positive(t, metricValue(fams, "runnel_archive_bytes_total", "pipeline", "clickstream-archive"))
	require.Zero(t, metricValue(fams, "runnel_archive_error_records_total", "pipeline", "clickstream-archive"))
	require.Zero(t, metricValue(fams, "runnel_generator_running", "stream", "clickstream"))

	// The dashboard's results show the archive's files and bytes.
	resp, err = http.Get(url + "/api/results")
	require.NoError(t, err)
	var results struct {
		Results []struct {
			Pipeline string `json:"pipeline"`
			Figures  []struct {
				Label string  `json:"label"`
				Value float64 `json:"value"`
			} `json:"figures"`
			Recent []struct {
				Name string `json:"name"`
			} `json:"recent"`
		} `json:"results"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&results))
	resp.Body.Close()
	var archiveFigures = map[string]float64{}
	for _, r := range results.Results {
		if r.Pipeline == "clickstream-archive" {
			for _, f := range r.Figures {
				archiveFigures[f.Label] = f.Value
			}
			require.NotEmpty(t, r.Recent)
			require.FileExists(t, filepath.Join(archiveDir, r.Recent[0].Name))
		}
	}
	require.Equal(t, float64(objects), archiveFigures["files"])
	require.Equal(t, float64(delivered), archiveFigures["records"])

	require.NoError(t, p.Signal(syscall.SIGTERM))
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		t.Fatal("runnel serve --demo did not stop within a minute of SIGTERM")
	}
	stderr := p.Stderr()
	require.NoError(t, p.Err(), stderr)
	require.Contains(t, stderr, "msg=stopped")
	// The exit summary has each pipeline's real totals, not zeros.
	summed := map[string]int{}
	pipelineName := ""
	for _, line := range strings.Split(p.Stdout(), "\n") {
		if name, ok := strings.CutPrefix(line, "pipeline "); ok {
			pipelineName, _, _ = strings.Cut(name, " ")
			continue
		}
		if m := summaryRecords.FindStringSubmatch(line); m != nil && pipelineName != "" {
			v, _ := strconv.Atoi(m[1])
			summed[pipelineName] += v
		}
	}
	require.EqualValues(t, delivered, summed["clickstream-counter"], "exit summary of the counter\n%s", p.Stdout())

	// The counts survive a restart: a second run starts from them.
	p = runneltest.Serve(t, "--demo", "--data-dir", data,
		"--demo-store", "local", "--demo-rate", "1")
	url = p.URL
	p.WaitFor(t, regexp.MustCompile(`msg="demo running`), time.Minute)
	require.GreaterOrEqual(t, counts().Total, delivered)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	<-p.Done()
	stderr = p.Stderr()
	require.NoError(t, p.Err(), stderr)
}

// With --redis the demo counts into Redis, and runnel counts reads the
// counters there, as the server tells it to.
func TestServeDemoRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	rs := testserver.Redis(t)
	dir := t.TempDir()
	bin := runneltest.Binary(t)
	p := runneltest.Serve(t, "--demo", "--data-dir", filepath.Join(dir, "data"),
		"--redis", rs.Addr, "--demo-rate", "200")
	url := p.URL
	p.WaitFor(t, regexp.MustCompile(`msg="demo running.*counts="Redis `+regexp.QuoteMeta(rs.Addr)), time.Minute)

	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rc.Close()
	deadline := time.Now().Add(time.Minute)
	var ans CountsAnswer
	for {
		out, err := exec.Command(bin, "counts", "--endpoint", url, "--json", "--top", "3").Output()
		require.NoError(t, err)
		ans = CountsAnswer{}
		require.NoError(t, json.Unmarshal(out, &ans), string(out))
		if ans.Total > 0 {
			break
		}
		require.False(t, time.Now().After(deadline), "no counts in Redis within a minute")
		<-time.After(100 * time.Millisecond)
	}
	require.Equal(t, "redis", ans.Store)
	require.Equal(t, rs.Addr, ans.Redis)
	require.Regexp(t, `^runnel-demo:[a-z0-9]{10}:$`, ans.KeyPrefix, "the data dir's own prefix")
	require.NotEmpty(t, ans.Top)
	v, err := rc.Get(t.Context(), ans.KeyPrefix+ans.Top[0].Key).Int64()
	require.NoError(t, err)
	require.GreaterOrEqual(t, v, ans.Top[0].Value)
	out, err := exec.Command(bin, "counts", "--endpoint", url).Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "clickstream-counter: ")
	require.Contains(t, string(out), "(Redis "+rs.Addr)

	// The dashboard's results show the counter's top keys from Redis.
	resp, err := http.Get(url + "/api/results")
	require.NoError(t, err)
	var results struct {
		Results []struct {
			Pipeline string `json:"pipeline"`
			TopKeys  []struct {
				Key   string  `json:"key"`
				Value float64 `json:"value"`
			} `json:"topKeys"`
		} `json:"results"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&results))
	resp.Body.Close()
	var counted bool
	for _, r := range results.Results {
		if r.Pipeline == demoCounter {
			counted = true
			require.NotEmpty(t, r.TopKeys)
			require.NotContains(t, r.TopKeys[0].Key, ans.KeyPrefix, "keys are shown without the prefix")
		}
	}
	require.True(t, counted, "the counter's results are shown")

	require.NoError(t, p.Signal(syscall.SIGTERM))
	<-p.Done()
	stderr := p.Stderr()
	require.NoError(t, p.Err(), stderr)
}

// scrapeMetrics fetches and parses url's /metrics.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// metricValue is the value of family's series whose label name has value
// (a counter's or a gauge's), or NaN when there is none.
func metricValue(fams map[string]*dto.MetricFamily, family, name, value string) float64 {
	for _, m := range fams[family].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name && l.GetValue() == value {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return math.NaN()
}

// Each data dir gets its own Redis key prefix, kept across restarts.
func TestDemoRedisKeyPrefix(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pa, err := demoRedisKeyPrefix(a)
	require.NoError(t, err)
	pb, err := demoRedisKeyPrefix(b)
	require.NoError(t, err)
	require.NotEqual(t, pa, pb)
	again, err := demoRedisKeyPrefix(a)
	require.NoError(t, err)
	require.Equal(t, pa, again)
}
