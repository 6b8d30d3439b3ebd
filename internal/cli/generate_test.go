package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/clickstream"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// runGenerate runs `runnel args...` and returns the exit code, stdout and
// stderr.
func runGenerate(t *testing.T, ctx context.Context, environ map[string]string, stdout, stderr *runneltest.SyncBuffer, args ...string) int {
	t.Helper()
	e := &env{
		stdin:  strings.NewReader(""),
		stdout: stdout,
		stderr: stderr,
		getenv: func(k string) string { return environ[k] },
	}
	return e.main(ctx, args)
}

func TestGeneratePrintCatalogue(t *testing.T) {
	var stdout, stderr runneltest.SyncBuffer
	code := runGenerate(t, t.Context(), nil, &stdout, &stderr, "generate", "clickstream", "--print-catalogue")
	require.Equal(t, 0, code, stderr.String())
	_, err := clickstream.ParseCatalogue("printed", []byte(stdout.String()))
	require.NoError(t, err)
}

func TestGenerateUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--to", "kafka"}, `--to "kafka": want stream or stdout`},
		{[]string{"--sessions", "0"}, "--sessions 0"},
		{[]string{"--rate", "-5"}, "--rate -5"},
		{[]string{"--stream", ""}, "--stream is required"},
		{[]string{"extra"}, "takes no arguments"},
		{[]string{"--format", "xml"}, `--format "xml": want json or url`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr runneltest.SyncBuffer
			code := runGenerate(t, t.Context(), nil, &stdout, &stderr, append([]string{"generate", "clickstream"}, tc.args...)...)
			require.Equal(t, 2, code, stderr.String())
			require.Contains(t, stderr.String(), tc.msg)
		})
	}
}

func TestGenerateBadCatalogue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.yaml")
	y := strings.Replace(string(clickstream.DefaultCatalogueYAML()), "addToCart: 0.18", "addToCart: 1.18", 1)
	require.NoError(t, os.WriteFile(path, []byte(y), 0o600))
	var stdout, stderr runneltest.SyncBuffer
	code := runGenerate(t, t.Context(), nil, &stdout, &stderr, "generate", "clickstream", "--to", "stdout", "--catalogue", path)
	require.Equal(t, 1, code)
	require.Contains(t, stderr.String(), path+":18: probabilities.addToCart: must be a probability in [0, 1], got 1.18")
}

func TestGenerateMissingStream(t *testing.T) {
	srv := kinesistest.Start(t)
	var stdout, stderr runneltest.SyncBuffer
	code := runGenerate(t, t.Context(), nil, &stdout, &stderr,
		"--endpoint", srv.URL, "generate", "clickstream", "--stream", "nope", "--listen", "127.0.0.1:0")
	require.Equal(t, 1, code)
	require.Contains(t, stderr.String(), `stream "nope" does not exist; create it with: runnel stream create nope`)
}

var (
	listeningRE = regexp.MustCompile(`generator on (http://127\.0\.0\.1:\d+)`)
	summaryRE   = regexp.MustCompile(`generated (\d+) events in \d+ sessions \(\d+ checkouts\); delivered (\d+), failed 0`)
)

// startGenerate runs the command in the background and returns the control
// API's URL and a function that interrupts the command and returns its exit
// code.
func startGenerate(t *testing.T, environ map[string]string, stdout, stderr *runneltest.SyncBuffer, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- runGenerate(t, ctx, environ, stdout, stderr, args...) }()
	var (
		url    string
		exited = -1
	)
	require.Eventually(t, func() bool {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
			return true
		}
		select {
		case exited = <-done:
			return true
		default:
			return false
		}
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, -1, exited, "generate exited early: %s", stderr.String())
	return url, func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(30 * time.Second):
			t.Fatal("generate did not return after interrupt")
			return -1
		}
	}
}

// TestGenerateDefaultPortTakenFallsBack starts a generator with the
// default control address while that port is held, and checks that it
// listens on another one.
func TestGenerateDefaultPortTakenFallsBack(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:8080")
	if err == nil {
		defer held.Close()
	} // else something else holds it, which serves as well
	var stdout, stderr runneltest.SyncBuffer
	url, interrupt := startGenerate(t, nil, &stdout, &stderr, "generate", "clickstream", "--to", "stdout", "--rate", "1")
	require.NotEqual(t, "http://127.0.0.1:8080", url)
	require.Equal(t, 0, interrupt(), stderr.String())

	code := runGenerate(t, t.Context(), nil, &stdout, &stderr, "generate", "clickstream", "--to", "stdout", "--listen", "127.0.0.1:8080")
	require.Equal(t, exitError, code)
	require.Contains(t, stderr.String(), "listening for the control API on 127.0.0.1:8080")
	require.Contains(t, stderr.String(), "--listen 127.0.0.1:0 picks a free port")
}

func getStatus(t *testing.T, url, token string) (clickstream.Status, int) {
	t.Helper()
	resp, err := http.Get(url + "/status?token=" + token)
	require.NoError(t, err)
	defer resp.Body.Close()
	var st clickstream.Status
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	}
	return st, resp.StatusCode
}

// TestGenerateToStream runs the command against a real server with the
// token from the environment, interrupts it, and checks the summary against
// the stream's contents.
func TestGenerateToStream(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	producertest.CreateStream(t, client, "clicks", 2)

	var stdout, stderr runneltest.SyncBuffer
	environ := map[string]string{"RUNNEL_CLICKSTREAM_TOKEN": "env-token"}
	url, interrupt := startGenerate(t, environ, &stdout, &stderr,
		"--endpoint", srv.URL, "generate", "clickstream", "--stream", "clicks",
		"--listen", "127.0.0.1:0", "--rate", "3000", "--sessions", "30", "--seed", "5", "--start")

	_, code := getStatus(t, url, "wrong")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Eventually(t, func() bool {
		st, code := getStatus(t, url, "env-token")
		return code == http.StatusOK && st.EventsSent >= 1000
	}, 20*time.Second, 10*time.Millisecond)

	// Its /metrics, behind the token (as a Prometheus bearer token).
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer env-token")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 1.0, metricValue(fams, "runnel_generator_running", "stream", "clicks"))
	require.GreaterOrEqual(t, metricValue(fams, "runnel_generator_events_sent_total", "stream", "clicks"), 1000.0)
	require.Contains(t, fams, "go_goroutines")

	require.Equal(t, 0, interrupt(), stderr.String())
	out := stderr.String()
	require.NotContains(t, out, "env-token", "a given token is not printed")
	require.Contains(t, out, `stop with: curl "`+url+`/stop?token=$RUNNEL_CLICKSTREAM_TOKEN"`)
	require.Contains(t, out, "(seed 5)")
	m := summaryRE.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Equal(t, m[1], m[2], "every generated event delivered")
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	require.Len(t, producertest.ReadAll(t, client, "clicks"), n)
}

// TestGenerateToStdout prints events as JSON lines and prints the
// generated token.
func TestGenerateToStdout(t *testing.T) {
	t.Parallel()
	var stdout, stderr runneltest.SyncBuffer
	url, interrupt := startGenerate(t, nil, &stdout, &stderr,
		"generate", "clickstream", "--to", "stdout", "--listen", "127.0.0.1:0", "--rate", "0")
	m := regexp.MustCompile(`token: ([A-Z2-7]{26})\n`).FindStringSubmatch(stderr.String())
	require.NotNil(t, m, stderr.String())
	token := m[1]
	require.Contains(t, stderr.String(), "stopped; start with: curl '"+url+"/start?token="+token+"'")

	st, code := getStatus(t, url, token)
	require.Equal(t, http.StatusOK, code)
	require.False(t, st.Running, "starts stopped")
	resp, err := http.Get(url + "/start?token=" + token)
	require.NoError(t, err)
	resp.Body.Close()
	require.Eventually(t, func() bool {
		st, _ := getStatus(t, url, token)
		return st.EventsSent >= 2000
	}, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, 0, interrupt(), stderr.String())

	sm := summaryRE.FindStringSubmatch(stderr.String())
	require.NotNil(t, sm, stderr.String())
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var line struct {
			PartitionKey string            `json:"partitionKey"`
			Data         clickstream.Event `json:"data"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		require.Equal(t, line.Data.EventID, line.PartitionKey)
		lines++
	}
	require.NoError(t, sc.Err())
	require.Equal(t, sm[1], strconv.Itoa(lines))
}

// TestGenerateURLFormat runs the url format to standard output: every
// line is a click URL of the built-in catalogue's shape; a catalogue
// whose product group has no productIds is refused for it, naming the
// group's line.
func TestGenerateURLFormat(t *testing.T) {
	t.Parallel()
	var stdout, stderr runneltest.SyncBuffer
	url, interrupt := startGenerate(t, nil, &stdout, &stderr,
		"generate", "clickstream", "--to", "stdout", "--listen", "127.0.0.1:0", "--rate", "0", "--format", "url", "--start")
	require.Eventually(t, func() bool { return strings.Count(stdout.String(), "\n") >= 500 }, 20*time.Second, 5*time.Millisecond)
	resp, err := http.Get(url + "/info")
	require.NoError(t, err)
	var info clickstream.Info
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
	resp.Body.Close()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, clickstream.FormatURL, info.Format)
	require.Equal(t, "running", info.State)
	require.Equal(t, 0, interrupt(), stderr.String())

	sm := regexp.MustCompile(`generated (\d+) url events; delivered (\d+), failed 0`).FindStringSubmatch(stderr.String())
	require.NotNil(t, sm, stderr.String())
	shape := regexp.MustCompile(`^https://store\.example\.com/api/group/[1-7](/product/[1-7][0-9]{3})?\?userid=[0-9]+$`)
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var line struct {
			PartitionKey string `json:"partitionKey"`
			Data         struct {
				URL string `json:"url"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		require.Regexp(t, shape, line.Data.URL)
		require.Len(t, line.PartitionKey, 36)
		lines++
	}
	require.NoError(t, sc.Err())
	require.Equal(t, sm[1], strconv.Itoa(lines))

	path := filepath.Join(t.TempDir(), "store.yaml")
	y := strings.Replace(string(clickstream.DefaultCatalogueYAML()), "    productIds: {min: 1001, max: 1100}\n", "", 1)
	require.NoError(t, os.WriteFile(path, []byte(y), 0o600))
	var out, errs runneltest.SyncBuffer
	code := runGenerate(t, t.Context(), nil, &out, &errs, "generate", "clickstream", "--to", "stdout", "--format", "url", "--catalogue", path)
	require.Equal(t, 1, code)
	require.Regexp(t, regexp.QuoteMeta(path)+`:[0-9]+: productGroups\[0\]\.productIds: product group "tents" needs productIds`, errs.String())
}
