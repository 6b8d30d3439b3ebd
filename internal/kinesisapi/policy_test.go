package kinesisapi_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/auth"
)

// TestResourcePolicies: Put/Get/DeleteResourcePolicy store a stream's or
// consumer's policy, checked as an IAM policy document; with --auth a
// policy lets a key reach a stream its scopes do not cover, and an
// explicit Deny refuses even a key with every permission; through the SDK.
func TestResourcePolicies(t *testing.T) {
	t.Parallel()
	_, admin, device, reader := startScoped(t)
	ctx := t.Context()
	orders := "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
	clicks := "arn:aws:kinesis:us-east-1:000000000000:stream/clicks"
	put := func(c *kinesis.Client, name string) error {
		_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte("x")})
		return err
	}
	setPolicy := func(arn, policy string) {
		t.Helper()
		_, err := admin.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String(arn), Policy: aws.String(policy)})
		require.NoError(t, err)
	}

	got, err := admin.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String(orders)})
	require.NoError(t, err)
	require.Equal(t, "{}", aws.ToString(got.Policy), "no policy reads as {}")
	require.Contains(t, requireAPIError(t, put(device, "orders"), "AccessDeniedException"), "no identity-based policy allows")
	require.Contains(t, requireAPIError(t, put(reader, "orders"), "AccessDeniedException"), "no identity-based policy allows")

	// An Allow lets keys outside their scopes in: the device's key by
	// its user ARN, the reader (which has no put scope at all) through a
	// wildcard action.
	allow := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/AKIDDEVICE"},"Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"` + orders + `"},
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/AKIDREADER"},"Action":"kinesis:Put*","Resource":"arn:aws:kinesis:*:000000000000:stream/ord*"}]}`
	setPolicy(orders, allow)
	got, err = admin.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String(orders)})
	require.NoError(t, err)
	require.Equal(t, allow, aws.ToString(got.Policy))
	require.NoError(t, put(device, "orders"))
	require.NoError(t, put(reader, "orders"))
	_, err = device.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	requireAPIError(t, err, "AccessDeniedException")
	require.Error(t, put(device, "nope"), "a policy on one stream grants nothing on another")

	// An explicit Deny wins over scopes, over every-permission keys and
	// over Allows.
	setPolicy(clicks, `{"Statement":[{"Effect":"Deny","Principal":"*","Action":["kinesis:PutRecord","kinesis:DeleteStream"],"Resource":"*"},
		{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Resource":"*"}]}`)
	msg := requireAPIError(t, put(device, "clicks"), "AccessDeniedException")
	require.Contains(t, msg, "with an explicit deny in a resource-based policy")
	require.Contains(t, msg, "arn:aws:iam::000000000000:user/AKIDDEVICE")
	_, err = admin.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("clicks")})
	require.Contains(t, requireAPIError(t, err, "AccessDeniedException"), "explicit deny")
	_, err = device.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("clicks"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("x")}}})
	require.NoError(t, err, "not denied, within the key's scope")
	_, err = reader.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("clicks")})
	require.NoError(t, err)

	// A consumer's own policy.
	reg, err := admin.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(orders), ConsumerName: aws.String("c")})
	require.NoError(t, err)
	consumerARN := aws.ToString(reg.Consumer.ConsumerARN)
	_, err = reader.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
	requireAPIError(t, err, "AccessDeniedException")
	setPolicy(consumerARN, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"kinesis:DescribeStreamConsumer","Resource":"`+consumerARN+`"}}`)
	_, err = reader.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
	require.NoError(t, err)
	got, err = admin.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String(consumerARN)})
	require.NoError(t, err)
	require.Contains(t, aws.ToString(got.Policy), "DescribeStreamConsumer")

	// Checked as a policy document, sized as IAM sizes them.
	for _, bad := range []string{`not json`, `{"Statement":[]}`, `{"Statement":{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}}`,
		`{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"000000000000"},"Action":"kinesis:*","Resource":"*"}}`,
		`{"Statement":{"Sid":"` + strings.Repeat("x", auth.MaxPolicyBytes) + `","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}`} {
		_, err = admin.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String(orders), Policy: aws.String(bad)})
		requireTyped[*types.InvalidArgumentException](t, err)
	}
	_, err = admin.PutResourcePolicy(ctx, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/nope"), Policy: aws.String(allow)})
	requireTyped[*types.ResourceNotFoundException](t, err)
	_, err = admin.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String("arn:aws:s3:::bucket")})
	requireAPIError(t, err, "ValidationException")

	// Deleting the policy takes the access away again.
	_, err = admin.DeleteResourcePolicy(ctx, &kinesis.DeleteResourcePolicyInput{ResourceARN: aws.String(orders)})
	require.NoError(t, err)
	requireAPIError(t, put(device, "orders"), "AccessDeniedException")
	got, err = admin.GetResourcePolicy(ctx, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String(orders)})
	require.NoError(t, err)
	require.Equal(t, "{}", aws.ToString(got.Policy))
}
