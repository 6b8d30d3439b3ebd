package kinesisapi_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

// TestAccountSettingsAndWarmThroughput: the minimum throughput billing
// commitment is stored and reported (a disable inside its first 24 hours
// is scheduled for their end), and warm throughput is set on on-demand
// streams under it and reported by DescribeStreamSummary, through the SDK.
func TestAccountSettingsAndWarmThroughput(t *testing.T) {
	t.Parallel()
	e := start(t)
	got, err := e.c.DescribeAccountSettings(e.ctx, &kinesis.DescribeAccountSettingsInput{})
	require.NoError(t, err)
	require.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusDisabled, got.MinimumThroughputBillingCommitment.Status)

	_, err = e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String("od"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
	require.NoError(t, err)
	e.createStream(t, "prov", 1)
	_, err = e.c.UpdateStreamWarmThroughput(e.ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(100)})
	requireTyped[*types.InvalidArgumentException](t, err)
	require.ErrorContains(t, err, "MinimumThroughputBillingCommitment")

	before := time.Now().Add(-time.Second)
	up, err := e.c.UpdateAccountSettings(e.ctx, &kinesis.UpdateAccountSettingsInput{
		MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled}})
	require.NoError(t, err)
	c := up.MinimumThroughputBillingCommitment
	require.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusEnabled, c.Status)
	require.True(t, c.StartedAt.After(before))
	require.Equal(t, 24*time.Hour, c.EarliestAllowedEndAt.Sub(*c.StartedAt))

	out, err := e.c.UpdateStreamWarmThroughput(e.ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(100)})
	require.NoError(t, err)
	require.Equal(t, "od", aws.ToString(out.StreamName))
	require.EqualValues(t, 100, aws.ToInt32(out.WarmThroughput.TargetMiBps))
	sum, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("od")})
	require.NoError(t, err)
	require.NotNil(t, sum.StreamDescriptionSummary.WarmThroughput)
	require.EqualValues(t, 100, aws.ToInt32(sum.StreamDescriptionSummary.WarmThroughput.CurrentMiBps))
	sum, err = e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("prov")})
	require.NoError(t, err)
	require.Nil(t, sum.StreamDescriptionSummary.WarmThroughput, "no warm throughput until one is set")

	_, err = e.c.UpdateStreamWarmThroughput(e.ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("prov"), WarmThroughputMiBps: aws.Int32(100)})
	requireTyped[*types.InvalidArgumentException](t, err)
	require.ErrorContains(t, err, "ON_DEMAND")
	_, err = e.c.UpdateStreamWarmThroughput(e.ctx, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(10241)})
	requireAPIError(t, err, "ValidationException")

	// Disabling within the first 24 hours schedules the end; enabling
	// again cancels it.
	up, err = e.c.UpdateAccountSettings(e.ctx, &kinesis.UpdateAccountSettingsInput{
		MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusDisabled}})
	require.NoError(t, err)
	require.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusEnabledUntilEarliestAllowedEnd, up.MinimumThroughputBillingCommitment.Status)
	got, err = e.c.DescribeAccountSettings(e.ctx, &kinesis.DescribeAccountSettingsInput{})
	require.NoError(t, err)
	require.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusEnabledUntilEarliestAllowedEnd, got.MinimumThroughputBillingCommitment.Status)
	up, err = e.c.UpdateAccountSettings(e.ctx, &kinesis.UpdateAccountSettingsInput{
		MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled}})
	require.NoError(t, err)
	require.Equal(t, types.MinimumThroughputBillingCommitmentOutputStatusEnabled, up.MinimumThroughputBillingCommitment.Status)
	require.Equal(t, c.StartedAt.UnixMilli(), up.MinimumThroughputBillingCommitment.StartedAt.UnixMilli(), "the same commitment goes on")
}
