package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/sink"
	redissink "github.com/runnel-dev/runnel/internal/sink/redis"
	"github.com/runnel-dev/runnel/internal/sink/sinktest"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// TestHash: fields are set; a key of another type is poison; a stopped
// Redis holds the write, reported as a wait, until it is back.
func TestHash(t *testing.T) {
	t.Parallel()
	srv := testserver.Redis(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()

	h := redissink.NewHash(client, "results")
	h.Retry.Base, h.Retry.Ceiling = 5*time.Millisecond, 50*time.Millisecond
	require.NoError(t, h.Write(ctx, []redissink.Field{{"a", "1"}, {"b", "2"}}))
	require.NoError(t, h.Write(ctx, []redissink.Field{{"a", "3"}}), "a repeat overwrites")
	got, err := client.HGetAll(ctx, "results").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "3", "b": "2"}, got)

	require.NoError(t, client.Set(ctx, "plain", "x", 0).Err())
	err = redissink.NewHash(client, "plain").Write(ctx, []redissink.Field{{"a", "1"}})
	require.True(t, sink.IsPoison(err), "WRONGTYPE is the data's fault: %v", err)

	srv.Stop(t)
	rec := &sinktest.Recorder{}
	done := make(chan error, 1)
	go func() { done <- h.Write(sink.WithReporter(ctx, rec), []redissink.Field{{"c", "4"}}) }()
	deadline := time.Now().Add(20 * time.Second)
	for blocked, _ := rec.Waits(); len(blocked) == 0; blocked, _ = rec.Waits() {
		require.True(t, time.Now().Before(deadline), "no wait reported")
		select {
		case err := <-done:
			t.Fatalf("write returned while Redis was down: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	blocked, _ := rec.Waits()
	require.Equal(t, "redis "+srv.Addr+" hash results", blocked[0].Target)
	srv.Start(t)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("write still held after Redis came back")
	}
	_, unblocked := rec.Waits()
	require.Equal(t, 1, unblocked)
}

// TestCounters: increments are added once per position (a repeat is
// skipped, a batch straddling the marker is refused with the marker); a
// counter that is not an integer is poison and nothing is written; in
// hash mode the counters are fields; new counters get the time to live.
func TestCounters(t *testing.T) {
	t.Parallel()
	srv := testserver.Redis(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	retry := func() *sink.Retry {
		return &sink.Retry{Target: "redis " + srv.Addr, Base: time.Millisecond, Ceiling: 10 * time.Millisecond}
	}

	c := &redissink.Counters{Client: client, Expire: time.Hour, Retry: retry()}
	res, _, err := c.Apply(ctx, "m:s1", "10", "19", map[string]int64{"a": 2, "b": 1})
	require.NoError(t, err)
	require.Equal(t, redissink.Applied, res)
	res, mark, err := c.Apply(ctx, "m:s1", "10", "19", map[string]int64{"a": 2, "b": 1})
	require.NoError(t, err)
	require.Equal(t, redissink.Skipped, res, "a repeat is skipped")
	require.Equal(t, "19", mark)
	res, mark, err = c.Apply(ctx, "m:s1", "15", "25", map[string]int64{"a": 5})
	require.NoError(t, err)
	require.Equal(t, redissink.Partial, res, "the marker lies within the batch")
	require.Equal(t, "19", mark)
	res, _, err = c.Apply(ctx, "m:s1", "19/1", "25", map[string]int64{"a": 5})
	require.NoError(t, err)
	require.Equal(t, redissink.Applied, res, "a sub-sequence past the marker is new")
	for k, want := range map[string]string{"a": "7", "b": "1", "m:s1": "25"} {
		got, err := client.Get(ctx, k).Result()
		require.NoError(t, err)
		require.Equal(t, want, got, k)
	}
	ttl, err := client.PTTL(ctx, "a").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 59*time.Minute)

	require.NoError(t, client.Set(ctx, "text", "x", 0).Err())
	require.NoError(t, client.LPush(ctx, "list", "x").Err())
	for _, bad := range []string{"text", "list"} {
		_, _, err = c.Apply(ctx, "m:s2", "1", "2", map[string]int64{"c": 1, bad: 1})
		require.True(t, sink.IsPoison(err), "%s: %v", bad, err)
		require.Equal(t, int64(0), client.Exists(ctx, "c", "m:s2").Val(), "nothing is written")
	}

	h := &redissink.Counters{Client: client, Hash: "totals", Retry: retry()}
	res, _, err = h.Apply(ctx, "m:h", "1", "3", map[string]int64{"x": 3, "y": -1})
	require.NoError(t, err)
	require.Equal(t, redissink.Applied, res)
	got, err := client.HGetAll(ctx, "totals").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"x": "3", "y": "-1"}, got)
	require.Equal(t, time.Duration(-1), client.PTTL(ctx, "totals").Val(), "no time to live without Expire")
}
