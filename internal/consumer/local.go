package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-dev/runnel/internal/stream"
)

// Local is a KinesisAPI over the stream engine of the same process (the
// pipelines of runnel serve): no HTTP, no JSON, and GetRecords waits for
// an append (up to Wait) instead of answering empty, so a record reaches
// its handler a few milliseconds after it is stored. Errors are the SDK's
// typed errors, as a client would see them.
type Local struct {
	Svc *stream.Service
	// Wait bounds how long GetRecords waits for a record before answering
	// empty. Default 1 s.
	Wait time.Duration
}

var (
	_ KinesisAPI = (*Local)(nil)
	_ longPoller = (*Local)(nil)
)

// longPoller is implemented by a KinesisAPI whose GetRecords waits for
// records itself; a reader then calls again at once after an empty answer
// instead of sleeping PollInterval.
type longPoller interface {
	longPolls() bool
}

func (l *Local) longPolls() bool { return true }

func (l *Local) name(name, arn *string) (string, error) {
	if n := aws.ToString(name); n != "" {
		return n, nil
	}
	n, err := l.Svc.NameFromARN(aws.ToString(arn))
	return n, sdkError(err)
}

// sdkError turns an engine error into the SDK error a client would get.
func sdkError(err error) error {
	if err == nil {
		return nil
	}
	msg := aws.String(err.Error())
	switch {
	case errors.Is(err, stream.ErrExpiredIterator):
		return &types.ExpiredIteratorException{Message: msg}
	case errors.Is(err, stream.ErrInvalidArgument):
		return &types.InvalidArgumentException{Message: msg}
	case errors.Is(err, stream.ErrNotFound):
		return &types.ResourceNotFoundException{Message: msg}
	case errors.Is(err, stream.ErrInUse):
		return &types.ResourceInUseException{Message: msg}
	case errors.Is(err, stream.ErrLimitExceeded):
		return &types.LimitExceededException{Message: msg}
	case errors.Is(err, stream.ErrThroughputExceeded):
		return &types.ProvisionedThroughputExceededException{Message: msg}
	}
	return err
}

// DescribeStreamSummary implements KinesisAPI.
func (l *Local) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	name, err := l.name(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	d, err := l.Svc.Describe(name)
	if err != nil {
		return nil, sdkError(err)
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName:              aws.String(d.Name),
		StreamARN:               aws.String(d.ARN),
		StreamStatus:            types.StreamStatus(d.Status),
		OpenShardCount:          aws.Int32(int32(d.OpenShardCount)),
		RetentionPeriodHours:    aws.Int32(int32(d.RetentionHours)),
		StreamCreationTimestamp: aws.Time(d.Created),
	}}, nil
}

// ListShards implements KinesisAPI (every shard in one page; filters are
// not supported).
func (l *Local) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	name, err := l.name(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	d, err := l.Svc.Describe(name)
	if err != nil {
		return nil, sdkError(err)
	}
	out := &kinesis.ListShardsOutput{Shards: make([]types.Shard, 0, len(d.Shards))}
	for _, s := range d.Shards {
		sh := types.Shard{
			ShardId:             aws.String(s.ID),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(s.StartingHashKey), EndingHashKey: aws.String(s.EndingHashKey)},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String(s.StartingSequenceNumber)},
		}
		if s.EndingSequenceNumber != "" {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String(s.EndingSequenceNumber)
		}
		if s.ParentShardID != "" {
			sh.ParentShardId = aws.String(s.ParentShardID)
		}
		if s.AdjacentParentShardID != "" {
			sh.AdjacentParentShardId = aws.String(s.AdjacentParentShardID)
		}
		out.Shards = append(out.Shards, sh)
	}
	return out, nil
}

// GetShardIterator implements KinesisAPI.
func (l *Local) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	name, err := l.name(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	spec := stream.IteratorSpec{
		Type:           stream.IteratorType(in.ShardIteratorType),
		SequenceNumber: aws.ToString(in.StartingSequenceNumber),
		Timestamp:      aws.ToTime(in.Timestamp),
	}
	it, err := l.Svc.ShardIterator(name, aws.ToString(in.ShardId), spec)
	if err != nil {
		return nil, sdkError(err)
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(it)}, nil
}

// GetRecords implements KinesisAPI. When the shard has nothing new it
// waits up to Wait for an append before answering.
func (l *Local) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	iter := aws.ToString(in.ShardIterator)
	limit := int(aws.ToInt32(in.Limit))
	if limit == 0 {
		limit = stream.MaxGetRecordsLimit
	}
	res, err := l.Svc.Records(ctx, iter, limit)
	if err != nil {
		return nil, sdkError(err)
	}
	if len(res.Records) == 0 && res.NextIterator != "" {
		wait := l.Wait
		if wait <= 0 {
			wait = time.Second
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		werr := l.Svc.WaitIterator(wctx, res.NextIterator)
		cancel()
		if werr == nil {
			if again, err := l.Svc.Records(ctx, res.NextIterator, limit); err == nil {
				res = again
			}
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	out := &kinesis.GetRecordsOutput{
		Records:            make([]types.Record, len(res.Records)),
		MillisBehindLatest: aws.Int64(res.MillisBehindLatest),
	}
	for i, r := range res.Records {
		out.Records[i] = types.Record{
			SequenceNumber:              aws.String(r.SequenceNumber),
			PartitionKey:                aws.String(r.PartitionKey),
			Data:                        r.Data,
			ApproximateArrivalTimestamp: aws.Time(r.ArrivalTime),
		}
	}
	if res.NextIterator != "" {
		out.NextShardIterator = aws.String(res.NextIterator)
	}
	for _, c := range res.ChildShards {
		out.ChildShards = append(out.ChildShards, types.ChildShard{
			ShardId:      aws.String(c.ShardID),
			ParentShards: c.ParentShards,
			HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(c.StartingHashKey), EndingHashKey: aws.String(c.EndingHashKey)},
		})
	}
	return out, nil
}
