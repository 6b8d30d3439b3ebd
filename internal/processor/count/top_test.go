package count

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// Top and Report read back what the counter counted in Redis: keys under
// the prefix without the markers, or the fields of the hash; another
// prefix's keys are not theirs.
func TestCountTopRedis(t *testing.T) {
	srv := testserver.Redis(t)
	rc := redisClient(t, srv.Addr)
	ctx := context.Background()
	require.NoError(t, rc.Set(ctx, "other:k0", 100, 0).Err())

	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "{k}", "redis": map[string]any{"keyPrefix": "p:"}})
	invoke(t, c, batch("shardId-000000000000", 1, `{"k":"a"}`, `{"k":"b"}`, `{"k":"a"}`, `{"k":"c"}`, `{"k":"a"}`, `{"k":"b"}`))
	sum, err := c.Top(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, Summary{Summary: counterstore.Summary{Top: []counterstore.Count{{Key: "a", Value: 3}, {Key: "b", Value: 2}}, Keys: 3, Total: 6}}, sum)

	rep := c.Report()
	require.Equal(t, []pipeline.KeyValue{{Key: "a", Value: 3}, {Key: "b", Value: 2}, {Key: "c", Value: 1}}, rep.TopKeys)
	require.Contains(t, rep.Title, "Redis "+srv.Addr+" keys p:*")
	require.Equal(t, []pipeline.Figure{{Label: "counters", Value: 3}, {Label: "total", Value: 6}}, rep.Figures)

	h, _ := newCounter(t, srv.Addr, map[string]any{"key": "{k}", "hash": "h", "redis": map[string]any{"keyPrefix": "q:"}})
	invoke(t, h, batch("shardId-000000000000", 1, `{"k":"x"}`, `{"k":"y"}`, `{"k":"y"}`))
	sum, err = h.Top(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []counterstore.Count{{Key: "y", Value: 2}, {Key: "x", Value: 1}}, sum.Top)
	require.Equal(t, int64(3), sum.Total)
}

// A Redis that stops answering leaves Report with its last reading.
func TestCountReportRedisDown(t *testing.T) {
	srv := testserver.Redis(t)
	c, _ := newCounter(t, srv.Addr, map[string]any{"key": "{k}"})
	invoke(t, c, batch("shardId-000000000000", 1, `{"k":"a"}`))
	require.Len(t, c.Report().TopKeys, 1)
	// The real server goes away (SHUTDOWN closes the connection: no reply).
	_ = redisClient(t, srv.Addr).ShutdownNoSave(context.Background()).Err()
	c.report.mu.Lock()
	c.report.at = c.report.at.Add(-reportEvery) // the reading is due
	c.report.mu.Unlock()
	require.Equal(t, []pipeline.KeyValue{{Key: "a", Value: 1}}, c.Report().TopKeys)
	require.NotEmpty(t, c.report.lastErr)
}
