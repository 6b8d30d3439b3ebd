package kinesisapi_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/stream"
)

// TestMultiRegion: with WithMultiRegion the region a request is signed for
// scopes its stream names, as on Kinesis: the same name in two regions is
// two streams, each with its region in its ARN, listed only in its own
// region; an ARN reaches its stream from anywhere. Through the SDK.
func TestMultiRegion(t *testing.T) {
	t.Parallel()
	srv := kinesistest.StartConfig(t, stream.Config{NoSync: true, MultiRegion: true})
	ctx := t.Context()
	east := srv.Client(t)
	west := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(srv.URL), Region: "us-west-2",
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""), Retryer: kinesisclient.ConnectionRetryer(),
	})
	_, err := east.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = west.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(2)})
	require.NoError(t, err, "the same name in another region is another stream")
	_, err = west.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(2)})
	require.Contains(t, requireAPIError(t, err, "ResourceInUseException"), "Stream s under account 000000000000 already exists.")

	summary := func(c *kinesis.Client, in *kinesis.DescribeStreamSummaryInput) *types.StreamDescriptionSummary {
		t.Helper()
		out, err := c.DescribeStreamSummary(ctx, in)
		require.NoError(t, err)
		return out.StreamDescriptionSummary
	}
	e := summary(east, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	w := summary(west, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	require.Equal(t, "arn:aws:kinesis:us-east-1:000000000000:stream/s", aws.ToString(e.StreamARN))
	require.Equal(t, "arn:aws:kinesis:us-west-2:000000000000:stream/s", aws.ToString(w.StreamARN))
	require.Equal(t, "s", aws.ToString(w.StreamName))
	require.EqualValues(t, 1, aws.ToInt32(e.OpenShardCount))
	require.EqualValues(t, 2, aws.ToInt32(w.OpenShardCount))
	byARN := summary(east, &kinesis.DescribeStreamSummaryInput{StreamARN: w.StreamARN})
	require.EqualValues(t, 2, aws.ToInt32(byARN.OpenShardCount), "an ARN carries its region")

	_, err = west.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("only-west"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	for _, tc := range []struct {
		c    *kinesis.Client
		want []string
	}{{east, []string{"s"}}, {west, []string{"only-west", "s"}}} {
		out, err := tc.c.ListStreams(ctx, &kinesis.ListStreamsInput{})
		require.NoError(t, err)
		require.Equal(t, tc.want, out.StreamNames)
	}

	// Records go to the region's own stream.
	put, err := west.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("west")})
	require.NoError(t, err)
	it, err := west.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: put.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	got, err := west.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, got.Records, 1)
	require.Equal(t, "west", string(got.Records[0].Data))
	it, err = east.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	got, err = east.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Empty(t, got.Records)

	// Messages name a stream of another region by its plain name and account.
	_, err = west.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000009"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.Contains(t, requireAPIError(t, err, "ResourceNotFoundException"), "Shard shardId-000000000009 in stream s under account 000000000000 does not exist")
	_, err = west.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: w.StreamARN, ConsumerName: aws.String("nope")})
	require.Contains(t, requireAPIError(t, err, "ResourceNotFoundException"), "Consumer nope under stream s under account 000000000000 not found.")
	_, err = west.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: w.StreamARN, ConsumerName: aws.String("c")})
	require.NoError(t, err)
	_, err = west.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: w.StreamARN, ConsumerName: aws.String("c")})
	require.Contains(t, requireAPIError(t, err, "ResourceInUseException"), "Consumer c under stream s already exists for account 000000000000.")
	_, err = west.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000000")})
	require.NotContains(t, requireAPIError(t, err, "InvalidArgumentException"), "us-west-2/")
	_, err = west.StartStreamEncryption(ctx, &kinesis.StartStreamEncryptionInput{StreamName: aws.String("s"), EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/a")})
	require.NoError(t, err)
	_, err = west.StopStreamEncryption(ctx, &kinesis.StopStreamEncryptionInput{StreamName: aws.String("s"), EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/b")})
	require.Contains(t, requireAPIError(t, err, "InvalidArgumentException"), "the stream s is encrypted with")

	_, err = east.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("only-west")})
	require.Contains(t, requireAPIError(t, err, "ResourceNotFoundException"), "Stream only-west under account 000000000000 not found.")
	_, err = west.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s"), EnforceConsumerDeletion: aws.Bool(true)})
	require.NoError(t, err)
	summary(east, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
}
