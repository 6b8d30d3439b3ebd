package kinesisapi_test

import (
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
	url := serveAuth(t, true, []auth.Key{
		{ID: "AKIDADMINA", Secret: "a", All: true, Account: accountA},
		{ID: "AKIDADMINB", Secret: "b", All: true, Account: accountB},
		{ID: "AKIDFOOA", Secret: "f", ReadStreams: []string{"foo"}, PutStreams: []string{"foo"}, Account: accountA},
	})
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

	// Not another account's, by stream ARN or consumer ARN.
	msg := requireAPIError(t, describe(adminA, arnB), "AccessDeniedException")
	require.Contains(t, msg, "arn:aws:iam::"+accountA+":user/AKIDADMINA")
	_, err := adminA.PutRecord(ctx, &kinesis.PutRecordInput{StreamARN: aws.String(arnB), PartitionKey: aws.String("k"), Data: []byte("x")})
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
