package kinesisapi

import (
	"context"
	"math"
	"sort"

	"github.com/runnel-dev/runnel/internal/stream"
)

// streamsEngine is the part of the engine the stream actions call.
type streamsEngine interface {
	CreateStream(ctx context.Context, name string, shardCount int, opts stream.CreateOptions) error
	DeleteStream(ctx context.Context, name string, enforceConsumerDeletion bool) error
	Describe(name string) (*stream.Description, error)
	List() []stream.Summary
	SetRetention(ctx context.Context, name string, hours int, increase bool) error
}

const (
	defaultOnDemandShards = 4
	minRecordSizeKiB      = 1024
	maxRecordSizeKiB      = 10240
	maxListLimit          = 10000
	defaultListLimit      = 100
	maxTokenLen           = 1048576
)

// CreateStream

type createStreamRequest struct {
	StreamName        *string `json:"StreamName"`
	ShardCount        *int    `json:"ShardCount"`
	StreamModeDetails *struct {
		StreamMode *string `json:"StreamMode"`
	} `json:"StreamModeDetails"`
	Tags                       map[string]string `json:"Tags"`
	MaxRecordSizeInKiB         *int              `json:"MaxRecordSizeInKiB"`
	RecordDistributionStrategy *string           `json:"RecordDistributionStrategy"`
}

func (r *createStreamRequest) mode() string {
	if r.StreamModeDetails == nil || r.StreamModeDetails.StreamMode == nil {
		return stream.ModeProvisioned
	}
	return *r.StreamModeDetails.StreamMode
}

func (r *createStreamRequest) validate() error {
	var v violations
	v.str("streamName", r.StreamName, strRule{required: true, min: 1, max: maxStreamNameLen, pattern: namePattern, patternText: namePatternText})
	v.intRange("shardCount", r.ShardCount, r.mode() == stream.ModeProvisioned, 1, math.MaxInt32)
	if r.StreamModeDetails != nil {
		v.enum("streamModeDetails.streamMode", r.StreamModeDetails.StreamMode, true, stream.ModeProvisioned, stream.ModeOnDemand)
	}
	checkTagMap(&v, "tags", r.Tags, r.Tags != nil, false, 0, stream.MaxTagsPerStream)
	v.intRange("maxRecordSizeInKiB", r.MaxRecordSizeInKiB, false, minRecordSizeKiB, maxRecordSizeKiB)
	v.enum("recordDistributionStrategy", r.RecordDistributionStrategy, false, stream.DistributionAuto, stream.DistributionUserPartitionKey)
	if err := v.err(); err != nil {
		return err
	}
	return checkTagChars(r.Tags)
}

func (h *Handler) createStream(ctx context.Context, r *createStreamRequest) (any, error) {
	shards := deref(r.ShardCount, defaultOnDemandShards)
	opts := stream.CreateOptions{
		Tags:             r.Tags,
		Mode:             r.mode(),
		MaxRecordSizeKiB: deref(r.MaxRecordSizeInKiB, 0),

		RecordDistribution: deref(r.RecordDistributionStrategy, ""),
	}
	return nil, h.svc.CreateStream(ctx, h.qualify(ctx, *r.StreamName), shards, opts)
}

// DeleteStream

type deleteStreamRequest struct {
	streamRef
	EnforceConsumerDeletion *bool `json:"EnforceConsumerDeletion"`
}

func (h *Handler) deleteStream(ctx context.Context, r *deleteStreamRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeleteStream(ctx, name, deref(r.EnforceConsumerDeletion, false)); err != nil {
		return nil, err
	}
	// The stream's consumers went with it: so do their subscriptions.
	h.fanout.endConsumer(name, "")
	return nil, nil
}

// DescribeStream

type describeStreamRequest struct {
	streamRef
	Limit                 *int    `json:"Limit"`
	ExclusiveStartShardID *string `json:"ExclusiveStartShardId"`
}

func (r *describeStreamRequest) validate() error {
	var v violations
	r.check(&v)
	v.intRange("limit", r.Limit, false, 1, maxListLimit)
	v.str("exclusiveStartShardId", r.ExclusiveStartShardID, shardIDRule)
	if err := v.err(); err != nil {
		return err
	}
	r.ExclusiveStartShardID = normalizeShardID(r.ExclusiveStartShardID)
	return r.require()
}

func (h *Handler) describeStream(ctx context.Context, r *describeStreamRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	d, err := h.svc.Describe(name)
	if err != nil {
		return nil, err
	}
	shards := shardsAfter(d.Shards, deref(r.ExclusiveStartShardID, ""))
	if d.Status == stream.StatusCreating {
		// Kinesis lists no shards until the stream is ACTIVE.
		shards = nil
	}
	limit := deref(r.Limit, defaultListLimit)
	more := len(shards) > limit
	if more {
		shards = shards[:limit]
	}
	return struct {
		StreamDescription streamDescription `json:"StreamDescription"`
	}{streamDescription{
		StreamName:              d.Name,
		StreamARN:               d.ARN,
		StreamStatus:            d.Status,
		StreamModeDetails:       streamModeDetails{StreamMode: d.Mode},
		Shards:                  toShardsOut(shards),
		HasMoreShards:           more,
		RetentionPeriodHours:    d.RetentionHours,
		StreamCreationTimestamp: epochSeconds(d.Created),
		EnhancedMonitoring:      enhancedMonitoring(d),
		EncryptionType:          encryptionType(d),
		KeyID:                   d.KeyID,
	}}, nil
}

// shardsAfter returns the shards whose id sorts after start ("" for all).
// Shard ids have a fixed width, so string order is numeric order.
func shardsAfter(shards []stream.Shard, start string) []stream.Shard {
	i := sort.Search(len(shards), func(i int) bool { return shards[i].ID > start })
	return shards[i:]
}

// DescribeStreamSummary

type describeStreamSummaryRequest struct {
	streamRef
}

func (h *Handler) describeStreamSummary(ctx context.Context, r *describeStreamSummaryRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	d, err := h.svc.Describe(name)
	if err != nil {
		return nil, err
	}
	warm, err := h.warmThroughput(name, d)
	if err != nil {
		return nil, err
	}
	return struct {
		StreamDescriptionSummary streamDescriptionSummary `json:"StreamDescriptionSummary"`
	}{streamDescriptionSummary{
		StreamName:              d.Name,
		StreamARN:               d.ARN,
		StreamStatus:            d.Status,
		StreamModeDetails:       streamModeDetails{StreamMode: d.Mode},
		RetentionPeriodHours:    d.RetentionHours,
		StreamCreationTimestamp: epochSeconds(d.Created),
		EnhancedMonitoring:      enhancedMonitoring(d),
		EncryptionType:          encryptionType(d),
		KeyID:                   d.KeyID,
		OpenShardCount:          d.OpenShardCount,
		ConsumerCount:           d.ConsumerCount,
		MaxRecordSizeInKiB:      d.MaxRecordSizeKiB,
		WarmThroughput:          warm,
		RecordDistribution:      recordDistribution(d),
	}}, nil
}

// ListStreams

type listStreamsRequest struct {
	Limit                    *int    `json:"Limit"`
	ExclusiveStartStreamName *string `json:"ExclusiveStartStreamName"`
	NextToken                *string `json:"NextToken"`
}

func (r *listStreamsRequest) validate() error {
	var v violations
	v.intRange("limit", r.Limit, false, 1, maxListLimit)
	v.str("exclusiveStartStreamName", r.ExclusiveStartStreamName, streamNameRule)
	v.str("nextToken", r.NextToken, strRule{min: 1, max: maxTokenLen})
	return v.err()
}

func (h *Handler) listStreams(ctx context.Context, r *listStreamsRequest) (any, error) {
	after := deref(r.ExclusiveStartStreamName, "")
	if r.NextToken != nil {
		t, err := h.tokens.open(*r.NextToken, "streams", h.now())
		if err != nil {
			return nil, err
		}
		after = t.After
	}
	// The streams of the request's account and region, by plain name.
	var all []stream.Summary
	for _, s := range h.svc.List() {
		if plain, ok := h.inScope(ctx, s.Name); ok {
			s.Name = plain
			all = append(all, s)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	i := sort.Search(len(all), func(i int) bool { return all[i].Name > after })
	page := all[i:]
	limit := deref(r.Limit, defaultListLimit)
	more := len(page) > limit
	if more {
		page = page[:limit]
	}
	out := struct {
		StreamNames     []string        `json:"StreamNames"`
		StreamSummaries []streamSummary `json:"StreamSummaries"`
		HasMoreStreams  bool            `json:"HasMoreStreams"`
		NextToken       string          `json:"NextToken,omitempty"`
	}{
		StreamNames:     make([]string, 0, len(page)),
		StreamSummaries: make([]streamSummary, 0, len(page)),
		HasMoreStreams:  more,
	}
	for _, s := range page {
		out.StreamNames = append(out.StreamNames, s.Name)
		out.StreamSummaries = append(out.StreamSummaries, streamSummary{
			StreamName:              s.Name,
			StreamARN:               s.ARN,
			StreamStatus:            s.Status,
			StreamModeDetails:       streamModeDetails{StreamMode: s.Mode},
			StreamCreationTimestamp: epochSeconds(s.Created),
		})
	}
	if more {
		out.NextToken = h.tokens.seal(pageToken{Kind: "streams", After: page[len(page)-1].Name, Issued: h.now().UnixMilli()})
	}
	return out, nil
}

// Increase/DecreaseStreamRetentionPeriod

type retentionRequest struct {
	streamRef
	RetentionPeriodHours *int `json:"RetentionPeriodHours"`
}

func (r *retentionRequest) validate() error {
	var v violations
	r.check(&v)
	if r.RetentionPeriodHours == nil {
		v.null("retentionPeriodHours")
	}
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

func (h *Handler) increaseRetention(ctx context.Context, r *retentionRequest) (any, error) {
	return nil, h.setRetention(ctx, r, true)
}

func (h *Handler) decreaseRetention(ctx context.Context, r *retentionRequest) (any, error) {
	return nil, h.setRetention(ctx, r, false)
}

func (h *Handler) setRetention(ctx context.Context, r *retentionRequest, increase bool) error {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return err
	}
	return h.svc.SetRetention(ctx, name, *r.RetentionPeriodHours, increase)
}
