package kinesisapi_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

// TestRecordDistributionStrategy: an on-demand stream reports
// USER_PARTITION_KEY until UpdateStreamRecordDistributionStrategy sets
// AUTO, which then spreads records evenly over the open shards whatever
// their partition and explicit hash keys, refuses SequenceNumberForOrdering
// on PutRecord, and is refused for provisioned streams; through the SDK.
func TestRecordDistributionStrategy(t *testing.T) {
	t.Parallel()
	e := start(t)
	onDemand := &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}
	_, err := e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String("od"), StreamModeDetails: onDemand})
	require.NoError(t, err)
	e.createStream(t, "prov", 2)
	arn := func(name string) *string {
		sum, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(t, err)
		return sum.StreamDescriptionSummary.StreamARN
	}
	strategy := func(name string) types.RecordDistributionStrategy {
		sum, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(t, err)
		return sum.StreamDescriptionSummary.RecordDistributionStrategy
	}
	// perShard puts n records with one partition key and explicit hash key
	// and counts them by the shard they went to.
	perShard := func(name string, n int) map[string]int {
		var entries []types.PutRecordsRequestEntry
		for i := range n {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("same"), ExplicitHashKey: aws.String("0"), Data: fmt.Appendf(nil, "r%d", i)})
		}
		out, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
		counts := map[string]int{}
		for _, r := range out.Records {
			counts[aws.ToString(r.ShardId)]++
		}
		return counts
	}

	require.Equal(t, types.RecordDistributionStrategyUserPartitionKey, strategy("od"))
	require.Empty(t, strategy("prov"), "reported for on-demand streams only")
	require.Len(t, perShard("od", 40), 1, "one partition key, one shard")

	_, err = e.c.UpdateStreamRecordDistributionStrategy(e.ctx, &kinesis.UpdateStreamRecordDistributionStrategyInput{
		StreamARN: arn("od"), RecordDistributionStrategy: types.RecordDistributionStrategyAuto})
	require.NoError(t, err)
	require.Equal(t, types.RecordDistributionStrategyAuto, strategy("od"))
	require.Equal(t, map[string]int{
		"shardId-000000000000": 10, "shardId-000000000001": 10, "shardId-000000000002": 10, "shardId-000000000003": 10,
	}, perShard("od", 40), "AUTO spreads evenly, ignoring partition and explicit hash keys")
	seen := map[string]bool{}
	for range 4 {
		out, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("od"), PartitionKey: aws.String("same"), Data: []byte("x")})
		require.NoError(t, err)
		seen[aws.ToString(out.ShardId)] = true
	}
	require.Len(t, seen, 4, "PutRecord spreads too")
	first, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("od"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.NoError(t, err)
	_, err = e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("od"), PartitionKey: aws.String("k"), Data: []byte("x"),
		SequenceNumberForOrdering: first.SequenceNumber})
	requireTyped[*types.InvalidArgumentException](t, err)
	require.ErrorContains(t, err, "AUTO record distribution")

	_, err = e.c.UpdateStreamRecordDistributionStrategy(e.ctx, &kinesis.UpdateStreamRecordDistributionStrategyInput{
		StreamARN: arn("od"), RecordDistributionStrategy: types.RecordDistributionStrategyUserPartitionKey})
	require.NoError(t, err)
	require.Equal(t, types.RecordDistributionStrategyUserPartitionKey, strategy("od"))
	require.Len(t, perShard("od", 20), 1, "back to partition keys")

	_, err = e.c.UpdateStreamRecordDistributionStrategy(e.ctx, &kinesis.UpdateStreamRecordDistributionStrategyInput{
		StreamARN: arn("prov"), RecordDistributionStrategy: types.RecordDistributionStrategyAuto})
	requireTyped[*types.InvalidArgumentException](t, err)
	require.ErrorContains(t, err, "ON_DEMAND")
	_, err = e.c.UpdateStreamRecordDistributionStrategy(e.ctx, &kinesis.UpdateStreamRecordDistributionStrategyInput{
		StreamARN: arn("od"), RecordDistributionStrategy: "RANDOM"})
	requireAPIError(t, err, "ValidationException")

	// Set at creation, for on-demand streams only.
	_, err = e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String("auto"), StreamModeDetails: onDemand,
		RecordDistributionStrategy: types.RecordDistributionStrategyAuto})
	require.NoError(t, err)
	require.Equal(t, types.RecordDistributionStrategyAuto, strategy("auto"))
	_, err = e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String("p2"), ShardCount: aws.Int32(1),
		RecordDistributionStrategy: types.RecordDistributionStrategyAuto})
	requireTyped[*types.InvalidArgumentException](t, err)
}
