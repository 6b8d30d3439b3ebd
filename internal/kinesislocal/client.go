// Package kinesislocal serves the Kinesis calls of runnel's own consumers
// and producers straight from the in-process stream engine, with the
// aws-sdk-go-v2 types they already use, so pipelines inside `runnel serve`
// skip HTTP and wake on append instead of polling.
package kinesislocal

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-dev/runnel/internal/stream"
)

// DefaultLongPoll is how long GetRecords waits for a record to arrive when
// the shard has none after the iterator.
const DefaultLongPoll = time.Second

// Client implements the SDK calls runnel's runtime and producers make,
// against a *stream.Service. It is safe for concurrent use.
type Client struct {
	svc *stream.Service
	// LongPoll bounds how long an empty GetRecords waits for the next
	// append; 0 returns at once, as Kinesis does.
	LongPoll time.Duration
}

// New returns a Client over svc with DefaultLongPoll.
func New(svc *stream.Service) *Client {
	return &Client{svc: svc, LongPoll: DefaultLongPoll}
}

func (c *Client) name(name, arn *string) (string, error) {
	if arn != nil && *arn != "" {
		return c.svc.NameFromARN(*arn)
	}
	return aws.ToString(name), nil
}

// describe describes the stream a request names, with the SDK's errors.
func (c *Client) describe(streamName, arn *string) (*stream.Description, error) {
	name, err := c.name(streamName, arn)
	if err != nil {
		return nil, sdkError(err)
	}
	d, err := c.svc.Describe(name)
	if err != nil {
		return nil, sdkError(err)
	}
	return d, nil
}

// DescribeStreamSummary implements the SDK call.
func (c *Client) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	d, err := c.describe(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName:              aws.String(d.Name),
		StreamARN:               aws.String(d.ARN),
		StreamStatus:            types.StreamStatus(d.Status),
		StreamModeDetails:       &types.StreamModeDetails{StreamMode: types.StreamMode(d.Mode)},
		RetentionPeriodHours:    aws.Int32(int32(d.RetentionHours)),
		StreamCreationTimestamp: aws.Time(d.Created),
		OpenShardCount:          aws.Int32(int32(d.OpenShardCount)),
		ConsumerCount:           aws.Int32(int32(d.ConsumerCount)),
		EncryptionType:          types.EncryptionType(d.EncryptionType),
		EnhancedMonitoring:      []types.EnhancedMetrics{{}},
	}}, nil
}

// ListShards implements the SDK call, answering every shard in one page
// (filters other than AT_LATEST are not needed by runnel's runtime and are
// ignored).
func (c *Client) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	d, err := c.describe(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	out := &kinesis.ListShardsOutput{}
	latest := in.ShardFilter != nil && in.ShardFilter.Type == types.ShardFilterTypeAtLatest
	for _, s := range d.Shards {
		if latest && s.EndingSequenceNumber != "" {
			continue
		}
		sh := types.Shard{
			ShardId: aws.String(s.ID),
			HashKeyRange: &types.HashKeyRange{
				StartingHashKey: aws.String(s.StartingHashKey), EndingHashKey: aws.String(s.EndingHashKey),
			},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String(s.StartingSequenceNumber)},
		}
		if s.ParentShardID != "" {
			sh.ParentShardId = aws.String(s.ParentShardID)
		}
		if s.AdjacentParentShardID != "" {
			sh.AdjacentParentShardId = aws.String(s.AdjacentParentShardID)
		}
		if s.EndingSequenceNumber != "" {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String(s.EndingSequenceNumber)
		}
		out.Shards = append(out.Shards, sh)
	}
	return out, nil
}

// GetShardIterator implements the SDK call.
func (c *Client) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	name, err := c.name(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, sdkError(err)
	}
	spec := stream.IteratorSpec{
		Type:           stream.IteratorType(in.ShardIteratorType),
		SequenceNumber: aws.ToString(in.StartingSequenceNumber),
		Timestamp:      aws.ToTime(in.Timestamp),
	}
	it, err := c.svc.ShardIterator(name, aws.ToString(in.ShardId), spec)
	if err != nil {
		return nil, sdkError(err)
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(it)}, nil
}

// GetRecords implements the SDK call. When the shard has nothing after the
// iterator it waits up to LongPoll for an append before answering.
func (c *Client) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	limit := int(aws.ToInt32(in.Limit))
	if limit == 0 {
		limit = stream.MaxGetRecordsLimit
	}
	res, err := c.svc.Records(ctx, aws.ToString(in.ShardIterator), limit)
	if err != nil {
		return nil, sdkError(err)
	}
	if len(res.Records) == 0 && res.NextIterator != "" && c.LongPoll > 0 {
		wctx, cancel := context.WithTimeout(ctx, c.LongPoll)
		werr := c.svc.WaitIterator(wctx, res.NextIterator)
		cancel()
		if werr == nil {
			if again, err := c.svc.Records(ctx, res.NextIterator, limit); err == nil {
				res = again
			}
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(res.MillisBehindLatest)}
	if res.NextIterator != "" {
		out.NextShardIterator = aws.String(res.NextIterator)
	}
	out.Records = make([]types.Record, len(res.Records))
	for i, r := range res.Records {
		out.Records[i] = types.Record{
			SequenceNumber:              aws.String(r.SequenceNumber),
			PartitionKey:                aws.String(r.PartitionKey),
			Data:                        r.Data,
			ApproximateArrivalTimestamp: aws.Time(r.ArrivalTime),
		}
	}
	for _, ch := range res.ChildShards {
		out.ChildShards = append(out.ChildShards, types.ChildShard{
			ShardId:      aws.String(ch.ShardID),
			ParentShards: ch.ParentShards,
			HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(ch.StartingHashKey), EndingHashKey: aws.String(ch.EndingHashKey)},
		})
	}
	return out, nil
}

// PutRecords implements the SDK call.
func (c *Client) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	name, err := c.name(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, sdkError(err)
	}
	recs := make([]stream.PutInput, len(in.Records))
	for i, r := range in.Records {
		recs[i] = stream.PutInput{PartitionKey: aws.ToString(r.PartitionKey), ExplicitHashKey: aws.ToString(r.ExplicitHashKey), Data: r.Data}
	}
	res, err := c.svc.Put(ctx, name, recs)
	if err != nil {
		return nil, sdkError(err)
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(res)), EncryptionType: types.EncryptionTypeNone}
	failed := int32(0)
	for i, r := range res {
		if r.ErrorCode != "" {
			failed++
			out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(r.ErrorCode), ErrorMessage: aws.String(r.ErrorMessage)}
			continue
		}
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(r.ShardID), SequenceNumber: aws.String(r.SequenceNumber)}
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

// CreateStream implements the SDK call.
func (c *Client) CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, _ ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error) {
	opts := stream.CreateOptions{Tags: in.Tags, MaxRecordSizeKiB: int(aws.ToInt32(in.MaxRecordSizeInKiB))}
	shards := int(aws.ToInt32(in.ShardCount))
	if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode == types.StreamModeOnDemand {
		opts.Mode = stream.ModeOnDemand
		if shards == 0 {
			shards = 4
		}
	}
	if err := c.svc.CreateStream(ctx, aws.ToString(in.StreamName), shards, opts); err != nil {
		return nil, sdkError(err)
	}
	return &kinesis.CreateStreamOutput{}, nil
}

// IncreaseStreamRetentionPeriod implements the SDK call.
func (c *Client) IncreaseStreamRetentionPeriod(ctx context.Context, in *kinesis.IncreaseStreamRetentionPeriodInput, _ ...func(*kinesis.Options)) (*kinesis.IncreaseStreamRetentionPeriodOutput, error) {
	name, err := c.name(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, sdkError(err)
	}
	if err := c.svc.SetRetention(ctx, name, int(aws.ToInt32(in.RetentionPeriodHours)), true); err != nil {
		return nil, sdkError(err)
	}
	return &kinesis.IncreaseStreamRetentionPeriodOutput{}, nil
}

// sdkError turns an engine error into the SDK's typed error, so callers
// handle it exactly as they handle one from a remote endpoint.
func sdkError(err error) error {
	msg := aws.String(err.Error())
	switch {
	case errors.Is(err, stream.ErrNotFound):
		return &types.ResourceNotFoundException{Message: msg}
	case errors.Is(err, stream.ErrInUse):
		return &types.ResourceInUseException{Message: msg}
	case errors.Is(err, stream.ErrInvalidArgument):
		return &types.InvalidArgumentException{Message: msg}
	case errors.Is(err, stream.ErrLimitExceeded):
		return &types.LimitExceededException{Message: msg}
	case errors.Is(err, stream.ErrExpiredIterator):
		return &types.ExpiredIteratorException{Message: msg}
	case errors.Is(err, stream.ErrThroughputExceeded):
		return &types.ProvisionedThroughputExceededException{Message: msg}
	}
	return err
}
