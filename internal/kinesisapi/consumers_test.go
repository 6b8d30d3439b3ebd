package kinesisapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

func (e *env) streamARN(t *testing.T, name string) string {
	t.Helper()
	out, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	return aws.ToString(out.StreamDescriptionSummary.StreamARN)
}

func (e *env) registerConsumer(t *testing.T, streamARN, name string) types.Consumer {
	t.Helper()
	out, err := e.c.RegisterStreamConsumer(e.ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARN), ConsumerName: aws.String(name)})
	require.NoError(t, err)
	return *out.Consumer
}

func TestStreamConsumers(t *testing.T) {
	e := start(t)
	e.createStream(t, "efo", 1)
	arn := e.streamARN(t, "efo")

	c := e.registerConsumer(t, arn, "app")
	require.Equal(t, "app", aws.ToString(c.ConsumerName))
	require.Equal(t, types.ConsumerStatusActive, c.ConsumerStatus)
	require.Regexp(t, `^`+arn+`/consumer/app:\d+$`, aws.ToString(c.ConsumerARN))
	require.WithinDuration(t, time.Now(), aws.ToTime(c.ConsumerCreationTimestamp), 5*time.Second)

	_, err := e.c.RegisterStreamConsumer(e.ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	requireTyped[*types.ResourceInUseException](t, err)

	sum, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("efo")})
	require.NoError(t, err)
	require.Equal(t, int32(1), aws.ToInt32(sum.StreamDescriptionSummary.ConsumerCount))

	// Described by ARN and by stream and name alike.
	byARN, err := e.c.DescribeStreamConsumer(e.ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: c.ConsumerARN})
	require.NoError(t, err)
	byName, err := e.c.DescribeStreamConsumer(e.ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	require.NoError(t, err)
	require.Equal(t, byARN.ConsumerDescription, byName.ConsumerDescription)
	require.Equal(t, arn, aws.ToString(byARN.ConsumerDescription.StreamARN))
	require.Equal(t, c.ConsumerARN, byARN.ConsumerDescription.ConsumerARN)

	require.Equal(t, types.ConsumerStatusActive, byARN.ConsumerDescription.ConsumerStatus)

	require.NoError(t, deregister(e, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: c.ConsumerARN}))
	_, err = e.c.DescribeStreamConsumer(e.ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: c.ConsumerARN})
	requireTyped[*types.ResourceNotFoundException](t, err)
	err = deregister(e, &kinesis.DeregisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	requireTyped[*types.ResourceNotFoundException](t, err)

	e.registerConsumer(t, arn, "again")
	require.NoError(t, deregister(e, &kinesis.DeregisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("again")}))
}

func deregister(e *env, in *kinesis.DeregisterStreamConsumerInput) error {
	_, err := e.c.DeregisterStreamConsumer(e.ctx, in)
	return err
}

func TestListStreamConsumersPages(t *testing.T) {
	e := start(t)
	e.createStream(t, "efo", 1)
	arn := e.streamARN(t, "efo")
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("c%02d", i)
		e.registerConsumer(t, arn, name)
		want = append(want, name)
	}

	var got []string
	p := kinesis.NewListStreamConsumersPaginator(e.c, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), MaxResults: aws.Int32(3)})
	pages := 0
	for p.HasMorePages() && pages < 10 {
		out, err := p.NextPage(e.ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(out.Consumers), 3)
		for _, c := range out.Consumers {
			got = append(got, aws.ToString(c.ConsumerName))
		}
		pages++
	}
	require.Equal(t, want, got)
	require.Equal(t, 3, pages)

	// A token resumes after its consumer even when that one is gone.
	first, err := e.c.ListStreamConsumers(e.ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), MaxResults: aws.Int32(2)})
	require.NoError(t, err)
	require.NoError(t, deregister(e, &kinesis.DeregisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("c01")}))
	rest, err := e.c.ListStreamConsumers(e.ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), NextToken: first.NextToken, MaxResults: aws.Int32(1)})
	require.NoError(t, err)
	require.Len(t, rest.Consumers, 1)
	require.Equal(t, "c02", aws.ToString(rest.Consumers[0].ConsumerName))

	_, err = e.c.ListStreamConsumers(e.ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), NextToken: aws.String("forged")})
	requireTyped[*types.InvalidArgumentException](t, err)
}

func TestStreamConsumerValidation(t *testing.T) {
	e := start(t)
	e.createStream(t, "efo", 1)
	arn := e.streamARN(t, "efo")
	missing := "arn:aws:kinesis:us-east-1:000000000000:stream/missing"

	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"register without a name", func() error {
			_, err := e.c.RegisterStreamConsumer(e.ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("bad name")})
			return err
		}, "ValidationException"},
		{"register on a missing stream", func() error {
			_, err := e.c.RegisterStreamConsumer(e.ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(missing), ConsumerName: aws.String("app")})
			return err
		}, "ResourceNotFoundException"},
		{"register with a stream name for an ARN", func() error {
			_, err := e.c.RegisterStreamConsumer(e.ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String("efo"), ConsumerName: aws.String("app")})
			return err
		}, "ValidationException"},
		{"describe naming nothing", func() error {
			_, err := e.c.DescribeStreamConsumer(e.ctx, &kinesis.DescribeStreamConsumerInput{ConsumerName: aws.String("app")})
			return err
		}, "InvalidArgumentException"},
		{"describe with a malformed consumer ARN", func() error {
			_, err := e.c.DescribeStreamConsumer(e.ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn + "/consumer/app")})
			return err
		}, "ValidationException"},
		{"describe a missing consumer", func() error {
			_, err := e.c.DescribeStreamConsumer(e.ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn + "/consumer/app:1")})
			return err
		}, "ResourceNotFoundException"},
		{"deregister naming only a stream", func() error {
			return deregister(e, &kinesis.DeregisterStreamConsumerInput{StreamARN: aws.String(arn)})
		}, "InvalidArgumentException"},
		{"list a missing stream", func() error {
			_, err := e.c.ListStreamConsumers(e.ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(missing)})
			return err
		}, "ResourceNotFoundException"},
		{"list with MaxResults 0", func() error {
			_, err := e.c.ListStreamConsumers(e.ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), MaxResults: aws.Int32(0)})
			return err
		}, "ValidationException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireAPIError(t, tc.call(), tc.want)
		})
	}
}
