package stream

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Enhanced fan-out consumers. A consumer is a name registered on a stream;
// SubscribeToShard reads through it. Registrations are stored in the
// stream's metadata, so they survive restarts and vanish with the stream.

// Consumer statuses as Kinesis names them. A registration is ACTIVE as soon
// as RegisterConsumer returns; runnel has nothing to provision.
const (
	ConsumerCreating = "CREATING"
	ConsumerDeleting = "DELETING"
	ConsumerActive   = "ACTIVE"
)

const consumerARNInfix = "/consumer/"

// Consumer describes a registered consumer as DescribeStreamConsumer
// reports it.
type Consumer struct {
	Name      string
	ARN       string
	Status    string
	Created   time.Time
	StreamARN string
}

func (s *Service) consumer(stream string, m ConsumerMeta) Consumer {
	return Consumer{Name: m.Name, ARN: m.ARN, Status: ConsumerActive, Created: m.Created, StreamARN: s.ARN(stream)}
}

// consumerARN is the ARN Kinesis gives a consumer: the stream ARN, the
// consumer name and the registration time in epoch seconds, so a consumer
// registered again under the same name gets a new ARN.
func (s *Service) consumerARN(stream, name string, created time.Time) string {
	return s.ARN(stream) + consumerARNInfix + name + ":" + strconv.FormatInt(created.Unix(), 10)
}

// RegisterConsumer registers consumer name on a stream. ErrInUse when the
// stream already has a consumer of that name, ErrLimitExceeded when it
// already has limit consumers (0 for no limit), ErrNotFound without the
// stream.
func (s *Service) RegisterConsumer(ctx context.Context, streamName, name string, limit int) (Consumer, error) {
	var reg ConsumerMeta
	err := s.updateMeta(ctx, streamName, func(m *streamMeta) error {
		if slices.ContainsFunc(m.Consumers, func(c ConsumerMeta) bool { return c.Name == name }) {
			_, account, plain := s.SplitName(streamName)
			return newError(ErrInUse, "Consumer %s under stream %s already exists for account %s.", name, plain, account)
		}
		if limit > 0 && len(m.Consumers) >= limit {
			return newError(ErrLimitExceeded, "Stream %s has reached its limit of %d registered consumers.", s.InAccount(streamName), limit)
		}
		created := s.now().UTC().Truncate(time.Second)
		reg = ConsumerMeta{Name: name, ARN: s.consumerARN(streamName, name, created), Created: created}
		m.Consumers = append(slices.Clone(m.Consumers), reg)
		return nil
	})
	if err != nil {
		return Consumer{}, err
	}
	s.log.Info("consumer registered", "stream", s.LogName(streamName), "consumer", name)
	return s.consumer(streamName, reg), nil
}

// DeregisterConsumer removes a consumer, named either by stream and
// consumer name or by consumer ARN (arn non-empty). ErrNotFound when there
// is no such consumer.
func (s *Service) DeregisterConsumer(ctx context.Context, streamName, name, arn string) error {
	if arn != "" {
		sn, c, err := s.ConsumerByARN(arn)
		if err != nil {
			return err
		}
		streamName, name = sn, c.Name
	}
	err := s.updateMeta(ctx, streamName, func(m *streamMeta) error {
		i := slices.IndexFunc(m.Consumers, func(c ConsumerMeta) bool {
			return c.Name == name && (arn == "" || c.ARN == arn)
		})
		if i < 0 {
			return s.consumerNotFound(streamName, name)
		}
		m.Consumers = slices.Delete(slices.Clone(m.Consumers), i, i+1)
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("consumer deregistered", "stream", s.LogName(streamName), "consumer", name)
	return nil
}

// DescribeConsumer returns a consumer named by stream and consumer name or
// by consumer ARN (arn non-empty).
func (s *Service) DescribeConsumer(streamName, name, arn string) (Consumer, error) {
	if arn != "" {
		_, c, err := s.ConsumerByARN(arn)
		return c, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(streamName)
	if err != nil {
		return Consumer{}, err
	}
	for _, c := range st.meta.Consumers {
		if c.Name == name {
			return s.consumer(streamName, c), nil
		}
	}
	return Consumer{}, s.consumerNotFound(streamName, name)
}

// ListConsumers returns a stream's consumers in registration order.
func (s *Service) ListConsumers(streamName string) ([]Consumer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(streamName)
	if err != nil {
		return nil, err
	}
	out := make([]Consumer, 0, len(st.meta.Consumers))
	for _, c := range st.meta.Consumers {
		out = append(out, s.consumer(streamName, c))
	}
	return out, nil
}

// SplitConsumerARN cuts a consumer ARN (see consumerARN) into the ARN of
// its stream and the rest, "name:seconds"; ok is false when arn is no
// consumer ARN. It is the one reader of consumer ARNs: the stream part
// resolves through NameFromARN, as every stream ARN does.
func SplitConsumerARN(arn string) (streamARN, consumer string, ok bool) {
	return strings.Cut(arn, consumerARNInfix)
}

// ConsumerByARN resolves a consumer ARN to its stream's name and the
// consumer. ErrInvalidArgument when arn is not a consumer ARN, ErrNotFound
// when the stream or consumer does not exist (a consumer registered again
// under the same name has a new ARN; the old one is not found).
func (s *Service) ConsumerByARN(arn string) (string, Consumer, error) {
	streamPart, consumerPart, ok := SplitConsumerARN(arn)
	name, _, hasTime := strings.Cut(consumerPart, ":")
	if !ok || !hasTime || name == "" {
		return "", Consumer{}, newError(ErrInvalidArgument, "%s is not a valid Kinesis consumer ARN.", arn)
	}
	streamName, err := s.NameFromARN(streamPart)
	if err != nil {
		return "", Consumer{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(streamName)
	if err != nil {
		return "", Consumer{}, err
	}
	for _, c := range st.meta.Consumers {
		if c.ARN == arn {
			return streamName, s.consumer(streamName, c), nil
		}
	}
	return "", Consumer{}, s.consumerARNNotFound(streamName, arn)
}

// consumerARNNotFound is ResourceNotFoundException for a consumer ARN of
// the stream named stream.
func (s *Service) consumerARNNotFound(stream, arn string) error {
	_, account, _ := s.SplitName(stream)
	return newError(ErrNotFound, "Consumer %s under account %s not found.", arn, account)
}

func (s *Service) consumerNotFound(stream, name string) error {
	return newError(ErrNotFound, "Consumer %s under stream %s not found.", name, s.InAccount(stream))
}

// ContinuationSequenceNumber is the sequence number a subscriber reading
// from iterator reports as its progress: a reader that starts
// AFTER_SEQUENCE_NUMBER it reads exactly what iterator would. It is the
// largest sequence number of the iterator's shard below the iterator's
// position (the last record read, when one was), or the shard's lowest
// possible number when nothing can precede the position.
func (s *Service) ContinuationSequenceNumber(iter string) (string, error) {
	it, ok := decodeIterator(s.secret, iter)
	if !ok {
		return "", newError(ErrInvalidArgument, "Invalid ShardIterator.")
	}
	ms, counter := seqMillis(it.pos), seqCounter(it.pos)
	switch {
	case seqShard(it.pos) != it.shard:
		// A position one past the largest counter of a millisecond; its
		// predecessor is that largest number.
		return seqString(it.pos.sub1()), nil
	case counter > 0:
		return seqString(makeSeq(ms, it.shard, counter-1)), nil
	case ms > 0:
		return seqString(makeSeq(ms-1, it.shard, seqCounterMask)), nil
	default:
		return seqString(seqFloor(0, it.shard)), nil
	}
}
