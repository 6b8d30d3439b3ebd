package kinesisapi

import (
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/stream"
)

// clock is a settable clock for the handler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func startLimited(t *testing.T, opts ...Option) (*kinesis.Client, *clock) {
	t.Helper()
	url, clk := startLimitedConfig(t, stream.Config{}, opts...)
	return limitedClient(url, "us-east-1"), clk
}

// startLimitedConfig serves an engine configured by cfg (on t.TempDir())
// with a settable clock, and returns its URL.
func startLimitedConfig(t *testing.T, cfg stream.Config, opts ...Option) (string, *clock) {
	t.Helper()
	cfg.Dir, cfg.NoSync = t.TempDir(), true
	svc, err := stream.Open(t.Context(), cfg)
	require.NoError(t, err)
	clk := &clock{t: time.Now()}
	srv := httptest.NewServer(newHandler(svc, nil, clk.now, opts...))
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, svc.Close())
	})
	return srv.URL, clk
}

// limitedClient is a client of the server at url signing for region.
func limitedClient(url, region string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(url), Region: region, Retryer: kinesisclient.ConnectionRetryer(),
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
}

// Under multi-region each account and region has its own per-account
// limits, as on AWS.
func TestControlPlaneLimitsPerRegion(t *testing.T) {
	t.Parallel()
	url, _ := startLimitedConfig(t, stream.Config{MultiRegion: true}, WithAWSLimits(), WithMultiRegion())
	east, west := limitedClient(url, "us-east-1"), limitedClient(url, "us-west-2")
	ctx := t.Context()
	_, err := east.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	require.NoError(t, err)
	_, err = east.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	var lim *types.LimitExceededException
	require.True(t, errors.As(err, &lim), "got %v", err)
	require.Equal(t, "Rate exceeded for DescribeLimits under account 000000000000: the limit is 1 per second.", lim.ErrorMessage())
	_, err = west.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	require.NoError(t, err, "another region has its own limit")
}

func TestControlPlaneLimits(t *testing.T) {
	c, clk := startLimited(t, WithAWSLimits())
	ctx := t.Context()
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(2)})
	require.NoError(t, err)

	// ListStreams: 5 per second per account.
	for range 5 {
		_, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
		require.NoError(t, err)
	}
	_, err = c.ListStreams(ctx, &kinesis.ListStreamsInput{})
	var lim *types.LimitExceededException
	require.True(t, errors.As(err, &lim), "got %v", err)
	require.Contains(t, lim.ErrorMessage(), "Rate exceeded")
	clk.add(time.Second)
	_, err = c.ListStreams(ctx, &kinesis.ListStreamsInput{})
	require.NoError(t, err)

	// DescribeLimits: 1 per second.
	_, err = c.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	require.NoError(t, err)
	_, err = c.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	require.True(t, errors.As(err, &lim), "got %v", err)

	// GetShardIterator: 5 per second per shard, answered as throughput.
	get := func(shard string) error {
		_, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeLatest})
		return err
	}
	for range 5 {
		require.NoError(t, get("shardId-000000000000"))
	}
	err = get("shardId-000000000000")
	var tp *types.ProvisionedThroughputExceededException
	require.True(t, errors.As(err, &tp), "got %v", err)
	require.Equal(t, "Rate exceeded for shard shardId-000000000000 in stream s under account 000000000000.", tp.ErrorMessage())
	require.NoError(t, get("shardId-000000000001"), "each shard has its own limit")

	// Unlimited actions stay unlimited.
	for range 30 {
		_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
		require.NoError(t, err)
	}
}

func TestNoLimitsByDefault(t *testing.T) {
	c, _ := startLimited(t)
	for range 20 {
		_, err := c.DescribeLimits(t.Context(), &kinesis.DescribeLimitsInput{})
		require.NoError(t, err)
	}
	h := newHandler(nil, nil, time.Now)
	require.Zero(t, h.ConsumerLimit(false))
	require.Equal(t, MaxConsumersPerStream, newHandler(nil, nil, time.Now, WithAWSLimits()).ConsumerLimit(false))
	require.Equal(t, MaxConsumersAdvantage, newHandler(nil, nil, time.Now, WithAWSLimits()).ConsumerLimit(true))
}

// TestReadThrottleMapsToThroughputExceeded checks the engine's read limit
// reaches the client as ProvisionedThroughputExceededException.
func TestReadThrottleMapsToThroughputExceeded(t *testing.T) {
	// A stopped clock: the read budget never refills.
	frozen := time.Now()
	svc, err := stream.Open(t.Context(), stream.Config{Dir: t.TempDir(), NoSync: true, ShardReadLimits: true, Now: func() time.Time { return frozen }})
	require.NoError(t, err)
	srv := httptest.NewServer(newHandler(svc, nil, time.Now))
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, svc.Close())
	})
	c := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(srv.URL), Region: "us-east-1", Retryer: kinesisclient.ConnectionRetryer(),
		Credentials: credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
	ctx := t.Context()
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("r"), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("r"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	var throttled error
	for range 6 { // 5 calls a second are allowed
		if _, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator}); err != nil {
			throttled = err
			break
		}
	}
	var tp *types.ProvisionedThroughputExceededException
	require.True(t, errors.As(throttled, &tp), "got %v", throttled)
}
