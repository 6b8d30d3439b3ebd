package kinesisapi_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/stream"
)

// TestNextTokenSurvivesRestart: NextTokens are sealed with the secret
// persisted in the data dir, so a restarted server accepts one issued
// before; a shard iterator is not accepted as a NextToken.
func TestNextTokenSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	var token, iterator *string
	t.Run("before", func(t *testing.T) {
		srv := kinesistest.StartConfig(t, stream.Config{Dir: dir})
		c := srv.Client(t)
		for _, name := range []string{"a", "b", "c"} {
			_, err := c.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
			require.NoError(t, err)
		}
		page, err := c.ListStreams(t.Context(), &kinesis.ListStreamsInput{Limit: aws.Int32(1)})
		require.NoError(t, err)
		require.Equal(t, []string{"a"}, page.StreamNames)
		token = page.NextToken
		it, err := c.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{
			StreamName: aws.String("a"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		iterator = it.ShardIterator
	})
	t.Run("after restart", func(t *testing.T) {
		srv := kinesistest.StartConfig(t, stream.Config{Dir: dir})
		c := srv.Client(t)
		page, err := c.ListStreams(t.Context(), &kinesis.ListStreamsInput{NextToken: token})
		require.NoError(t, err)
		require.Equal(t, []string{"b", "c"}, page.StreamNames)
		_, err = c.ListStreams(t.Context(), &kinesis.ListStreamsInput{NextToken: iterator})
		requireTyped[*types.InvalidArgumentException](t, err)
	})
}
