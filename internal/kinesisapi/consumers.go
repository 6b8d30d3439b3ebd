package kinesisapi

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel/internal/stream"
)

// FanOutEngine is what enhanced fan-out needs from the stream engine:
// consumer registrations and waiting reads. *stream.Service satisfies it.
type FanOutEngine interface {
	RegisterConsumer(ctx context.Context, streamName, consumerName string, limit int) (stream.Consumer, error)
	DeregisterConsumer(ctx context.Context, streamName, consumerName, consumerARN string) error
	DescribeConsumer(streamName, consumerName, consumerARN string) (stream.Consumer, error)
	ListConsumers(streamName string) ([]stream.Consumer, error)
	ConsumerByARN(arn string) (string, stream.Consumer, error)
	WaitIterator(ctx context.Context, iterator string) error
	ContinuationSequenceNumber(iterator string) (string, error)
}

var _ FanOutEngine = (*stream.Service)(nil)

const (
	maxConsumerNameLen   = 128
	defaultListConsumers = 100
	consumerARNRegexpTxt = `^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+`
)

var (
	consumerARNRegexp = regexp.MustCompile(consumerARNRegexpTxt)
	consumerNameRule  = strRule{min: 1, max: maxConsumerNameLen, pattern: namePattern, patternText: namePatternText}
	consumerARNRule   = strRule{min: 1, max: maxARNLen, pattern: consumerARNRegexp, patternText: consumerARNRegexpTxt}
)

// consumerOut is the Consumer shape; consumerDescriptionOut adds the
// stream ARN for DescribeStreamConsumer.
type consumerOut struct {
	ConsumerName              string       `json:"ConsumerName"`
	ConsumerARN               string       `json:"ConsumerARN"`
	ConsumerStatus            string       `json:"ConsumerStatus"`
	ConsumerCreationTimestamp epochSeconds `json:"ConsumerCreationTimestamp"`
}

type consumerDescriptionOut struct {
	consumerOut
	StreamARN string `json:"StreamARN"`
}

func toConsumerOut(c stream.Consumer) consumerOut {
	return consumerOut{
		ConsumerName:              c.Name,
		ConsumerARN:               c.ARN,
		ConsumerStatus:            c.Status,
		ConsumerCreationTimestamp: epochSeconds(c.Created),
	}
}

// RegisterStreamConsumer

type registerConsumerRequest struct {
	StreamARN    *string           `json:"StreamARN"`
	ConsumerName *string           `json:"ConsumerName"`
	Tags         map[string]string `json:"Tags"`
}

func (r *registerConsumerRequest) validate() error {
	var v violations
	v.str("streamARN", r.StreamARN, requiredARNRule)
	rule := consumerNameRule
	rule.required = true
	v.str("consumerName", r.ConsumerName, rule)
	checkTagMap(&v, "tags", r.Tags, r.Tags != nil, false, 1, stream.MaxTagsPerStream)
	if err := v.err(); err != nil {
		return err
	}
	return checkTagChars(r.Tags)
}

func (h *Handler) registerConsumer(ctx context.Context, r *registerConsumerRequest) (any, error) {
	name, err := h.svc.NameFromARN(*r.StreamARN)
	if err != nil {
		return nil, err
	}
	advantage, err := h.advantage(name)
	if err != nil {
		return nil, err
	}
	c, err := h.svc.RegisterConsumer(ctx, name, *r.ConsumerName, h.ConsumerLimit(advantage))
	if err != nil {
		return nil, err
	}
	return struct {
		Consumer consumerOut `json:"Consumer"`
	}{toConsumerOut(c)}, nil
}

// consumerRef is how DeregisterStreamConsumer and DescribeStreamConsumer
// name a consumer: by ConsumerARN, or by StreamARN and ConsumerName.
type consumerRef struct {
	StreamARN    *string `json:"StreamARN"`
	ConsumerName *string `json:"ConsumerName"`
	ConsumerARN  *string `json:"ConsumerARN"`
}

func (r *consumerRef) validate() error {
	var v violations
	v.str("streamARN", r.StreamARN, streamARNRule)
	v.str("consumerName", r.ConsumerName, consumerNameRule)
	v.str("consumerARN", r.ConsumerARN, consumerARNRule)
	if err := v.err(); err != nil {
		return err
	}
	if r.ConsumerARN == nil && (r.StreamARN == nil || r.ConsumerName == nil) {
		return invalidArgument("Either ConsumerARN or both StreamARN and ConsumerName must be specified.")
	}
	return nil
}

// resolve returns the stream name, consumer name and consumer ARN the
// reference names; the ARN is "" when the consumer is named by stream and
// name. Parts given together must agree.
func (h *Handler) resolveConsumer(r *consumerRef) (streamName, consumerName, arn string, err error) {
	if r.ConsumerARN != nil {
		streamName, c, err := h.svc.ConsumerByARN(*r.ConsumerARN)
		if err != nil {
			return "", "", "", err
		}
		if r.ConsumerName != nil && *r.ConsumerName != c.Name {
			return "", "", "", invalidArgument("ConsumerName %s does not match the consumer %s.", *r.ConsumerName, *r.ConsumerARN)
		}
		if r.StreamARN != nil && *r.StreamARN != c.StreamARN {
			return "", "", "", invalidArgument("StreamARN %s does not match the consumer %s.", *r.StreamARN, *r.ConsumerARN)
		}
		return streamName, c.Name, c.ARN, nil
	}
	streamName, err = h.svc.NameFromARN(*r.StreamARN)
	if err != nil {
		return "", "", "", err
	}
	return streamName, *r.ConsumerName, "", nil
}

// DeregisterStreamConsumer

type deregisterConsumerRequest struct{ consumerRef }

func (h *Handler) deregisterConsumer(ctx context.Context, r *deregisterConsumerRequest) (any, error) {
	streamName, consumerName, arn, err := h.resolveConsumer(&r.consumerRef)
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeregisterConsumer(ctx, streamName, consumerName, arn); err != nil {
		return nil, err
	}
	h.fanout.endConsumer(streamName, consumerName)
	return nil, nil
}

// DescribeStreamConsumer

type describeConsumerRequest struct{ consumerRef }

func (h *Handler) describeConsumer(_ context.Context, r *describeConsumerRequest) (any, error) {
	streamName, consumerName, arn, err := h.resolveConsumer(&r.consumerRef)
	if err != nil {
		return nil, err
	}
	c, err := h.svc.DescribeConsumer(streamName, consumerName, arn)
	if err != nil {
		return nil, err
	}
	return struct {
		ConsumerDescription consumerDescriptionOut `json:"ConsumerDescription"`
	}{consumerDescriptionOut{toConsumerOut(c), c.StreamARN}}, nil
}

// ListStreamConsumers

type listConsumersRequest struct {
	StreamARN               *string    `json:"StreamARN"`
	NextToken               *string    `json:"NextToken"`
	MaxResults              *int       `json:"MaxResults"`
	StreamCreationTimestamp *epochTime `json:"StreamCreationTimestamp"`
}

func (r *listConsumersRequest) validate() error {
	var v violations
	v.str("streamARN", r.StreamARN, requiredARNRule)
	v.str("nextToken", r.NextToken, strRule{min: 1, max: maxTokenLen})
	v.intRange("maxResults", r.MaxResults, false, 1, maxListLimit)
	return v.err()
}

func (h *Handler) listConsumers(_ context.Context, r *listConsumersRequest) (any, error) {
	name, err := h.svc.NameFromARN(*r.StreamARN)
	if err != nil {
		return nil, err
	}
	after := ""
	if r.NextToken != nil {
		t, err := h.tokens.open(*r.NextToken, "consumers", h.now())
		if err != nil {
			return nil, err
		}
		if t.Stream != name {
			return nil, invalidArgument("The NextToken was issued for another stream.")
		}
		after = t.After
	}
	if r.StreamCreationTimestamp != nil {
		d, err := h.svc.Describe(name)
		if err != nil {
			return nil, err
		}
		if !d.Created.Equal(r.StreamCreationTimestamp.Time) {
			return nil, notFound("Stream %s created at %s not found.", name, r.StreamCreationTimestamp.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
		}
	}
	all, err := h.svc.ListConsumers(name)
	if err != nil {
		return nil, err
	}
	// Pages go in name order, so a token resumes correctly whatever was
	// registered or deregistered in between.
	slices.SortFunc(all, func(a, b stream.Consumer) int { return strings.Compare(a.Name, b.Name) })
	start, _ := slices.BinarySearchFunc(all, after, func(c stream.Consumer, name string) int {
		if c.Name <= name {
			return -1
		}
		return 1
	})
	limit := deref(r.MaxResults, defaultListConsumers)
	page := all[start:min(start+limit, len(all))]
	out := struct {
		Consumers []consumerOut `json:"Consumers"`
		NextToken string        `json:"NextToken,omitempty"`
	}{Consumers: make([]consumerOut, 0, len(page))}
	for _, c := range page {
		out.Consumers = append(out.Consumers, toConsumerOut(c))
	}
	if start+len(page) < len(all) {
		out.NextToken = h.tokens.seal(pageToken{Kind: "consumers", Stream: name, After: page[len(page)-1].Name, Issued: h.now().UnixMilli()})
	}
	return out, nil
}
