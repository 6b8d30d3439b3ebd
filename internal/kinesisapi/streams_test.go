package kinesisapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCreateStream(t *testing.T) {
	e := start(t)
	e.createStream(t, "existing", 1)

	tests := []struct {
		name    string
		in      *kinesis.CreateStreamInput
		errCode string // "" for success
		errMsg  string // substring of the message
	}{
		{name: "provisioned", in: &kinesis.CreateStreamInput{StreamName: aws.String("s1"), ShardCount: aws.Int32(3)}},
		{name: "on demand defaults to four shards", in: &kinesis.CreateStreamInput{
			StreamName: aws.String("od"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}},
		{name: "with tags and record size", in: &kinesis.CreateStreamInput{StreamName: aws.String("tagged"), ShardCount: aws.Int32(1),
			Tags: map[string]string{"team": "data"}, MaxRecordSizeInKiB: aws.Int32(2048)}},
		{name: "duplicate", in: &kinesis.CreateStreamInput{StreamName: aws.String("existing"), ShardCount: aws.Int32(1)},
			errCode: "ResourceInUseException"},
		{name: "zero shards", in: &kinesis.CreateStreamInput{StreamName: aws.String("z"), ShardCount: aws.Int32(0)},
			errCode: "ValidationException",
			errMsg:  "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"},
		{name: "provisioned without shard count", in: &kinesis.CreateStreamInput{StreamName: aws.String("z")},
			errCode: "ValidationException", errMsg: "Value null at 'shardCount' failed to satisfy constraint: Member must not be null"},
		{name: "bad name", in: &kinesis.CreateStreamInput{StreamName: aws.String("no/slash"), ShardCount: aws.Int32(1)},
			errCode: "ValidationException", errMsg: "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"},
		{name: "two errors", in: &kinesis.CreateStreamInput{StreamName: aws.String("a b"), ShardCount: aws.Int32(-1)},
			errCode: "ValidationException", errMsg: "2 validation errors detected: "},
		{name: "long name", in: &kinesis.CreateStreamInput{StreamName: aws.String(fmt.Sprintf("%0129d", 0)), ShardCount: aws.Int32(1)},
			errCode: "ValidationException", errMsg: "Member must have length less than or equal to 128"},
		{name: "record size too small", in: &kinesis.CreateStreamInput{StreamName: aws.String("r"), ShardCount: aws.Int32(1), MaxRecordSizeInKiB: aws.Int32(1023)},
			errCode: "ValidationException", errMsg: "at 'maxRecordSizeInKiB'"},
		{name: "bad mode", in: &kinesis.CreateStreamInput{StreamName: aws.String("m"), ShardCount: aws.Int32(1),
			StreamModeDetails: &types.StreamModeDetails{StreamMode: "SOMETIMES"}},
			errCode: "ValidationException", errMsg: "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.CreateStream(e.ctx, tc.in)
			if tc.errCode == "" {
				require.NoError(t, err)
				return
			}
			msg := requireAPIError(t, err, tc.errCode)
			require.Contains(t, msg, tc.errMsg)
		})
	}

	t.Run("duplicate is typed", func(t *testing.T) {
		_, err := e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String("existing"), ShardCount: aws.Int32(1)})
		requireTyped[*types.ResourceInUseException](t, err)
	})
	t.Run("on demand has four shards", func(t *testing.T) {
		e.waitActive(t, "od")
		out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("od")})
		require.NoError(t, err)
		require.Equal(t, int32(4), aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount))
		require.Equal(t, types.StreamModeOnDemand, out.StreamDescriptionSummary.StreamModeDetails.StreamMode)
	})
}

func TestDeleteStream(t *testing.T) {
	e := start(t)
	e.createStream(t, "gone", 1)
	_, err := e.c.DeleteStream(e.ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("gone")})
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("gone")})
		var nf *types.ResourceNotFoundException
		require.ErrorAs(c, err, &nf)
	}, 10*time.Second, 10*time.Millisecond)

	_, err = e.c.DeleteStream(e.ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("never")})
	requireTyped[*types.ResourceNotFoundException](t, err)
}

func TestDescribeStream(t *testing.T) {
	e := start(t)
	e.createStream(t, "five", 5)

	out, err := e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("five")})
	require.NoError(t, err)
	d := out.StreamDescription
	require.Equal(t, "five", aws.ToString(d.StreamName))
	require.Equal(t, e.srv.Service.ARN("five"), aws.ToString(d.StreamARN))
	require.Equal(t, types.StreamStatusActive, d.StreamStatus)
	require.Equal(t, int32(24), aws.ToInt32(d.RetentionPeriodHours))
	require.Equal(t, types.EncryptionTypeNone, d.EncryptionType)
	require.False(t, aws.ToBool(d.HasMoreShards))
	require.Len(t, d.Shards, 5)
	require.NotNil(t, d.StreamCreationTimestamp)
	require.Equal(t, "0", aws.ToString(d.Shards[0].HashKeyRange.StartingHashKey))
	require.Equal(t, "340282366920938463463374607431768211455", aws.ToString(d.Shards[4].HashKeyRange.EndingHashKey))

	// Page through two at a time.
	var ids []string
	var start *string
	for {
		page, err := e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{
			StreamName: aws.String("five"), Limit: aws.Int32(2), ExclusiveStartShardId: start})
		require.NoError(t, err)
		for _, s := range page.StreamDescription.Shards {
			ids = append(ids, aws.ToString(s.ShardId))
		}
		if !aws.ToBool(page.StreamDescription.HasMoreShards) {
			break
		}
		require.Len(t, page.StreamDescription.Shards, 2)
		start = page.StreamDescription.Shards[1].ShardId
	}
	require.Equal(t, []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002",
		"shardId-000000000003", "shardId-000000000004"}, ids)

	_, err = e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("five"), Limit: aws.Int32(10001)})
	msg := requireAPIError(t, err, "ValidationException")
	require.Contains(t, msg, "Value '10001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000")

	_, err = e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("missing")})
	requireTyped[*types.ResourceNotFoundException](t, err)

	sum, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("five")})
	require.NoError(t, err)
	require.Equal(t, int32(5), aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount))
	require.Equal(t, int32(0), aws.ToInt32(sum.StreamDescriptionSummary.ConsumerCount))
	require.Equal(t, types.StreamModeProvisioned, sum.StreamDescriptionSummary.StreamModeDetails.StreamMode)
}

func TestListStreams(t *testing.T) {
	e := start(t)
	names := []string{"a1", "a2", "b1", "b2", "c1"}
	for _, n := range names {
		e.createStream(t, n, 1)
	}

	out, err := e.c.ListStreams(e.ctx, &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	require.Equal(t, names, out.StreamNames)
	require.False(t, aws.ToBool(out.HasMoreStreams))
	require.Len(t, out.StreamSummaries, 5)
	require.Equal(t, e.srv.Service.ARN("a1"), aws.ToString(out.StreamSummaries[0].StreamARN))

	t.Run("next token", func(t *testing.T) {
		var got []string
		var token *string
		for {
			page, err := e.c.ListStreams(e.ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(2), NextToken: token})
			require.NoError(t, err)
			got = append(got, page.StreamNames...)
			if !aws.ToBool(page.HasMoreStreams) {
				require.Nil(t, page.NextToken)
				break
			}
			require.NotNil(t, page.NextToken)
			token = page.NextToken
		}
		require.Equal(t, names, got)
	})
	t.Run("paginator", func(t *testing.T) {
		var got []string
		p := kinesis.NewListStreamsPaginator(e.c, &kinesis.ListStreamsInput{Limit: aws.Int32(3)})
		for p.HasMorePages() {
			page, err := p.NextPage(e.ctx)
			require.NoError(t, err)
			got = append(got, page.StreamNames...)
		}
		require.Equal(t, names, got)
	})
	t.Run("exclusive start", func(t *testing.T) {
		page, err := e.c.ListStreams(e.ctx, &kinesis.ListStreamsInput{ExclusiveStartStreamName: aws.String("a2"), Limit: aws.Int32(2)})
		require.NoError(t, err)
		require.Equal(t, []string{"b1", "b2"}, page.StreamNames)
		require.True(t, aws.ToBool(page.HasMoreStreams))
	})
	t.Run("forged token", func(t *testing.T) {
		_, err := e.c.ListStreams(e.ctx, &kinesis.ListStreamsInput{NextToken: aws.String("bm90IGEgdG9rZW4.c2ln")})
		requireTyped[*types.InvalidArgumentException](t, err)
	})
	t.Run("limit zero", func(t *testing.T) {
		_, err := e.c.ListStreams(e.ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(0)})
		requireTyped[*types.ValidationException](t, err)
	})
}

func TestRetention(t *testing.T) {
	e := start(t)
	e.createStream(t, "r", 1)
	retention := func() int32 {
		out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("r")})
		require.NoError(t, err)
		return aws.ToInt32(out.StreamDescriptionSummary.RetentionPeriodHours)
	}
	_, err := e.c.IncreaseStreamRetentionPeriod(e.ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("r"), RetentionPeriodHours: aws.Int32(48)})
	require.NoError(t, err)
	e.waitActive(t, "r")
	require.Equal(t, int32(48), retention())

	tests := []struct {
		name     string
		increase bool
		hours    int32
	}{
		{"increase below current", true, 30},
		{"increase past maximum", true, 8761},
		{"decrease above current", false, 72},
		{"decrease below minimum", false, 23},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.increase {
				_, err = e.c.IncreaseStreamRetentionPeriod(e.ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("r"), RetentionPeriodHours: aws.Int32(tc.hours)})
			} else {
				_, err = e.c.DecreaseStreamRetentionPeriod(e.ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: aws.String("r"), RetentionPeriodHours: aws.Int32(tc.hours)})
			}
			requireTyped[*types.InvalidArgumentException](t, err)
		})
	}
	require.Equal(t, int32(48), retention())

	_, err = e.c.DecreaseStreamRetentionPeriod(e.ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: aws.String("r"), RetentionPeriodHours: aws.Int32(24)})
	require.NoError(t, err)
	e.waitActive(t, "r")
	require.Equal(t, int32(24), retention())

	_, err = e.c.IncreaseStreamRetentionPeriod(e.ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("nope"), RetentionPeriodHours: aws.Int32(48)})
	requireTyped[*types.ResourceNotFoundException](t, err)
}

func TestARNAddressing(t *testing.T) {
	e := start(t)
	e.createStream(t, "byarn", 2)
	arn := e.srv.Service.ARN("byarn")
	require.Equal(t, "arn:aws:kinesis:us-east-1:000000000000:stream/byarn", arn)

	out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(arn)})
	require.NoError(t, err)
	require.Equal(t, "byarn", aws.ToString(out.StreamDescriptionSummary.StreamName))

	put, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamARN: aws.String(arn), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.NoError(t, err)
	require.NotEmpty(t, aws.ToString(put.SequenceNumber))

	_, err = e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("byarn"), StreamARN: aws.String(arn)})
	require.NoError(t, err)

	tests := []struct {
		name string
		in   *kinesis.DescribeStreamSummaryInput
		code string
	}{
		{"neither", &kinesis.DescribeStreamSummaryInput{}, "InvalidArgumentException"},
		{"other region", &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String("arn:aws:kinesis:eu-west-1:000000000000:stream/byarn")}, "ResourceNotFoundException"},
		{"other account", &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/byarn")}, "ResourceNotFoundException"},
		{"missing stream", &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/none")}, "ResourceNotFoundException"},
		{"not an arn", &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String("byarn")}, "ValidationException"},
		{"name and arn disagree", &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("other"), StreamARN: aws.String(arn)}, "InvalidArgumentException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.DescribeStreamSummary(e.ctx, tc.in)
			requireAPIError(t, err, tc.code)
		})
	}
}
