package kinesisapi_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/auth"
)

// TestAccountsAuthorization: under multi-region a key acts in its own
// account. A key with all: true is all-powerful there only; a key scoped
// to foo reaches its own account's foo and that stream's consumers, not
// another account's foo (by stream or consumer ARN); only a resource
// policy Allow lets a key across. A Deny on a stream applies to requests
// naming its consumers, and never locks the owning account's all: true
// keys out of the policy actions. Through the SDK.
func TestAccountsAuthorization(t *testing.T) {
	t.Parallel()
	const accountA, accountB = "111111111111", "222222222222"
	// The accounts come from a credentials file, as serve --auth reads it.
	file := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`keys:
  - {id: AKIDADMINA, secret: a, all: true, account: "`+accountA+`"}
  - {id: AKIDADMINB, secret: b, all: true, account: "`+accountB+`"}
  - {id: AKIDFOOA, secret: f, read: [foo], put: [foo], account: "`+accountA+`"}
`), 0o600))
	keys, err := auth.Load(file)
	require.NoError(t, err)
	url := serveAuth(t, true, keys)
	client := func(id, secret string) *kinesis.Client {
		return clientWith(url, credentials.NewStaticCredentialsProvider(id, secret, ""))
	}
	adminA, adminB, fooA := client("AKIDADMINA", "a"), client("AKIDADMINB", "b"), client("AKIDFOOA", "f")
	ctx := t.Context()
	arnA := "arn:aws:kinesis:us-east-1:" + accountA + ":stream/foo"
	arnB := "arn:aws:kinesis:us-east-1:" + accountB + ":stream/foo"
	consumers := map[string]string{}
	for admin, arn := range map[*kinesis.Client]string{adminA: arnA, adminB: arnB} {
		_, err := admin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("foo"), ShardCount: aws.Int32(1)})
		require.NoError(t, err)
		reg, err := admin.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("c")})
		require.NoError(t, err)
		consumers[arn] = aws.ToString(reg.Consumer.ConsumerARN)
	}
	describe := func(c *kinesis.Client, arn string) error {
		_, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(arn)})
		return err
	}
	describeConsumer := func(c *kinesis.Client, arn string) error {
		_, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		return err
	}
	subscribe := func(c *kinesis.Client, arn string) error {
		out, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn), ShardId: aws.String("shardId-000000000000"),
			StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
		if err == nil {
			require.NoError(t, out.GetStream().Close())
		}
		return err
	}

	// Each account's keys reach its own streams and consumers.
	require.NoError(t, describe(adminA, arnA))
	require.NoError(t, describe(fooA, arnA))
	require.NoError(t, describeConsumer(fooA, consumers[arnA]))
	require.NoError(t, subscribe(fooA, consumers[arnA]))

	_, err = fooA.ListStreams(ctx, &kinesis.ListStreamsInput{})
	require.Contains(t, requireAPIError(t, err, "AccessDeniedException"), "arn:aws:iam::"+accountA+":user/AKIDFOOA")

	// Not another account's, by stream ARN or consumer ARN.
	msg := requireAPIError(t, describe(adminA, arnB), "AccessDeniedException")
	require.Contains(t, msg, "arn:aws:iam::"+accountA+":user/AKIDADMINA")
	_, err = adminA.PutRecord(ctx, &kinesis.PutRecordInput{StreamARN: aws.String(arnB), PartitionKey: aws.String("k"), Data: []byte("x")})
	requireAPIError(t, err, "AccessDeniedException")
	requireAPIError(t, describe(fooA, arnB), "AccessDeniedException")
	requireAPIError(t, describeConsumer(fooA, consumers[arnB]), "AccessDeniedException")
	requireAPIError(t, subscribe(fooA, consumers[arnB]), "AccessDeniedException")
	_, err = fooA.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(consumers[arnB])})
	requireAPIError(t, err, "AccessDeniedException")
	_, err = adminA.DeleteResourcePolicy(ctx, &kinesis.DeleteResourcePolicyInput{ResourceARN: aws.String(arnB)})
	requireAPIError(t, err, "AccessDeniedException")

	// A Deny on B's foo refuses requests naming its consumers, even to B's
	// all-powerful key, which may still read and remove the policy.
	deny := `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kinesis:*","Resource":"*"}]}`
	_, err = adminB.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String(arnB), Policy: aws.String(deny)})
	require.NoError(t, err)
	require.Contains(t, requireAPIError(t, describeConsumer(adminB, consumers[arnB]), "AccessDeniedException"), "explicit deny")
	require.Contains(t, requireAPIError(t, describe(adminB, arnB), "AccessDeniedException"), "explicit deny")
	got, err := adminB.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String(arnB)})
	require.NoError(t, err)
	require.Equal(t, deny, aws.ToString(got.Policy))
	_, err = adminA.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String(arnB)})
	requireAPIError(t, err, "AccessDeniedException")
	_, err = adminB.DeleteResourcePolicy(ctx, &kinesis.DeleteResourcePolicyInput{ResourceARN: aws.String(arnB)})
	require.NoError(t, err)
	require.NoError(t, describe(adminB, arnB))

	// An Allow in B's policy lets A's keys across.
	allow := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"` + accountA + `"},"Action":["kinesis:DescribeStreamSummary","kinesis:DescribeStreamConsumer"],"Resource":"*"}]}`
	_, err = adminB.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String(arnB), Policy: aws.String(allow)})
	require.NoError(t, err)
	require.NoError(t, describe(adminA, arnB))
	require.NoError(t, describe(fooA, arnB))
	require.NoError(t, describeConsumer(fooA, consumers[arnB]))
	requireAPIError(t, subscribe(fooA, consumers[arnB]), "AccessDeniedException")
}

// TestChannelsByAccount: under multi-region a channel belongs to its
// stream's account and region: its ARN carries them, its name is unique
// there, ListChannels lists the caller's own, and CreateChannel and the
// actions on a channel are authorized on its source stream, that stream's
// resource policy included (a channel copies the stream, so a Deny on
// reading it must stop one). Through the SDK.
func TestChannelsByAccount(t *testing.T) {
	t.Parallel()
	const accountA, accountB = "111111111111", "222222222222"
	keys, err := auth.NewKeys([]auth.Key{
		{ID: "AKIDADMINA", Secret: "a", All: true, Account: accountA},
		{ID: "AKIDADMINB", Secret: "b", All: true, Account: accountB},
	})
	require.NoError(t, err)
	url := serveAuth(t, true, keys)
	adminA := clientWith(url, credentials.NewStaticCredentialsProvider("AKIDADMINA", "a", ""))
	adminB := clientWith(url, credentials.NewStaticCredentialsProvider("AKIDADMINB", "b", ""))
	ctx := t.Context()
	arnA := "arn:aws:kinesis:us-east-1:" + accountA + ":stream/foo"
	arnB := "arn:aws:kinesis:us-east-1:" + accountB + ":stream/foo"
	for _, admin := range []*kinesis.Client{adminA, adminB} {
		_, err := admin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("foo"),
			StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
		require.NoError(t, err)
	}
	create := func(c *kinesis.Client, streamARN string) (*kinesis.CreateChannelOutput, error) {
		return c.CreateChannel(ctx, &kinesis.CreateChannelInput{
			ChannelName:             aws.String("lake"),
			ServiceExecutionRoleARN: aws.String("arn:aws:iam::" + accountA + ":role/channel"),
			StreamConfigurationList: []types.ChannelStreamConfiguration{{
				StreamARN:           aws.String(streamARN),
				RecordConfiguration: &types.RecordConfiguration{RecordFormatType: types.RecordFormatTypeJson},
			}},
			S3DestinationConfiguration: &types.S3DestinationConfiguration{StorageConfiguration: &types.S3StorageConfiguration{
				BucketARN: aws.String("arn:aws:s3:::lake"), CompressionType: types.S3CompressionTypeNone, ExpectedBucketOwner: aws.String(accountA),
			}},
		})
	}

	// Not from another account's stream, nor from a stream whose policy
	// denies it.
	_, err = create(adminA, arnB)
	requireAPIError(t, err, "AccessDeniedException")
	deny := `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kinesis:CreateChannel","Resource":"*"}]}`
	_, err = adminB.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String(arnB), Policy: aws.String(deny)})
	require.NoError(t, err)
	_, err = create(adminB, arnB)
	require.Contains(t, requireAPIError(t, err, "AccessDeniedException"), "explicit deny")
	_, err = adminB.DeleteResourcePolicy(ctx, &kinesis.DeleteResourcePolicyInput{ResourceARN: aws.String(arnB)})
	require.NoError(t, err)

	// The same name in each account, each ARN in its own account.
	channels := map[string]string{}
	for admin, arn := range map[*kinesis.Client]string{adminA: arnA, adminB: arnB} {
		out, err := create(admin, arn)
		require.NoError(t, err)
		channels[arn] = aws.ToString(out.ChannelDescription.ChannelARN)
	}
	require.Contains(t, channels[arnA], ":"+accountA+":channel/lake/")
	require.Contains(t, channels[arnB], ":"+accountB+":channel/lake/")
	list, err := adminA.ListChannels(ctx, &kinesis.ListChannelsInput{})
	require.NoError(t, err)
	require.Len(t, list.ChannelSummaries, 1)
	require.Equal(t, channels[arnA], aws.ToString(list.ChannelSummaries[0].ChannelARN))

	_, err = adminA.DescribeChannel(ctx, &kinesis.DescribeChannelInput{ChannelARN: aws.String(channels[arnA])})
	require.NoError(t, err)
	_, err = adminA.DescribeChannel(ctx, &kinesis.DescribeChannelInput{ChannelARN: aws.String(channels[arnB])})
	requireAPIError(t, err, "AccessDeniedException")
	_, err = adminA.DeleteChannel(ctx, &kinesis.DeleteChannelInput{ChannelARN: aws.String(channels[arnB])})
	requireAPIError(t, err, "AccessDeniedException")
	_, err = adminB.DeleteChannel(ctx, &kinesis.DeleteChannelInput{ChannelARN: aws.String(channels[arnB])})
	require.NoError(t, err)
}
