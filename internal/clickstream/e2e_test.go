package clickstream

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
)

// TestEndToEnd runs the service with the real producer against a real
// server: start over HTTP, wait for events, stop, then read the stream back
// and check every event decodes and the count matches the status.
func TestEndToEnd(t *testing.T) {
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	producertest.CreateStream(t, client, "clicks", 3)

	p, err := producer.New(client, producer.Config{Stream: "clicks", Endpoint: srv.URL, Linger: 20 * time.Millisecond})
	require.NoError(t, err)
	svc, err := New(Config{Writer: p, Token: testToken, Rate: 5000, Sessions: 40, Seed: 11, Target: "stream clicks"})
	require.NoError(t, err)
	api := httptest.NewServer(svc.Handler())
	defer api.Close()
	t.Cleanup(func() { svc.Stop() })

	var a changeAnswer
	require.Equal(t, http.StatusOK, call(t, api, "/start?token="+testToken, &a))
	require.True(t, a.Changed)
	const want = 3000
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var st Status
		require.Equal(c, http.StatusOK, call(t, api, "/status?token="+testToken, &st))
		require.GreaterOrEqual(c, st.EventsDelivered, int64(want))
	}, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, call(t, api, "/stop?token="+testToken, &a))
	require.False(t, a.Status.Running)

	// Stopping does not flush the producer; wait until what was sent is
	// delivered (the producer lingers at most 20ms per batch).
	var st Status
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		require.Equal(c, http.StatusOK, call(t, api, "/status?token="+testToken, &st))
		require.Equal(c, st.EventsSent, st.EventsDelivered)
	}, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, st.Failures)
	final, err := p.Close(t.Context())
	require.NoError(t, err)
	require.Equal(t, st.EventsSent, final.Delivered)

	records := producertest.ReadAll(t, client, "clicks")
	require.Len(t, records, int(st.EventsSent), "records in the stream vs eventsSent in /status")
	ids := make(map[string]bool, len(records))
	types := map[string]int{}
	for _, r := range records {
		var ev Event
		require.NoError(t, json.Unmarshal(r.Data, &ev), "%s", r.Data)
		require.Equal(t, ev.EventID, aws.ToString(r.PartitionKey))
		require.False(t, ids[ev.EventID], "event %s twice", ev.EventID)
		ids[ev.EventID] = true
		_, err := time.Parse(time.RFC3339, ev.Timestamp)
		require.NoError(t, err)
		require.NotEmpty(t, ev.SessionID)
		require.NotEmpty(t, ev.UserID)
		require.NotEmpty(t, ev.Page)
		types[ev.EventType]++
		if ev.EventType == EventImpression {
			require.NotEmpty(t, ev.CampaignID)
		}
	}
	for _, typ := range []string{EventPageView, EventImpression, EventClick, EventAddToCart} {
		require.Positive(t, types[typ], "no %s events", typ)
	}
	t.Logf("%d events read back; by type %v; sessions started %d", len(records), types, st.SessionsStarted)
}
