package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
)

// startServer runs a server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	cfg := Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Fsync = FsyncNever
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("server did not stop")
		}
	})
	return s
}

// kinesisClient uses a fresh connection per call: aws-sdk-go-v2 now and
// then loses a kept-alive connection while reading an answer and retries
// the call (aws/aws-sdk-go-v2#2737), and a retried GetRecords would be
// counted twice by the server, as it should be, but not by this test.
func kinesisClient(s *Server) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		// Request bodies from memory, as every runnel client sends them,
		// so the SDK never loses a connection under an arriving answer
		// and retries a call the server already counted.
		HTTPClient: kinesisclient.HTTPClient(),
	})
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string, header http.Header) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// byLabels sums a family's counter or gauge values by the values of the
// given labels joined with "/".
func byLabels(fams map[string]*dto.MetricFamily, family string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	f := fams[family]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		parts := make([]string, len(labels))
		for i, l := range labels {
			parts[i] = label(m, l)
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		out[strings.Join(parts, "/")] += v
	}
	return out
}

func TestMetricsCountersMatchWhatWasPut(t *testing.T) {
	s := startServer(t, nil)
	kc := kinesisClient(s)
	ctx := t.Context()
	const streamName = "metered"
	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(streamName), ShardCount: aws.Int32(4)})
	require.NoError(t, err)

	const producers, batches, perBatch = 4, 25, 20
	var (
		mu       sync.Mutex
		perShard = map[string]int{}
		bytesIn  int
	)
	loadDone := make(chan struct{})
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				entries := make([]types.PutRecordsRequestEntry, perBatch)
				size := 0
				for i := range entries {
					data := fmt.Appendf(nil, `{"producer":%d,"batch":%d,"i":%d,"pad":"%s"}`, p, b, i, strings.Repeat("x", i))
					size += len(data)
					entries[i] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(fmt.Sprintf("k-%d-%d-%d", p, b, i))}
				}
				out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(streamName), Records: entries})
				if !assertNoError(t, err) {
					return
				}
				if aws.ToInt32(out.FailedRecordCount) != 0 {
					t.Errorf("%d records failed", aws.ToInt32(out.FailedRecordCount))
					return
				}
				mu.Lock()
				for _, r := range out.Records {
					perShard[aws.ToString(r.ShardId)]++
				}
				bytesIn += size
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(loadDone) }()

	// Scrape while the load runs: every scrape parses, and counters never
	// go down.
	last := map[string]float64{}
	scrapes := 0
	for running := true; running && scrapes < 1000; scrapes++ {
		select {
		case <-loadDone:
			running = false
		default:
		}
		now := byLabels(scrape(t, s.URL(), nil), "runnel_stream_incoming_records_total", "stream", "shard")
		for k, v := range now {
			require.GreaterOrEqual(t, v, last[k], "counter %s went down", k)
		}
		last = now
	}
	<-loadDone
	require.Positive(t, scrapes)

	// Read every shard to its end, so outgoing counters have something to
	// match.
	desc, err := kc.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(streamName)})
	require.NoError(t, err)
	readPerShard := map[string]int{}
	readBytes, getCalls := 0, 0
	for _, sh := range desc.StreamDescription.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(streamName),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		iter := it.ShardIterator
		for range 100 {
			out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(150)})
			require.NoError(t, err)
			getCalls++
			for _, r := range out.Records {
				readPerShard[aws.ToString(sh.ShardId)]++
				readBytes += len(r.Data)
			}
			iter = out.NextShardIterator
			if len(out.Records) == 0 {
				break
			}
		}
	}

	fams := scrape(t, s.URL(), nil)
	// The middleware counts a call and observes its duration after its
	// answer went out, so the last ones may land just after a scrape:
	// poll for them.
	hist := map[string]*dto.Histogram{}
	for deadline := time.Now().Add(10 * time.Second); ; {
		for _, m := range fams["runnel_api_request_duration_seconds"].GetMetric() {
			hist[label(m, "action")] = m.GetHistogram()
		}
		if hist["PutRecords"].GetSampleCount() == uint64(producers*batches) && hist["GetRecords"].GetSampleCount() == uint64(getCalls) || time.Now().After(deadline) {
			break
		}
		<-time.After(10 * time.Millisecond)
		fams = scrape(t, s.URL(), nil)
	}
	in := byLabels(fams, "runnel_stream_incoming_records_total", "stream", "shard")
	outRecs := byLabels(fams, "runnel_stream_outgoing_records_total", "stream", "shard")
	total := 0.0
	for shard, n := range perShard {
		require.Equal(t, float64(n), in[streamName+"/"+shard], "incoming records of %s", shard)
		require.Equal(t, float64(readPerShard[shard]), outRecs[streamName+"/"+shard], "outgoing records of %s", shard)
		total += float64(n)
	}
	require.Equal(t, float64(producers*batches*perBatch), total)
	require.Equal(t, float64(bytesIn), byLabels(fams, "runnel_stream_incoming_bytes_total", "stream")[streamName])
	require.Equal(t, float64(readBytes), byLabels(fams, "runnel_stream_outgoing_bytes_total", "stream")[streamName])
	require.Equal(t, float64(4), byLabels(fams, "runnel_stream_shards", "stream")[streamName])

	reqs := byLabels(fams, "runnel_api_requests_total", "action", "code")
	require.Equal(t, float64(producers*batches), reqs["PutRecords/200"])
	require.Equal(t, float64(getCalls), reqs["GetRecords/200"])
	require.Equal(t, float64(1), reqs["CreateStream/200"])
	require.Equal(t, uint64(producers*batches), hist["PutRecords"].GetSampleCount())
	require.Equal(t, uint64(getCalls), hist["GetRecords"].GetSampleCount())
	require.Positive(t, hist["PutRecords"].GetSampleSum())

	require.Positive(t, fams["runnel_storage_size_bytes"].GetMetric()[0].GetGauge().GetValue())
	require.NotNil(t, fams["go_goroutines"], "runtime metrics are registered")
}

// assertNoError reports err from a goroutine other than the test's.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

func TestAPIErrorsAreCountedByCode(t *testing.T) {
	s := startServer(t, nil)
	_, err := kinesisClient(s).DescribeStream(t.Context(), &kinesis.DescribeStreamInput{StreamName: aws.String("missing")})
	require.Error(t, err)
	req, err := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.NoSuchAction")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	reqs := byLabels(scrape(t, s.URL(), nil), "runnel_api_requests_total", "action", "code")
	require.Equal(t, float64(1), reqs["DescribeStream/400"])
	require.Equal(t, float64(1), reqs["unknown/400"], "an unknown action does not add a series of its own")
}

func TestHealthAndReady(t *testing.T) {
	s := startServer(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(s.URL() + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.NotEmpty(t, body)
	}
}

func TestKinesisAPIKeepsItsRequests(t *testing.T) {
	s := startServer(t, nil)
	// A POST to / without X-Amz-Target is still the API's to answer.
	resp, err := http.Post(s.URL()+"/", "application/x-amz-json-1.1", strings.NewReader("{}"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "__type")

	// GET / is the dashboard.
	resp, err = http.Get(s.URL() + "/")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "<title>runnel</title>")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
}

func TestMetricsToken(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MetricsToken = "s3cret-token" })
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong", "Bearer nope", http.StatusUnauthorized},
		{"right", "Bearer s3cret-token", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, s.URL()+"/metrics", nil)
			require.NoError(t, err)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.want, resp.StatusCode)
		})
	}
}

func TestPprof(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, url, auth string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, nil)
		_, body := get(t, s.URL()+"/debug/pprof/heap?debug=1", "")
		require.NotContains(t, body, "heap profile")
	})
	t.Run("on, open to this machine", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, func(c *Config) { c.Pprof = true })
		code, body := get(t, s.URL()+"/debug/pprof/heap?debug=1", "")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "heap profile")
		code, body = get(t, s.URL()+"/debug/pprof/profile?seconds=1", "")
		require.Equal(t, http.StatusOK, code)
		require.NotEmpty(t, body)
		// The command line, which may hold secrets, is not served.
		code, _ = get(t, s.URL()+"/debug/pprof/cmdline", "")
		require.Equal(t, http.StatusNotFound, code)

		// A client on another machine is refused.
		req := httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil)
		req.RemoteAddr = "192.0.2.7:40000"
		rec := httptest.NewRecorder()
		s.pprofAuth(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("served a remote client") })).ServeHTTP(rec, req)
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Contains(t, rec.Body.String(), "--metrics-token")
	})
	t.Run("on, behind the metrics token", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, func(c *Config) { c.Pprof = true; c.MetricsToken = "prof-token" })
		code, _ := get(t, s.URL()+"/debug/pprof/heap?debug=1", "")
		require.Equal(t, http.StatusUnauthorized, code)
		code, body := get(t, s.URL()+"/debug/pprof/heap?debug=1", "Bearer prof-token")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "heap profile")
	})
}
