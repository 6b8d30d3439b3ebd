package attack

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"
)

const demoKeys = `keys:
  - id: AKIDADMIN
    secret: admin-secret
    all: true
  - id: AKIDPUTTER
    secret: putter-secret
    put: [clickstream]
  - id: AKIDREADER
    secret: reader-secret
    read: [clickstream]
  - id: AKIDSTRANGER
    secret: stranger-secret
    read: [orders]
  - id: AKIDALLREADER
    secret: allreader-secret
    read: ["*"]
`

// login logs c in to the dashboard with a key and returns the answer.
func login(t *testing.T, c *http.Client, base, id, secret string) answer {
	t.Helper()
	return do(t, c, base, request{method: http.MethodPost, path: "/api/login",
		body: `{"accessKeyId":"` + id + `","secretAccessKey":"` + secret + `"}`})
}

// TestDashboardVisibilityPerKey: logged in to the dashboard, a key sees
// the streams it may read and what is derived from them (pipelines,
// results, counts, the generator), nothing else; /metrics, which names
// everything, needs a key that reads every stream or the metrics token.
func TestDashboardVisibilityPerKey(t *testing.T) {
	srv := serve(t, "--demo", "--redis", "", "--demo-rate", "20", "--auth", keysFile(t, demoKeys), "--metrics-token", "scrape-token")
	admin := client(t, "")
	require.Equal(t, http.StatusOK, login(t, admin, srv.URL, "AKIDADMIN", "admin-secret").status)
	waitDemo(t, admin, srv.URL, nil)
	waitFor(t, time.Minute, "the counter's results", func() bool {
		return strings.Contains(do(t, admin, srv.URL, request{method: http.MethodGet, path: "/api/results"}).body, "clickstream-counter")
	})

	type sees struct {
		streams, pipelines, results, generator bool
		counts, metrics                        int
	}
	for _, tc := range []struct {
		id, secret string
		want       sees
	}{
		{"AKIDADMIN", "admin-secret", sees{true, true, true, true, http.StatusOK, http.StatusOK}},
		{"AKIDALLREADER", "allreader-secret", sees{true, true, true, true, http.StatusOK, http.StatusOK}},
		{"AKIDREADER", "reader-secret", sees{true, true, true, true, http.StatusForbidden, http.StatusForbidden}},
		{"AKIDPUTTER", "putter-secret", sees{false, false, false, false, http.StatusForbidden, http.StatusForbidden}},
		{"AKIDSTRANGER", "stranger-secret", sees{false, false, false, false, http.StatusForbidden, http.StatusForbidden}},
	} {
		t.Run(tc.id, func(t *testing.T) {
			c := client(t, "")
			require.Equal(t, http.StatusOK, login(t, c, srv.URL, tc.id, tc.secret).status)
			get := func(path string) answer { return do(t, c, srv.URL, request{method: http.MethodGet, path: path}) }

			require.Equal(t, tc.want.streams, strings.Contains(get("/api/streams").body, `"clickstream"`), "streams")
			require.Equal(t, tc.want.streams, strings.Contains(get("/api/stats").body, `"clickstream"`), "stats")
			require.Equal(t, tc.want.streams, get("/api/streams/clickstream").status == http.StatusOK, "stream")
			require.Equal(t, tc.want.pipelines, strings.Contains(get("/api/pipelines").body, "clickstream"), "pipelines")
			require.Equal(t, tc.want.results, strings.Contains(get("/api/results").body, "clickstream-counter"), "results")
			require.Equal(t, tc.want.generator, strings.Contains(get("/api/generator").body, `"present":true`), "generator")
			require.Equal(t, tc.want.counts, get("/api/counts").status, "counts of every pipeline")
			named := get("/api/counts?pipeline=clickstream-counter").status
			require.Equal(t, map[bool]int{true: http.StatusOK, false: http.StatusForbidden}[tc.want.pipelines], named, "counts of the readable counter")
			m := get("/metrics")
			require.Equal(t, tc.want.metrics, m.status, "metrics: %s", m.body)
			if m.status != http.StatusOK {
				require.NotContains(t, m.body, "clickstream", "a refused scrape names nothing")
			}
			if !tc.want.pipelines {
				require.Equal(t, http.StatusForbidden, get("/api/streams/clickstream/tail").status, "tail")
			}
		})
	}

	// The metrics token admits a scraper without a login; without either,
	// /metrics answers 401.
	anon := client(t, "")
	require.Equal(t, http.StatusOK, do(t, anon, srv.URL, request{method: http.MethodGet, path: "/metrics",
		header: map[string]string{"Authorization": "Bearer scrape-token"}}).status)
	require.Equal(t, http.StatusUnauthorized, do(t, anon, srv.URL, request{method: http.MethodGet, path: "/metrics"}).status)
	for _, p := range []string{"/api/streams", "/api/pipelines", "/api/results", "/api/generator", "/api/counts"} {
		require.Equal(t, http.StatusUnauthorized, do(t, anon, srv.URL, request{method: http.MethodGet, path: p}).status, p)
	}
}

// TestUnsignedTargetReplayed: a request signed without X-Amz-Target among
// its SignedHeaders (here a DescribeStreamSummary) replayed as
// DeleteStream is refused, and the stream survives.
func TestUnsignedTargetReplayed(t *testing.T) {
	srv := serve(t, "--auth", keysFile(t, demoKeys))
	ctx := t.Context()
	kc := kinesisClient(srv.URL, "AKIDADMIN", "admin-secret")
	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("victim"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)

	// signed signs body with the headers set, then sets X-Amz-Target to
	// target unless it was among them.
	signed := func(signTarget bool, target string) *http.Request {
		body := `{"StreamName":"victim"}`
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if signTarget {
			req.Header.Set("X-Amz-Target", "Kinesis_20131202."+target)
		}
		sum := sha256.Sum256([]byte(body))
		require.NoError(t, v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "AKIDADMIN", SecretAccessKey: "admin-secret"},
			req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now()))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202."+target)
		return req
	}
	send := func(req *http.Request) answer {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return answer{status: resp.StatusCode, body: string(b)}
	}

	replayed := signed(false, "DeleteStream")
	require.Contains(t, replayed.Header.Get("Authorization"), "SignedHeaders=content-length;content-type;host;x-amz-date,")
	a := send(replayed)
	require.Equal(t, http.StatusBadRequest, a.status)
	require.Equal(t, "IncompleteSignatureException", a.json(t)["__type"])
	require.Contains(t, a.json(t)["message"], "'X-Amz-Target' must be a 'SignedHeader'")

	// The stream survives; the same request signed properly is answered.
	_, err = kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("victim")})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, send(signed(true, "DescribeStreamSummary")).status)
}

// TestLoginFlood: a flood of wrong-secret logins from one address (for a
// real key and for made-up ones) does not lock out a person logging in
// from another; the flood is throttled, counted and logged.
func TestLoginFlood(t *testing.T) {
	srv := serve(t, "--auth", keysFile(t, demoKeys), "--metrics-token", "scrape-token")
	flooder := client(t, "127.0.0.1")

	ctx, stop := context.WithTimeout(t.Context(), 4*time.Second)
	defer stop()
	var attempts, throttled atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				id := "AKIDADMIN"
				if w%2 == 1 {
					id = "AKIDGUESS"
				}
				body := `{"accessKeyId":"` + id + `","secretAccessKey":"guess"}`
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/login", strings.NewReader(body))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := flooder.Do(req)
				if err != nil {
					return // the flood ended
				}
				_ = resp.Body.Close()
				attempts.Add(1)
				if resp.StatusCode == http.StatusTooManyRequests {
					throttled.Add(1)
				} else if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("a wrong secret got %d", resp.StatusCode)
				}
			}
		}()
	}

	// Meanwhile people log in from other addresses, with the flooded key
	// and with another.
	waitFor(t, 2*time.Second, "the flood to be throttled", func() bool { return throttled.Load() > 0 })
	logins := 0
	for ctx.Err() == nil && logins < 40 {
		for _, who := range []struct{ addr, id, secret string }{
			{"127.0.0.2", "AKIDADMIN", "admin-secret"},
			{"127.0.0.3", "AKIDREADER", "reader-secret"},
		} {
			a := login(t, client(t, who.addr), srv.URL, who.id, who.secret)
			require.Equal(t, http.StatusOK, a.status, "%s from %s during the flood: %s", who.id, who.addr, a.body)
			logins++
		}
		<-time.After(50 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("flood: %d attempts, %d throttled; %d logins from other addresses, all admitted", attempts.Load(), throttled.Load(), logins)
	require.Greater(t, throttled.Load(), attempts.Load()/2, "most of the flood is throttled")

	token := map[string]string{"Authorization": "Bearer scrape-token"}
	c := client(t, "")
	require.GreaterOrEqual(t, metric(t, c, srv.URL, `runnel_dashboard_logins_total{result="throttled"}`, token), float64(throttled.Load()))
	require.Positive(t, metric(t, c, srv.URL, `runnel_dashboard_logins_total{result="refused"}`, token))
	require.GreaterOrEqual(t, metric(t, c, srv.URL, `runnel_dashboard_logins_total{result="ok"}`, token), float64(logins))
	require.Contains(t, srv.Stderr(), `msg="dashboard login refused" component=dashboard access_key_id=AKIDADMIN remote=127.0.0.1:`)
	require.Contains(t, srv.Stderr(), `msg="dashboard login throttled"`)
}

// TestSignatureCheckedBeforeBody: with --auth, a request that cannot be
// admitted is answered from its headers alone, while its 15 MiB body has
// not been sent: an unknown key, a wrong signature when the body's hash is
// declared (X-Amz-Content-Sha256), and an action the key may never call.
func TestSignatureCheckedBeforeBody(t *testing.T) {
	srv := serve(t, "--auth", keysFile(t, demoKeys))
	addr := hostPort(t, srv.URL)
	ctx := t.Context()
	_, err := kinesisClient(srv.URL, "AKIDADMIN", "admin-secret").CreateStream(ctx,
		&kinesis.CreateStreamInput{StreamName: aws.String("clickstream"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)

	body := `{"StreamName":"clickstream"}`
	sum := sha256.Sum256([]byte(body))
	declared := hex.EncodeToString(sum[:])
	// headers signs a DeleteStream of body as id with secret, declaring
	// the body's hash and a Content-Length of length, and returns the
	// headers a client would send.
	headers := func(id, secret string, length int64) http.Header {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/", strings.NewReader(body))
		require.NoError(t, err)
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.DeleteStream")
		req.Header.Set("X-Amz-Content-Sha256", declared)
		require.NoError(t, v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
			req, declared, "kinesis", "us-east-1", time.Now()))
		return req.Header
	}
	// headersOnly sends h with a 15 MiB Content-Length and no body, and
	// returns the answer's status line and body.
	headersOnly := func(h http.Header) (string, string) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		var b strings.Builder
		b.WriteString("POST / HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: " + strconv.Itoa(15<<20) + "\r\n")
		for k, vs := range h {
			for _, v := range vs {
				b.WriteString(k + ": " + v + "\r\n")
			}
		}
		b.WriteString("\r\n")
		_, err = io.WriteString(c, b.String())
		require.NoError(t, err)
		// Answered well before the body timeout, without a body byte.
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err, "no answer before the body was sent")
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.Status, string(raw)
	}

	for _, tc := range []struct {
		name, id, secret, typ string
	}{
		{"unknown key", "AKIDNOBODY", "x", "UnrecognizedClientException"},
		{"wrong secret", "AKIDADMIN", "guess", "InvalidSignatureException"},
		{"action the key may never call", "AKIDPUTTER", "putter-secret", "AccessDeniedException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := headersOnly(headers(tc.id, tc.secret, 15<<20))
			require.Equal(t, "400 Bad Request", status, raw)
			require.Contains(t, raw, `"__type":"`+tc.typ+`"`)
		})
	}

	// The admin's request, body and all, is answered; a body that does not
	// match the declared hash is not.
	send := func(h http.Header, b string) answer {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/", strings.NewReader(b))
		require.NoError(t, err)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return answer{status: resp.StatusCode, body: string(raw)}
	}
	a := send(headers("AKIDADMIN", "admin-secret", int64(len(body))), `{"StreamName":"clickstreaM"}`)
	require.Equal(t, http.StatusBadRequest, a.status, a.body)
	require.Contains(t, a.body, "x-amz-content-sha256")
	a = send(headers("AKIDADMIN", "admin-secret", int64(len(body))), body)
	require.Equal(t, http.StatusOK, a.status, a.body)
}
