package kinesisapi_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

func shardIDs(shards []types.Shard) []string {
	ids := make([]string, len(shards))
	for i, s := range shards {
		ids[i] = aws.ToString(s.ShardId)
	}
	return ids
}

func TestListShards(t *testing.T) {
	e := start(t)
	e.createStream(t, "five", 5)
	all := []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003", "shardId-000000000004"}

	out, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("five")})
	require.NoError(t, err)
	require.Equal(t, all, shardIDs(out.Shards))
	require.Nil(t, out.NextToken)

	t.Run("paging", func(t *testing.T) {
		var got []string
		page, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamARN: aws.String(e.srv.Service.ARN("five")), MaxResults: aws.Int32(2)})
		require.NoError(t, err)
		got = append(got, shardIDs(page.Shards)...)
		for page.NextToken != nil {
			page, err = e.c.ListShards(e.ctx, &kinesis.ListShardsInput{NextToken: page.NextToken, MaxResults: aws.Int32(2)})
			require.NoError(t, err)
			got = append(got, shardIDs(page.Shards)...)
		}
		require.Equal(t, all, got)
	})
	t.Run("exclusive start", func(t *testing.T) {
		page, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("five"), ExclusiveStartShardId: aws.String(all[2])})
		require.NoError(t, err)
		require.Equal(t, all[3:], shardIDs(page.Shards))
	})

	now := time.Now()
	filters := []struct {
		name   string
		filter types.ShardFilter
		want   []string
	}{
		{"after shard id", types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String(all[1])}, all[2:]},
		{"after last shard", types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String(all[4])}, []string{}},
		{"at trim horizon", types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}, all},
		{"from trim horizon", types.ShardFilter{Type: types.ShardFilterTypeFromTrimHorizon}, all},
		{"at latest", types.ShardFilter{Type: types.ShardFilterTypeAtLatest}, all},
		{"at timestamp", types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(now)}, all},
		{"from timestamp", types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: aws.Time(now)}, all},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			page, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("five"), ShardFilter: &tc.filter})
			require.NoError(t, err)
			require.Equal(t, tc.want, shardIDs(page.Shards))
		})
	}
	t.Run("filter carried by token", func(t *testing.T) {
		page, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("five"), MaxResults: aws.Int32(1),
			ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String(all[2])}})
		require.NoError(t, err)
		require.Equal(t, all[3:4], shardIDs(page.Shards))
		page, err = e.c.ListShards(e.ctx, &kinesis.ListShardsInput{NextToken: page.NextToken})
		require.NoError(t, err)
		require.Equal(t, all[4:], shardIDs(page.Shards))
		require.Nil(t, page.NextToken)
	})

	token := func(t *testing.T) *string {
		page, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("five"), MaxResults: aws.Int32(1)})
		require.NoError(t, err)
		require.NotNil(t, page.NextToken)
		return page.NextToken
	}
	errs := []struct {
		name string
		in   func(t *testing.T) *kinesis.ListShardsInput
		code string
	}{
		{"token with stream name", func(t *testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{StreamName: aws.String("five"), NextToken: token(t)}
		}, "InvalidArgumentException"},
		{"token with exclusive start", func(t *testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{ExclusiveStartShardId: aws.String(all[0]), NextToken: token(t)}
		}, "InvalidArgumentException"},
		{"forged token", func(*testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{NextToken: aws.String("eyJrIjoic2hhcmRzIn0.AAAA")}
		}, "InvalidArgumentException"},
		{"no stream", func(*testing.T) *kinesis.ListShardsInput { return &kinesis.ListShardsInput{} }, "InvalidArgumentException"},
		{"missing stream", func(*testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{StreamName: aws.String("none")}
		}, "ResourceNotFoundException"},
		{"max results zero", func(*testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{StreamName: aws.String("five"), MaxResults: aws.Int32(0)}
		}, "ValidationException"},
		{"after shard id without shard", func(*testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{StreamName: aws.String("five"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAfterShardId}}
		}, "InvalidArgumentException"},
		{"at timestamp without time", func(*testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{StreamName: aws.String("five"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp}}
		}, "InvalidArgumentException"},
		{"unknown filter", func(*testing.T) *kinesis.ListShardsInput {
			return &kinesis.ListShardsInput{StreamName: aws.String("five"), ShardFilter: &types.ShardFilter{Type: "SIDEWAYS"}}
		}, "ValidationException"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.ListShards(e.ctx, tc.in(t))
			requireAPIError(t, err, tc.code)
		})
	}
}
