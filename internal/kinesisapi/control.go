package kinesisapi

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel/internal/stream"
)

// controlEngine is what the stream-settings actions need from the engine.
// The settings are stored and reported; runnel does not encrypt with KMS
// or publish CloudWatch metrics.
type controlEngine interface {
	SetEncryption(ctx context.Context, name, encryptionType, keyID string) error
	SetMode(ctx context.Context, name, mode string) error
	SetMaxRecordSize(ctx context.Context, name string, kib int) error
	SetRecordDistribution(ctx context.Context, name, strategy string) error
	SetShardLevelMetrics(ctx context.Context, name string, metrics, all []string, enable bool) (before, after []string, err error)
}

// Shard-level metrics as Kinesis names them; metricAll enables or disables
// every one.
const metricAll = "ALL"

var shardLevelMetrics = []string{
	"IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
	"WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
	"IteratorAgeMilliseconds",
}

const (
	maxKeyIDLen = 2048
	// defaultOnDemandStreamLimit is the default quota of on-demand streams
	// per account that DescribeLimits reports.
	defaultOnDemandStreamLimit = 50
)

var (
	resourceARNPattern     = regexp.MustCompile(`^arn:aws.*:kinesis:.*:\d{12}:.+$`)
	resourceARNPatternText = `arn:aws.*:kinesis:.*:\d{12}:.+`
	resourceARNRule        = strRule{required: true, min: 1, max: maxARNLen, pattern: resourceARNPattern, patternText: resourceARNPatternText}
)

// enhancedMonitoring is the EnhancedMonitoring member of DescribeStream and
// DescribeStreamSummary: one entry listing the enabled metrics.
func enhancedMonitoring(d *stream.Description) []enhancedMetrics {
	m := d.ShardLevelMetrics
	if m == nil {
		m = []string{}
	}
	return []enhancedMetrics{{ShardLevelMetrics: m}}
}

// UpdateStreamMode

type updateStreamModeRequest struct {
	StreamARN         *string `json:"StreamARN"`
	StreamModeDetails *struct {
		StreamMode *string `json:"StreamMode"`
	} `json:"StreamModeDetails"`
	WarmThroughputMiBps *int `json:"WarmThroughputMiBps"`
}

func (r *updateStreamModeRequest) validate() error {
	var v violations
	v.str("streamARN", r.StreamARN, requiredARNRule)
	if r.StreamModeDetails == nil {
		v.null("streamModeDetails")
	} else {
		v.enum("streamModeDetails.streamMode", r.StreamModeDetails.StreamMode, true, stream.ModeProvisioned, stream.ModeOnDemand)
	}
	v.intRange("warmThroughputMiBps", r.WarmThroughputMiBps, false, 0, 10240)
	return v.err()
}

func (h *Handler) updateStreamMode(ctx context.Context, r *updateStreamModeRequest) (any, error) {
	name, err := h.svc.NameFromARN(*r.StreamARN)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.SetMode(ctx, name, *r.StreamModeDetails.StreamMode)
}

// StartStreamEncryption / StopStreamEncryption

type encryptionRequest struct {
	streamRef
	EncryptionType *string `json:"EncryptionType"`
	KeyID          *string `json:"KeyId"`
}

func (r *encryptionRequest) validate() error {
	var v violations
	r.check(&v)
	v.enum("encryptionType", r.EncryptionType, true, stream.EncryptionNone, stream.EncryptionKMS)
	v.str("keyId", r.KeyID, strRule{required: true, min: 1, max: maxKeyIDLen})
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

func (h *Handler) startEncryption(ctx context.Context, r *encryptionRequest) (any, error) {
	if *r.EncryptionType != stream.EncryptionKMS {
		return nil, invalidArgument("Encryption type %s is not valid for StartStreamEncryption; the only valid value is %s.", *r.EncryptionType, stream.EncryptionKMS)
	}
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.SetEncryption(ctx, name, stream.EncryptionKMS, *r.KeyID)
}

func (h *Handler) stopEncryption(ctx context.Context, r *encryptionRequest) (any, error) {
	if *r.EncryptionType != stream.EncryptionKMS {
		return nil, invalidArgument("Encryption type %s is not valid for StopStreamEncryption; the only valid value is %s.", *r.EncryptionType, stream.EncryptionKMS)
	}
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	d, err := h.svc.Describe(name)
	if err != nil {
		return nil, err
	}
	if d.EncryptionType == stream.EncryptionKMS && d.KeyID != *r.KeyID {
		return nil, invalidArgument("KeyId %s does not match the key %s the stream %s is encrypted with.", *r.KeyID, d.KeyID, h.plainName(name))
	}
	return nil, h.svc.SetEncryption(ctx, name, stream.EncryptionNone, "")
}

// Enable/DisableEnhancedMonitoring

type monitoringRequest struct {
	streamRef
	ShardLevelMetrics []string `json:"ShardLevelMetrics"`
}

func (r *monitoringRequest) validate() error {
	var v violations
	r.check(&v)
	v.count("shardLevelMetrics", javaList(r.ShardLevelMetrics), len(r.ShardLevelMetrics), r.ShardLevelMetrics != nil, true, 1, len(shardLevelMetrics))
	allowed := append(slices.Clone(shardLevelMetrics), metricAll)
	for _, m := range r.ShardLevelMetrics {
		if !slices.Contains(allowed, m) {
			v.add(javaList(r.ShardLevelMetrics), "shardLevelMetrics",
				"Member must satisfy constraint: [Member must satisfy enum value set: ["+strings.Join(allowed, ", ")+"]]")
			break
		}
	}
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

func (h *Handler) enableMonitoring(ctx context.Context, r *monitoringRequest) (any, error) {
	return h.setMonitoring(ctx, r, true)
}

func (h *Handler) disableMonitoring(ctx context.Context, r *monitoringRequest) (any, error) {
	return h.setMonitoring(ctx, r, false)
}

func (h *Handler) setMonitoring(ctx context.Context, r *monitoringRequest, enable bool) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	before, after, err := h.svc.SetShardLevelMetrics(ctx, name, r.ShardLevelMetrics, shardLevelMetrics, enable)
	if err != nil {
		return nil, err
	}
	if before == nil {
		before = []string{}
	}
	if after == nil {
		after = []string{}
	}
	return struct {
		StreamName               string   `json:"StreamName"`
		StreamARN                string   `json:"StreamARN"`
		CurrentShardLevelMetrics []string `json:"CurrentShardLevelMetrics"`
		DesiredShardLevelMetrics []string `json:"DesiredShardLevelMetrics"`
	}{h.plainName(name), h.svc.ARN(name), before, after}, nil
}

// DescribeLimits

type describeLimitsRequest struct{}

func (*describeLimitsRequest) validate() error { return nil }

func (h *Handler) describeLimits(_ context.Context, _ *describeLimitsRequest) (any, error) {
	open, onDemand := 0, 0
	for _, s := range h.svc.List() {
		d, err := h.svc.Describe(s.Name)
		if err != nil {
			continue // deleted since List
		}
		open += d.OpenShardCount
		if d.Mode == stream.ModeOnDemand {
			onDemand++
		}
	}
	return struct {
		ShardLimit               int `json:"ShardLimit"`
		OpenShardCount           int `json:"OpenShardCount"`
		OnDemandStreamCount      int `json:"OnDemandStreamCount"`
		OnDemandStreamCountLimit int `json:"OnDemandStreamCountLimit"`
	}{h.opts.shardLimit, open, onDemand, defaultOnDemandStreamLimit}, nil
}

// UpdateMaxRecordSize

type updateMaxRecordSizeRequest struct {
	StreamARN          *string `json:"StreamARN"`
	MaxRecordSizeInKiB *int    `json:"MaxRecordSizeInKiB"`
}

func (r *updateMaxRecordSizeRequest) validate() error {
	var v violations
	v.str("streamARN", r.StreamARN, requiredARNRule)
	v.intRange("maxRecordSizeInKiB", r.MaxRecordSizeInKiB, true, minRecordSizeKiB, maxRecordSizeKiB)
	return v.err()
}

func (h *Handler) updateMaxRecordSize(ctx context.Context, r *updateMaxRecordSizeRequest) (any, error) {
	name, err := h.svc.NameFromARN(*r.StreamARN)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.SetMaxRecordSize(ctx, name, *r.MaxRecordSizeInKiB)
}

// UpdateStreamRecordDistributionStrategy

type updateDistributionRequest struct {
	StreamARN                  *string `json:"StreamARN"`
	StreamID                   *string `json:"StreamId"`
	RecordDistributionStrategy *string `json:"RecordDistributionStrategy"`
}

func (r *updateDistributionRequest) validate() error {
	var v violations
	v.str("streamARN", r.StreamARN, requiredARNRule)
	v.enum("recordDistributionStrategy", r.RecordDistributionStrategy, true, stream.DistributionAuto, stream.DistributionUserPartitionKey)
	return v.err()
}

func (h *Handler) updateDistribution(ctx context.Context, r *updateDistributionRequest) (any, error) {
	name, err := h.svc.NameFromARN(*r.StreamARN)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.SetRecordDistribution(ctx, name, *r.RecordDistributionStrategy)
}

// recordDistribution is what DescribeStreamSummary reports of a stream's
// record distribution strategy: present only for an on-demand stream, as
// the API reference says.
func recordDistribution(d *stream.Description) string {
	if d.Mode != stream.ModeOnDemand {
		return ""
	}
	return d.RecordDistribution
}

// TagResource / UntagResource / ListTagsForResource name a stream by its
// ARN. Consumer ARNs are refused: the engine keeps no consumer tags.

// resourceStream resolves a ResourceARN to the stream it names.
func (h *Handler) resourceStream(arn string) (string, error) {
	if _, _, consumer := stream.SplitConsumerARN(arn); !arnPattern.MatchString(arn) || consumer {
		return "", invalidArgument("Resource %s is not a stream ARN; runnel tags streams and channels only.", arn)
	}
	return h.svc.NameFromARN(arn)
}

// resourceTags returns the tags of the stream or channel arn names.
func (h *Handler) resourceTags(arn string) (map[string]string, error) {
	if channelARNPattern.MatchString(arn) {
		c, err := h.svc.ChannelByARN(arn)
		return c.Config.Tags, err
	}
	name, err := h.resourceStream(arn)
	if err != nil {
		return nil, err
	}
	return h.svc.Tags(name)
}

type tagResourceRequest struct {
	ResourceARN *string           `json:"ResourceARN"`
	Tags        map[string]string `json:"Tags"`
}

func (r *tagResourceRequest) validate() error {
	var v violations
	v.str("resourceARN", r.ResourceARN, resourceARNRule)
	checkTagMap(&v, "tags", r.Tags, r.Tags != nil, true, 1, stream.MaxTagsPerStream)
	if err := v.err(); err != nil {
		return err
	}
	return checkTagChars(r.Tags)
}

func (h *Handler) tagResource(ctx context.Context, r *tagResourceRequest) (any, error) {
	if channelARNPattern.MatchString(*r.ResourceARN) {
		return nil, h.svc.AddChannelTags(ctx, *r.ResourceARN, r.Tags)
	}
	name, err := h.resourceStream(*r.ResourceARN)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.AddTags(ctx, name, r.Tags)
}

type untagResourceRequest struct {
	ResourceARN *string  `json:"ResourceARN"`
	TagKeys     []string `json:"TagKeys"`
}

func (r *untagResourceRequest) validate() error {
	var v violations
	v.str("resourceARN", r.ResourceARN, resourceARNRule)
	v.count("tagKeys", javaList(r.TagKeys), len(r.TagKeys), r.TagKeys != nil, true, 1, stream.MaxTagsPerStream)
	for i, k := range r.TagKeys {
		v.str(fmt.Sprintf("tagKeys.%d.member", i+1), &k, tagKeyRule)
	}
	return v.err()
}

func (h *Handler) untagResource(ctx context.Context, r *untagResourceRequest) (any, error) {
	if channelARNPattern.MatchString(*r.ResourceARN) {
		return nil, h.svc.RemoveChannelTags(ctx, *r.ResourceARN, r.TagKeys)
	}
	name, err := h.resourceStream(*r.ResourceARN)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.RemoveTags(ctx, name, r.TagKeys)
}

type listTagsForResourceRequest struct {
	ResourceARN *string `json:"ResourceARN"`
}

func (r *listTagsForResourceRequest) validate() error {
	var v violations
	v.str("resourceARN", r.ResourceARN, resourceARNRule)
	return v.err()
}

func (h *Handler) listTagsForResource(_ context.Context, r *listTagsForResourceRequest) (any, error) {
	tags, err := h.resourceTags(*r.ResourceARN)
	if err != nil {
		return nil, err
	}
	out := struct {
		Tags []tag `json:"Tags"`
	}{Tags: []tag{}}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out.Tags = append(out.Tags, tag{Key: k, Value: tags[k]})
	}
	return out, nil
}
