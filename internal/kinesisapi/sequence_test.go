package kinesisapi_test

import (
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/seqnum"
)

// seq39 is the data directory written by runnel before sequence numbers
// had 56 digits, and what was written to it (testdata/seq39/README).
const seq39 = "../stream/testdata/seq39"

type seq39Record struct {
	Shard          string `json:"shard"`
	SequenceNumber string `json:"sequenceNumber"`
	ArrivalMs      int64  `json:"arrivalMs"`
	PartitionKey   string `json:"partitionKey"`
	Data           string `json:"data"`
}

type seq39Expect struct {
	Stream                  string            `json:"stream"`
	StartingSequenceNumbers map[string]string `json:"startingSequenceNumbers"`
	Records                 []seq39Record     `json:"records"`
}

// fiftySix is the 56-digit form of a sequence number in either form.
func fiftySix(t *testing.T, seq string) string {
	t.Helper()
	hi, lo, ok := seqnum.Parse(seq)
	require.True(t, ok, seq)
	return seqnum.String(hi, lo)
}

// arrivalSecond decodes the arrival second from a 56-digit number where
// tools read it from AWS's: bits 36 to 67.
func arrivalSecond(t *testing.T, seq string) int64 {
	t.Helper()
	n, ok := new(big.Int).SetString(seq, 10)
	require.True(t, ok)
	return new(big.Int).And(new(big.Int).Rsh(n, 36), big.NewInt(1<<32-1)).Int64()
}

// A data directory written with 39-digit sequence numbers opens unchanged
// and is read through the API with 56-digit ones; the old numbers are
// still accepted wherever a sequence number is taken.
func TestOldDataDirReadWithFiftySixDigitNumbers(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(seq39, "expect.json"))
	require.NoError(t, err)
	var want seq39Expect
	require.NoError(t, json.Unmarshal(b, &want))
	srv := kinesistest.StartCopy(t, filepath.Join(seq39, "data"))
	e := &env{srv: srv, c: srv.Client(t), ctx: t.Context()}
	name := aws.String(want.Stream)

	shards, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: name})
	require.NoError(t, err)
	require.Len(t, shards.Shards, len(want.StartingSequenceNumbers))
	for _, sh := range shards.Shards {
		start := aws.ToString(sh.SequenceNumberRange.StartingSequenceNumber)
		require.Len(t, start, 56)
		require.Equal(t, fiftySix(t, want.StartingSequenceNumbers[aws.ToString(sh.ShardId)]), start)
	}

	byShard := map[string][]seq39Record{}
	for _, r := range want.Records {
		byShard[r.Shard] = append(byShard[r.Shard], r)
	}
	read := func(shard string, typ types.ShardIteratorType, seq string) []types.Record {
		t.Helper()
		in := &kinesis.GetShardIteratorInput{StreamName: name, ShardId: aws.String(shard), ShardIteratorType: typ}
		if seq != "" {
			in.StartingSequenceNumber = aws.String(seq)
		}
		it, err := e.c.GetShardIterator(e.ctx, in)
		require.NoError(t, err)
		out, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		require.NoError(t, err)
		return out.Records
	}
	for shard, recs := range byShard {
		got := read(shard, types.ShardIteratorTypeTrimHorizon, "")
		require.Len(t, got, len(recs))
		for i, r := range got {
			seq := aws.ToString(r.SequenceNumber)
			require.Len(t, seq, 56)
			require.Equal(t, fiftySix(t, recs[i].SequenceNumber), seq)
			require.Equal(t, recs[i].Data, string(r.Data))
			require.Equal(t, recs[i].PartitionKey, aws.ToString(r.PartitionKey))
			require.Equal(t, recs[i].ArrivalMs, r.ApproximateArrivalTimestamp.UnixMilli())
			require.Equal(t, recs[i].ArrivalMs/1000, arrivalSecond(t, seq))
			if i > 0 {
				require.Less(t, aws.ToString(got[i-1].SequenceNumber), seq)
			}
		}

		// Both forms of a number start a read at the same record.
		for _, seq := range []string{recs[2].SequenceNumber, fiftySix(t, recs[2].SequenceNumber)} {
			at := read(shard, types.ShardIteratorTypeAtSequenceNumber, seq)
			require.Equal(t, recs[2].Data, string(at[0].Data), "AT %s", seq)
			after := read(shard, types.ShardIteratorTypeAfterSequenceNumber, seq)
			require.Equal(t, recs[3].Data, string(after[0].Data), "AFTER %s", seq)
		}

		// A new record gets a larger 56-digit number; either form of an
		// issued number orders a put.
		for _, order := range []string{recs[len(recs)-1].SequenceNumber, fiftySix(t, recs[len(recs)-1].SequenceNumber)} {
			out, err := e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String(recs[0].PartitionKey),
				Data: []byte("new"), SequenceNumberForOrdering: aws.String(order)})
			require.NoError(t, err)
			require.Equal(t, shard, aws.ToString(out.ShardId))
			require.Len(t, aws.ToString(out.SequenceNumber), 56)
			require.Less(t, fiftySix(t, recs[len(recs)-1].SequenceNumber), aws.ToString(out.SequenceNumber))
		}
	}

	// SubscribeToShard starts after either form too (a consumer for each:
	// one subscription per consumer and shard at a time).
	consumers := []string{
		aws.ToString(e.registerConsumer(t, e.streamARN(t, want.Stream), "old").ConsumerARN),
		aws.ToString(e.registerConsumer(t, e.streamARN(t, want.Stream), "new").ConsumerARN),
	}
	for shard, recs := range byShard {
		for i, seq := range []string{recs[1].SequenceNumber, fiftySix(t, recs[1].SequenceNumber)} {
			sub := subscribe(t, subscriber(t, srv), e.ctx, consumers[i], shard,
				types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(seq)})
			got := sub.collect(t, len(recs)-2)
			require.Equal(t, recs[2].Data, string(got[0].Data), "AFTER %s", seq)
			require.Len(t, aws.ToString(got[0].SequenceNumber), 56)
		}
	}

	// A number of another shard, in either form, is refused as before.
	other := want.Records[len(want.Records)-1]
	for _, seq := range []string{other.SequenceNumber, fiftySix(t, other.SequenceNumber)} {
		for shard := range byShard {
			if shard == other.Shard {
				continue
			}
			_, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: aws.String(shard),
				ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(seq)})
			require.Contains(t, requireAPIError(t, err, "InvalidArgumentException"), "Invalid StartingSequenceNumber. It encodes "+other.Shard)
		}
	}
}

// Malformed sequence numbers are refused with InvalidArgumentException,
// whatever their length.
func TestMalformedSequenceNumbersRefused(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.createStream(t, "s", 1)
	good := aws.ToString(putData(t, e, "s", "k", []byte("x")).SequenceNumber)
	require.Len(t, good, 56)
	n, _ := new(big.Int).SetString(good, 10)
	for _, seq := range []string{
		"1", "12345",
		new(big.Int).Xor(n, big.NewInt(1)).String(),                // version digit
		new(big.Int).Xor(n, big.NewInt(1<<40)).String(),            // arrival second unlike its copy
		"49590338271490256608559692538361571095921575989136588898", // AWS's own
		"170141183460469231731687303715884105727",                  // 39 digits, not runnel's
	} {
		_, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(shard0),
			ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seq)})
		require.Contains(t, requireAPIError(t, err, "InvalidArgumentException"), "StartingSequenceNumber "+seq+" used in GetShardIterator on shard shardId-000000000000 in stream s under account 000000000000 is invalid.")
		_, err = e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("y"), SequenceNumberForOrdering: aws.String(seq)})
		requireAPIError(t, err, "InvalidArgumentException")
	}
}
