package kinesisapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
)

// env is one running server and its client.
type env struct {
	srv *kinesistest.Server
	c   *kinesis.Client
	ctx context.Context
}

func start(t *testing.T) *env {
	t.Helper()
	srv := kinesistest.Start(t)
	return &env{srv: srv, c: srv.Client(t), ctx: t.Context()}
}

// createStream creates an active provisioned stream with n shards.
func (e *env) createStream(t *testing.T, name string, n int32) {
	t.Helper()
	_, err := e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(n)})
	require.NoError(t, err)
	e.waitActive(t, name)
}

func (e *env) waitActive(t *testing.T, name string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(c, err)
		require.Equal(c, types.StreamStatusActive, out.StreamDescriptionSummary.StreamStatus)
	}, 10*time.Second, 10*time.Millisecond)
}

// requireAPIError asserts err is the AWS error code want, and returns its
// message.
func requireAPIError(t *testing.T, err error, want string) string {
	t.Helper()
	require.Error(t, err)
	var apiErr smithy.APIError
	require.True(t, errors.As(err, &apiErr), "not an API error: %v", err)
	require.Equal(t, want, apiErr.ErrorCode(), "message: %s", apiErr.ErrorMessage())
	return apiErr.ErrorMessage()
}

// requireTyped asserts err is (via errors.As) the SDK's typed error T.
func requireTyped[T error](t *testing.T, err error) T {
	t.Helper()
	require.Error(t, err)
	var target T
	require.True(t, errors.As(err, &target), "want %T, got %v", target, err)
	return target
}

func putData(t *testing.T, e *env, stream, key string, data []byte) *kinesis.PutRecordOutput {
	t.Helper()
	out, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(key), Data: data})
	require.NoError(t, err)
	return out
}
