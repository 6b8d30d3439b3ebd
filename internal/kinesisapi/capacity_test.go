package kinesisapi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/stream"
)

// TestOnDemandWriteCapacity: under AWS limits an on-demand stream takes
// 4,000 records a second at first, scales to double its peak 15 minutes
// after the peak, and takes its warm throughput at once while the
// account's commitment is in force; setting warm throughput releases what
// peaks taught it. DescribeStreamSummary reports
// the capacity in force and the one it scales to. Through the SDK, on a
// clock that moves only when the test moves it, counting the records
// refused.
func TestOnDemandWriteCapacity(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	srv := kinesistest.StartConfig(t, stream.Config{NoSync: true, ShardWriteLimits: true,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	e := &env{srv: srv, c: srv.Client(t), ctx: t.Context()}
	_, err := e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String("od"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	require.NoError(t, err)
	e.waitActive(t, "od")

	// put sends n records in PutRecords calls of 500 and counts those
	// stored and those refused for throughput.
	put := func(n int) (stored, refused int) {
		t.Helper()
		for n > 0 {
			entries := make([]types.PutRecordsRequestEntry, min(n, 500))
			for i := range entries {
				entries[i] = types.PutRecordsRequestEntry{Data: []byte("x"), PartitionKey: aws.String(fmt.Sprint(i))}
			}
			n -= len(entries)
			out, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String("od"), Records: entries})
			require.NoError(t, err)
			for _, r := range out.Records {
				if r.ErrorCode == nil {
					stored++
					continue
				}
				require.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(r.ErrorCode))
				require.Contains(t, aws.ToString(r.ErrorMessage), "Rate exceeded for shard")
				refused++
			}
		}
		return stored, refused
	}
	capacity := func() (current, target int32) {
		t.Helper()
		out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("od")})
		require.NoError(t, err)
		w := out.StreamDescriptionSummary.WarmThroughput
		require.NotNil(t, w)
		return aws.ToInt32(w.CurrentMiBps), aws.ToInt32(w.TargetMiBps)
	}
	requireCapacity := func(current, target int32) {
		t.Helper()
		c, tg := capacity()
		require.Equal(t, [2]int32{current, target}, [2]int32{c, tg}, "current, target MiBps")
	}

	// A new stream: 4,000 records in one second, whatever its shards.
	stored, refused := put(4500)
	require.Equal(t, [2]int{4000, 500}, [2]int{stored, refused})
	out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("od")})
	require.NoError(t, err)
	require.Nil(t, out.StreamDescriptionSummary.WarmThroughput, "reported under the commitment only")

	_, err = e.c.UpdateAccountSettings(e.ctx, &kinesis.UpdateAccountSettingsInput{
		MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled}})
	require.NoError(t, err)
	// The peak of 4,000 records a second asks for 8 MiB/s, made 15
	// minutes later.
	requireCapacity(4, 8)
	advance(stream.OnDemandScaleUpDelay - time.Second)
	requireCapacity(4, 8)
	advance(time.Second)
	requireCapacity(8, 8)
	stored, refused = put(8500)
	require.Equal(t, [2]int{8000, 500}, [2]int{stored, refused})
	requireCapacity(8, 16)

	// Warm throughput is there at once (the next second takes it all) and
	// releases the learned capacity.
	_, err = e.c.UpdateStreamWarmThroughput(e.ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(10)})
	require.NoError(t, err)
	requireCapacity(10, 10)
	advance(time.Second)
	stored, refused = put(10500)
	require.Equal(t, [2]int{10000, 500}, [2]int{stored, refused})
	requireCapacity(10, 20)

	// Setting it lower releases capacity: back to the default.
	up, err := e.c.UpdateStreamWarmThroughput(e.ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(0)})
	require.NoError(t, err)
	require.EqualValues(t, 4, aws.ToInt32(up.WarmThroughput.CurrentMiBps))
	requireCapacity(4, 4)
	advance(time.Second)
	stored, refused = put(4500)
	require.Equal(t, [2]int{4000, 500}, [2]int{stored, refused})

	// Warm throughput counts while the commitment is in force: through
	// a scheduled end, not after it.
	_, err = e.c.UpdateStreamWarmThroughput(e.ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(12)})
	require.NoError(t, err)
	advance(time.Second)
	stored, refused = put(6000)
	require.Equal(t, [2]int{6000, 0}, [2]int{stored, refused})
	up2, err := e.c.UpdateAccountSettings(e.ctx, &kinesis.UpdateAccountSettingsInput{
		MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusDisabled}})
	require.NoError(t, err)
	require.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusEnabledUntilEarliestAllowedEnd, up2.MinimumThroughputBillingCommitment.Status)
	requireCapacity(12, 12)
	advance(stream.CommitmentMinimum)
	out, err = e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("od")})
	require.NoError(t, err)
	require.Nil(t, out.StreamDescriptionSummary.WarmThroughput, "the commitment has ended")
	stored, refused = put(4500)
	require.Equal(t, [2]int{4000, 500}, [2]int{stored, refused}, "back to the default")
}
