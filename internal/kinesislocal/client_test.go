package kinesislocal

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/stream"
)

func TestLocalClientRoundTripAndWakeOnAppend(t *testing.T) {
	ctx := t.Context()
	svc, err := stream.Open(t.Context(), stream.Config{InMemory: true})
	require.NoError(t, err)
	defer svc.Close()
	c := New(svc)
	c.LongPoll = 10 * time.Second

	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	var inUse *types.ResourceInUseException
	require.True(t, errors.As(err, &inUse))

	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	require.Len(t, shards.Shards, 1)
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"),
		ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeLatest})
	require.NoError(t, err)

	// An empty read waits for the next append and returns it.
	got := make(chan *kinesis.GetRecordsOutput, 1)
	go func() {
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Error(err)
		}
		got <- out
	}()
	start := time.Now()
	put, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("hello")}}})
	require.NoError(t, err)
	require.Equal(t, int32(0), *put.FailedRecordCount)
	select {
	case out := <-got:
		require.Len(t, out.Records, 1)
		require.Equal(t, "hello", string(out.Records[0].Data))
		require.Equal(t, *put.Records[0].SequenceNumber, *out.Records[0].SequenceNumber)
		require.Less(t, time.Since(start), 5*time.Second)
	case <-time.After(10 * time.Second):
		t.Fatal("GetRecords did not wake on append")
	}

	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("garbage")})
	var invalid *types.InvalidArgumentException
	require.True(t, errors.As(err, &invalid))
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("missing")})
	var nf *types.ResourceNotFoundException
	require.True(t, errors.As(err, &nf))
}
