package kinesisapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/stream"
)

// SubscribeToShard pushes a shard's records to a registered consumer over
// one long response in the event-stream encoding: an initial-response
// event, then SubscribeToShardEvent events as records arrive (and at least
// every heartbeat while none do), for the subscription lifetime.

const (
	// subscriptionLifetime is how long a subscription lasts before the
	// client must subscribe again, as on Kinesis.
	subscriptionLifetime = 5 * time.Minute
	// subscriptionHeartbeat is the longest a subscriber waits for an event
	// while no records arrive; each event carries a fresh
	// ContinuationSequenceNumber and MillisBehindLatest.
	subscriptionHeartbeat = 5 * time.Second
	// subscriptionTakeover is how old a subscription must be before another
	// one for the same consumer and shard replaces it; a second one sooner
	// is refused with ResourceInUseException, as Kinesis documents.
	subscriptionTakeover = 5 * time.Second
	// maxEventRecords bounds the records of one event. With the engine's
	// 10 MiB cap on one read it keeps an event (data in base64, keys and
	// framing) well under the 16 MiB an event-stream message may carry.
	maxEventRecords = 1000
	// typeInternalFailureEvent is the exception type SubscribeToShard's
	// event stream uses for internal errors.
	typeInternalFailureEvent = "InternalFailureException"
)

var (
	errSubscriptionTakenOver = errors.New("subscription taken over")
	errConsumerDeregistered  = errors.New("consumer deregistered")
	errServerClosing         = errors.New("server shutting down")
)

// fanOut tracks live subscriptions: at most one per consumer and shard.
type fanOut struct {
	lifetime  time.Duration
	heartbeat time.Duration
	takeover  time.Duration

	mu     sync.Mutex
	subs   map[subscriptionKey]*subscription
	closed bool
}

func newFanOut() *fanOut {
	return &fanOut{
		lifetime:  subscriptionLifetime,
		heartbeat: subscriptionHeartbeat,
		takeover:  subscriptionTakeover,
		subs:      map[subscriptionKey]*subscription{},
	}
}

type subscriptionKey struct {
	stream, consumer, shard string
}

// subscription is one live SubscribeToShard response. stop is closed, with
// cause set first, when something other than its own client or lifetime
// ends it.
type subscription struct {
	started time.Time
	once    sync.Once
	stop    chan struct{}
	cause   error
}

func (s *subscription) end(cause error) {
	s.once.Do(func() {
		s.cause = cause
		close(s.stop)
	})
}

// start registers a subscription for key, replacing one at least takeover
// old; a younger one makes it fail with ResourceInUseException.
func (f *fanOut) start(key subscriptionKey, now time.Time) (*subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, newError(typeResourceInUse, http.StatusBadRequest, "The server is shutting down; subscribe again later.")
	}
	if old := f.subs[key]; old != nil {
		if now.Sub(old.started) < f.takeover {
			return nil, newError(typeResourceInUse, http.StatusBadRequest,
				"Another active subscription exists on this consumer %s for shard %s; a new subscription may take over %s after it started.",
				key.consumer, key.shard, f.takeover)
		}
		old.end(errSubscriptionTakenOver)
	}
	sub := &subscription{started: now, stop: make(chan struct{})}
	f.subs[key] = sub
	return sub, nil
}

func (f *fanOut) finish(key subscriptionKey, sub *subscription) {
	f.mu.Lock()
	if f.subs[key] == sub {
		delete(f.subs, key)
	}
	f.mu.Unlock()
}

// endConsumer ends every subscription of a deregistered consumer, or of
// every consumer of a deleted stream when consumer is "".
func (f *fanOut) endConsumer(stream, consumer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, sub := range f.subs {
		if key.stream == stream && (consumer == "" || key.consumer == consumer) {
			sub.end(errConsumerDeregistered)
		}
	}
}

// close ends every subscription and refuses new ones.
func (f *fanOut) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, sub := range f.subs {
		sub.end(errServerClosing)
	}
}

// EndSubscriptions ends every SubscribeToShard response cleanly and refuses
// new ones, so a graceful shutdown need not wait out their five-minute
// lifetime. Clients see their event streams end and subscribe again
// elsewhere or later.
func (h *Handler) EndSubscriptions() { h.fanout.close() }

// streamedResponse is an action result that writes its own response body
// instead of a JSON document.
type streamedResponse interface {
	// c is the request's codec, which also encodes event payloads.
	writeResponse(ctx context.Context, w http.ResponseWriter, c codec)
}

// SubscribeToShard request

type startingPosition struct {
	Type           *string    `json:"Type"`
	SequenceNumber *string    `json:"SequenceNumber"`
	Timestamp      *epochTime `json:"Timestamp"`
}

type subscribeRequest struct {
	ConsumerARN      *string           `json:"ConsumerARN"`
	ShardID          *string           `json:"ShardId"`
	StartingPosition *startingPosition `json:"StartingPosition"`
}

func (r *subscribeRequest) validate() error {
	var v violations
	arnRule, shardRule := consumerARNRule, shardIDRule
	arnRule.required, shardRule.required = true, true
	v.str("consumerARN", r.ConsumerARN, arnRule)
	v.str("shardId", r.ShardID, shardRule)
	if p := r.StartingPosition; p == nil {
		v.null("startingPosition")
	} else {
		v.enum("startingPosition.type", p.Type, true,
			string(stream.AtSequenceNumber), string(stream.AfterSequenceNumber), string(stream.TrimHorizon),
			string(stream.Latest), string(stream.AtTimestamp))
		v.str("startingPosition.sequenceNumber", p.SequenceNumber, sequenceRule)
	}
	if err := v.err(); err != nil {
		return err
	}
	r.ShardID = normalizeShardID(r.ShardID)
	switch typ := *r.StartingPosition.Type; stream.IteratorType(typ) {
	case stream.AtSequenceNumber, stream.AfterSequenceNumber:
		if r.StartingPosition.SequenceNumber == nil {
			return invalidArgument("StartingPosition.SequenceNumber is required for a starting position of type %s.", typ)
		}
	case stream.AtTimestamp:
		if r.StartingPosition.Timestamp == nil {
			return invalidArgument("StartingPosition.Timestamp is required for a starting position of type %s.", typ)
		}
	}
	return nil
}

func (r *subscribeRequest) spec() stream.IteratorSpec {
	p := r.StartingPosition
	spec := stream.IteratorSpec{Type: stream.IteratorType(*p.Type)}
	switch spec.Type {
	case stream.AtSequenceNumber, stream.AfterSequenceNumber:
		spec.SequenceNumber = *p.SequenceNumber
	case stream.AtTimestamp:
		spec.Timestamp = p.Timestamp.Time
	}
	return spec
}

// subscribeToShard checks everything that can fail before the response
// starts, so those failures are ordinary error responses; the events are
// written by the returned shardSubscription.
func (h *Handler) subscribeToShard(_ context.Context, r *subscribeRequest) (any, error) {
	streamName, consumer, err := h.svc.ConsumerByARN(*r.ConsumerARN)
	if err != nil {
		return nil, err
	}
	iter, err := h.svc.ShardIterator(streamName, *r.ShardID, r.spec())
	if err != nil {
		return nil, err
	}
	key := subscriptionKey{stream: streamName, consumer: consumer.Name, shard: *r.ShardID}
	sub, err := h.fanout.start(key, h.now())
	if err != nil {
		return nil, err
	}
	return &shardSubscription{h: h, key: key, consumerARN: consumer.ARN, sub: sub, iter: iter}, nil
}

// SubscribeToShardEvent and its parts, as the Kinesis API reference names
// them.

type subscribeToShardEvent struct {
	Records                    []recordOut     `json:"Records"`
	ContinuationSequenceNumber *string         `json:"ContinuationSequenceNumber,omitempty"`
	MillisBehindLatest         int64           `json:"MillisBehindLatest"`
	ChildShards                []childShardOut `json:"ChildShards,omitempty"`
}

// tail is what the event holds after its records.
func (e *subscribeToShardEvent) tail() recordsTail {
	t := recordsTail{name: "ContinuationSequenceNumber", behind: e.MillisBehindLatest, children: e.ChildShards}
	if e.ContinuationSequenceNumber != nil {
		t.next, t.hasNext = *e.ContinuationSequenceNumber, true
	}
	return t
}

// appendJSON renders the event as encoding/json would, without its
// reflection: fan-out is a hot read path.
func (e *subscribeToShardEvent) appendJSON(b []byte) ([]byte, error) {
	if e.Records == nil {
		return e.tail().appendJSON(append(b, `{"Records":null`...))
	}
	b = append(b, recordsStart...)
	for i, r := range e.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRecordJSON(b, r.SequenceNumber, time.Time(r.ApproximateArrivalTimestamp), r.Data, r.PartitionKey)
	}
	return e.tail().appendJSON(append(b, ']'))
}

// appendCBOR renders the event as the CBOR encoder would, without its
// reflection: the Java SDK and the KCL read fan-out in CBOR.
func (e *subscribeToShardEvent) appendCBOR(b []byte) ([]byte, error) {
	t := e.tail()
	b = appendRecordsCBORStart(b, len(e.Records), e.Records == nil, t)
	for _, r := range e.Records {
		b = appendRecordCBOR(b, r.SequenceNumber, time.Time(r.ApproximateArrivalTimestamp), r.Data, r.PartitionKey)
	}
	return t.appendCBOR(b)
}

// shardSubscription is the streamed response of one SubscribeToShard call.
type shardSubscription struct {
	h           *Handler
	key         subscriptionKey
	consumerARN string
	sub         *subscription
	iter        string
}

var _ streamedResponse = (*shardSubscription)(nil)

func (s *shardSubscription) writeResponse(ctx context.Context, w http.ResponseWriter, c codec) {
	defer s.h.fanout.finish(s.key, s.sub)
	stopped, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.sub.stop:
			cancel(s.sub.cause)
		case <-stopped.Done():
		}
	}()
	ctx, cancelLifetime := context.WithTimeoutCause(stopped, s.h.fanout.lifetime, context.DeadlineExceeded)
	defer cancelLifetime()

	w.Header().Set("Content-Type", contentTypeEventStream)
	w.WriteHeader(http.StatusOK)
	ew := newEventWriter(w, c)
	if err := ew.event(eventInitialResponse, struct{}{}); err != nil {
		return
	}
	err := s.run(ctx, ew)
	if _, lost := errors.AsType[*eventWriteError](err); lost {
		return // the client cannot be told anything any more
	}
	switch cause := context.Cause(ctx); {
	case err == nil, errors.Is(cause, context.DeadlineExceeded), errors.Is(cause, errServerClosing), errors.Is(cause, http.ErrServerClosed):
		// The lifetime is over, the shard is closed and fully read, or
		// the server is stopping: the stream simply ends.
	case errors.Is(cause, context.Canceled):
		// The client went away.
	case errors.Is(cause, errSubscriptionTakenOver):
		_ = ew.exception(typeResourceInUse, "Another subscription for consumer "+s.key.consumer+" on shard "+s.key.shard+" has taken over this one.")
	case errors.Is(cause, errConsumerDeregistered):
		_ = ew.exception(typeResourceNotFound, "Consumer "+s.consumerARN+" was deregistered.")
	default:
		e, known := classify(err)
		typ := e.Type
		if !known || typ == typeInternalFailure {
			s.h.logger.Error("subscription failed", "stream", s.h.svc.LogName(s.key.stream), "consumer", s.key.consumer, "shard", s.key.shard, "err", err)
			typ = typeInternalFailureEvent
		}
		_ = ew.exception(typ, e.Msg)
	}
}

// run sends events until the shard ends (nil) or ctx is done or a read or
// write fails (an error).
func (s *shardSubscription) run(ctx context.Context, ew *eventWriter) error {
	svc, heartbeat := s.h.svc, s.h.fanout.heartbeat
	iter := s.iter
	var lastEvent time.Time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, _, err := svc.ConsumerByARN(s.consumerARN); err != nil {
			return err
		}
		res, err := svc.SubscriberRecords(ctx, iter, maxEventRecords)
		if err != nil {
			return err
		}
		ended := res.NextIterator == ""
		if len(res.Records) > 0 || ended || time.Since(lastEvent) >= heartbeat {
			ev, err := s.event(res, iter)
			if err != nil {
				return err
			}
			if err := ew.event("SubscribeToShardEvent", ev); err != nil {
				return &eventWriteError{err}
			}
			lastEvent = time.Now()
		}
		if ended {
			return nil
		}
		iter = res.NextIterator
		if len(res.Records) > 0 && res.MillisBehindLatest > 0 {
			continue // more to read at once
		}
		wait := heartbeat - time.Since(lastEvent)
		wctx, cancel := context.WithTimeout(ctx, wait)
		err = svc.WaitIterator(wctx, iter)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// event builds the event for one read; iter is the iterator the read used.
func (s *shardSubscription) event(res *stream.GetResult, iter string) (*subscribeToShardEvent, error) {
	ev := &subscribeToShardEvent{
		Records:            toRecordsOut(res.Records),
		MillisBehindLatest: res.MillisBehindLatest,
	}
	if res.NextIterator == "" {
		// The shard is closed and fully read: no continuation, and the
		// shards to read next.
		ev.ChildShards = toChildShardsOut(res.ChildShards)
		return ev, nil
	}
	cont, err := s.h.svc.ContinuationSequenceNumber(res.NextIterator)
	if err != nil {
		return nil, err
	}
	ev.ContinuationSequenceNumber = &cont
	return ev, nil
}

// eventWriteError is a failure to send an event: the client is gone.
type eventWriteError struct{ err error }

func (e *eventWriteError) Error() string { return "sending event: " + e.err.Error() }
func (e *eventWriteError) Unwrap() error { return e.err }
