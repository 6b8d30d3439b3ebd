package kinesisapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/eventstream"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisapi"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/stream"
)

// eventTimeout bounds every wait for an event in these tests.
const eventTimeout = 10 * time.Second

// subscription is one SubscribeToShard event stream under test. Each has
// a client of its own (see subscriber).
type subscription struct {
	es *kinesis.SubscribeToShardEventStream
}

// subscriber returns an SDK client for one subscription over plain HTTP/1.1,
// with runnel's HTTP client (kinesisclient.HTTPClient says why). Each
// subscription needs a client of its own: aws-sdk-go-v2 clients share
// event-stream decoding state between their streams without
// synchronisation (github.com/aws/smithy-go issue 714), which the race
// detector reports.
func subscriber(t testing.TB, srv *kinesistest.Server) *kinesis.Client {
	t.Helper()
	return kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(srv.URL), Region: "us-east-1", Retryer: kinesisclient.ConnectionRetryer(),
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
		HTTPClient:  kinesisclient.HTTPClient(),
	})
}

func subscribe(t *testing.T, c *kinesis.Client, ctx context.Context, consumerARN, shard string, pos types.StartingPosition) *subscription {
	t.Helper()
	out, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(consumerARN), ShardId: aws.String(shard), StartingPosition: &pos,
	})
	require.NoError(t, err)
	s := &subscription{es: out.GetStream()}
	t.Cleanup(func() { _ = s.es.Close() })
	return s
}

// next returns the next SubscribeToShardEvent, or ok false when the stream
// ended.
func (s *subscription) next(t *testing.T) (types.SubscribeToShardEvent, bool) {
	t.Helper()
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	select {
	case ev, open := <-s.es.Events():
		if !open {
			return types.SubscribeToShardEvent{}, false
		}
		member, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		require.True(t, isEvent, "unexpected event %T", ev)
		return member.Value, true
	case <-timer.C:
		t.Fatalf("no event within %s", eventTimeout)
		return types.SubscribeToShardEvent{}, false
	}
}

// collect reads events until n records have arrived, checking that each
// event's ContinuationSequenceNumber is its last record's.
func (s *subscription) collect(t *testing.T, n int) []types.Record {
	t.Helper()
	var recs []types.Record
	for events := 0; len(recs) < n; events++ {
		require.Less(t, events, 10*n+10, "too many events")
		ev, ok := s.next(t)
		require.True(t, ok, "stream ended after %d of %d records: %v", len(recs), n, s.es.Err())
		require.NotNil(t, ev.ContinuationSequenceNumber)
		if len(ev.Records) > 0 {
			require.Equal(t, aws.ToString(ev.Records[len(ev.Records)-1].SequenceNumber), aws.ToString(ev.ContinuationSequenceNumber))
		}
		recs = append(recs, ev.Records...)
	}
	return recs
}

func seqs(recs []types.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = aws.ToString(r.SequenceNumber)
	}
	return out
}

// efo creates a one-shard stream with a registered consumer.
func efo(t *testing.T, e *env, consumer string) (streamARN, consumerARN string) {
	t.Helper()
	e.createStream(t, "efo", 1)
	streamARN = e.streamARN(t, "efo")
	return streamARN, aws.ToString(e.registerConsumer(t, streamARN, consumer).ConsumerARN)
}

const shard0 = "shardId-000000000000"

func TestSubscribeToShardDeliversConcurrentPutsInOrder(t *testing.T) {
	e := start(t)
	_, consumer := efo(t, e, "app")
	sub := subscribe(t, subscriber(t, e.srv), e.ctx, consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})

	// The first event comes at once, records or not.
	first, ok := sub.next(t)
	require.True(t, ok)
	require.Empty(t, first.Records)
	require.NotNil(t, first.ContinuationSequenceNumber)
	require.Zero(t, aws.ToInt64(first.MillisBehindLatest))

	const writers, perWriter = 4, 50
	var (
		mu  sync.Mutex
		put = map[string]string{} // sequence number → data
		wg  sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				data := fmt.Sprintf("w%d-%d", w, i)
				out, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("efo"), PartitionKey: aws.String(data), Data: []byte(data)})
				if !check(t, err == nil, "put: %v", err) {
					return
				}
				mu.Lock()
				put[aws.ToString(out.SequenceNumber)] = data
				mu.Unlock()
			}
		})
	}
	recs := sub.collect(t, writers*perWriter)
	wg.Wait()
	require.Len(t, recs, writers*perWriter)
	for i, r := range recs {
		seq := aws.ToString(r.SequenceNumber)
		require.Equal(t, put[seq], string(r.Data), "record %d", i)
		require.Equal(t, put[seq], aws.ToString(r.PartitionKey))
		require.WithinDuration(t, time.Now(), aws.ToTime(r.ApproximateArrivalTimestamp), time.Minute)
		if i > 0 {
			require.Less(t, aws.ToString(recs[i-1].SequenceNumber), seq, "out of order at %d", i)
		}
	}
}

// check reports a failure from a goroutine other than the test's.
func check(t *testing.T, ok bool, format string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
	return ok
}

func TestSubscribeToShardStartingPositions(t *testing.T) {
	e := start(t)
	streamARN, _ := efo(t, e, "first")
	var put []string
	for i := range 5 {
		put = append(put, aws.ToString(putData(t, e, "efo", "k", []byte{byte(i)}).SequenceNumber))
	}
	cases := []struct {
		pos  types.StartingPosition
		want []string
	}{
		{types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}, put},
		{types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(put[2])}, put[2:]},
		{types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(put[2])}, put[3:]},
		{types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(time.Now().Add(-time.Hour))}, put},
	}
	for i, tc := range cases {
		t.Run(string(tc.pos.Type), func(t *testing.T) {
			// One consumer each: a consumer may hold one subscription
			// per shard.
			consumer := aws.ToString(e.registerConsumer(t, streamARN, fmt.Sprint("c", i)).ConsumerARN)
			sub := subscribe(t, subscriber(t, e.srv), e.ctx, consumer, shard0, tc.pos)
			require.Equal(t, tc.want, seqs(sub.collect(t, len(tc.want))))
		})
	}

	t.Run("LATEST", func(t *testing.T) {
		consumer := aws.ToString(e.registerConsumer(t, streamARN, "latest").ConsumerARN)
		sub := subscribe(t, subscriber(t, e.srv), e.ctx, consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		ev, ok := sub.next(t)
		require.True(t, ok)
		require.Empty(t, ev.Records)
		// Resuming after the continuation of an empty event reads what
		// comes next, nothing older.
		require.Equal(t, put[4], aws.ToString(ev.ContinuationSequenceNumber))
		next := aws.ToString(putData(t, e, "efo", "k", []byte("new")).SequenceNumber)
		require.Equal(t, []string{next}, seqs(sub.collect(t, 1)))
	})
}

func TestSubscribeToShardErrors(t *testing.T) {
	e := start(t)
	streamARN, consumer := efo(t, e, "app")
	call := func(arn, shard string, pos types.StartingPosition) error {
		out, err := e.c.SubscribeToShard(e.ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn), ShardId: aws.String(shard), StartingPosition: &pos})
		if err == nil {
			_ = out.GetStream().Close()
		}
		return err
	}
	latest := types.StartingPosition{Type: types.ShardIteratorTypeLatest}

	err := call(consumer, "shardId-000000000009", latest)
	requireTyped[*types.ResourceNotFoundException](t, err)
	err = call(streamARN+"/consumer/nobody:1", shard0, latest)
	requireTyped[*types.ResourceNotFoundException](t, err)
	err = call(consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber})
	requireTyped[*types.InvalidArgumentException](t, err)
	err = call(consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String("1")})
	requireTyped[*types.InvalidArgumentException](t, err)
	err = call(consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp})
	requireTyped[*types.InvalidArgumentException](t, err)
	err = call(streamARN, shard0, latest)
	requireAPIError(t, err, "ValidationException")

	// One subscription per consumer and shard: a second one within five
	// seconds is refused.
	sub := subscribe(t, subscriber(t, e.srv), e.ctx, consumer, shard0, latest)
	_, ok := sub.next(t)
	require.True(t, ok)
	err = call(consumer, shard0, latest)
	requireTyped[*types.ResourceInUseException](t, err)

	// Deregistering the consumer ends its subscription with
	// ResourceNotFoundException, and it cannot subscribe again.
	_, err = e.c.DeregisterStreamConsumer(e.ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(consumer)})
	require.NoError(t, err)
	for events := 0; ; events++ {
		require.Less(t, events, 10)
		if _, ok := sub.next(t); !ok {
			break
		}
	}
	requireTyped[*types.ResourceNotFoundException](t, sub.es.Err())
	err = call(consumer, shard0, latest)
	requireTyped[*types.ResourceNotFoundException](t, err)
}

// TestSubscribeToShardWire checks the response as bytes: content type,
// chunked HTTP/1.1, and the headers of the initial-response and first
// events.
func TestSubscribeToShardWire(t *testing.T) {
	e := start(t)
	_, consumer := efo(t, e, "app")
	putData(t, e, "efo", "k", []byte("hello"))

	body := fmt.Sprintf(`{"ConsumerARN":%q,"ShardId":%q,"StartingPosition":{"Type":"TRIM_HORIZON"}}`, consumer, shard0)
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.srv.URL, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/vnd.amazon.eventstream", resp.Header.Get("Content-Type"))
	require.Equal(t, []string{"chunked"}, resp.TransferEncoding)
	require.Equal(t, 1, resp.ProtoMajor)

	dec := eventstream.NewDecoder()
	msg, err := dec.Decode(resp.Body, nil)
	require.NoError(t, err)
	require.Equal(t, "initial-response", msg.Headers.Get(":event-type").String())
	require.Equal(t, "event", msg.Headers.Get(":message-type").String())
	require.JSONEq(t, `{}`, string(msg.Payload))

	msg, err = dec.Decode(resp.Body, nil)
	require.NoError(t, err)
	require.Equal(t, "SubscribeToShardEvent", msg.Headers.Get(":event-type").String())
	require.Equal(t, "application/json", msg.Headers.Get(":content-type").String())
	require.Contains(t, string(msg.Payload), `"Data":"aGVsbG8="`)
	require.Contains(t, string(msg.Payload), `"MillisBehindLatest":0`)
}

// TestSubscribeToShardOverHTTP2 runs a subscription over TLS with HTTP/2,
// as most SDKs require.
func TestSubscribeToShardOverHTTP2(t *testing.T) {
	svc, err := stream.Open(t.Context(), stream.Config{InMemory: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	api := kinesisapi.NewHandler(svc, nil)
	var h2 atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			h2.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	c := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(srv.URL), Region: "us-east-1", HTTPClient: hc, Retryer: kinesisclient.ConnectionRetryer(),
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
	e := &env{c: c, ctx: t.Context()}
	_, consumer := efo(t, e, "app")
	sub := subscribe(t, c, e.ctx, consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	var want []string
	for i := range 20 {
		want = append(want, aws.ToString(putData(t, e, "efo", "k", bytes.Repeat([]byte{byte(i)}, 100)).SequenceNumber))
	}
	require.Equal(t, want, seqs(sub.collect(t, len(want))))
	require.Positive(t, h2.Load(), "no request came over HTTP/2")
}

// Deleting a stream with EnforceConsumerDeletion ends its consumers' live
// subscriptions at once, not at their next heartbeat; without it a stream
// with consumers is not deleted.
func TestDeleteStreamEndsSubscriptions(t *testing.T) {
	e := start(t)
	_, consumer := efo(t, e, "app")
	sub := subscribe(t, subscriber(t, e.srv), e.ctx, consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	_, ok := sub.next(t)
	require.True(t, ok)

	_, err := e.c.DeleteStream(e.ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("efo")})
	requireTyped[*types.ResourceInUseException](t, err)
	_, err = e.c.DeleteStream(e.ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("efo"), EnforceConsumerDeletion: aws.Bool(true)})
	require.NoError(t, err)
	start := time.Now()
	for events := 0; ; events++ {
		require.Less(t, events, 10)
		if _, ok := sub.next(t); !ok {
			break
		}
	}
	require.Less(t, time.Since(start), 4*time.Second, "ended by the deletion, not by a heartbeat")
	requireTyped[*types.ResourceNotFoundException](t, sub.es.Err())
}

// A CBOR client (the Java SDK, the KCL) gets its event payloads in CBOR.
func TestSubscribeToShardCBORPayloads(t *testing.T) {
	e := start(t)
	_, consumer := efo(t, e, "app")
	putData(t, e, "efo", "k", []byte("hello"))

	body, err := cbor.Marshal(map[string]any{"ConsumerARN": consumer, "ShardId": shard0, "StartingPosition": map[string]any{"Type": "TRIM_HORIZON"}})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.srv.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
	req.Header.Set("Content-Type", "application/x-amz-cbor-1.1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	dec := eventstream.NewDecoder()
	msg, err := dec.Decode(resp.Body, nil)
	require.NoError(t, err)
	require.Equal(t, "initial-response", msg.Headers.Get(":event-type").String())
	msg, err = dec.Decode(resp.Body, nil)
	require.NoError(t, err)
	require.Equal(t, "SubscribeToShardEvent", msg.Headers.Get(":event-type").String())
	require.Equal(t, "application/cbor", msg.Headers.Get(":content-type").String())
	var ev struct {
		Records []struct {
			Data         []byte `cbor:"Data"`
			PartitionKey string `cbor:"PartitionKey"`
		} `cbor:"Records"`
		MillisBehindLatest int64 `cbor:"MillisBehindLatest"`
	}
	require.NoError(t, cbor.Unmarshal(msg.Payload, &ev))
	require.Len(t, ev.Records, 1)
	require.Equal(t, "hello", string(ev.Records[0].Data), "blobs are CBOR byte strings")
	require.Equal(t, "k", ev.Records[0].PartitionKey)
}
