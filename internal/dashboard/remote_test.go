package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/stream"
)

// The remote store: a process is stale after three missed reports,
// forgotten later, dropped on its final report; it keeps the key it first
// reported with; and it holds at most maxProcesses processes.
func TestRemoteProcesses(t *testing.T) {
	var rm remote
	t0 := time.Now()
	rep := pipeline.ProcessReport{Process: "a", IntervalSeconds: 1, Pipelines: []pipeline.PipelineStatus{{Name: "p", Source: "s"}}}
	require.NoError(t, rm.put(rep, "K1", t0))
	require.False(t, rm.processes(t0.Add(2 * time.Second))[0].info(t0.Add(2*time.Second)).Stale)
	require.True(t, rm.processes(t0.Add(4 * time.Second))[0].info(t0.Add(4*time.Second)).Stale)
	require.Empty(t, rm.processes(t0.Add(forgetAfter+2*time.Second)), "forgotten")

	require.NoError(t, rm.put(rep, "K1", t0))
	require.ErrorContains(t, rm.put(rep, "K2", t0), "another access key")
	final := rep
	final.Final = true
	require.NoError(t, rm.put(final, "K1", t0))
	require.Empty(t, rm.processes(t0))

	for i := range maxProcesses {
		require.NoError(t, rm.put(pipeline.ProcessReport{Process: fmt.Sprint(i), IntervalSeconds: 1}, "", t0))
	}
	require.ErrorIs(t, rm.put(pipeline.ProcessReport{Process: "one-too-many", IntervalSeconds: 1}, "", t0), errTooManyProcesses)
	require.NoError(t, rm.put(pipeline.ProcessReport{Process: "one-too-many", IntervalSeconds: 1}, "", t0.Add(forgetAfter+2*time.Second)),
		"room again once the quiet ones are forgotten")
}

// Reports whose figures would clash in /metrics are refused: the
// server's own process label, a pipeline or a shard named twice.
func TestReportNamesMustBeUnique(t *testing.T) {
	svc, err := stream.Open(context.Background(), stream.Config{Dir: t.TempDir(), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Close() })
	d, err := New(Config{Engine: svc})
	require.NoError(t, err)
	h := d.Handler()
	for body, want := range map[string]string{
		`{"process":"server","intervalSeconds":1}`:                                                                                          "names the server's own pipelines",
		`{"process":"p","intervalSeconds":1,"pipelines":[{"name":"a","source":"s"},{"name":"a","source":"s"}]}`:                             "a is reported twice",
		`{"process":"p","intervalSeconds":1,"pipelines":[{"name":"a","source":"s","worker":{"shards":[{"shardId":"x"},{"shardId":"x"}]}}]}`: "shard x is reported twice",
		`{"process":"p","intervalSeconds":1,"pipelines":[{"name":"a","source":"s","worker":{"shards":[{"shardId":"x"},{"shardId":"y"}]}}]}`: "",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, pipeline.ReportPath, strings.NewReader(body)))
		if want == "" {
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			continue
		}
		require.Equal(t, http.StatusBadRequest, rec.Code, body)
		require.Contains(t, rec.Body.String(), want)
	}
}

// FuzzProcessReport posts any body as a process report: the server
// answers 200 or a 4xx with an error, never panics, and whatever it took
// shows in /api/pipelines and /api/results as valid JSON.
func FuzzProcessReport(f *testing.F) {
	f.Add([]byte(`{"process":"p","intervalSeconds":2,"pipelines":[{"name":"a","source":"s","handler":"builtin noop","worker":{"shards":[{"shardId":"x","state":"running"}]}}],"results":[{"pipeline":"a","topKeys":[{"key":"k","value":1}]}]}`))
	f.Add([]byte(`{"process":"p","intervalSeconds":1,"final":true}`))
	f.Add([]byte(`{"process":"","intervalSeconds":-1}`))
	f.Add([]byte(`{"process":"p","intervalSeconds":1e308,"pipelines":null}`))
	f.Add([]byte(`[]`))
	svc, err := stream.Open(context.Background(), stream.Config{Dir: f.TempDir(), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(f, err)
	f.Cleanup(func() { _ = svc.Close() })
	d, err := New(Config{Engine: svc})
	require.NoError(f, err)
	h := d.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, pipeline.ReportPath, bytes.NewReader(body)))
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusServiceUnavailable}, rec.Code, rec.Body.String())
		if rec.Code != http.StatusOK {
			var e struct{ Error string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
			require.NotEmpty(t, e.Error)
		}
		for _, path := range []string{"/api/pipelines", "/api/results"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			require.Equal(t, http.StatusOK, rec.Code)
			require.True(t, json.Valid(rec.Body.Bytes()), rec.Body.String())
		}
	})
}
