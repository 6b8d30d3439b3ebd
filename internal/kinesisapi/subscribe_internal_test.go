package kinesisapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/eventstream"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/stream"
)

// fanOutServer serves a handler whose subscription timings a test sets.
type fanOutServer struct {
	h   *Handler
	url string
}

func startFanOut(t *testing.T, lifetime, heartbeat, takeover time.Duration) *fanOutServer {
	t.Helper()
	svc, err := stream.Open(t.Context(), stream.Config{InMemory: true})
	require.NoError(t, err)
	h := newHandler(svc, nil, time.Now)
	h.fanout.lifetime, h.fanout.heartbeat, h.fanout.takeover = lifetime, heartbeat, takeover
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.EndSubscriptions()
		srv.Close()
		require.NoError(t, svc.Close())
	})
	return &fanOutServer{h: h, url: srv.URL}
}

// client returns a new SDK client. Each subscription gets its own;
// subscriber in subscribe_test.go says why.
func (s *fanOutServer) client() *kinesis.Client {
	return kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(s.url), Region: "us-east-1", Retryer: kinesisclient.ConnectionRetryer(),
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
		HTTPClient:  kinesisclient.HTTPClient(),
	})
}

// setup creates stream "s" with one shard and registers consumer "app".
func (s *fanOutServer) setup(t *testing.T) (c *kinesis.Client, consumerARN string) {
	t.Helper()
	ctx := t.Context()
	c = s.client()
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	out, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(s.h.svc.ARN("s")), ConsumerName: aws.String("app"),
	})
	require.NoError(t, err)
	return c, aws.ToString(out.Consumer.ConsumerARN)
}

const testShard = "shardId-000000000000"

// drain reads a subscription until its stream ends, returning its records,
// the last ContinuationSequenceNumber and the stream's error.
func drain(t *testing.T, es *kinesis.SubscribeToShardEventStream, onEvent func(types.SubscribeToShardEvent)) error {
	t.Helper()
	defer es.Close()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, open := <-es.Events():
			if !open {
				return es.Err()
			}
			e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			require.True(t, ok, "unexpected event %T", ev)
			onEvent(e.Value)
		case <-timer.C:
			t.Fatal("subscription did not end")
		}
	}
}

// TestSubscriptionLifetimeAndResume is the way KCL consumes: subscriptions
// end at their lifetime, each next one starts AFTER_SEQUENCE_NUMBER the last
// ContinuationSequenceNumber, and across them every record arrives once, in
// order, while a writer keeps putting.
func TestSubscriptionLifetimeAndResume(t *testing.T) {
	s := startFanOut(t, 150*time.Millisecond, 20*time.Millisecond, time.Hour)
	c, consumer := s.setup(t)
	ctx := t.Context()

	const total = 300
	var (
		mu   sync.Mutex
		want []string
	)
	writeCtx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			if writeCtx.Err() != nil {
				return
			}
			out, err := c.PutRecord(writeCtx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: fmt.Appendf(nil, "%d", i)})
			if err != nil {
				t.Errorf("put %d: %v", i, err)
				return
			}
			mu.Lock()
			want = append(want, aws.ToString(out.SequenceNumber))
			mu.Unlock()
			// Pace the writer (at least 300 ms in all) so its records span
			// several 150 ms subscriptions however fast the machine is.
			<-time.After(time.Millisecond)
		}
	})

	var got []string
	pos := types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	subscriptions := 0
	for ; subscriptions < 200 && len(got) < total; subscriptions++ {
		out, err := s.client().SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(consumer), ShardId: aws.String(testShard), StartingPosition: &pos})
		require.NoError(t, err)
		var cont string
		err = drain(t, out.GetStream(), func(ev types.SubscribeToShardEvent) {
			for _, r := range ev.Records {
				got = append(got, aws.ToString(r.SequenceNumber))
			}
			cont = aws.ToString(ev.ContinuationSequenceNumber)
		})
		require.NoError(t, err, "a subscription ends cleanly at its lifetime")
		require.NotEmpty(t, cont)
		pos = types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}
	}
	wg.Wait()
	require.Greater(t, subscriptions, 1, "the test should span several subscriptions")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, want, got)
}

// TestSubscriptionHeartbeat checks that an idle subscription still sends
// events, each with a continuation.
func TestSubscriptionHeartbeat(t *testing.T) {
	s := startFanOut(t, 300*time.Millisecond, 50*time.Millisecond, time.Hour)
	_, consumer := s.setup(t)
	out, err := s.client().SubscribeToShard(t.Context(), &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(consumer), ShardId: aws.String(testShard),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	require.NoError(t, err)
	events := 0
	require.NoError(t, drain(t, out.GetStream(), func(ev types.SubscribeToShardEvent) {
		require.Empty(t, ev.Records)
		require.NotNil(t, ev.ContinuationSequenceNumber)
		events++
	}))
	// 300ms of life with a 50ms heartbeat: the first event, then one per
	// heartbeat, give or take scheduling.
	require.GreaterOrEqual(t, events, 3)
	require.LessOrEqual(t, events, 8)
}

// TestSubscriptionTakeover checks that a subscription older than the
// takeover delay is replaced, its stream failing with
// ResourceInUseException.
func TestSubscriptionTakeover(t *testing.T) {
	s := startFanOut(t, time.Minute, time.Second, 0)
	_, consumer := s.setup(t)
	in := &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(consumer), ShardId: aws.String(testShard),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}}
	first, err := s.client().SubscribeToShard(t.Context(), in)
	require.NoError(t, err)
	second, err := s.client().SubscribeToShard(t.Context(), in)
	require.NoError(t, err)
	defer second.GetStream().Close()
	err = drain(t, first.GetStream(), func(types.SubscribeToShardEvent) {})
	var inUse *types.ResourceInUseException
	require.True(t, errors.As(err, &inUse), "got %v", err)
}

// TestEndSubscriptions checks that shutting down ends live subscriptions
// cleanly and refuses new ones.
func TestEndSubscriptions(t *testing.T) {
	s := startFanOut(t, time.Hour, time.Second, time.Hour)
	_, consumer := s.setup(t)
	in := &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(consumer), ShardId: aws.String(testShard),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}}
	out, err := s.client().SubscribeToShard(t.Context(), in)
	require.NoError(t, err)
	es := out.GetStream()
	<-es.Events() // the first event: the subscription is live
	s.h.EndSubscriptions()
	require.NoError(t, drain(t, es, func(types.SubscribeToShardEvent) {}))
	_, err = s.client().SubscribeToShard(t.Context(), in)
	var inUse *types.ResourceInUseException
	require.True(t, errors.As(err, &inUse), "got %v", err)
}

// FuzzEventStream round-trips event and exception messages through the
// encoder and the SDK's decoder, and feeds the decoder arbitrary bytes.
func FuzzEventStream(f *testing.F) {
	f.Add("SubscribeToShardEvent", []byte(`{"Records":[],"MillisBehindLatest":0}`), []byte{})
	f.Add("ResourceInUseException", []byte(`{"message":"x"}`), []byte{0, 0, 0, 16})
	f.Add("", []byte{}, []byte("\x00\x00\x00\x10\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, typ string, payload, garbage []byte) {
		for _, msg := range []eventstream.Message{eventMessage(typ, eventPayloadType, payload), exceptionMessage(typ, eventPayloadType, payload)} {
			var buf bytes.Buffer
			if err := eventstream.NewEncoder().Encode(&buf, msg); err != nil {
				// A header value past its length limit is refused
				// with an error, not sent.
				require.Greater(t, len(typ), 1<<15-1, "%v", err)
				continue
			}
			got, err := eventstream.NewDecoder().Decode(bytes.NewReader(buf.Bytes()), nil)
			require.NoError(t, err)
			require.Equal(t, len(msg.Headers), len(got.Headers))
			for _, h := range msg.Headers {
				require.Equal(t, h.Value.String(), got.Headers.Get(h.Name).String(), h.Name)
			}
			require.Equal(t, string(msg.Payload), string(got.Payload))

			// Any corruption of the frame is detected by a CRC or
			// length check, never delivered.
			if len(garbage) > 0 {
				b := buf.Bytes()
				i := int(garbage[0]) % len(b)
				b[i] ^= garbage[len(garbage)-1] | 1
				_, err := eventstream.NewDecoder().Decode(bytes.NewReader(b), nil)
				require.Error(t, err, "flipped byte %d", i)
			}
		}
		_, _ = eventstream.NewDecoder().Decode(bytes.NewReader(garbage), nil)
	})
}

// TestConsumerLimit checks that under AWS limits a stream takes
// MaxConsumersPerStream consumers and refuses the next with
// LimitExceededException, and that without them it takes more.
func TestConsumerLimit(t *testing.T) {
	for _, limited := range []bool{true, false} {
		t.Run(fmt.Sprint("limited=", limited), func(t *testing.T) {
			var opts []Option
			if limited {
				opts = append(opts, WithAWSLimits())
			}
			c, clk := startLimited(t, opts...)
			ctx := t.Context()
			_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
			require.NoError(t, err)
			arn := "arn:aws:kinesis:us-east-1:000000000000:stream/s"
			register := func(i int) error {
				clk.add(time.Second) // stay inside the registration rate limit
				_, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String(fmt.Sprint("c", i))})
				return err
			}
			for i := range MaxConsumersPerStream {
				require.NoError(t, register(i))
			}
			err = register(MaxConsumersPerStream)
			if !limited {
				require.NoError(t, err)
				return
			}
			var limit *types.LimitExceededException
			require.True(t, errors.As(err, &limit), "got %v", err)
		})
	}
}

// TestConsumerLimitAdvantage: an on-demand stream in an account with the
// minimum throughput billing commitment (On-demand Advantage mode) takes
// MaxConsumersAdvantage consumers under AWS limits; a provisioned one
// still MaxConsumersPerStream.
func TestConsumerLimitAdvantage(t *testing.T) {
	c, clk := startLimited(t, WithAWSLimits())
	ctx := t.Context()
	_, err := c.UpdateAccountSettings(ctx, &kinesis.UpdateAccountSettingsInput{
		MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled}})
	require.NoError(t, err)
	clk.add(time.Second)
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("od"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	require.NoError(t, err)
	clk.add(time.Second)
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("prov"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	register := func(stream string, i int) error {
		clk.add(time.Second) // stay inside the registration rate limit
		_, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
			StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/" + stream), ConsumerName: aws.String(fmt.Sprint("c", i))})
		return err
	}
	for stream, limit := range map[string]int{"od": MaxConsumersAdvantage, "prov": MaxConsumersPerStream} {
		for i := range limit {
			require.NoError(t, register(stream, i), "%s consumer %d", stream, i)
		}
		var exceeded *types.LimitExceededException
		require.ErrorAs(t, register(stream, limit), &exceeded, stream)
	}
}
