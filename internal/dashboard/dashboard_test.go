package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/stream"
)

func openEngine(t *testing.T) *stream.Service {
	t.Helper()
	svc, err := stream.Open(t.Context(), stream.Config{Dir: t.TempDir(), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	return svc
}

func start(t *testing.T, cfg Config) (*Dashboard, *httptest.Server) {
	t.Helper()
	d, err := New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return d, srv
}

func getJSON(t *testing.T, c *http.Client, url string, v any) int {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
	return resp.StatusCode
}

func TestStreamsAndStats(t *testing.T) {
	svc := openEngine(t)
	ctx := t.Context()
	require.NoError(t, svc.CreateStream(ctx, "orders", 2, stream.CreateOptions{}))
	d, srv := start(t, Config{Engine: svc})

	var streams struct{ Streams []StreamInfo }
	require.Equal(t, http.StatusOK, getJSON(t, srv.Client(), srv.URL+"/api/streams", &streams))
	require.Len(t, streams.Streams, 1)
	s := streams.Streams[0]
	require.Equal(t, "orders", s.Name)
	require.Len(t, s.Shards, 2)
	require.Equal(t, "0", s.Shards[0].StartingHashKey)
	require.Equal(t, "340282366920938463463374607431768211455", s.Shards[1].EndingHashKey)
	require.True(t, s.Shards[0].Open)

	t0 := time.Now()
	d.rates.sample(t0, svc.Stats())
	_, err := svc.Put(ctx, "orders", []stream.PutInput{{PartitionKey: "a", Data: []byte("12345")}, {PartitionKey: "b", Data: []byte("678")}})
	require.NoError(t, err)
	d.rates.sample(t0.Add(2*time.Second), svc.Stats())

	var stats StatsAnswer
	require.Equal(t, http.StatusOK, getJSON(t, srv.Client(), srv.URL+"/api/stats", &stats))
	require.Len(t, stats.Streams, 1)
	st := stats.Streams[0]
	require.Equal(t, int64(2), st.RecordsIn)
	require.Equal(t, int64(8), st.BytesIn)
	require.InDelta(t, 1.0, st.Rate.RecordsIn, 1e-9, "2 records over 2 s")
	require.InDelta(t, 4.0, st.Rate.BytesIn, 1e-9)
	require.Len(t, stats.History.Times, 1)
	require.Len(t, stats.History.Streams["orders"], 1)

	require.Equal(t, http.StatusNotFound, getJSON(t, srv.Client(), srv.URL+"/api/streams/nope", nil))
	var gen GeneratorAnswer
	require.Equal(t, http.StatusOK, getJSON(t, srv.Client(), srv.URL+"/api/generator", &gen))
	require.False(t, gen.Present)
	resp, err := srv.Client().Post(srv.URL+"/api/generator/start", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestTailSendsNewRecords(t *testing.T) {
	svc := openEngine(t)
	ctx := t.Context()
	require.NoError(t, svc.CreateStream(ctx, "clicks", 2, stream.CreateOptions{}))
	_, err := svc.Put(ctx, "clicks", []stream.PutInput{{PartitionKey: "old", Data: []byte(`{"old":true}`)}})
	require.NoError(t, err)
	_, srv := start(t, Config{Engine: svc})

	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL+"/api/streams/clicks/tail", nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := readEvents(resp.Body)

	ev := <-events
	require.Equal(t, "ready", ev.name)
	_, err = svc.Put(ctx, "clicks", []stream.PutInput{
		{PartitionKey: "k1", Data: []byte(`{"page":"/home"}`)},
		{PartitionKey: "k2", Data: []byte("plain text")},
		{PartitionKey: "k3", Data: []byte{0xff, 0xfe, 0x00}},
	})
	require.NoError(t, err)
	got := map[string]TailRecord{}
	for len(got) < 3 {
		ev, ok := <-events
		require.True(t, ok, "the tail ended early")
		require.Equal(t, "record", ev.name, ev.data)
		var rec TailRecord
		require.NoError(t, json.Unmarshal([]byte(ev.data), &rec))
		got[rec.PartitionKey] = rec
	}
	require.NotContains(t, got, "old", "a tail starts at the newest record")
	require.JSONEq(t, `{"page":"/home"}`, string(got["k1"].JSON))
	require.Equal(t, "plain text", *got["k2"].Text)
	require.Equal(t, "//4A", got["k3"].Base64)
	require.Equal(t, 3, got["k3"].Size)
}

type sse struct{ name, data string }

func readEvents(r io.Reader) <-chan sse {
	ch := make(chan sse, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				ch <- ev
				ev = sse{}
			}
		}
	}()
	return ch
}

func TestLoginGuardsTheAPI(t *testing.T) {
	svc := openEngine(t)
	ctx := t.Context()
	require.NoError(t, svc.CreateStream(ctx, "public", 1, stream.CreateOptions{}))
	require.NoError(t, svc.CreateStream(ctx, "secret", 1, stream.CreateOptions{}))
	keys, err := auth.NewKeys([]auth.Key{
		{ID: "AKIAADMIN", Secret: "admin-secret", All: true},
		{ID: "AKIAREADER", Secret: "reader-secret", ReadStreams: []string{"public"}},
	})
	require.NoError(t, err)
	_, srv := start(t, Config{Engine: svc, Keys: keys})
	c := srv.Client()

	var sess sessionAnswer
	require.Equal(t, http.StatusOK, getJSON(t, c, srv.URL+"/api/session", &sess))
	require.True(t, sess.AuthRequired)
	require.False(t, sess.LoggedIn)
	for _, path := range []string{"/api/streams", "/api/stats", "/api/pipelines", "/api/results", "/api/generator", "/api/streams/public/tail"} {
		require.Equal(t, http.StatusUnauthorized, getJSON(t, c, srv.URL+path, nil), path)
	}
	// The page itself loads, to show the login form.
	require.Equal(t, http.StatusOK, getJSON(t, c, srv.URL+"/", nil))

	login := func(id, secret string, origin string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/login",
			strings.NewReader(`{"accessKeyId":"`+id+`","secretAccessKey":"`+secret+`"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, http.StatusUnauthorized, login("AKIAREADER", "wrong", "").StatusCode)
	require.Equal(t, http.StatusUnauthorized, login("AKIANOBODY", "reader-secret", "").StatusCode)
	require.Equal(t, http.StatusForbidden, login("AKIAREADER", "reader-secret", "http://evil.example").StatusCode)

	resp := login("AKIAREADER", "reader-secret", srv.URL)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	ck := cookies[0]
	require.Equal(t, cookieName, ck.Name)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)

	withCookie := func(method, path string, cookie *http.Cookie) int {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.AddCookie(cookie)
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, withCookie(http.MethodGet, "/api/stats", ck))
	require.Equal(t, http.StatusForbidden, withCookie(http.MethodGet, "/api/streams/secret", ck), "the key may not read that stream")
	require.Equal(t, http.StatusOK, withCookie(http.MethodGet, "/api/streams/public", ck))
	require.Equal(t, http.StatusForbidden, withCookie(http.MethodPost, "/api/generator/start", ck), "only an all: true key controls the generator")

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/streams", nil)
	require.NoError(t, err)
	req.AddCookie(ck)
	r2, err := c.Do(req)
	require.NoError(t, err)
	var streams struct{ Streams []StreamInfo }
	require.NoError(t, json.NewDecoder(r2.Body).Decode(&streams))
	r2.Body.Close()
	require.Len(t, streams.Streams, 1, "a key sees only the streams it may read")
	require.Equal(t, "public", streams.Streams[0].Name)

	// A tampered cookie is refused.
	bad := *ck
	bad.Value = strings.Replace(ck.Value, ".", ".9", 1)
	require.Equal(t, http.StatusUnauthorized, withCookie(http.MethodGet, "/api/stats", &bad))
	forged := *ck
	forged.Value = "QUtJQUFETUlO" + ck.Value[strings.Index(ck.Value, "."):] // AKIAADMIN with the reader's MAC
	require.Equal(t, http.StatusUnauthorized, withCookie(http.MethodGet, "/api/stats", &forged))
}
