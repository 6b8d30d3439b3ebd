package kinesisapi

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/runnel-dev/runnel/internal/stream"
)

// Channels: CreateChannel, DescribeChannel, ListChannels, UpdateChannel
// and DeleteChannel. The engine keeps a channel in its stream's metadata;
// the server's channel runner delivers it (internal/channel) and moves it
// from CREATING or UPDATING to ACTIVE (or FAILED), and removes it once
// DELETING.

// channelsEngine is the part of the engine the channel actions call.
type channelsEngine interface {
	CreateChannel(ctx context.Context, streamName, name string, cfg stream.ChannelConfig, limit int) (stream.Channel, error)
	ChannelByARN(arn string) (stream.Channel, error)
	Channels() []stream.Channel
	UpdateChannel(ctx context.Context, arn string, fn func(*stream.ChannelConfig)) (stream.Channel, error)
	DeleteChannel(ctx context.Context, arn string) error
	AddChannelTags(ctx context.Context, arn string, tags map[string]string) error
	RemoveChannelTags(ctx context.Context, arn string, keys []string) error
}

var _ channelsEngine = (*stream.Service)(nil)

const (
	maxChannelNameLen = 128
	// maxChannelsPerStream is Kinesis's quota of general purpose S3
	// channels on one stream.
	maxChannelsPerStream = 1
	// Data freshness bounds, in seconds, and its default.
	minDataFreshness     = 300
	maxDataFreshness     = 900
	defaultDataFreshness = 300
	defaultListChannels  = 100
	maxListChannels      = 100
	// Kinesis's default error prefix when DeadLetterQueueS3Configuration
	// names none.
	defaultErrorOutputPrefix = "errors/"
)

// Channel record formats, compression types and storage classes as the
// API reference lists them.
var (
	recordFormats   = []string{"GSR_JSON", "JSON", "STRING", "BYTE_ARRAY"}
	s3Compressions  = []string{"NONE", "GZIP", "ZSTD"}
	s3StorageClasss = []string{"STANDARD", "INTELLIGENT_TIERING", "GLACIER_IR"}
)

const (
	channelARNText   = `arn:aws.*:kinesis:.*:\d{12}:channel/[a-zA-Z0-9_.-]+/[0-9a-f-]+`
	roleARNText      = `arn:aws[a-z-]*:iam::\d{12}:role/\S+`
	bucketARNText    = `arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]`
	accountIDText    = `\d{12}`
	maxTemplateLen   = 1024
	maxKMSKeyIDLen   = 2048
	maxLogNameLen    = 512
	maxSchemaARNLen  = 2048
	channelTokenText = "channels:"
)

var (
	channelNameRule   = strRule{min: 1, max: maxChannelNameLen, pattern: namePattern, patternText: namePatternText}
	channelARNPattern = regexp.MustCompile(`^` + channelARNText + `$`)
	channelARNRule    = strRule{required: true, min: 1, max: maxARNLen, pattern: channelARNPattern, patternText: channelARNText}
	roleARNRule       = strRule{required: true, min: 1, max: maxARNLen, pattern: regexp.MustCompile(`^` + roleARNText + `$`), patternText: roleARNText}
	bucketARNRule     = strRule{required: true, min: 1, max: maxARNLen, pattern: regexp.MustCompile(`^` + bucketARNText + `$`), patternText: bucketARNText}
	accountIDRule     = strRule{required: true, min: 12, max: 12, pattern: regexp.MustCompile(`^` + accountIDText + `$`), patternText: accountIDText}
	templateRule      = strRule{min: 1, max: maxTemplateLen}
	logNameRule       = strRule{min: 1, max: maxLogNameLen}
)

// Request shapes.

type recordConfiguration struct {
	RecordFormatType *string `json:"RecordFormatType"`
	GSRSchemaARN     *string `json:"GSRSchemaARN,omitempty"`
}

type channelStreamConfiguration struct {
	StreamARN           *string              `json:"StreamARN"`
	RecordConfiguration *recordConfiguration `json:"RecordConfiguration"`
}

type s3StorageConfiguration struct {
	BucketARN           *string `json:"BucketARN"`
	CompressionType     *string `json:"CompressionType"`
	ExpectedBucketOwner *string `json:"ExpectedBucketOwner"`
	OutputKeyTemplate   *string `json:"OutputKeyTemplate,omitempty"`
	StorageClass        *string `json:"StorageClass,omitempty"`
}

type deadLetterQueueS3Configuration struct {
	BucketARN           *string `json:"BucketARN"`
	ExpectedBucketOwner *string `json:"ExpectedBucketOwner"`
	ErrorOutputPrefix   *string `json:"ErrorOutputPrefix,omitempty"`
}

type s3DestinationConfiguration struct {
	StorageConfiguration           *s3StorageConfiguration         `json:"StorageConfiguration"`
	DataFreshnessInSeconds         *int                            `json:"DataFreshnessInSeconds"`
	DeadLetterQueueS3Configuration *deadLetterQueueS3Configuration `json:"DeadLetterQueueS3Configuration"`
}

type channelEncryptionConfiguration struct {
	EncryptionType *string `json:"EncryptionType"`
	KeyID          *string `json:"KeyId"`
}

type cloudWatchLogs struct {
	Enabled       *bool   `json:"Enabled"`
	LogGroupName  *string `json:"LogGroupName,omitempty"`
	LogStreamName *string `json:"LogStreamName,omitempty"`
}

type channelLoggingConfiguration struct {
	CloudWatchLogs *cloudWatchLogs `json:"CloudWatchLogs"`
}

func (c *channelLoggingConfiguration) check(v *violations, field string) {
	if c == nil {
		return
	}
	if c.CloudWatchLogs == nil {
		v.null(field + ".cloudWatchLogs")
		return
	}
	if c.CloudWatchLogs.Enabled == nil {
		v.null(field + ".cloudWatchLogs.enabled")
	}
	v.str(field+".cloudWatchLogs.logGroupName", c.CloudWatchLogs.LogGroupName, logNameRule)
	v.str(field+".cloudWatchLogs.logStreamName", c.CloudWatchLogs.LogStreamName, logNameRule)
}

func (c *channelLoggingConfiguration) stored() *stream.ChannelLogging {
	if c == nil || c.CloudWatchLogs == nil {
		return nil
	}
	return &stream.ChannelLogging{
		Enabled:   deref(c.CloudWatchLogs.Enabled, false),
		LogGroup:  deref(c.CloudWatchLogs.LogGroupName, ""),
		LogStream: deref(c.CloudWatchLogs.LogStreamName, ""),
	}
}

// CreateChannel

type createChannelRequest struct {
	ChannelName                      *string                         `json:"ChannelName"`
	ServiceExecutionRoleARN          *string                         `json:"ServiceExecutionRoleARN"`
	StreamConfigurationList          []channelStreamConfiguration    `json:"StreamConfigurationList"`
	EncryptionConfiguration          *channelEncryptionConfiguration `json:"EncryptionConfiguration"`
	LoggingConfiguration             *channelLoggingConfiguration    `json:"LoggingConfiguration"`
	S3DestinationConfiguration       *s3DestinationConfiguration     `json:"S3DestinationConfiguration"`
	S3TablesDestinationConfiguration any                             `json:"S3TablesDestinationConfiguration"`
	Tags                             map[string]string               `json:"Tags"`
}

func (r *createChannelRequest) validate() error {
	var v violations
	rule := channelNameRule
	rule.required = true
	v.str("channelName", r.ChannelName, rule)
	v.str("serviceExecutionRoleARN", r.ServiceExecutionRoleARN, roleARNRule)
	v.count("streamConfigurationList", len(r.StreamConfigurationList), len(r.StreamConfigurationList), r.StreamConfigurationList != nil, true, 1, 1)
	for i, sc := range r.StreamConfigurationList {
		f := fmt.Sprintf("streamConfigurationList.%d.member", i+1)
		rule := streamARNRule
		rule.required = true
		v.str(f+".streamARN", sc.StreamARN, rule)
		if sc.RecordConfiguration == nil {
			v.null(f + ".recordConfiguration")
			continue
		}
		v.enum(f+".recordConfiguration.recordFormatType", sc.RecordConfiguration.RecordFormatType, true, recordFormats...)
		v.str(f+".recordConfiguration.gsrSchemaARN", sc.RecordConfiguration.GSRSchemaARN, strRule{min: 1, max: maxSchemaARNLen})
	}
	if e := r.EncryptionConfiguration; e != nil {
		v.enum("encryptionConfiguration.encryptionType", e.EncryptionType, true, "KMS")
		v.str("encryptionConfiguration.keyId", e.KeyID, strRule{required: true, min: 1, max: maxKMSKeyIDLen})
	}
	r.LoggingConfiguration.check(&v, "loggingConfiguration")
	if d := r.S3DestinationConfiguration; d != nil {
		if s := d.StorageConfiguration; s == nil {
			v.null("s3DestinationConfiguration.storageConfiguration")
		} else {
			v.str("s3DestinationConfiguration.storageConfiguration.bucketARN", s.BucketARN, bucketARNRule)
			v.enum("s3DestinationConfiguration.storageConfiguration.compressionType", s.CompressionType, true, s3Compressions...)
			v.str("s3DestinationConfiguration.storageConfiguration.expectedBucketOwner", s.ExpectedBucketOwner, accountIDRule)
			v.str("s3DestinationConfiguration.storageConfiguration.outputKeyTemplate", s.OutputKeyTemplate, templateRule)
			v.enum("s3DestinationConfiguration.storageConfiguration.storageClass", s.StorageClass, false, s3StorageClasss...)
		}
		if q := d.DeadLetterQueueS3Configuration; q != nil {
			v.str("s3DestinationConfiguration.deadLetterQueueS3Configuration.bucketARN", q.BucketARN, bucketARNRule)
			v.str("s3DestinationConfiguration.deadLetterQueueS3Configuration.expectedBucketOwner", q.ExpectedBucketOwner, accountIDRule)
			v.str("s3DestinationConfiguration.deadLetterQueueS3Configuration.errorOutputPrefix", q.ErrorOutputPrefix, templateRule)
		}
	}
	checkTagMap(&v, "tags", r.Tags, r.Tags != nil, false, 0, stream.MaxTagsPerStream)
	if err := v.err(); err != nil {
		return err
	}
	if err := checkTagChars(r.Tags); err != nil {
		return err
	}
	switch {
	case r.S3DestinationConfiguration != nil && r.S3TablesDestinationConfiguration != nil,
		r.S3DestinationConfiguration == nil && r.S3TablesDestinationConfiguration == nil:
		return invalidArgument("Specify either S3DestinationConfiguration or S3TablesDestinationConfiguration, but not both.")
	case r.S3TablesDestinationConfiguration != nil:
		return invalidArgument("S3TablesDestinationConfiguration (streaming tables on Apache Iceberg) is not supported by runnel; deliver to a general purpose bucket with S3DestinationConfiguration.")
	}
	if f := *r.StreamConfigurationList[0].RecordConfiguration.RecordFormatType; f == "GSR_JSON" {
		return invalidArgument("RecordFormatType GSR_JSON is supported only for S3 Tables destinations; use JSON, STRING or BYTE_ARRAY for an S3 destination.")
	}
	return checkFreshness(r.S3DestinationConfiguration.DataFreshnessInSeconds)
}

func checkFreshness(secs *int) error {
	if secs != nil && (*secs < minDataFreshness || *secs > maxDataFreshness) {
		return invalidArgument("DataFreshnessInSeconds %d is out of range: it must be between %d and %d seconds.", *secs, minDataFreshness, maxDataFreshness)
	}
	return nil
}

// config is the channel's configuration as stored, with Kinesis's
// defaults filled in.
func (r *createChannelRequest) config() stream.ChannelConfig {
	sc := r.StreamConfigurationList[0].RecordConfiguration
	d := r.S3DestinationConfiguration
	s := d.StorageConfiguration
	cfg := stream.ChannelConfig{
		RoleARN:      *r.ServiceExecutionRoleARN,
		RecordFormat: *sc.RecordFormatType,
		GSRSchemaARN: deref(sc.GSRSchemaARN, ""),
		S3: stream.ChannelS3{
			BucketARN:         *s.BucketARN,
			Compression:       *s.CompressionType,
			ExpectedOwner:     *s.ExpectedBucketOwner,
			OutputKeyTemplate: deref(s.OutputKeyTemplate, ""),
			StorageClass:      deref(s.StorageClass, "STANDARD"),
			FreshnessSeconds:  deref(d.DataFreshnessInSeconds, defaultDataFreshness),
			// Without a dead-letter queue, errors go to the destination
			// bucket under an error prefix.
			DLQBucketARN:      *s.BucketARN,
			DLQExpectedOwner:  *s.ExpectedBucketOwner,
			ErrorOutputPrefix: defaultErrorOutputPrefix,
		},
		Logging: r.LoggingConfiguration.stored(),
		Tags:    maps.Clone(r.Tags),
	}
	if q := d.DeadLetterQueueS3Configuration; q != nil {
		cfg.S3.DLQBucketARN, cfg.S3.DLQExpectedOwner = *q.BucketARN, *q.ExpectedBucketOwner
		cfg.S3.ErrorOutputPrefix = deref(q.ErrorOutputPrefix, defaultErrorOutputPrefix)
	}
	if e := r.EncryptionConfiguration; e != nil {
		cfg.EncryptionType, cfg.KeyID = *e.EncryptionType, *e.KeyID
	}
	return cfg
}

func (h *Handler) createChannel(ctx context.Context, r *createChannelRequest) (any, error) {
	streamName, err := h.svc.NameFromARN(*r.StreamConfigurationList[0].StreamARN)
	if err != nil {
		return nil, err
	}
	cfg := r.config()
	if h.opts.channelCheck != nil {
		if err := h.opts.channelCheck(cfg); err != nil {
			return nil, invalidArgument("%s", err.Error())
		}
	}
	c, err := h.svc.CreateChannel(ctx, streamName, *r.ChannelName, cfg, maxChannelsPerStream)
	if err != nil {
		return nil, err
	}
	return channelDescriptionOut{toChannelDescription(c)}, nil
}

// Response shapes.

type channelStreamDescription struct {
	StreamARN               string              `json:"StreamARN"`
	StreamCreationTimestamp epochSeconds        `json:"StreamCreationTimestamp"`
	RecordConfiguration     recordConfiguration `json:"RecordConfiguration"`
}

type s3DestinationDescription struct {
	StorageConfiguration           s3StorageConfiguration         `json:"StorageConfiguration"`
	DataFreshnessInSeconds         int                            `json:"DataFreshnessInSeconds"`
	DeadLetterQueueS3Configuration deadLetterQueueS3Configuration `json:"DeadLetterQueueS3Configuration"`
}

type channelDescription struct {
	ChannelName                string                          `json:"ChannelName"`
	ChannelARN                 string                          `json:"ChannelARN"`
	ChannelID                  string                          `json:"ChannelId"`
	ChannelStatus              string                          `json:"ChannelStatus"`
	ChannelStatusReason        string                          `json:"ChannelStatusReason,omitempty"`
	ChannelCreationTimestamp   epochSeconds                    `json:"ChannelCreationTimestamp"`
	ServiceExecutionRoleARN    string                          `json:"ServiceExecutionRoleARN"`
	StreamConfigurationList    []channelStreamDescription      `json:"StreamConfigurationList"`
	S3DestinationConfiguration s3DestinationDescription        `json:"S3DestinationConfiguration"`
	EncryptionConfiguration    *channelEncryptionConfiguration `json:"EncryptionConfiguration,omitempty"`
	LoggingConfiguration       *channelLoggingConfiguration    `json:"LoggingConfiguration,omitempty"`
}

type channelDescriptionOut struct {
	ChannelDescription channelDescription `json:"ChannelDescription"`
}

func ptr[T any](v T) *T { return &v }

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toChannelDescription(c stream.Channel) channelDescription {
	cfg := c.Config
	d := channelDescription{
		ChannelName: c.Name, ChannelARN: c.ARN, ChannelID: c.ID, ChannelStatus: c.Status,
		ChannelStatusReason: c.StatusReason, ChannelCreationTimestamp: epochSeconds(c.Created),
		ServiceExecutionRoleARN: cfg.RoleARN,
		StreamConfigurationList: []channelStreamDescription{{
			StreamARN: c.StreamARN, StreamCreationTimestamp: epochSeconds(c.StreamCreated),
			RecordConfiguration: recordConfiguration{RecordFormatType: ptr(cfg.RecordFormat), GSRSchemaARN: optional(cfg.GSRSchemaARN)},
		}},
		S3DestinationConfiguration: s3DestinationDescription{
			StorageConfiguration: s3StorageConfiguration{
				BucketARN: ptr(cfg.S3.BucketARN), CompressionType: ptr(cfg.S3.Compression),
				ExpectedBucketOwner: ptr(cfg.S3.ExpectedOwner), OutputKeyTemplate: optional(cfg.S3.OutputKeyTemplate),
				StorageClass: optional(cfg.S3.StorageClass),
			},
			DataFreshnessInSeconds: cfg.S3.FreshnessSeconds,
			DeadLetterQueueS3Configuration: deadLetterQueueS3Configuration{
				BucketARN: ptr(cfg.S3.DLQBucketARN), ExpectedBucketOwner: ptr(cfg.S3.DLQExpectedOwner),
				ErrorOutputPrefix: optional(cfg.S3.ErrorOutputPrefix),
			},
		},
	}
	if cfg.EncryptionType != "" {
		d.EncryptionConfiguration = &channelEncryptionConfiguration{EncryptionType: ptr(cfg.EncryptionType), KeyID: ptr(cfg.KeyID)}
	}
	if l := cfg.Logging; l != nil {
		d.LoggingConfiguration = &channelLoggingConfiguration{CloudWatchLogs: &cloudWatchLogs{
			Enabled: ptr(l.Enabled), LogGroupName: optional(l.LogGroup), LogStreamName: optional(l.LogStream),
		}}
	}
	return d
}

// DescribeChannel and DeleteChannel

type channelRef struct {
	ChannelARN *string `json:"ChannelARN"`
}

func (r *channelRef) validate() error {
	var v violations
	v.str("channelARN", r.ChannelARN, channelARNRule)
	return v.err()
}

func (h *Handler) describeChannel(_ context.Context, r *channelRef) (any, error) {
	c, err := h.svc.ChannelByARN(*r.ChannelARN)
	if err != nil {
		return nil, err
	}
	return channelDescriptionOut{toChannelDescription(c)}, nil
}

func (h *Handler) deleteChannel(ctx context.Context, r *channelRef) (any, error) {
	return nil, h.svc.DeleteChannel(ctx, *r.ChannelARN)
}

// UpdateChannel

type updateChannelRequest struct {
	ChannelARN                 *string                      `json:"ChannelARN"`
	LoggingConfiguration       *channelLoggingConfiguration `json:"LoggingConfiguration"`
	S3DestinationConfiguration *struct {
		DataFreshnessInSeconds *int `json:"DataFreshnessInSeconds"`
	} `json:"S3DestinationConfiguration"`
	S3TablesDestinationConfiguration any `json:"S3TablesDestinationConfiguration"`
}

func (r *updateChannelRequest) validate() error {
	var v violations
	v.str("channelARN", r.ChannelARN, channelARNRule)
	r.LoggingConfiguration.check(&v, "loggingConfiguration")
	if r.S3DestinationConfiguration != nil && r.S3DestinationConfiguration.DataFreshnessInSeconds == nil {
		v.null("s3DestinationConfiguration.dataFreshnessInSeconds")
	}
	if err := v.err(); err != nil {
		return err
	}
	if r.S3TablesDestinationConfiguration != nil {
		return invalidArgument("S3TablesDestinationConfiguration cannot update a channel that delivers to a general purpose bucket; use S3DestinationConfiguration.")
	}
	if r.S3DestinationConfiguration == nil && r.LoggingConfiguration == nil {
		return invalidArgument("Nothing to update: give S3DestinationConfiguration (DataFreshnessInSeconds) or LoggingConfiguration.")
	}
	if r.S3DestinationConfiguration != nil {
		return checkFreshness(r.S3DestinationConfiguration.DataFreshnessInSeconds)
	}
	return nil
}

func (h *Handler) updateChannel(ctx context.Context, r *updateChannelRequest) (any, error) {
	c, err := h.svc.UpdateChannel(ctx, *r.ChannelARN, func(cfg *stream.ChannelConfig) {
		if d := r.S3DestinationConfiguration; d != nil {
			cfg.S3.FreshnessSeconds = *d.DataFreshnessInSeconds
		}
		if l := r.LoggingConfiguration.stored(); l != nil {
			cfg.Logging = l
		}
	})
	if err != nil {
		return nil, err
	}
	return channelDescriptionOut{toChannelDescription(c)}, nil
}

// ListChannels

type streamFilter struct {
	StreamARN               *string    `json:"StreamARN"`
	StreamCreationTimestamp *epochTime `json:"StreamCreationTimestamp"`
}

type listChannelsRequest struct {
	MaxResults   *int           `json:"MaxResults"`
	NextToken    *string        `json:"NextToken"`
	StreamFilter []streamFilter `json:"StreamFilter"`
}

func (r *listChannelsRequest) validate() error {
	var v violations
	// More than 100 is taken as 100, as the API reference says.
	v.intRange("maxResults", r.MaxResults, false, 1, 1<<31-1)
	v.str("nextToken", r.NextToken, strRule{min: 1, max: 1048576})
	for i, f := range r.StreamFilter {
		rule := streamARNRule
		rule.required = true
		v.str(fmt.Sprintf("streamFilter.%d.member.streamARN", i+1), f.StreamARN, rule)
	}
	return v.err()
}

type channelSummary struct {
	ChannelName              string                    `json:"ChannelName"`
	ChannelARN               string                    `json:"ChannelARN"`
	ChannelID                string                    `json:"ChannelId"`
	ChannelStatus            string                    `json:"ChannelStatus"`
	ChannelStatusReason      string                    `json:"ChannelStatusReason,omitempty"`
	ChannelCreationTimestamp epochSeconds              `json:"ChannelCreationTimestamp"`
	ChannelDestinationType   string                    `json:"ChannelDestinationType"`
	Streams                  []channelStreamIdentifier `json:"Streams"`
}

type channelStreamIdentifier struct {
	StreamARN               string       `json:"StreamARN"`
	StreamCreationTimestamp epochSeconds `json:"StreamCreationTimestamp"`
}

// listChannels lists the channels of the request's account and region,
// as ListStreams lists its streams.
func (h *Handler) listChannels(ctx context.Context, r *listChannelsRequest) (any, error) {
	all := slices.DeleteFunc(h.svc.Channels(), func(c stream.Channel) bool {
		_, own := h.inScope(ctx, c.StreamName)
		return !own || len(r.StreamFilter) > 0 && !slices.ContainsFunc(r.StreamFilter, func(f streamFilter) bool {
			return *f.StreamARN == c.StreamARN &&
				(f.StreamCreationTimestamp == nil || f.StreamCreationTimestamp.UnixMilli() == c.StreamCreated.UnixMilli())
		})
	})
	start := 0
	if r.NextToken != nil {
		n, err := parseChannelToken(*r.NextToken)
		if err != nil {
			return nil, err
		}
		start = min(n, len(all))
	}
	limit := min(deref(r.MaxResults, defaultListChannels), maxListChannels)
	end := min(start+limit, len(all))
	out := struct {
		ChannelSummaries []channelSummary `json:"ChannelSummaries"`
		NextToken        *string          `json:"NextToken,omitempty"`
	}{ChannelSummaries: []channelSummary{}}
	for _, c := range all[start:end] {
		out.ChannelSummaries = append(out.ChannelSummaries, channelSummary{
			ChannelName: c.Name, ChannelARN: c.ARN, ChannelID: c.ID, ChannelStatus: c.Status,
			ChannelStatusReason: c.StatusReason, ChannelCreationTimestamp: epochSeconds(c.Created),
			ChannelDestinationType: "S3",
			Streams:                []channelStreamIdentifier{{StreamARN: c.StreamARN, StreamCreationTimestamp: epochSeconds(c.StreamCreated)}},
		})
	}
	if end < len(all) {
		out.NextToken = ptr(channelTokenText + strconv.Itoa(end))
	}
	return out, nil
}

func parseChannelToken(tok string) (int, error) {
	rest, ok := strings.CutPrefix(tok, channelTokenText)
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || n < 0 {
		return 0, invalidArgument("NextToken %q is not a token ListChannels returned.", tok)
	}
	return n, nil
}
