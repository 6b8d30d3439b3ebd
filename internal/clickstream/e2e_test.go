package clickstream

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
)

// startEndToEnd starts a real server with a stream of shards shards, a
// producer into it, and a Service with cfg writing through the producer
// behind its HTTP API. Writer, Token and Target are set here.
func startEndToEnd(t *testing.T, stream string, shards int32, cfg Config) (*kinesis.Client, *producer.Producer, *httptest.Server) {
	t.Helper()
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	producertest.CreateStream(t, client, stream, shards)
	p, err := producer.New(client, producer.Config{Stream: stream, Endpoint: srv.URL, Linger: 20 * time.Millisecond})
	require.NoError(t, err)
	cfg.Writer, cfg.Token, cfg.Target = p, testToken, "stream "+stream
	svc, err := New(cfg)
	require.NoError(t, err)
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	t.Cleanup(func() { svc.Stop() })
	return client, p, api
}

// TestEndToEnd runs the service with the real producer against a real
// server: start over HTTP, wait for events, stop, then read the stream back
// and check every event decodes and the count matches the status.
func TestEndToEnd(t *testing.T) {
	client, p, api := startEndToEnd(t, "clicks", 3, Config{Rate: 5000, Sessions: 40, Seed: 11})

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

// TestEndToEndURLFormat runs the service in the url format with the real
// producer against a real server, reads the stream back and checks every
// record: {"url": URL} and nothing else, a UUID partition key, the
// catalogue's URL shape with ids inside their declared ranges, and
// product-group frequencies that match the catalogue's weights by a
// chi-square test.
func TestEndToEndURLFormat(t *testing.T) {
	client, p, api := startEndToEnd(t, "urls", 2, Config{Sessions: 1, Seed: 17, Format: FormatURL})

	var info Info
	require.Equal(t, http.StatusOK, call(t, api, "/info", &info))
	require.Equal(t, FormatURL, info.Format)
	var a changeAnswer
	require.Equal(t, http.StatusOK, call(t, api, "/start?token="+testToken, &a))
	const want = 20_000
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var st Status
		require.Equal(c, http.StatusOK, call(t, api, "/status?token="+testToken, &st))
		require.GreaterOrEqual(c, st.EventsSent, int64(want))
	}, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, call(t, api, "/stop?token="+testToken, &a))
	final, err := p.Close(t.Context())
	require.NoError(t, err)
	require.Zero(t, final.Failed)
	sent := a.Status.EventsSent
	require.Equal(t, sent, final.Delivered)

	records := producertest.ReadAll(t, client, "urls")
	require.Len(t, records, int(sent))
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tally := newURLTally(DefaultCatalogue())
	for _, r := range records {
		var fields map[string]string
		require.NoError(t, json.Unmarshal(r.Data, &fields), "%s", r.Data)
		require.Len(t, fields, 1, "%s", r.Data)
		require.Regexp(t, uuid, aws.ToString(r.PartitionKey))
		tally.add(t, fields["url"])
	}
	tally.check(t, 0.015)
}
