package kinesisapi_test

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
)

// BenchmarkSubscribeToShardLatency measures how long a record takes from
// the start of its PutRecord call to its arrival in a SubscribeToShard
// event, one record at a time, both through aws-sdk-go-v2 over HTTP/1.1 on
// loopback with fsync off. It reports the 50th and 99th percentiles.
func BenchmarkSubscribeToShardLatency(b *testing.B) {
	srv := kinesistest.Start(b)
	c := srv.Client(b)
	ctx := b.Context()
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("bench"), ShardCount: aws.Int32(1)})
	require.NoError(b, err)
	reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(srv.Service.ARN("bench")), ConsumerName: aws.String("bench"),
	})
	require.NoError(b, err)
	out, err := subscriber(b, srv).SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest},
	})
	require.NoError(b, err)
	es := out.GetStream()
	defer es.Close()

	data := make([]byte, 100)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		put, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("bench"), PartitionKey: aws.String("k"), Data: data})
		require.NoError(b, err)
		seq := aws.ToString(put.SequenceNumber)
		for found := false; !found; {
			ev, ok := <-es.Events()
			require.True(b, ok, "stream ended: %v", es.Err())
			for _, r := range ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent).Value.Records {
				found = found || aws.ToString(r.SequenceNumber) == seq
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
