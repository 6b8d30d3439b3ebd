package kinesisapi_test

import (
	"crypto/md5"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/stream"
)

// shardFor returns the shard of an evenly split n-shard stream that the
// MD5 of key routes to.
func shardFor(key string, n int) string {
	sum := md5.Sum([]byte(key))
	h := new(big.Int).SetBytes(sum[:])
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	width := new(big.Int).Div(space, big.NewInt(int64(n)))
	i := new(big.Int).Div(h, width).Int64()
	if i >= int64(n) {
		i = int64(n) - 1
	}
	return fmt.Sprintf("shardId-%012d", i)
}

func TestPutRecordRouting(t *testing.T) {
	e := start(t)
	e.createStream(t, "four", 4)

	// md5("a") = 0cc175b9... lies in the first quarter of the hash space,
	// md5("b") = 92eb5ffe... in the third.
	require.Equal(t, "shardId-000000000000", aws.ToString(putData(t, e, "four", "a", []byte("1")).ShardId))
	require.Equal(t, "shardId-000000000002", aws.ToString(putData(t, e, "four", "b", []byte("2")).ShardId))

	for i := range 40 {
		key := fmt.Sprintf("key-%d", i)
		out := putData(t, e, "four", key, []byte(key))
		require.Equal(t, shardFor(key, 4), aws.ToString(out.ShardId), key)
		require.Equal(t, types.EncryptionTypeNone, out.EncryptionType)
	}

	out, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("four"), PartitionKey: aws.String("a"),
		ExplicitHashKey: aws.String("340282366920938463463374607431768211455"), Data: []byte("x")})
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000003", aws.ToString(out.ShardId))

	tests := []struct {
		name string
		in   *kinesis.PutRecordInput
		code string
		msg  string
	}{
		{"hash key too large", &kinesis.PutRecordInput{PartitionKey: aws.String("a"), ExplicitHashKey: aws.String("340282366920938463463374607431768211456"), Data: []byte("x")},
			"InvalidArgumentException", "ExplicitHashKey"},
		{"hash key not a number", &kinesis.PutRecordInput{PartitionKey: aws.String("a"), ExplicitHashKey: aws.String("12a"), Data: []byte("x")},
			"ValidationException", "at 'explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern"},
		{"empty partition key", &kinesis.PutRecordInput{PartitionKey: aws.String(""), Data: []byte("x")},
			"ValidationException", "at 'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{"long partition key", &kinesis.PutRecordInput{PartitionKey: aws.String(strings.Repeat("k", 257)), Data: []byte("x")},
			"ValidationException", "Member must have length less than or equal to 256"},
		{"bad ordering", &kinesis.PutRecordInput{PartitionKey: aws.String("a"), Data: []byte("x"), SequenceNumberForOrdering: aws.String("01")},
			"ValidationException", "sequenceNumberForOrdering"},
		{"record too large", &kinesis.PutRecordInput{PartitionKey: aws.String("a"), Data: make([]byte, 1<<20)},
			"InvalidArgumentException", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.StreamName = aws.String("four")
			_, err := e.c.PutRecord(e.ctx, tc.in)
			require.Contains(t, requireAPIError(t, err, tc.code), tc.msg)
		})
	}

	_, err = e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("none"), PartitionKey: aws.String("a"), Data: []byte("x")})
	requireTyped[*types.ResourceNotFoundException](t, err)

	// Empty data is a valid record.
	putData(t, e, "four", "empty", []byte{})
}

func TestPutRecords(t *testing.T) {
	e := start(t)
	e.createStream(t, "four", 4)

	keys := []string{"a", "b", "c", "d", "e"}
	var recs []types.PutRecordsRequestEntry
	for _, k := range keys {
		recs = append(recs, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte("data-" + k)})
	}
	out, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String("four"), Records: recs})
	require.NoError(t, err)
	require.Equal(t, int32(0), aws.ToInt32(out.FailedRecordCount))
	require.Equal(t, types.EncryptionTypeNone, out.EncryptionType)
	require.Len(t, out.Records, len(keys))
	for i, r := range out.Records {
		require.Equal(t, shardFor(keys[i], 4), aws.ToString(r.ShardId), keys[i])
		require.NotEmpty(t, aws.ToString(r.SequenceNumber))
		require.Nil(t, r.ErrorCode)
	}

	many := make([]types.PutRecordsRequestEntry, 501)
	for i := range many {
		many[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte("x")}
	}
	big := make([]types.PutRecordsRequestEntry, 11)
	for i := range big {
		big[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: make([]byte, 1000*1024)}
	}
	tests := []struct {
		name string
		recs []types.PutRecordsRequestEntry
		code string
		msg  string
	}{
		{"empty", []types.PutRecordsRequestEntry{}, "ValidationException", "at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{"too many", many, "ValidationException", "at 'records' failed to satisfy constraint: Member must have length less than or equal to 500"},
		{"bad member", []types.PutRecordsRequestEntry{{PartitionKey: aws.String("ok"), Data: []byte("x")}, {PartitionKey: aws.String(""), Data: []byte("x")}},
			"ValidationException", "at 'records.2.member.partitionKey'"},
		{"request too large", big, "InvalidArgumentException", "Records size exceeds"},
		{"hash key out of range", []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("x"),
			ExplicitHashKey: aws.String("999999999999999999999999999999999999999")}}, "InvalidArgumentException", "ExplicitHashKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String("four"), Records: tc.recs})
			require.Contains(t, requireAPIError(t, err, tc.code), tc.msg)
		})
	}

	// Nothing from the rejected requests was stored: every shard holds
	// only the five records above.
	total := 0
	for i := range 4 {
		total += len(readAll(t, e, "four", fmt.Sprintf("shardId-%012d", i)))
	}
	require.Equal(t, len(keys), total)
}

// readAll reads a shard from TRIM_HORIZON until caught up.
func readAll(t *testing.T, e *env, stream, shard string) []types.Record {
	t.Helper()
	it, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	iter := it.ShardIterator
	var recs []types.Record
	for iter != nil {
		out, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(7)})
		require.NoError(t, err)
		recs = append(recs, out.Records...)
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break
		}
		iter = out.NextShardIterator
	}
	return recs
}

func TestGetRecords(t *testing.T) {
	e := start(t)
	e.createStream(t, "one", 1)
	const shard = "shardId-000000000000"
	before := time.Now().Add(-time.Second)

	var seqs []string
	for i := range 25 {
		out := putData(t, e, "one", fmt.Sprintf("pk-%d", i), []byte(fmt.Sprintf("record %d", i)))
		require.Equal(t, shard, aws.ToString(out.ShardId))
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}

	recs := readAll(t, e, "one", shard)
	require.Len(t, recs, 25)
	for i, r := range recs {
		require.Equal(t, seqs[i], aws.ToString(r.SequenceNumber))
		require.Equal(t, fmt.Sprintf("record %d", i), string(r.Data))
		require.Equal(t, fmt.Sprintf("pk-%d", i), aws.ToString(r.PartitionKey))
		require.NotNil(t, r.ApproximateArrivalTimestamp)
		require.WithinDuration(t, time.Now(), *r.ApproximateArrivalTimestamp, time.Minute)
	}

	iterator := func(t *testing.T, in *kinesis.GetShardIteratorInput) *string {
		t.Helper()
		in.StreamName, in.ShardId = aws.String("one"), aws.String(shard)
		out, err := e.c.GetShardIterator(e.ctx, in)
		require.NoError(t, err)
		require.NotEmpty(t, aws.ToString(out.ShardIterator))
		return out.ShardIterator
	}
	first := func(t *testing.T, it *string) []types.Record {
		t.Helper()
		out, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(2)})
		require.NoError(t, err)
		require.NotNil(t, out.NextShardIterator)
		require.Empty(t, out.ChildShards)
		return out.Records
	}

	t.Run("AT_SEQUENCE_NUMBER", func(t *testing.T) {
		got := first(t, iterator(t, &kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(seqs[10])}))
		require.Len(t, got, 2)
		require.Equal(t, seqs[10], aws.ToString(got[0].SequenceNumber))
	})
	t.Run("AFTER_SEQUENCE_NUMBER", func(t *testing.T) {
		got := first(t, iterator(t, &kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seqs[10])}))
		require.Equal(t, seqs[11], aws.ToString(got[0].SequenceNumber))
	})
	t.Run("TRIM_HORIZON", func(t *testing.T) {
		got := first(t, iterator(t, &kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon}))
		require.Equal(t, seqs[0], aws.ToString(got[0].SequenceNumber))
	})
	t.Run("AT_TIMESTAMP", func(t *testing.T) {
		got := first(t, iterator(t, &kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(before)}))
		require.Equal(t, seqs[0], aws.ToString(got[0].SequenceNumber))
		_, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("one"), ShardId: aws.String(shard),
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(time.Now().Add(time.Hour))})
		requireTyped[*types.InvalidArgumentException](t, err)
		require.ErrorContains(t, err, "timestampInMillis")
	})
	t.Run("LATEST", func(t *testing.T) {
		it := iterator(t, &kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeLatest})
		out, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		require.NoError(t, err)
		require.Empty(t, out.Records)
		require.Equal(t, int64(0), aws.ToInt64(out.MillisBehindLatest))
		put := putData(t, e, "one", "late", []byte("late"))
		out, err = e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
		require.NoError(t, err)
		require.Len(t, out.Records, 1)
		require.Equal(t, aws.ToString(put.SequenceNumber), aws.ToString(out.Records[0].SequenceNumber))
	})

	iterErrs := []struct {
		name string
		in   *kinesis.GetShardIteratorInput
		code string
	}{
		{"at sequence without number", &kinesis.GetShardIteratorInput{StreamName: aws.String("one"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber}, "InvalidArgumentException"},
		{"at timestamp without time", &kinesis.GetShardIteratorInput{StreamName: aws.String("one"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeAtTimestamp}, "InvalidArgumentException"},
		{"bad type", &kinesis.GetShardIteratorInput{StreamName: aws.String("one"), ShardId: aws.String(shard), ShardIteratorType: "SOMEWHERE"}, "ValidationException"},
		{"bad sequence", &kinesis.GetShardIteratorInput{StreamName: aws.String("one"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String("abc")}, "ValidationException"},
		{"missing shard", &kinesis.GetShardIteratorInput{StreamName: aws.String("one"), ShardId: aws.String("shardId-000000000009"), ShardIteratorType: types.ShardIteratorTypeLatest}, "ResourceNotFoundException"},
		{"missing stream", &kinesis.GetShardIteratorInput{StreamName: aws.String("two"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeLatest}, "ResourceNotFoundException"},
	}
	for _, tc := range iterErrs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.GetShardIterator(e.ctx, tc.in)
			requireAPIError(t, err, tc.code)
		})
	}

	t.Run("bad limit", func(t *testing.T) {
		it := iterator(t, &kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		_, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(10001)})
		requireTyped[*types.ValidationException](t, err)
		_, err = e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(0)})
		requireTyped[*types.ValidationException](t, err)
	})
	t.Run("forged iterator", func(t *testing.T) {
		_, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAforged")})
		requireTyped[*types.InvalidArgumentException](t, err)
	})
}

func TestExpiredIterator(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	srv := kinesistest.StartConfig(t, stream.Config{NoSync: true, Now: clock})
	e := &env{srv: srv, c: srv.Client(t), ctx: t.Context()}
	e.createStream(t, "old", 1)
	it, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("old"),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)

	mu.Lock()
	now = now.Add(stream.IteratorTTL + time.Second)
	mu.Unlock()
	_, err = e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	requireTyped[*types.ExpiredIteratorException](t, err)
}
