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
	topChartSel = `[data-result="clickstream-counter"] > div.chart:first-of-type .uplot`
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
		chromedp.WindowSize(1280, 1000),
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
		chromedp.Click(chromedp.CSS(`#tail-toggle`)),
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

	// Let the charts gather a few points before the screenshot.
	require.NoError(t, chromedp.Do(bctx, waitSeconds(4)))
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	arts := artifactsDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(arts, "dashboard.png"), shot, 0o644))

	// Stop on the generator card stops it: the card says so and the rate
	// falls to 0.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(`#generator-stop`)),
		pollText(`#generator-state`, "stopped"),
		pollJS(`document.querySelector('#generator-stop').disabled && !document.querySelector('#generator-start').disabled`),
		pollJS(rateInJS+` === 0`),
	))

	// Start starts it again and the rate rises again.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(`#generator-start`)),
		pollText(`#generator-state`, "running"),
		pollJS(rateInJS+` > 0`),
	))

	// The same page on a phone-sized screen.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(shardRowsSel)),
		waitSeconds(2),
	))
	phone, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(arts, "dashboard-phone.png"), phone, 0o644))
	overflow, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	require.NoError(t, err)
	require.False(t, overflow, "the page fits a phone's width (tables scroll inside their cards)")

	consoleMu.Lock()
	defer consoleMu.Unlock()
	require.Empty(t, problems, "the page logs no errors or warnings")
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
