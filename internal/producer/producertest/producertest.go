// Package producertest holds helpers for tests that produce into a real
// runnel server and read back what arrived.
package producertest

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/stream"
)

// StartLimited serves the Kinesis API on 127.0.0.1 from an engine that
// enforces the per-shard write limits of provisioned Kinesis (1000
// records/s and 1 MiB/s per shard), and returns its URL. Both stop when
// the test ends.
func StartLimited(t testing.TB) string {
	t.Helper()
	return kinesistest.StartConfig(t, stream.Config{
		NoSync:           true,
		ShardWriteLimits: true,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).URL
}

// CreateStream creates a provisioned stream with n shards and waits until
// it is active.
func CreateStream(t testing.TB, c *kinesis.Client, name string, n int32) {
	t.Helper()
	ctx := t.Context()
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(n)})
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(ct, err)
		require.Equal(ct, types.StreamStatusActive, out.StreamDescriptionSummary.StreamStatus)
	}, 10*time.Second, 10*time.Millisecond)
}

// ReadAll returns every record of every shard of the stream, shard by
// shard in ListShards order, each shard's records in sequence order.
func ReadAll(t testing.TB, c *kinesis.Client, stream string) []types.Record {
	t.Helper()
	var all []types.Record
	for _, s := range ReadShards(t, c, stream) {
		all = append(all, s.Records...)
	}
	return all
}

// Shard is one shard's records.
type Shard struct {
	ID      string
	Records []types.Record
}

// ReadShards returns the records of every shard, in ListShards order.
func ReadShards(t testing.TB, c *kinesis.Client, stream string) []Shard {
	t.Helper()
	ctx := t.Context()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	var out []Shard
	for _, s := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		sh := Shard{ID: aws.ToString(s.ShardId)}
		iter := it.ShardIterator
		for i := 0; iter != nil; i++ {
			require.Less(t, i, 100000, "shard %s never caught up", sh.ID)
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			require.NoError(t, err)
			sh.Records = append(sh.Records, out.Records...)
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
		out = append(out, sh)
	}
	return out
}
