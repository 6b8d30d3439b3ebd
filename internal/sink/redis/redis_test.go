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
