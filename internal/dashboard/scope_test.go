package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/stream"
)

// TestMultiRegionStreams: under --multi-region the dashboard names each
// stream by its plain name with its region and account, addresses it by
// an id that reaches it (stream, stats, tail), and shows a key only its
// own account's streams.
func TestMultiRegionStreams(t *testing.T) {
	t.Parallel()
	svc, err := stream.Open(t.Context(), stream.Config{Dir: t.TempDir(), NoSync: true, MultiRegion: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	ctx := t.Context()
	west := svc.Qualify("us-west-2", "222222222222", "orders")
	require.Equal(t, "us-west-2/222222222222/orders", west)
	require.NoError(t, svc.CreateStream(ctx, "orders", 1, stream.CreateOptions{}))
	require.NoError(t, svc.CreateStream(ctx, west, 2, stream.CreateOptions{}))
	keys, err := auth.NewKeys([]auth.Key{
		{ID: "AKIAWEST", Secret: "west-secret", All: true, Account: "222222222222"},
		{ID: "AKIAOWN", Secret: "own-secret", ReadStreams: []string{"orders"}},
	})
	require.NoError(t, err)
	_, open := start(t, Config{Engine: svc, MultiRegion: true})
	_, guarded := start(t, Config{Engine: svc, MultiRegion: true, Keys: keys})

	var streams struct{ Streams []StreamInfo }
	require.Equal(t, http.StatusOK, getJSON(t, open.Client(), open.URL+"/api/streams", &streams))
	scopes := map[string]Scope{}
	for _, s := range streams.Streams {
		scopes[s.ID] = s.Scope
	}
	require.Equal(t, map[string]Scope{
		"orders": {ID: "orders", Name: "orders", Region: "us-east-1", Account: "000000000000"},
		west:     {ID: west, Name: "orders", Region: "us-west-2", Account: "222222222222"},
	}, scopes)

	// The id reaches its stream, escaped as the page escapes it.
	path := "/api/streams/" + url.PathEscape(west)
	var one StreamInfo
	require.Equal(t, http.StatusOK, getJSON(t, open.Client(), open.URL+path, &one))
	require.Len(t, one.Shards, 2)
	require.Equal(t, "arn:aws:kinesis:us-west-2:222222222222:stream/orders", one.ARN)
	var stats StatsAnswer
	require.Equal(t, http.StatusOK, getJSON(t, open.Client(), open.URL+"/api/stats", &stats))
	require.Len(t, stats.Streams, 2)
	require.Equal(t, "orders", stats.Streams[0].ID)
	require.Equal(t, west, stats.Streams[1].ID)
	require.Equal(t, "orders", stats.Streams[1].Name)

	// The tail of the scoped stream has its records, not the other's.
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, open.URL+path+"/tail", nil)
	require.NoError(t, err)
	resp, err := open.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	events := readEvents(resp.Body)
	require.Equal(t, "ready", (<-events).name)
	_, err = svc.Put(ctx, "orders", []stream.PutInput{{PartitionKey: "own", Data: []byte("own")}})
	require.NoError(t, err)
	_, err = svc.Put(ctx, west, []stream.PutInput{{PartitionKey: "west", Data: []byte("west")}})
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, "record", ev.name, ev.data)
	var rec TailRecord
	require.NoError(t, json.Unmarshal([]byte(ev.data), &rec))
	require.Equal(t, "west", rec.PartitionKey)

	// A key sees its own account's streams only.
	for key, want := range map[string]string{"AKIAWEST": west, "AKIAOWN": "orders"} {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		c := &http.Client{Jar: jar}
		secret := map[string]string{"AKIAWEST": "west-secret", "AKIAOWN": "own-secret"}[key]
		lr, err := http.NewRequest(http.MethodPost, guarded.URL+"/api/login",
			strings.NewReader(`{"accessKeyId":"`+key+`","secretAccessKey":"`+secret+`"}`))
		require.NoError(t, err)
		lr.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(lr)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		streams.Streams = nil
		require.Equal(t, http.StatusOK, getJSON(t, c, guarded.URL+"/api/streams", &streams))
		require.Len(t, streams.Streams, 1, key)
		require.Equal(t, want, streams.Streams[0].ID, key)
		other := map[string]string{"AKIAWEST": "orders", "AKIAOWN": west}[key]
		require.Equal(t, http.StatusForbidden, getJSON(t, c, guarded.URL+"/api/streams/"+url.PathEscape(other), nil), key)
	}
}
