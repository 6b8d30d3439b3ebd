package stream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConsumerRegistrations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	s := open(t, dir, c)
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))

	a, err := s.RegisterConsumer(ctx, "s", "app-a", 0)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app-a:%d", c.Now().Unix()), a.ARN)
	require.Equal(t, ConsumerActive, a.Status)
	require.Equal(t, s.ARN("s"), a.StreamARN)

	_, err = s.RegisterConsumer(ctx, "s", "app-a", 0)
	require.ErrorIs(t, err, ErrInUse)
	_, err = s.RegisterConsumer(ctx, "missing", "app-a", 0)
	require.ErrorIs(t, err, ErrNotFound)

	c.Advance(time.Second)
	b, err := s.RegisterConsumer(ctx, "s", "app-b", 0)
	require.NoError(t, err)

	list, err := s.ListConsumers("s")
	require.NoError(t, err)
	require.Equal(t, []Consumer{a, b}, list)
	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, 2, d.ConsumerCount)

	got, err := s.DescribeConsumer("s", "app-b", "")
	require.NoError(t, err)
	require.Equal(t, b, got)
	name, got, err := s.ConsumerByARN(a.ARN)
	require.NoError(t, err)
	require.Equal(t, "s", name)
	require.Equal(t, a, got)

	// Registrations survive a restart.
	require.NoError(t, s.Close())
	s = open(t, dir, c)
	defer s.Close()
	list, err = s.ListConsumers("s")
	require.NoError(t, err)
	require.Equal(t, []Consumer{a, b}, list)

	// Deregister by ARN, then by name.
	require.NoError(t, s.DeregisterConsumer(ctx, "", "", a.ARN))
	_, _, err = s.ConsumerByARN(a.ARN)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, s.DeregisterConsumer(ctx, "", "", a.ARN), ErrNotFound)
	require.NoError(t, s.DeregisterConsumer(ctx, "s", "app-b", ""))
	_, err = s.DescribeConsumer("s", "app-b", "")
	require.ErrorIs(t, err, ErrNotFound)

	// A consumer registered again under its old name gets a new ARN; the
	// old ARN does not reach it.
	c.Advance(time.Second)
	a2, err := s.RegisterConsumer(ctx, "s", "app-a", 0)
	require.NoError(t, err)
	require.NotEqual(t, a.ARN, a2.ARN)
	_, _, err = s.ConsumerByARN(a.ARN)
	require.ErrorIs(t, err, ErrNotFound)

	for _, bad := range []string{"", "arn:aws:kinesis:us-east-1:000000000000:stream/s", "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/x", "nonsense/consumer/x:1"} {
		_, _, err := s.ConsumerByARN(bad)
		require.ErrorIs(t, err, ErrInvalidArgument, bad)
	}
	_, _, err = s.ConsumerByARN("arn:aws:kinesis:eu-west-1:000000000000:stream/s/consumer/app-a:1")
	require.ErrorIs(t, err, ErrNotFound)

	// A stream with consumers is deleted only when told to, and then its
	// consumers go with it.
	require.ErrorIs(t, s.DeleteStream(ctx, "s", false), ErrInUse)
	require.NoError(t, s.DeleteStream(ctx, "s", true))
	_, _, err = s.ConsumerByARN(a2.ARN)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestConsumerLimit(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.Context(), Config{InMemory: true})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	for i := range 20 {
		_, err := s.RegisterConsumer(ctx, "s", fmt.Sprint("c", i), 20)
		require.NoError(t, err)
	}
	_, err = s.RegisterConsumer(ctx, "s", "unlimited", 0)
	require.NoError(t, err)
	_, err = s.RegisterConsumer(ctx, "s", "one-too-many", 20)
	require.ErrorIs(t, err, ErrLimitExceeded)
	var se *Error
	require.True(t, errors.As(err, &se))
	require.Contains(t, se.Msg, "limit of 20")
}

// TestContinuationSequenceNumber checks that reading AFTER_SEQUENCE_NUMBER
// the continuation of an iterator returns what the iterator returns.
func TestContinuationSequenceNumber(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, t.TempDir(), c)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 2, CreateOptions{}))
	shard := shardID(1)
	put := func(n int) []string {
		var seqs []string
		for i := range n {
			res, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "k", ExplicitHashKey: maxU128.String(), Data: []byte{byte(i)}}})
			require.NoError(t, err)
			require.Equal(t, shard, res[0].ShardID)
			seqs = append(seqs, res[0].SequenceNumber)
		}
		return seqs
	}
	check := func(name, iter string) {
		t.Helper()
		cont, err := s.ContinuationSequenceNumber(iter)
		require.NoError(t, err, name)
		want, err := s.Records(ctx, iter, 100)
		require.NoError(t, err, name)
		after, err := s.ShardIterator("s", shard, IteratorSpec{Type: AfterSequenceNumber, SequenceNumber: cont})
		require.NoError(t, err, name)
		got, err := s.Records(ctx, after, 100)
		require.NoError(t, err, name)
		require.Equal(t, seqsOf(want.Records), seqsOf(got.Records), name)
	}

	empty, err := s.ShardIterator("s", shard, IteratorSpec{Type: TrimHorizon})
	require.NoError(t, err)
	check("trim horizon of an empty shard", empty)

	c.Advance(time.Second)
	first := put(3)
	c.Advance(time.Second)
	second := put(2)

	for _, spec := range []IteratorSpec{
		{Type: TrimHorizon},
		{Type: Latest},
		{Type: AtSequenceNumber, SequenceNumber: first[0]},
		{Type: AtSequenceNumber, SequenceNumber: second[0]},
		{Type: AfterSequenceNumber, SequenceNumber: first[2]},
		{Type: AtTimestamp, Timestamp: c.Now()},
		{Type: AtTimestamp, Timestamp: c.Now().Add(-time.Second)},
	} {
		it, err := s.ShardIterator("s", shard, spec)
		require.NoError(t, err)
		check(fmt.Sprint(spec.Type, " ", spec.SequenceNumber, spec.Timestamp), it)
	}

	// After reading, the continuation is the last record read.
	it, err := s.ShardIterator("s", shard, IteratorSpec{Type: TrimHorizon})
	require.NoError(t, err)
	res, err := s.Records(ctx, it, 4)
	require.NoError(t, err)
	cont, err := s.ContinuationSequenceNumber(res.NextIterator)
	require.NoError(t, err)
	require.Equal(t, second[0], cont)
	check("after a partial read", res.NextIterator)

	_, err = s.ContinuationSequenceNumber("forged")
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func seqsOf(recs []Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.SequenceNumber)
	}
	return out
}
