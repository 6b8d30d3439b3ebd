package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
)

func fanOutConfig(e *env, stream string, store consumer.LeaseStore, h *recorder) consumer.Config {
	cfg := baseConfig(e, stream, store, h)
	cfg.FanOut = "app-efo"
	return cfg
}

// requireOnce asserts every record in want was delivered exactly once, in
// order per shard. A record delivered twice is reported with its sequence
// numbers: the same one twice is the consumer's repeat, two different
// ones mean the record was stored twice.
func requireOnce(t *testing.T, h *recorder, want []string) {
	t.Helper()
	got := h.deliveries()
	checkInOrder(t, got, want)
	first := make(map[string]delivery, len(got))
	repeats := 0
	for _, d := range got {
		if p, ok := first[d.data]; ok {
			repeats++
			if repeats <= 5 {
				t.Errorf("%s delivered again: first %s %s/%d, then %s %s/%d", d.data, p.shard, p.seq, p.sub, d.shard, d.seq, d.sub)
			}
			continue
		}
		first[d.data] = d
	}
	require.Zero(t, repeats, "records delivered more than once (%d deliveries of %d records)", len(got), len(want))
}

func TestFanOutDeliversEveryRecordOnceInOrderPerShard(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 4)
	want := e.put(t, "s", 2000, 40, "")
	h := &recorder{}
	store := memStore(t)
	w := startWorker(t, fanOutConfig(e, "s", store, h))
	eventually(t, 20*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	want = append(want, e.put(t, "s", 500, 40, "late-")...)
	eventually(t, 20*time.Second, "late records delivered", func() bool { return h.distinct() == len(want) })
	requireOnce(t, h, want)

	// The worker registered the stream consumer.
	sum, err := e.c.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	d, err := e.c.DescribeStreamConsumer(t.Context(), &kinesis.DescribeStreamConsumerInput{
		StreamARN:    sum.StreamDescriptionSummary.StreamARN,
		ConsumerName: aws.String("app-efo"),
	})
	require.NoError(t, err)
	require.Equal(t, types.ConsumerStatusActive, d.ConsumerDescription.ConsumerStatus)
	w.stop(t)

	// A new worker finds the consumer registered and resumes after the
	// checkpoints.
	want = append(want, e.put(t, "s", 300, 40, "restart-")...)
	startWorker(t, fanOutConfig(e, "s", store, h))
	eventually(t, 20*time.Second, "records after the restart delivered", func() bool { return h.distinct() == len(want) })
	requireOnce(t, h, want)
}

// cuttingClient ends every subscription from the client side after a
// while: by closing its event stream (a clean end, as at the end of its
// lifetime) or by cancelling its request (a lost connection).
type cuttingClient struct {
	*kinesis.Client
	after  time.Duration
	cancel bool
	subs   atomic.Int64
}

func (c *cuttingClient) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	ctx, cancel := context.WithCancel(ctx)
	out, err := c.Client.SubscribeToShard(ctx, in, optFns...)
	if err != nil {
		cancel()
		return nil, err
	}
	c.subs.Add(1)
	es := out.GetStream()
	time.AfterFunc(c.after, func() {
		if !c.cancel {
			_ = es.Close()
		}
		cancel()
	})
	return out, nil
}

// The server's subscription lifetime (five minutes) cannot be shortened
// from outside kinesisapi, so subscriptions here end from the client side:
// each next one must start after the last ContinuationSequenceNumber,
// losing and repeating nothing.
func TestFanOutResubscribesAfterASubscriptionEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cancel bool
	}{
		{"stream closed", false},
		{"request cancelled", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t)
			e.createStream(t, "s", 2)
			h := &recorder{}
			cut := &cuttingClient{Client: e.c, after: 200 * time.Millisecond, cancel: tc.cancel}
			cfg := fanOutConfig(e, "s", memStore(t), h)
			cfg.Kinesis = cut
			startWorker(t, cfg)
			var want []string
			for round := range 5 {
				before := cut.subs.Load()
				want = append(want, e.put(t, "s", 200, 20, string(rune('a'+round))+"-")...)
				eventually(t, 10*time.Second, "another subscription", func() bool { return cut.subs.Load() > before+2 })
			}
			eventually(t, 20*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
			requireOnce(t, h, want)
			require.Greater(t, cut.subs.Load(), int64(10))
		})
	}
}

func TestFanOutFinishesAClosedShard(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 1)
	store := memStore(t)
	h := &recorder{}
	startWorker(t, fanOutConfig(e, "s", store, h))
	want := e.put(t, "s", 200, 20, "a-")
	_, err := e.c.SplitShard(t.Context(), &kinesis.SplitShardInput{
		StreamName:         aws.String("s"),
		ShardToSplit:       aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	})
	require.NoError(t, err)
	e.waitActive(t, "s")
	want = append(want, e.put(t, "s", 200, 20, "b-")...)
	eventually(t, 20*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	requireOnce(t, h, want)
	eventually(t, 10*time.Second, "parent lease finished", func() bool {
		l, err := store.GetLease(t.Context(), "shardId-000000000000")
		require.NoError(t, err)
		return l.Checkpoint.ShardEnd()
	})
}

func TestFanOutNeedsAFanOutClient(t *testing.T) {
	e := start(t)
	cfg := fanOutConfig(e, "s", memStore(t), &recorder{})
	cfg.Kinesis = struct{ consumer.KinesisAPI }{e.c}
	_, err := consumer.NewWorker(cfg)
	require.ErrorContains(t, err, "FanOut:")
}
