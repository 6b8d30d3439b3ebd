package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
)

func TestMain(m *testing.M) { runneltest.Main(m) }

const chromiumPath = "/usr/bin/chromium"

// requireChromium skips the test without Chromium, unless
// RUNNEL_INTEGRATION=required (CI), where it fails.
func requireChromium(t *testing.T) string {
	t.Helper()
	path := chromiumPath
	if p := os.Getenv("RUNNEL_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatalf("chromium not found at %s (apt-get install chromium)", path)
		}
		t.Skipf("chromium not found at %s", path)
	}
	return path
}

// serveDemo starts `runnel serve --demo` on 127.0.0.1:0, counting into
// runnel's own store (no Redis), and returns its URL. When the test ends
// it is stopped with SIGINT and must exit cleanly.
func serveDemo(t *testing.T) string {
	t.Helper()
	p := runneltest.Serve(t, "--data-dir", filepath.Join(t.TempDir(), "data"), "--fsync", "never",
		"--demo", "--demo-store", "local")
	t.Cleanup(func() {
		if err := p.StopWith(os.Interrupt, 20*time.Second); err != nil {
			t.Errorf("runnel serve --demo did not stop cleanly on SIGINT: %v", err)
		}
		if t.Failed() {
			t.Logf("runnel serve --demo log:\n%s", p.Stderr())
		}
	})
	return p.URL
}

// artifactsDir is .ci/artifacts at the repository root.
func artifactsDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), ".ci", "artifacts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// demoTopKeys fetches the top keys the demo's counter reports on
// /api/results.
func demoTopKeys(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url + "/api/results")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var ans struct {
		Results []struct {
			Pipeline string `json:"pipeline"`
			TopKeys  []struct {
				Key string `json:"key"`
			} `json:"topKeys"`
		} `json:"results"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ans))
	var keys []string
	for _, r := range ans.Results {
		if r.Pipeline == "clickstream-counter" {
			for _, k := range r.TopKeys {
				keys = append(keys, k.Key)
			}
		}
	}
	return keys
}

// The selectors the test reads.
const (
	shardRowsSel = `[data-stream="clickstream"] tr[data-shard]`
	rateInSel    = `[data-stream="clickstream"] .figure.in b`
	// rateInJS is the records/s in the stream card shows, NaN before it
	// shows one.
	rateInJS = `(() => { const b = document.querySelector('[data-stream="clickstream"] .figure.in b'); return b ? parseFloat(b.innerText) : NaN; })()`
	// topChartSel is the counter's top-keys bar chart, drawn once the
	// counter reports top keys.
	topChartSel = `[data-result="clickstream-counter"] .bars li`
)

func TestDashboardInChromium(t *testing.T) {
	chromium := requireChromium(t)
	url := serveDemo(t)
	ctx := t.Context()

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	// Collect what the page writes to its console (calls, uncaught
	// exceptions, browser log entries such as failed loads or CSP
	// violations) from before the first navigation.
	var (
		consoleMu sync.Mutex
		problems  []string
	)
	messages := chromedp.Console(bctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				consoleMu.Lock()
				problems = append(problems, m.String())
				consoleMu.Unlock()
			}
		}
	}()

	// The demo stream and its four shards, each a quarter of the
	// hash-key space.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(shardRowsSel)),
		pollJS(fmt.Sprintf(`document.querySelectorAll(%q).length === 4`, shardRowsSel)),
	))
	ranges, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](fmt.Sprintf(`[...document.querySelectorAll(%q)].map(tr => tr.querySelector('td:nth-child(3)').innerText)`, shardRowsSel)))
	require.NoError(t, err)
	require.Len(t, ranges, 4, "the demo stream's four shards are listed")
	require.Contains(t, ranges[0], "0.0–25.0%", "the first shard covers the first quarter of the hash-key space")
	require.Contains(t, ranges[3], "75.0–100.0%", "the last shard covers the last quarter")

	// The generator runs: its card says so and the records-in rate rises.
	require.NoError(t, chromedp.Do(bctx,
		pollText(`#generator-state`, "running"),
		pollJS(`(document.querySelector('#generator') || {}).innerText.includes("writes to clickstream")`),
		pollJS(rateInJS+` > 0`),
	))
	rateText, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(rateInSel)))
	require.NoError(t, err)
	t.Logf("records/s in shown while the generator runs: %s", rateText)

	// The tail shows the generator's events, decoded.
	require.NoError(t, chromedp.Do(bctx,
		clickJS(`#tail-toggle`),
		pollJS(`document.querySelectorAll('#tail li.record').length > 0`),
		pollText(`#tail-state`, "live: clickstream"),
	))
	tailText, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#tail li.record`)))
	require.NoError(t, err)
	require.Contains(t, tailText, `"eventType": `, "the tail shows a clickstream event, decoded")
	require.Contains(t, tailText, `"sessionId": `)

	// The counter's results card draws its top keys once it reports them.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.WaitVisible(chromedp.CSS(`[data-result="clickstream-counter"]`)),
		pollJS(fmt.Sprintf(`!!document.querySelector(%q)`, topChartSel)),
	))
	keys := demoTopKeys(t, url)
	require.NotEmpty(t, keys, "the counter reports top keys")
	t.Logf("the counter's top keys: %v", keys)

	// The archive shows the files it wrote (every 10 s) with their sizes.
	require.NoError(t, chromedp.Do(bctx,
		pollJS(`(() => { const b = document.querySelector('[data-result="clickstream-archive"] .figure b'); return !!b && parseFloat(b.innerText) > 0; })()`),
		pollJS(`document.querySelectorAll('[data-result="clickstream-archive"] table.files tbody tr').length > 0`),
	))
	archiveText, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`[data-result="clickstream-archive"]`)))
	require.NoError(t, err)
	require.Contains(t, archiveText, "files")
	require.Regexp(t, `dt=\d{4}-\d\d-\d\d/hour=\d\d/`, archiveText, "the latest files are listed")
	require.Regexp(t, `\d+(\.\d)? (B|KiB|MiB)`, archiveText, "with their sizes")

	// A pipeline run by a separate runnel run process shows, reported by
	// it, and turns stale once the process is killed.
	run := runneltest.Start(t, nil, "--endpoint", url, "run", remotePipelines(t), "--report-interval", "300ms")
	require.NoError(t, chromedp.Do(bctx,
		pollText(`[data-pipeline="clickstream-tee"][data-process]`, "runnel run on"),
	))

	// Let the charts gather a few points before the screenshot.
	require.NoError(t, chromedp.Do(bctx, waitSeconds(3)))
	arts := artifactsDir(t)
	checkLayout(t, bctx, 1400)
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(arts, "dashboard-1400.png"), shot, 0o644))

	run.Kill()
	require.NoError(t, chromedp.Do(bctx,
		pollText(`[data-pipeline="clickstream-tee"][data-process] .pill.bad`, "stale"),
	))

	// Stop on the generator card stops it: the card says so and the rate
	// falls to 0.
	require.NoError(t, chromedp.Do(bctx,
		clickJS(`#generator-stop`),
		pollText(`#generator-state`, "stopped"),
		pollJS(`document.querySelector('#generator-stop').disabled && !document.querySelector('#generator-start').disabled`),
		pollJS(rateInJS+` === 0`),
	))

	// Start starts it again and the rate rises again.
	require.NoError(t, chromedp.Do(bctx,
		clickJS(`#generator-start`),
		pollText(`#generator-state`, "running"),
		pollJS(rateInJS+` > 0`),
	))

	// The same page on a phone-sized screen.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(shardRowsSel)),
		pollJS(`document.querySelectorAll('[data-result="clickstream-archive"] table.files tbody tr').length > 0`),
		waitSeconds(3),
	))
	checkLayout(t, bctx, 390)
	phone, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(arts, "dashboard-390.png"), phone, 0o644))

	consoleMu.Lock()
	defer consoleMu.Unlock()
	require.Empty(t, problems, "the page logs no errors or warnings")
}

// remotePipelines writes a pipelines file for a separate runnel run: a
// no-op pipeline over the demo's stream.
func remotePipelines(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`pipelines:
  - name: clickstream-tee
    source: clickstream
    handler: {type: builtin, name: noop}
`), 0o644))
	return path
}

// layout is what checkLayout measures in the page.
type layout struct {
	InnerWidth   float64 `json:"innerWidth"`
	ScrollWidth  float64 `json:"scrollWidth"`
	StreamsWidth float64 `json:"streamsWidth"`
	CardWidth    float64 `json:"cardWidth"`
	// ChartWidth and ChartBox are the stream chart's canvas and box widths.
	ChartWidth float64 `json:"chartWidth"`
	ChartBox   float64 `json:"chartBox"`
	Legend     string  `json:"legend"`
	// Tables lists every table wider than its box.
	Tables []string `json:"tables"`
	// StackedHead is true when the tables' headers are hidden (rows laid
	// out as blocks, phones).
	StackedHead bool `json:"stackedHead"`
	// Overlaps lists pairs of time-axis labels that overlap, and labels
	// outside their chart.
	Overlaps []string `json:"overlaps"`
	XLabels  int      `json:"xLabels"`
}

const layoutJS = `(() => {
  const card = document.querySelector('[data-stream="clickstream"]');
  const out = {
    innerWidth: window.innerWidth,
    scrollWidth: document.scrollingElement.scrollWidth,
    streamsWidth: document.getElementById("streams").clientWidth,
    cardWidth: card.getBoundingClientRect().width,
    chartWidth: card.querySelector(".chart canvas").getBoundingClientRect().width,
    chartBox: card.querySelector(".chart").clientWidth,
    legend: card.querySelector(".u-legend").innerText,
    tables: [], overlaps: [], xLabels: 0,
    stackedHead: getComputedStyle(document.querySelector("table.stack thead")).display === "none",
  };
  for (const t of document.querySelectorAll("table")) {
    if (t.getBoundingClientRect().width > t.parentElement.clientWidth + 1) out.tables.push(t.className + " " + t.getBoundingClientRect().width + " > " + t.parentElement.clientWidth);
  }
  for (const box of document.querySelectorAll(".chart[data-x-labels]")) {
    const labels = JSON.parse(box.dataset.xLabels);
    out.xLabels += labels.length;
    const width = box.querySelector("canvas").getBoundingClientRect().width;
    labels.forEach((a, i) => {
      if (a.x < -1 || a.x + a.w > width + 1) out.overlaps.push(a.l + " outside 0.." + width);
      const b = labels[i + 1];
      if (b && a.x + a.w + 2 > b.x) out.overlaps.push(a.l + " / " + b.l);
    });
  }
  return out;
})()`

// checkLayout asserts measurable facts of the page at the current width:
// nothing scrolls sideways, the stream card uses the whole width, the
// legend names the series with their latest values, no table is wider
// than its card, and no time-axis labels overlap.
func checkLayout(t *testing.T, ctx context.Context, width int) {
	t.Helper()
	l, err := chromedp.Run(ctx, chromedp.Evaluate[layout](layoutJS))
	require.NoError(t, err)
	t.Logf("layout at %d px: %+v", width, l)
	require.EqualValues(t, width, l.InnerWidth)
	require.LessOrEqual(t, l.ScrollWidth, l.InnerWidth, "nothing scrolls sideways")
	require.GreaterOrEqual(t, l.CardWidth, 0.98*l.StreamsWidth, "the only stream's card spans the section")
	require.InDelta(t, l.ChartBox, l.ChartWidth, 2, "the chart spans its card")
	require.Regexp(t, `records/s in\s*[0-9]`, l.Legend, "the legend names the series and shows a value")
	require.Regexp(t, `records/s out\s*[0-9]`, l.Legend)
	require.Empty(t, l.Tables, "no table is wider than its card")
	require.Equal(t, width < 600, l.StackedHead, "tables are stacked on phones only")
	require.Positive(t, l.XLabels)
	require.Empty(t, l.Overlaps, "time-axis labels do not overlap")
}

// pollJS waits (up to 30 s, in steps of 100 ms) until expr is true.
func pollJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, t)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("timed out waiting for %s", expr)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// clickJS clicks the element once it is there and enabled, in the page
// itself: the dashboard redraws its cards, so a node found by one DevTools
// call can be gone by the next ("Could not find node with given id").
func clickJS(sel string) chromedp.Action[chromedp.Void] {
	return pollJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e || e.disabled) return false; e.click(); return true; })()`, sel))
}

// pollText waits until the element's text contains want.
func pollText(sel, want string) chromedp.Action[chromedp.Void] {
	return pollJS(fmt.Sprintf(`((document.querySelector(%q) || {}).innerText || "").includes(%q)`, sel, want))
}

// waitSeconds lets the page run for n seconds (the chart fills with
// samples) without the test sleeping.
func waitSeconds(n int) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(n) * time.Second):
			return nil
		}
	})
}
