package count

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

// newLocalCounter builds a count pipeline with store: local through the
// built-in, as a runner does, over stateDir.
func newLocalCounter(t *testing.T, shared *counterstore.Shared, stateDir string, options map[string]any) *Counter {
	t.Helper()
	rej := &rejected{}
	h, err := NewBuiltin(shared).New(t.Context(), pipeline.BuiltinEnv{Pipeline: "clicks", Options: options, Reject: rej.reject, StateDir: stateDir})
	require.NoError(t, err)
	lc, ok := h.(*Counter)
	require.True(t, ok, "handler %T", h)
	return lc
}

func localCounts(t *testing.T, s *counterstore.Store) map[string]int64 {
	t.Helper()
	all, err := s.All("clicks")
	require.NoError(t, err)
	out := map[string]int64{}
	for _, c := range all {
		out[c.Key] = c.Value
	}
	return out
}

func TestCountLocalExactlyOnce(t *testing.T) {
	var shared counterstore.Shared
	dir := t.TempDir()
	c := newLocalCounter(t, &shared, dir, map[string]any{"key": "{k}", "store": "local"})
	data := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf(`{"k":"k%d"}`, i%3))
		}
		return out
	}
	invokeLocal := func(ev *lambda.KinesisEvent) {
		t.Helper()
		_, err := c.Invoke(context.Background(), ev)
		require.NoError(t, err)
	}
	const shard = "shardId-000000000001"
	invokeLocal(batch(shard, 1, data(1, 10)...))
	want := map[string]int64{"k0": 3, "k1": 4, "k2": 3}
	require.Equal(t, want, localCounts(t, c.local))
	// A retry, and a bisected retry: nothing.
	invokeLocal(batch(shard, 1, data(1, 10)...))
	invokeLocal(batch(shard, 4, data(4, 7)...))
	require.Equal(t, want, localCounts(t, c.local))
	// A batch straddling the marker: only records 11..15 count.
	invokeLocal(batch(shard, 6, data(6, 15)...))
	want = map[string]int64{"k0": 5, "k1": 5, "k2": 5}
	require.Equal(t, want, localCounts(t, c.local))
	m, err := c.local.Marker("clicks", shard)
	require.NoError(t, err)
	require.Equal(t, seqOf(15), m)

	rep := c.Report()
	require.Len(t, rep.TopKeys, 3)
	require.Equal(t, 5.0, rep.TopKeys[0].Value)

	// Restarted: the store keeps the totals and the markers.
	require.NoError(t, c.Close(context.Background()))
	c = newLocalCounter(t, &shared, dir, map[string]any{"key": "{k}", "store": "local"})
	defer c.Close(context.Background())
	invokeLocal(batch(shard, 1, data(1, 15)...))
	invokeLocal(batch("shardId-000000000002", 1, data(1, 3)...))
	want = map[string]int64{"k0": 6, "k1": 6, "k2": 6}
	require.Equal(t, want, localCounts(t, c.local))
}

func TestCountLocalOptions(t *testing.T) {
	for _, tc := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"key": "{k}", "store": "disk"}, `store: must be redis or local, got "disk"`},
		{map[string]any{"key": "{k}", "store": "local", "redis": map[string]any{"addr": "127.0.0.1:1"}}, "redis: not used with store: local"},
		{map[string]any{"key": "{k}", "store": "local", "hash": "h"}, "hash: only with store: redis"},
		{map[string]any{"key": "{k}", "store": "local", "expire": "1h"}, "expire: only with store: redis"},
	} {
		_, err := ParseOptions(tc.opts)
		require.ErrorContains(t, err, tc.want)
	}
	_, err := NewBuiltin(nil).New(t.Context(), pipeline.BuiltinEnv{Pipeline: "p", Options: map[string]any{"key": "{k}", "store": "local"}, Reject: (&rejected{}).reject})
	require.ErrorContains(t, err, "state directory")
}
