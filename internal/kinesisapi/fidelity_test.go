package kinesisapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

// TestShortShardIDs: Kinesis reads "7" and "shardId-7" as
// shardId-000000000007 wherever a shard is named.
func TestShortShardIDs(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.createStream(t, "short", 3)
	put := putData(t, e, "short", "k", []byte("x"))

	for _, id := range []string{"0", "1", "2", "shardId-0", "shardId-2", "shardId-00002", "000000000001"} {
		out, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("short"),
			ShardId: aws.String(id), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err, id)
		require.NotEmpty(t, aws.ToString(out.ShardIterator))
	}
	for _, id := range []string{"3", "shardId-3", "shardId-", "shard-0", "shardId-2147483648"} {
		_, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("short"),
			ShardId: aws.String(id), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		requireTyped[*types.ResourceNotFoundException](t, err)
	}

	// The record put is found through its shard's short id.
	short := aws.ToString(put.ShardId)[len("shardId-"):]
	it, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("short"),
		ShardId: aws.String(short), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: put.SequenceNumber})
	require.NoError(t, err)
	got, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, got.Records, 1)

	ls, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("short"), ExclusiveStartShardId: aws.String("shardId-0")})
	require.NoError(t, err)
	require.Len(t, ls.Shards, 2)
	require.Equal(t, "shardId-000000000001", aws.ToString(ls.Shards[0].ShardId))

	_, err = e.c.MergeShards(e.ctx, &kinesis.MergeShardsInput{StreamName: aws.String("short"),
		ShardToMerge: aws.String("shardId-1"), AdjacentShardToMerge: aws.String("2")})
	require.NoError(t, err)
	e.waitActive(t, "short")
	_, err = e.c.SplitShard(e.ctx, &kinesis.SplitShardInput{StreamName: aws.String("short"),
		ShardToSplit: aws.String("0"), NewStartingHashKey: aws.String("1000")})
	require.NoError(t, err)
	e.waitActive(t, "short")
	d, err := e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("short")})
	require.NoError(t, err)
	require.Len(t, d.StreamDescription.Shards, 6)
	require.Equal(t, "shardId-000000000001", aws.ToString(d.StreamDescription.Shards[3].ParentShardId))
	require.Equal(t, "shardId-000000000002", aws.ToString(d.StreamDescription.Shards[3].AdjacentParentShardId))
	require.Equal(t, "shardId-000000000000", aws.ToString(d.StreamDescription.Shards[4].ParentShardId))
}

// TestRefusedAsKinesisRefuses: requests Kinesis refuses with
// InvalidArgumentException are refused, not served.
func TestRefusedAsKinesisRefuses(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.createStream(t, "strict", 1)
	put := putData(t, e, "strict", "k", []byte("x"))
	shard := aws.String("shardId-000000000000")

	t.Run("a starting sequence number with LATEST or TRIM_HORIZON", func(t *testing.T) {
		for _, typ := range []types.ShardIteratorType{types.ShardIteratorTypeLatest, types.ShardIteratorTypeTrimHorizon} {
			_, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("strict"), ShardId: shard,
				ShardIteratorType: typ, StartingSequenceNumber: put.SequenceNumber})
			requireTyped[*types.InvalidArgumentException](t, err)
			require.ErrorContains(t, err, "Request specified "+string(typ)+" and also a StartingSequenceNumber")
		}
	})

	t.Run("AT_TIMESTAMP in the future", func(t *testing.T) {
		_, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("strict"), ShardId: shard,
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(time.Now().Add(time.Minute))})
		requireTyped[*types.InvalidArgumentException](t, err)
		require.ErrorContains(t, err, "timestampInMillis")
	})

	t.Run("tag characters", func(t *testing.T) {
		for _, bad := range []string{"a;b", "a\tb", "a\nb", "a,b", "50%", "a*b"} {
			_, err := e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("strict"), Tags: map[string]string{"k": bad}})
			requireTyped[*types.InvalidArgumentException](t, err)
			_, err = e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("strict"), Tags: map[string]string{bad: "v"}})
			requireTyped[*types.InvalidArgumentException](t, err)
			_, err = e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String("tagged"), ShardCount: aws.Int32(1),
				Tags: map[string]string{"k": bad}})
			requireTyped[*types.InvalidArgumentException](t, err)
		}
		good := map[string]string{"team name_1.x/y=z+w-v@u:t": "Zürich 東京 ٣"}
		_, err := e.c.AddTagsToStream(e.ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("strict"), Tags: good})
		require.NoError(t, err)
		tags, err := e.c.ListTagsForStream(e.ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("strict")})
		require.NoError(t, err)
		require.Len(t, tags.Tags, 1)
		require.Equal(t, good["team name_1.x/y=z+w-v@u:t"], aws.ToString(tags.Tags[0].Value))
	})

	t.Run("SplitShard leaving a child one hash key", func(t *testing.T) {
		for _, key := range []string{"0", "1", "340282366920938463463374607431768211455"} {
			_, err := e.c.SplitShard(e.ctx, &kinesis.SplitShardInput{StreamName: aws.String("strict"), ShardToSplit: shard, NewStartingHashKey: aws.String(key)})
			requireTyped[*types.InvalidArgumentException](t, err)
			require.ErrorContains(t, err, "greater than one plus the shard's StartingHashKey 0")
		}
	})

	t.Run("SequenceNumberForOrdering", func(t *testing.T) {
		for _, seq := range []string{"0", "1", "12345678901234567890"} {
			_, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("strict"), PartitionKey: aws.String("k"),
				Data: []byte("y"), SequenceNumberForOrdering: aws.String(seq)})
			requireTyped[*types.InvalidArgumentException](t, err)
			require.ErrorContains(t, err, "ExclusiveMinimumSequenceNumber "+seq+" used in PutRecord on stream strict")
		}
		out, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("strict"), PartitionKey: aws.String("k"),
			Data: []byte("y"), SequenceNumberForOrdering: put.SequenceNumber})
		require.NoError(t, err)
		require.Greater(t, aws.ToString(out.SequenceNumber), aws.ToString(put.SequenceNumber))
	})
}

// TestNoOutputIsEmptyBody: an operation with no output answers 200 with an
// empty body, which the SDK reads as success.
func TestNoOutputIsEmptyBody(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.createStream(t, "empty", 2)
	resp := call(t, e.srv, "AddTagsToStream", `{"StreamName":"empty","Tags":{"a":"b"}}`)
	require.Equal(t, http.StatusOK, resp.status)
	require.Nil(t, resp.body)
	require.Equal(t, "0", resp.header.Get("Content-Length"))
	resp = call(t, e.srv, "SplitShard", `{"StreamName":"empty","ShardToSplit":"shardId-0","NewStartingHashKey":"12345"}`)
	require.Equal(t, http.StatusOK, resp.status)
	require.Nil(t, resp.body)
	e.waitActive(t, "empty")
	_, err := e.c.RemoveTagsFromStream(e.ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: aws.String("empty"), TagKeys: []string{"a"}})
	require.NoError(t, err)
	_, err = e.c.MergeShards(e.ctx, &kinesis.MergeShardsInput{StreamName: aws.String("empty"),
		ShardToMerge: aws.String("shardId-000000000002"), AdjacentShardToMerge: aws.String("shardId-000000000003")})
	require.NoError(t, err)
}

// TestStreamIDAccepted: StreamId, which Kinesis reserves for future use on
// the actions that name a stream, is accepted and does not change which
// stream is named.
func TestStreamIDAccepted(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.createStream(t, "ids", 1)
	put, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("ids"), StreamId: aws.String("reserved"),
		PartitionKey: aws.String("k"), Data: []byte("x")})
	require.NoError(t, err)
	_, err = e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("ids"), StreamId: aws.String("reserved"),
		ShardId: put.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	_, err = e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("ids"), StreamId: aws.String("reserved")})
	require.NoError(t, err)
}
