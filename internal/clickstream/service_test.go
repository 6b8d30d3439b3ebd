package clickstream

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/producer"
)

// memWriter is a producer.Writer that keeps every record. With failAfter
// above 0, Write refuses records from that many on.
type memWriter struct {
	mu        sync.Mutex
	records   []producer.Record
	failAfter int
	closed    bool
}

var _ producer.Writer = (*memWriter)(nil)

func (w *memWriter) Write(ctx context.Context, r producer.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.failAfter > 0 && len(w.records) >= w.failAfter {
		return producer.ErrClosed
	}
	w.records = append(w.records, r)
	return nil
}

func (w *memWriter) Close(context.Context) (producer.Stats, error) {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return w.Stats(), nil
}

func (w *memWriter) Stats() producer.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := int64(len(w.records))
	return producer.Stats{Queued: n, Delivered: n}
}

func (w *memWriter) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.records)
}

const testToken = "s3cret-token"

func newTestService(t *testing.T, w producer.Writer, rate float64) *Service {
	t.Helper()
	svc, err := New(Config{Writer: w, Token: testToken, Rate: rate, Sessions: 20, Seed: 1, Target: "memory"})
	require.NoError(t, err)
	t.Cleanup(func() { svc.Stop() })
	return svc
}

// call sends GET path to srv and decodes a JSON answer into v (when not
// nil), returning the status code.
func call(t *testing.T, srv *httptest.Server, path string, v any) int {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if v != nil {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.NoError(t, json.Unmarshal(body, v), "%s", body)
	}
	return resp.StatusCode
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := New(Config{Rate: -1, Sessions: 0})
	require.ErrorContains(t, err, "a writer is required")
	require.ErrorContains(t, err, "a token is required")
	require.ErrorContains(t, err, "rate -1")
	require.ErrorContains(t, err, "sessions 0")
}

func TestAPIRefusesWrongToken(t *testing.T) {
	w := &memWriter{}
	svc := newTestService(t, w, 0)
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()

	for _, path := range []string{"/start", "/stop", "/status"} {
		for _, q := range []string{"", "?token=", "?token=wrong", "?token=" + testToken + "x", "?token=" + testToken[:5], "?tok=" + testToken} {
			var answer map[string]string
			require.Equal(t, http.StatusUnauthorized, call(t, srv, path+q, &answer), path+q)
			require.Contains(t, answer["error"], "wrong token")
		}
	}
	// Nothing started.
	st := svc.Status()
	require.False(t, st.Running)
	require.Zero(t, st.EventsSent)
	require.Nil(t, st.StartedAt)
	require.Zero(t, w.len())

	// A refused /stop leaves a running generator running.
	var a changeAnswer
	require.Equal(t, http.StatusOK, call(t, srv, "/start?token="+testToken, &a))
	require.True(t, a.Changed)
	require.Equal(t, http.StatusUnauthorized, call(t, srv, "/stop?token=nope", nil))
	require.True(t, svc.Status().Running)

	// The bearer header works too.
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/stop", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `Bearer realm="runnel clickstream"`, resp.Header.Get("WWW-Authenticate"))
	require.True(t, svc.Status().Running)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, svc.Status().Running)
}

func TestAPIStartStatusStopInfo(t *testing.T) {
	w := &memWriter{}
	svc := newTestService(t, w, 0)
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()

	var st Status
	require.Equal(t, http.StatusOK, call(t, srv, "/status?token="+testToken, &st))
	require.False(t, st.Running)
	require.Zero(t, st.Sessions)

	var a changeAnswer
	require.Equal(t, http.StatusOK, call(t, srv, "/start?token="+testToken, &a))
	require.True(t, a.Changed)
	require.True(t, a.Status.Running)
	require.NotNil(t, a.Status.StartedAt)
	require.Equal(t, http.StatusOK, call(t, srv, "/start?token="+testToken, &a))
	require.False(t, a.Changed, "second start changes nothing")
	require.True(t, a.Status.Running)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var st Status
		require.Equal(c, http.StatusOK, call(t, srv, "/status?token="+testToken, &st))
		require.GreaterOrEqual(c, st.EventsSent, int64(1000))
		require.Equal(c, 20, st.Sessions)
		require.Positive(c, st.SessionsStarted)
	}, 10*time.Second, 5*time.Millisecond)

	resp, err := srv.Client().Get(srv.URL + "/info")
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NotContains(t, string(raw), testToken)
	var info Info
	require.NoError(t, json.Unmarshal(raw, &info), string(raw))
	require.Equal(t, "runnel clickstream generator", info.Service)
	require.Equal(t, "running", info.State)
	require.Equal(t, FormatJSON, info.Format)
	require.Equal(t, "memory", info.Destination)
	require.Positive(t, info.EventsSent)
	require.Equal(t, 20, info.Sessions)
	require.Equal(t, "built-in catalogue", info.Catalogue.File)
	require.Equal(t, 5000, info.Catalogue.Users)
	require.Contains(t, string(raw), `"request": "GET /start?token=TOKEN"`)
	require.Len(t, info.Catalogue.ProductGroups, 7)
	footwear := info.Catalogue.ProductGroups[3]
	require.Equal(t, "footwear", footwear.Name)
	require.Equal(t, 4, footwear.ID)
	require.InDelta(t, 0.22, footwear.Share, 1e-9)
	require.Equal(t, &IDRange{Min: 4001, Max: 4400}, footwear.ProductIDs)
	require.Equal(t, DefaultProductURL, info.Catalogue.URLs.Product)

	require.Equal(t, http.StatusOK, call(t, srv, "/stop?token="+testToken, &a))
	require.True(t, a.Changed)
	require.False(t, a.Status.Running)
	require.NotNil(t, a.Status.StoppedAt)
	sent := a.Status.EventsSent
	require.Equal(t, int64(w.len()), sent, "status counts every record the writer took")
	require.Equal(t, http.StatusOK, call(t, srv, "/stop?token="+testToken, &a))
	require.False(t, a.Changed, "second stop changes nothing")
	require.Equal(t, sent, a.Status.EventsSent)
	require.Equal(t, sent, int64(w.len()), "nothing written after stop")

	// Every record is an event whose partition key is its event id.
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.records[:100] {
		var ev Event
		require.NoError(t, json.Unmarshal(r.Data, &ev))
		require.Equal(t, ev.EventID, r.PartitionKey)
		require.NotEmpty(t, ev.EventType)
	}

	require.Equal(t, http.StatusMethodNotAllowed, func() int {
		resp, err := srv.Client().Post(srv.URL+"/status?token="+testToken, "text/plain", nil)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}())
}

// TestStartStopConcurrently races starts, stops and status reads; run it
// with -race.
func TestStartStopConcurrently(t *testing.T) {
	w := &memWriter{}
	svc := newTestService(t, w, 0)
	h := svc.Handler()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				path := "/start"
				switch (g + i) % 3 {
				case 1:
					path = "/stop"
				case 2:
					path = "/status"
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path+"?token="+testToken, nil))
				if rec.Code != http.StatusOK {
					t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	svc.Stop()
	st := svc.Status()
	require.False(t, st.Running)
	require.Equal(t, int64(w.len()), st.EventsSent)
	// Events of all runs together still form well-ordered sessions.
	seqs := map[string]int{}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.records {
		var ev Event
		require.NoError(t, json.Unmarshal(r.Data, &ev))
		require.Equal(t, seqs[ev.SessionID]+1, ev.Seq)
		seqs[ev.SessionID] = ev.Seq
	}
}

func TestGeneratorStopsWhenWriterRefuses(t *testing.T) {
	w := &memWriter{failAfter: 50}
	svc := newTestService(t, w, 0)
	require.True(t, svc.Start())
	require.Eventually(t, func() bool { return !svc.Status().Running }, 10*time.Second, time.Millisecond)
	st := svc.Status()
	require.Equal(t, int64(50), st.EventsSent)
	require.Equal(t, int64(1), st.Failures)
	require.Contains(t, st.LastError, "closed")
	require.NotNil(t, st.StoppedAt)
	require.False(t, svc.Stop(), "already stopped on its own")
}

// TestRate runs the generator at 200 events/s for ten seconds of fake time
// (testing/synctest) and checks the count and the reported rate.
func TestRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &memWriter{}
		svc, err := New(Config{Writer: w, Token: testToken, Rate: 200, Sessions: 5})
		require.NoError(t, err)
		start := time.Now()
		require.True(t, svc.Start())
		// In the bubble this timer fires once every goroutine is blocked
		// and the fake clock has reached it; no real time passes.
		<-time.After(10*time.Second + time.Millisecond)
		st := svc.Status()
		require.True(t, svc.Stop())
		elapsed := time.Since(start)
		t.Logf("%d events in %v of fake time, status reports %.1f events/s", st.EventsSent, elapsed, st.EventsPerSecond)
		// Slot 0 is at the start, slot 2000 at 10s exactly.
		require.InDelta(t, 2001, st.EventsSent, 1)
		require.InDelta(t, 200, st.EventsPerSecond, 2)
	})
}

func TestPacer(t *testing.T) {
	now := epoch
	p := newPacer(4, now) // one event every 250ms
	require.Equal(t, time.Duration(0), p.reserve(now))
	require.Equal(t, 250*time.Millisecond, p.reserve(now))
	require.Equal(t, 500*time.Millisecond, p.reserve(now))
	// After a stall of 10s only maxCatchUp's worth (1s, 4 events) is made
	// up at once.
	now = now.Add(10 * time.Second)
	for i := range 4 {
		require.Equal(t, -maxCatchUp+time.Duration(i)*250*time.Millisecond, p.reserve(now))
	}
	require.Equal(t, time.Duration(0), p.reserve(now))
	require.Equal(t, 250*time.Millisecond, p.reserve(now))

	unpaced := newPacer(0, now)
	for range 3 {
		require.Equal(t, time.Duration(0), unpaced.reserve(now))
	}
}

func TestRunShutsDownOnCancel(t *testing.T) {
	w := &memWriter{}
	svc := newTestService(t, w, 0)
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, ln) }()

	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/start?token=" + testToken)
	require.NoError(t, err)
	resp.Body.Close()
	require.Eventually(t, func() bool { return w.len() > 100 }, 10*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	require.False(t, svc.Status().Running)
	_, err = http.Get(url + "/info")
	require.Error(t, err, "server still answering after shutdown")
}
