package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

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

// serveProcess builds runnel and starts `runnel serve` on 127.0.0.1:0,
// returning its URL once it listens. It is stopped when the test ends.
func serveProcess(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "runnel")
	build := exec.Command("go", "build", "-o", bin, "github.com/runnel-dev/runnel/cmd/runnel")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building runnel: %s", out)

	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--fsync", "never"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var logs bytes.Buffer
	var logsMu sync.Mutex
	urlCh := make(chan string, 1)
	copied := make(chan struct{})
	re := regexp.MustCompile(`msg=listening.*url=(http://127\.0\.0\.1:[1-9][0-9]*)`)
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logsMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logsMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlCh <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { <-copied; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runnel serve exited with %v", err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("runnel serve did not stop on SIGINT")
		}
		if t.Failed() {
			logsMu.Lock()
			t.Logf("runnel serve log:\n%s", logs.String())
			logsMu.Unlock()
		}
	})
	select {
	case u := <-urlCh:
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("runnel serve did not log that it listens")
		return ""
	}
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

func TestDashboardInChromium(t *testing.T) {
	chromium := requireChromium(t)
	url := serveProcess(t)

	kc := kinesis.New(kinesis.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	ctx := t.Context()
	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("clicks"), ShardCount: aws.Int32(3)})
	require.NoError(t, err)

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

	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-stream="clicks"] tr[data-shard]`)),
	))
	shardRows, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-stream="clicks"] tr[data-shard]').length`))
	require.NoError(t, err)
	require.Equal(t, 3, shardRows, "the stream's three shards are listed")
	ranges, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-stream="clicks"] tr[data-shard] td:nth-child(3)')].map(td => td.innerText)`))
	require.NoError(t, err)
	require.Len(t, ranges, 3)
	require.Contains(t, ranges[0], "0.0–33.3%", "the first shard covers the first third of the hash-key space")

	// Attach the tail, then put records and watch the rate rise and the
	// record appear.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(`#tail-toggle`)),
		pollText(`#tail-state`, "waiting for records"),
	))
	putCtx, stopPuts := context.WithCancel(ctx)
	defer stopPuts()
	putsDone := make(chan int, 1)
	go func() {
		n := 0
		defer func() { putsDone <- n }()
		for i := 0; i < 1200 && putCtx.Err() == nil; i++ {
			entries := make([]types.PutRecordsRequestEntry, 10)
			for j := range entries {
				entries[j] = types.PutRecordsRequestEntry{
					Data:         fmt.Appendf(nil, `{"event":"page_view","page":"/products/%d","marker":"browser-test"}`, i*10+j),
					PartitionKey: aws.String(fmt.Sprintf("user-%d", j)),
				}
			}
			if _, err := kc.PutRecords(putCtx, &kinesis.PutRecordsInput{StreamName: aws.String("clicks"), Records: entries}); err != nil {
				return
			}
			n += len(entries)
			select {
			case <-putCtx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	require.NoError(t, chromedp.Do(bctx,
		pollJS(`(() => { const b = document.querySelector('[data-stream="clicks"] .figure.in b'); return !!b && parseFloat(b.innerText) > 0; })()`),
		pollJS(`document.querySelectorAll('#tail li.record').length > 0`),
	))
	rateText, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`[data-stream="clicks"] .figure.in b`)))
	require.NoError(t, err)
	tailText, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#tail li.record`)))
	require.NoError(t, err)
	require.Contains(t, tailText, `"marker": "browser-test"`, "the tail shows the put event, decoded")
	t.Logf("records/s in shown while putting: %s", rateText)

	// Let the chart gather a few points before the screenshot.
	require.NoError(t, chromedp.Do(bctx, waitSeconds(4)))
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	stopPuts()
	require.Positive(t, <-putsDone)
	arts := artifactsDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(arts, "dashboard.png"), shot, 0o644))

	// The same page on a phone-sized screen.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-stream="clicks"] tr[data-shard]`)),
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
