package clients

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// browserEntry is the page script bundled with the AWS SDK for JavaScript
// v3: browse(endpoint, stream) creates the stream, puts a record and reads
// it back, as a web page calling Kinesis does.
const browserEntry = `
import { KinesisClient, CreateStreamCommand, PutRecordCommand, GetShardIteratorCommand, GetRecordsCommand } from "@aws-sdk/client-kinesis";

window.browse = async (endpoint, stream) => {
  const c = new KinesisClient({
    endpoint, region: "us-east-1", maxAttempts: 1,
    credentials: { accessKeyId: "runnel-test", secretAccessKey: "runnel-test" },
  });
  try {
    await c.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
    const put = await c.send(new PutRecordCommand({ StreamName: stream, PartitionKey: "page", Data: new TextEncoder().encode("from a web page") }));
    const it = await c.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: put.ShardId,
      ShardIteratorType: "AT_SEQUENCE_NUMBER", StartingSequenceNumber: put.SequenceNumber }));
    const got = await c.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }));
    return JSON.stringify({ ok: true, requestId: put.$metadata.requestId || "", records: got.Records.length,
      data: new TextDecoder().decode(got.Records[0].Data) });
  } catch (e) {
    return JSON.stringify({ ok: false, error: String(e && (e.name + ": " + e.message)) });
  }
};
`

// bundleBrowserSDK bundles browserEntry with the SDK installed in dir
// (see jssdkDir) by esbuild, installed beside it, for the browser.
func bundleBrowserSDK(t *testing.T, dir string) []byte {
	t.Helper()
	esbuild := filepath.Join(dir, "node_modules", ".bin", "esbuild")
	if _, err := os.Stat(esbuild); err != nil {
		msg := fmt.Sprintf("esbuild is needed to bundle the SDK for the browser (npm install --prefix %s esbuild, see .ci/run): %v", dir, err)
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	work := t.TempDir()
	entry := filepath.Join(work, "entry.mjs")
	require.NoError(t, os.WriteFile(entry, []byte(browserEntry), 0o600))
	out := filepath.Join(work, "bundle.js")
	cmd := exec.CommandContext(t.Context(), esbuild, entry, "--bundle", "--platform=browser", "--format=iife",
		"--log-level=warning", "--outfile="+out)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "esbuild: %s", msg)
	js, err := os.ReadFile(out)
	require.NoError(t, err)
	return js
}

// servePage serves a page loading the bundle on 127.0.0.1 and returns its
// port.
func servePage(t *testing.T, bundle []byte) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>runnel from a page</title><script src="/bundle.js"></script>`))
	})
	mux.HandleFunc("GET /bundle.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write(bundle)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	return port
}

type browseResult struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	RequestID string `json:"requestId"`
	Records   int    `json:"records"`
	Data      string `json:"data"`
}

// TestBrowserCORS: a web page calls runnel through the AWS SDK for
// JavaScript v3 in headless Chromium, from another origin (CORS): a page
// served from this machine may (preflight answered, the request id
// readable); a page from another site may not (DNS rebinding stays
// defeated) unless runnel names its origin with --allow-origin, or runnel
// has --auth, so that every call must be signed.
func TestBrowserCORS(t *testing.T) {
	t.Parallel()
	chromium := requireTool(t, "chromium")
	_, dir := jssdkDir(t)
	port := servePage(t, bundleBrowserSDK(t, dir))

	open := startServer(t)
	allowed := startServer(t, "--allow-origin", "http://app.example:"+port)
	// The page's credentials, as a key that may do everything.
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, os.WriteFile(keys, []byte("keys:\n  - id: runnel-test\n    secret: runnel-test\n    all: true\n"), 0o600))
	signed := startServer(t, "--auth", keys)

	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Pages from app.example and evil.example are served by the
		// page server on this machine, as DNS rebinding would have it.
		chromedp.Flag("host-resolver-rules", "MAP app.example 127.0.0.1, MAP evil.example 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()

	browse := func(t *testing.T, page, endpoint, stream string) browseResult {
		t.Helper()
		// Navigate returns once the page has loaded, its script with it.
		require.NoError(t, chromedp.Do(browser, chromedp.Navigate(page)))
		raw, err := chromedp.Run(browser, chromedp.Evaluate[string](
			fmt.Sprintf(`browse(%q, %q)`, endpoint, stream), chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		var res browseResult
		require.NoError(t, json.Unmarshal([]byte(raw), &res), raw)
		return res
	}

	for _, tc := range []struct {
		name, page, endpoint string
		ok                   bool
	}{
		{"a loopback page", "http://127.0.0.1:" + port + "/", open.URL, true},
		{"a localhost page", "http://localhost:" + port + "/", open.URL, true},
		{"a page from another site", "http://evil.example:" + port + "/", open.URL, false},
		{"a page from an allowed origin", "http://app.example:" + port + "/", allowed.URL, true},
		{"an allowed origin's page against another server", "http://app.example:" + port + "/", open.URL, false},
		{"any page, signing its calls, against --auth", "http://evil.example:" + port + "/", signed.URL, true},
	} {
		stream := "page-" + strings.NewReplacer(" ", "-", "'", "", ",", "").Replace(tc.name)
		res := browse(t, tc.page, tc.endpoint, stream)
		t.Logf("%s → %s: %+v", tc.page, tc.endpoint, res)
		if !tc.ok {
			require.False(t, res.OK, "%s may not call %s", tc.page, tc.endpoint)
			out := newAWSCLI(t, tc.endpoint).try("describe-stream-summary", "--stream-name", stream)
			require.Contains(t, out.stderr, "ResourceNotFoundException", "the refused page created nothing")
			continue
		}
		require.True(t, res.OK, "%s: %s", tc.name, res.Error)
		require.Equal(t, 1, res.Records)
		require.Equal(t, "from a web page", res.Data)
		require.Regexp(t, `^[0-9a-f-]{36}$`, res.RequestID, "x-amzn-RequestId is exposed to the page")
	}

	metrics := get(t, open.URL+"/metrics")
	require.Regexp(t, `(?m)^runnel_http_refused_total\{reason="origin"\} [1-9]`, metrics, "the other sites' requests were counted as refused")
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	return string(raw)
}
