package kinesisapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/stream"
)

func TestReshardingThroughTheSDK(t *testing.T) {
	e := start(t)
	e.createStream(t, "r", 2)
	for i := range 10 {
		putData(t, e, "r", fmt.Sprint("before", i), []byte(fmt.Sprint("before", i)))
	}
	before := time.Now()

	_, err := e.c.SplitShard(e.ctx, &kinesis.SplitShardInput{
		StreamName: aws.String("r"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("85070591730234615865843651857942052864"),
	})
	require.NoError(t, err)
	_, err = e.c.SplitShard(e.ctx, &kinesis.SplitShardInput{
		StreamName: aws.String("r"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("1"),
	})
	requireTyped[*types.InvalidArgumentException](t, err)
	_, err = e.c.SplitShard(e.ctx, &kinesis.SplitShardInput{
		StreamName: aws.String("r"), ShardToSplit: aws.String("shardId-000000000001"),
		NewStartingHashKey: aws.String("x1"),
	})
	requireAPIError(t, err, "ValidationException")

	_, err = e.c.MergeShards(e.ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String("r"), ShardToMerge: aws.String("shardId-000000000003"),
		AdjacentShardToMerge: aws.String("shardId-000000000001"),
	})
	require.NoError(t, err)
	_, err = e.c.MergeShards(e.ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String("r"), ShardToMerge: aws.String("shardId-000000000002"),
		AdjacentShardToMerge: aws.String("shardId-000000000004"),
	})
	require.NoError(t, err)

	up, err := e.c.UpdateShardCount(e.ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String("r"), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling,
	})
	require.NoError(t, err)
	require.Equal(t, int32(1), *up.CurrentShardCount)
	require.Equal(t, int32(2), *up.TargetShardCount)

	ls, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("r")})
	require.NoError(t, err)
	byID := map[string]types.Shard{}
	for _, s := range ls.Shards {
		byID[*s.ShardId] = s
	}
	require.Equal(t, "shardId-000000000000", *byID["shardId-000000000002"].ParentShardId)
	require.Equal(t, "shardId-000000000003", *byID["shardId-000000000004"].ParentShardId)
	require.Equal(t, "shardId-000000000001", *byID["shardId-000000000004"].AdjacentParentShardId)
	require.NotNil(t, byID["shardId-000000000000"].SequenceNumberRange.EndingSequenceNumber)
	require.Nil(t, byID["shardId-000000000006"].SequenceNumberRange.EndingSequenceNumber)

	latest, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("r"),
		ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	require.NoError(t, err)
	require.Equal(t, []string{"shardId-000000000006", "shardId-000000000007"}, shardIDs(latest.Shards))
	atTS, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("r"),
		ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(before)}})
	require.NoError(t, err)
	require.Equal(t, []string{"shardId-000000000000", "shardId-000000000001"}, shardIDs(atTS.Shards))
	horizon, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("r"),
		ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}})
	require.NoError(t, err)
	require.Equal(t, []string{"shardId-000000000000", "shardId-000000000001"}, shardIDs(horizon.Shards))

	// Reading shard 0 to its end yields no next iterator and its children.
	it, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("r"),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	iter := it.ShardIterator
	for range 100 {
		out, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		require.NoError(t, err)
		if out.NextShardIterator == nil {
			require.Len(t, out.ChildShards, 2)
			require.Equal(t, "shardId-000000000002", *out.ChildShards[0].ShardId)
			require.Equal(t, []string{"shardId-000000000000"}, out.ChildShards[0].ParentShards)
			require.NotNil(t, out.ChildShards[0].HashKeyRange)
			iter = nil
			break
		}
		iter = out.NextShardIterator
	}
	require.Nil(t, iter, "closed shard never ended")

	_, err = e.c.UpdateShardCount(e.ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String("r"), TargetShardCount: aws.Int32(5), ScalingType: types.ScalingTypeUniformScaling,
	})
	requireTyped[*types.LimitExceededException](t, err)
}

// With a transition delay a stream reports CREATING, then ACTIVE, and the
// SDK's waiter sees it through; while CREATING it lists no shards and is
// not found for reads and writes, as on Kinesis; a change while UPDATING
// is refused with ResourceInUseException; a retention period equal to the
// current one leaves the stream ACTIVE; a resharding keeps the old shards
// (listed, taking puts) until the stream is ACTIVE again, when the
// children appear.
func TestTransitionDelayThroughTheSDK(t *testing.T) {
	srv := kinesistest.StartConfig(t, stream.Config{NoSync: true, TransitionDelay: 2 * time.Second})
	c := srv.Client(t)
	ctx := t.Context()
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("t"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("t")})
	require.NoError(t, err)
	require.Equal(t, types.StreamStatusCreating, sum.StreamDescriptionSummary.StreamStatus)
	d, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("t")})
	require.NoError(t, err)
	require.Equal(t, types.StreamStatusCreating, d.StreamDescription.StreamStatus)
	require.NotNil(t, d.StreamDescription.Shards)
	require.Empty(t, d.StreamDescription.Shards, "Shards: [] while CREATING")
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("t"), PartitionKey: aws.String("k"), Data: []byte("x")})
	requireTyped[*types.ResourceNotFoundException](t, err)
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("t"), ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	requireTyped[*types.ResourceNotFoundException](t, err)

	w := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	require.NoError(t, w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("t")}, 10*time.Second))
	d, err = c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("t")})
	require.NoError(t, err)
	require.Len(t, d.StreamDescription.Shards, 1)

	_, err = c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("t"), RetentionPeriodHours: aws.Int32(24)})
	require.NoError(t, err)
	sum, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("t")})
	require.NoError(t, err)
	require.Equal(t, types.StreamStatusActive, sum.StreamDescriptionSummary.StreamStatus, "a no-op retention change stays ACTIVE")

	_, err = c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("t"), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling})
	require.NoError(t, err)
	_, err = c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("t"), ShardToSplit: aws.String("shardId-000000000001"), NewStartingHashKey: aws.String("1")})
	msg := requireAPIError(t, err, "ResourceInUseException")
	require.Contains(t, msg, "not ACTIVE, instead in state UPDATING")
	ls, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("t")})
	require.NoError(t, err)
	require.Len(t, ls.Shards, 1, "the old layout while UPDATING")
	put, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("t"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000000", aws.ToString(put.ShardId))

	require.NoError(t, w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("t")}, 10*time.Second))
	ls, err = c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("t")})
	require.NoError(t, err)
	require.Len(t, ls.Shards, 3, "the parent and its two children once ACTIVE")
	require.NotNil(t, ls.Shards[0].SequenceNumberRange.EndingSequenceNumber, "the parent is closed")
	put, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("t"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.NoError(t, err)
	require.NotEqual(t, "shardId-000000000000", aws.ToString(put.ShardId))
}
