package kinesisapi_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

func (e *env) summary(t *testing.T, name string) *types.StreamDescriptionSummary {
	t.Helper()
	out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	return out.StreamDescriptionSummary
}

func (e *env) arn(t *testing.T, name string) *string {
	t.Helper()
	return e.summary(t, name).StreamARN
}

func TestUpdateStreamMode(t *testing.T) {
	e := start(t)
	e.createStream(t, "modes", 2)
	require.Equal(t, types.StreamModeProvisioned, e.summary(t, "modes").StreamModeDetails.StreamMode)

	_, err := e.c.UpdateStreamMode(e.ctx, &kinesis.UpdateStreamModeInput{
		StreamARN: e.arn(t, "modes"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand},
	})
	require.NoError(t, err)
	s := e.summary(t, "modes")
	require.Equal(t, types.StreamModeOnDemand, s.StreamModeDetails.StreamMode)
	require.EqualValues(t, 2, *s.OpenShardCount, "runnel keeps the shard layout of an on-demand stream")

	d, err := e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("modes")})
	require.NoError(t, err)
	require.Equal(t, types.StreamModeOnDemand, d.StreamDescription.StreamModeDetails.StreamMode)
	list, err := e.c.ListStreams(e.ctx, &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	require.Equal(t, types.StreamModeOnDemand, list.StreamSummaries[0].StreamModeDetails.StreamMode)

	_, err = e.c.UpdateStreamMode(e.ctx, &kinesis.UpdateStreamModeInput{
		StreamARN: e.arn(t, "modes"), StreamModeDetails: &types.StreamModeDetails{StreamMode: "SOMETIMES"},
	})
	msg := requireAPIError(t, err, "ValidationException")
	require.Contains(t, msg, "streamModeDetails.streamMode")

	_, err = e.c.UpdateStreamMode(e.ctx, &kinesis.UpdateStreamModeInput{
		StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/nope"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand},
	})
	requireTyped[*types.ResourceNotFoundException](t, err)
}

func TestStreamEncryption(t *testing.T) {
	e := start(t)
	e.createStream(t, "enc", 1)
	require.Equal(t, types.EncryptionTypeNone, e.summary(t, "enc").EncryptionType)

	_, err := e.c.StartStreamEncryption(e.ctx, &kinesis.StartStreamEncryptionInput{
		StreamName: aws.String("enc"), EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis"),
	})
	require.NoError(t, err)
	s := e.summary(t, "enc")
	require.Equal(t, types.EncryptionTypeKms, s.EncryptionType)
	require.Equal(t, "alias/aws/kinesis", aws.ToString(s.KeyId))
	d, err := e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("enc")})
	require.NoError(t, err)
	require.Equal(t, types.EncryptionTypeKms, d.StreamDescription.EncryptionType)
	require.Equal(t, "alias/aws/kinesis", aws.ToString(d.StreamDescription.KeyId))

	_, err = e.c.StartStreamEncryption(e.ctx, &kinesis.StartStreamEncryptionInput{
		StreamName: aws.String("enc"), EncryptionType: types.EncryptionTypeNone, KeyId: aws.String("k"),
	})
	requireTyped[*types.InvalidArgumentException](t, err)
	// The SDK checks required members itself; a raw request shows the server's answer.
	resp := call(t, e.srv, "StartStreamEncryption", `{"StreamName":"enc","EncryptionType":"KMS"}`)
	require.Equal(t, "ValidationException", resp.body["__type"])
	require.Contains(t, resp.body["message"], "'keyId' failed to satisfy constraint: Member must not be null")

	_, err = e.c.StopStreamEncryption(e.ctx, &kinesis.StopStreamEncryptionInput{
		StreamName: aws.String("enc"), EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("another-key"),
	})
	requireTyped[*types.InvalidArgumentException](t, err)
	_, err = e.c.StopStreamEncryption(e.ctx, &kinesis.StopStreamEncryptionInput{
		StreamARN: s.StreamARN, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis"),
	})
	require.NoError(t, err)
	s = e.summary(t, "enc")
	require.Equal(t, types.EncryptionTypeNone, s.EncryptionType)
	require.Nil(t, s.KeyId)
}

func TestEnhancedMonitoring(t *testing.T) {
	e := start(t)
	e.createStream(t, "mon", 1)
	require.Empty(t, e.summary(t, "mon").EnhancedMonitoring[0].ShardLevelMetrics)

	out, err := e.c.EnableEnhancedMonitoring(e.ctx, &kinesis.EnableEnhancedMonitoringInput{
		StreamName: aws.String("mon"), ShardLevelMetrics: []types.MetricsName{types.MetricsNameIncomingBytes, types.MetricsNameIteratorAgeMilliseconds},
	})
	require.NoError(t, err)
	require.Equal(t, "mon", aws.ToString(out.StreamName))
	require.Equal(t, aws.ToString(e.arn(t, "mon")), aws.ToString(out.StreamARN))
	require.Empty(t, out.CurrentShardLevelMetrics)
	require.ElementsMatch(t, []types.MetricsName{"IncomingBytes", "IteratorAgeMilliseconds"}, out.DesiredShardLevelMetrics)
	require.ElementsMatch(t, []types.MetricsName{"IncomingBytes", "IteratorAgeMilliseconds"}, e.summary(t, "mon").EnhancedMonitoring[0].ShardLevelMetrics)

	out2, err := e.c.EnableEnhancedMonitoring(e.ctx, &kinesis.EnableEnhancedMonitoringInput{
		StreamName: aws.String("mon"), ShardLevelMetrics: []types.MetricsName{types.MetricsNameAll},
	})
	require.NoError(t, err)
	require.Len(t, out2.CurrentShardLevelMetrics, 2)
	require.Len(t, out2.DesiredShardLevelMetrics, 7)
	d, err := e.c.DescribeStream(e.ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("mon")})
	require.NoError(t, err)
	require.Len(t, d.StreamDescription.EnhancedMonitoring[0].ShardLevelMetrics, 7)

	dis, err := e.c.DisableEnhancedMonitoring(e.ctx, &kinesis.DisableEnhancedMonitoringInput{
		StreamName: aws.String("mon"), ShardLevelMetrics: []types.MetricsName{types.MetricsNameIncomingBytes},
	})
	require.NoError(t, err)
	require.Len(t, dis.CurrentShardLevelMetrics, 7)
	require.Len(t, dis.DesiredShardLevelMetrics, 6)
	require.NotContains(t, dis.DesiredShardLevelMetrics, types.MetricsNameIncomingBytes)

	_, err = e.c.DisableEnhancedMonitoring(e.ctx, &kinesis.DisableEnhancedMonitoringInput{
		StreamName: aws.String("mon"), ShardLevelMetrics: []types.MetricsName{"Everything"},
	})
	require.Contains(t, requireAPIError(t, err, "ValidationException"), "enum value set")
	resp := call(t, e.srv, "EnableEnhancedMonitoring", `{"StreamName":"mon"}`)
	require.Equal(t, "ValidationException", resp.body["__type"])
	require.Contains(t, resp.body["message"], "'shardLevelMetrics' failed to satisfy constraint: Member must not be null")
	_, err = e.c.EnableEnhancedMonitoring(e.ctx, &kinesis.EnableEnhancedMonitoringInput{
		StreamName: aws.String("nope"), ShardLevelMetrics: []types.MetricsName{types.MetricsNameAll},
	})
	requireTyped[*types.ResourceNotFoundException](t, err)
}

func TestDescribeLimits(t *testing.T) {
	e := start(t)
	e.createStream(t, "a", 3)
	_, err := e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String("b"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand},
	})
	require.NoError(t, err)
	e.waitActive(t, "b")
	out, err := e.c.DescribeLimits(e.ctx, &kinesis.DescribeLimitsInput{})
	require.NoError(t, err)
	require.EqualValues(t, 1000, *out.ShardLimit)
	require.EqualValues(t, 3+*e.summary(t, "b").OpenShardCount, *out.OpenShardCount)
	require.EqualValues(t, 1, *out.OnDemandStreamCount)
	require.EqualValues(t, 50, *out.OnDemandStreamCountLimit)
}

func TestUpdateMaxRecordSize(t *testing.T) {
	e := start(t)
	e.createStream(t, "big", 1)
	arn := e.arn(t, "big")
	_, err := e.c.UpdateMaxRecordSize(e.ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: arn, MaxRecordSizeInKiB: aws.Int32(2048)})
	require.NoError(t, err)
	require.EqualValues(t, 2048, *e.summary(t, "big").MaxRecordSizeInKiB)

	// A record over the old 1 MiB limit is now accepted.
	putData(t, e, "big", "k", make([]byte, 1536<<10))

	_, err = e.c.UpdateMaxRecordSize(e.ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: arn, MaxRecordSizeInKiB: aws.Int32(20000)})
	require.Contains(t, requireAPIError(t, err, "ValidationException"), "maxRecordSizeInKiB")
	_, err = e.c.UpdateMaxRecordSize(e.ctx, &kinesis.UpdateMaxRecordSizeInput{MaxRecordSizeInKiB: aws.Int32(2048)})
	require.Contains(t, requireAPIError(t, err, "ValidationException"), "streamARN")
}

func TestResourceTags(t *testing.T) {
	e := start(t)
	e.createStream(t, "tagged", 1)
	arn := e.arn(t, "tagged")

	_, err := e.c.TagResource(e.ctx, &kinesis.TagResourceInput{ResourceARN: arn, Tags: map[string]string{"team": "data", "env": "dev"}})
	require.NoError(t, err)
	out, err := e.c.ListTagsForResource(e.ctx, &kinesis.ListTagsForResourceInput{ResourceARN: arn})
	require.NoError(t, err)
	require.Equal(t, []types.Tag{{Key: aws.String("env"), Value: aws.String("dev")}, {Key: aws.String("team"), Value: aws.String("data")}}, out.Tags)

	// The stream-level calls see the same tags.
	lt, err := e.c.ListTagsForStream(e.ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("tagged")})
	require.NoError(t, err)
	require.Len(t, lt.Tags, 2)

	_, err = e.c.UntagResource(e.ctx, &kinesis.UntagResourceInput{ResourceARN: arn, TagKeys: []string{"env", "absent"}})
	require.NoError(t, err)
	out, err = e.c.ListTagsForResource(e.ctx, &kinesis.ListTagsForResourceInput{ResourceARN: arn})
	require.NoError(t, err)
	require.Equal(t, []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}}, out.Tags)

	_, err = e.c.ListTagsForResource(e.ctx, &kinesis.ListTagsForResourceInput{ResourceARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/nope")})
	requireTyped[*types.ResourceNotFoundException](t, err)
	resp := call(t, e.srv, "TagResource", `{"ResourceARN":"`+aws.ToString(arn)+`"}`)
	require.Equal(t, "ValidationException", resp.body["__type"])
	require.Contains(t, resp.body["message"], "'tags' failed to satisfy constraint: Member must not be null")
	_, err = e.c.TagResource(e.ctx, &kinesis.TagResourceInput{ResourceARN: aws.String("not-an-arn"), Tags: map[string]string{"a": "b"}})
	require.Contains(t, requireAPIError(t, err, "ValidationException"), "resourceARN")
	_, err = e.c.ListTagsForResource(e.ctx, &kinesis.ListTagsForResourceInput{
		ResourceARN: aws.String(aws.ToString(arn) + "/consumer/c:1700000000"),
	})
	requireTyped[*types.InvalidArgumentException](t, err)
}
