package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-dev/runnel/internal/backoff"
)

// FanOutAPI is the part of the Kinesis API an enhanced fan-out reader calls
// besides KinesisAPI. Config.Kinesis must also satisfy it when
// Config.FanOut is set; the aws-sdk-go-v2 *kinesis.Client does.
type FanOutAPI interface {
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

var _ FanOutAPI = (*kinesis.Client)(nil)

// consumerActiveTimeout bounds the wait for a registered stream consumer
// to become ACTIVE.
const consumerActiveTimeout = 2 * time.Minute

// registerConsumer registers the stream consumer Config.FanOut unless it
// exists, waits until it is ACTIVE and records its ARN.
func (w *Worker) registerConsumer(ctx context.Context) error {
	api := w.cfg.Kinesis.(FanOutAPI)
	name := w.cfg.FanOut
	var arn string
	out, err := api.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN:    aws.String(w.streamARN),
		ConsumerName: aws.String(name),
	})
	var inUse *types.ResourceInUseException
	switch {
	case err == nil:
		arn = aws.ToString(out.Consumer.ConsumerARN)
		w.log.Info("stream consumer registered", "consumer", name, "consumerArn", arn)
	case errors.As(err, &inUse):
		// It exists already: look it up.
	default:
		return fmt.Errorf("registering stream consumer %s: %w", name, err)
	}
	deadline := w.now().Add(consumerActiveTimeout)
	for attempt := 1; ; attempt++ {
		in := &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)}
		if arn == "" {
			in = &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(w.streamARN), ConsumerName: aws.String(name)}
		}
		d, err := api.DescribeStreamConsumer(ctx, in)
		if err != nil {
			return fmt.Errorf("describing stream consumer %s: %w", name, err)
		}
		c := d.ConsumerDescription
		arn = aws.ToString(c.ConsumerARN)
		if c.ConsumerStatus == types.ConsumerStatusActive {
			w.mu.Lock()
			w.consumerARN = arn
			w.mu.Unlock()
			return nil
		}
		if !w.now().Before(deadline) {
			return fmt.Errorf("stream consumer %s is %s, not ACTIVE, after %s", name, c.ConsumerStatus, consumerActiveTimeout)
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt, 50*time.Millisecond, 2*time.Second)) {
			return fmt.Errorf("waiting for stream consumer %s: %w", name, ctx.Err())
		}
	}
}

// ownEventStreamCodec gives one SubscribeToShard call an event-stream
// codec of its own. aws-sdk-go-v2 (service/kinesis v1.56, smithy-go
// v1.28) decodes the event streams of every subscription of a client with
// one codec, whose decoder and payload buffer are not safe for concurrent
// use, so concurrent subscriptions on one client race (go test -race
// reports it) and may mix up each other's events.
func ownEventStreamCodec(o *kinesis.Options) {
	o.Protocol = kinesis.New(kinesis.Options{}).Options().Protocol
}

// readFanOut reads the shard from start with SubscribeToShard and sends
// pages until the shard ends or ctx is done, as read does by polling. A
// subscription that ends (its lifetime is over, the server stops, the
// connection is lost) is followed by another one after the last
// ContinuationSequenceNumber received, after a short back-off when it
// failed.
func (p *shardProc) readFanOut(ctx context.Context, start Checkpoint, out chan<- page) {
	api := p.w.cfg.Kinesis.(FanOutAPI)
	cont := ""
	failures := 0
	for ctx.Err() == nil {
		in := &kinesis.SubscribeToShardInput{
			ConsumerARN:      aws.String(p.w.consumerARN),
			ShardId:          aws.String(p.shard),
			StartingPosition: p.fanOutPosition(start, cont),
		}
		sub, err := api.SubscribeToShard(ctx, in, ownEventStreamCodec)
		if err == nil {
			var end bool
			var n int
			cont, end, n, err = p.drainSubscription(ctx, sub.GetStream(), start, cont, out)
			if end || ctx.Err() != nil {
				return
			}
			if n > 0 {
				// It worked for a while: back off afresh if it failed.
				failures = 0
			}
			if err == nil {
				// The subscription ended cleanly (its lifetime, or the
				// server stopping): subscribe again at once, unless it
				// delivered nothing, which is worth a short pause.
				failures = 0
				if n == 0 && !backoff.Sleep(ctx, p.w.cfg.PollInterval) {
					return
				}
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		p.noteErr(err)
		p.log.Warn("subscription to shard failed; subscribing again", "err", err, "attempt", failures)
		if !backoff.Sleep(ctx, backoff.Delay(failures, 100*time.Millisecond, 5*time.Second)) {
			return
		}
	}
}

// fanOutPosition is where a subscription starts: after the last
// continuation received, or else at the checkpoint (at, not after, as the
// checkpoint may be inside an aggregate; convert filters the records up
// to it) or the configured starting position.
func (p *shardProc) fanOutPosition(start Checkpoint, cont string) *types.StartingPosition {
	switch {
	case cont != "":
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}
	case start.SequenceNumber == SentinelTrimHorizon:
		return &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	case start.SequenceNumber == SentinelLatest:
		return &types.StartingPosition{Type: types.ShardIteratorTypeLatest}
	case start.SequenceNumber == SentinelAtTimestamp:
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(p.w.cfg.StartingTimestamp)}
	}
	return &types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(start.SequenceNumber)}
}

// drainSubscription sends the records of one subscription's events as
// pages until its event stream ends. It returns the last continuation
// received (cont if none), whether the shard ended, how many events
// arrived, and the stream's error.
func (p *shardProc) drainSubscription(ctx context.Context, es *kinesis.SubscribeToShardEventStream, start Checkpoint, cont string, out chan<- page) (string, bool, int, error) {
	defer es.Close()
	n := 0
	for {
		var ev types.SubscribeToShardEventStream
		var ok bool
		select {
		case <-ctx.Done():
			return cont, false, n, ctx.Err()
		case ev, ok = <-es.Events():
		}
		if !ok {
			return cont, false, n, es.Err()
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			continue // an event type this client does not know
		}
		n++
		v := e.Value
		p.millis.Store(aws.ToInt64(v.MillisBehindLatest))
		if aws.ToInt64(v.MillisBehindLatest) == 0 {
			p.caughtUpAt.Store(p.w.now().UnixNano())
		}
		recs := p.convert(v.Records, start)
		// No continuation, or child shards: the shard is closed and every
		// record of it has been sent.
		if v.ContinuationSequenceNumber == nil || len(v.ChildShards) > 0 {
			select {
			case out <- page{recs: recs, end: true, children: v.ChildShards}:
			case <-ctx.Done():
			}
			return cont, true, n, nil
		}
		if len(recs) > 0 {
			select {
			case out <- page{recs: recs}:
			case <-ctx.Done():
				return cont, false, n, ctx.Err()
			}
		}
		cont = aws.ToString(v.ContinuationSequenceNumber)
	}
}
