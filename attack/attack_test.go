// Package attack attacks a real `runnel serve` as an outsider would: DNS
// rebinding, slow and unfinished bodies, replayed signatures, login
// floods, and a key looking at what it may not read.
package attack

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
)

func TestMain(m *testing.M) { runneltest.Main(m) }

// keysFile writes a credentials file for --auth.
func keysFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

// serve starts runnel serve with a fresh data directory.
func serve(t *testing.T, args ...string) *runneltest.Process {
	t.Helper()
	return runneltest.Serve(t, append([]string{"--data-dir", filepath.Join(t.TempDir(), "data")}, args...)...)
}

// client is an HTTP client that keeps a cookie jar (a dashboard session)
// and, when local is set, connects from that loopback address.
func client(t *testing.T, local string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}}
}

// answer is one response: status and body.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(a.body), &m), "status %d body %s", a.status, a.body)
	return m
}

// request is one HTTP request an outsider (or the test) makes.
type request struct {
	method, path string
	// target, when set, makes it a Kinesis API call.
	target string
	body   string
	header map[string]string
	// host overrides the Host header.
	host string
}

func do(t *testing.T, c *http.Client, base string, r request) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, base+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	if r.target != "" {
		req.Header.Set("X-Amz-Target", "Kinesis_20131202."+r.target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	}
	if r.method == http.MethodPost && r.target == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := c.Do(req)
	require.NoError(t, err, "%s %s", r.method, r.path)
	defer resp.Body.Close()
	// Event streams never end: the headers and what arrived at once are
	// enough.
	var body []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
	} else {
		body, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// kinesisClient is the real SDK against the server.
func kinesisClient(url, id, secret string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(url), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
	})
}

// waitFor polls cond until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// metric reads one sample of /metrics: name{labels} as written there.
func metric(t *testing.T, c *http.Client, base, series string, header map[string]string) float64 {
	t.Helper()
	a := do(t, c, base, request{method: http.MethodGet, path: "/metrics", header: header})
	require.Equal(t, http.StatusOK, a.status, a.body)
	sc := bufio.NewScanner(strings.NewReader(a.body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("/metrics has no %s", series)
	return 0
}

// hostPort is the host:port of a URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}

var refusedLog = regexp.MustCompile(`level=WARN msg="request refused" .*reason=(host|origin)`)

// TestRebinding is a web page whose name the attacker pointed at
// 127.0.0.1: its requests carry the attacker's name as Host and Origin.
// Every route that changes or reveals anything is refused, and so is a
// page on another site calling in with its own Origin or as a
// cross-site subresource; the same requests addressed to 127.0.0.1 are
// answered.
func TestRebinding(t *testing.T) {
	srv := serve(t, "--demo", "--redis", "", "--demo-rate", "20")
	c := client(t, "")
	port := hostPort(t, srv.URL)[strings.LastIndexByte(hostPort(t, srv.URL), ':')+1:]
	evil := "evil.example:" + port

	// The demo is up: its stream, generator and pipelines.
	waitDemo(t, c, srv.URL, nil)

	routes := []request{
		{method: http.MethodPost, path: "/", target: "DeleteStream", body: `{"StreamName":"clickstream"}`},
		{method: http.MethodPost, path: "/", target: "CreateStream", body: `{"StreamName":"planted","ShardCount":1}`},
		{method: http.MethodPost, path: "/", target: "PutRecord", body: `{"StreamName":"clickstream","PartitionKey":"k","Data":"AA=="}`},
		{method: http.MethodPost, path: "/", target: "ListStreams", body: `{}`},
		{method: http.MethodPost, path: "/", target: "DescribeStream", body: `{"StreamName":"clickstream"}`},
		{method: http.MethodPost, path: "/", target: "GetShardIterator", body: `{"StreamName":"clickstream","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`},
		{method: http.MethodPost, path: "/api/generator/stop"},
		{method: http.MethodPost, path: "/api/generator/start"},
		{method: http.MethodPost, path: "/api/login", body: `{"accessKeyId":"a","secretAccessKey":"b"}`},
		{method: http.MethodPost, path: "/api/logout"},
		{method: http.MethodGet, path: "/"},
		{method: http.MethodGet, path: "/api/session"},
		{method: http.MethodGet, path: "/api/streams"},
		{method: http.MethodGet, path: "/api/streams/clickstream"},
		{method: http.MethodGet, path: "/api/streams/clickstream/tail"},
		{method: http.MethodGet, path: "/api/stats"},
		{method: http.MethodGet, path: "/api/pipelines"},
		{method: http.MethodGet, path: "/api/results"},
		{method: http.MethodGet, path: "/api/generator"},
		{method: http.MethodGet, path: "/api/counts"},
		{method: http.MethodGet, path: "/metrics"},
	}
	attacks := []struct {
		name   string
		host   string
		header map[string]string
		reason string
	}{
		{"rebound page", evil, map[string]string{"Origin": "http://" + evil, "Sec-Fetch-Site": "same-origin"}, "host"},
		{"rebound name without Origin", evil, nil, "host"},
		{"other site calling in", "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, "origin"},
		{"cross-site subresource", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, "origin"},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			for _, r := range routes {
				r.host, r.header = at.host, at.header
				a := do(t, c, srv.URL, r)
				require.Equal(t, http.StatusForbidden, a.status, "%s %s %s: %s", r.method, r.path, r.target, a.body)
				if r.target != "" {
					require.Equal(t, "AccessDeniedException", a.json(t)["__type"], "%s", r.target)
				} else {
					require.Contains(t, a.json(t)["error"], map[string]string{"host": "is not this machine", "origin": "cross-origin"}[at.reason])
				}
			}
		})
	}

	// Nothing changed: the stream is there, nothing was planted, the
	// generator runs.
	kc := kinesisClient(srv.URL, "x", "x")
	streams, err := kc.ListStreams(t.Context(), &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	require.Equal(t, []string{"clickstream"}, streams.StreamNames)
	gen := do(t, c, srv.URL, request{method: http.MethodGet, path: "/api/generator"}).json(t)
	require.Equal(t, true, gen["present"], "%v", gen)
	require.Equal(t, true, gen["status"].(map[string]any)["running"])

	// The same routes addressed to this machine are answered (the ones
	// that change something last, and harmlessly).
	for _, r := range routes {
		if r.target == "DeleteStream" || r.path == "/api/generator/stop" {
			continue
		}
		a := do(t, c, srv.URL, r)
		require.NotEqual(t, http.StatusForbidden, a.status, "%s %s %s: %s", r.method, r.path, r.target, a.body)
	}
	for _, host := range []string{"localhost:" + port, "[::1]:" + port} {
		a := do(t, c, srv.URL, request{method: http.MethodGet, path: "/api/streams", host: host})
		require.Equal(t, http.StatusOK, a.status, host)
	}

	// Refusals are counted and logged.
	require.GreaterOrEqual(t, metric(t, c, srv.URL, `runnel_http_refused_total{reason="host"}`, nil), float64(2*len(routes)))
	require.GreaterOrEqual(t, metric(t, c, srv.URL, `runnel_http_refused_total{reason="origin"}`, nil), float64(2*len(routes)))
	require.Regexp(t, refusedLog, srv.Stderr())
}

// waitDemo waits until the demo's pipelines and generator run.
func waitDemo(t *testing.T, c *http.Client, base string, header map[string]string) {
	t.Helper()
	waitFor(t, time.Minute, "demo pipelines and generator", func() bool {
		p := do(t, c, base, request{method: http.MethodGet, path: "/api/pipelines", header: header})
		g := do(t, c, base, request{method: http.MethodGet, path: "/api/generator", header: header})
		return p.status == http.StatusOK && strings.Contains(p.body, "clickstream-counter") &&
			g.status == http.StatusOK && strings.Contains(g.body, `"running":true`)
	})
}

// TestAllowHost: --allow-host admits one more name, and only it.
func TestAllowHost(t *testing.T) {
	srv := serve(t, "--allow-host", "runnel.lan")
	c := client(t, "")
	port := hostPort(t, srv.URL)[strings.LastIndexByte(hostPort(t, srv.URL), ':')+1:]
	require.Equal(t, http.StatusOK, do(t, c, srv.URL, request{method: http.MethodGet, path: "/api/streams", host: "runnel.lan:" + port}).status)
	require.Equal(t, http.StatusForbidden, do(t, c, srv.URL, request{method: http.MethodGet, path: "/api/streams", host: "other.lan:" + port}).status)
}
