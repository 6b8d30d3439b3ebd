package kinesisapi

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/stream"
)

func TestGetRecordsJSONMatchesEncodingJSON(t *testing.T) {
	at := time.UnixMilli(1767323045123)
	for _, pk := range []string{"plain", "", `q"uote`, `back\\slash`, "ctl\x01\n", "<&>", "ünïcødé", "bad\xffutf8", "\u2028"} {
		for _, o := range []*getRecordsOutput{
			{Records: recordsOut{}, NextShardIterator: "AQAB+/=", MillisBehindLatest: 0},
			{Records: recordsOut{{SequenceNumber: "1", ArrivalTime: at, Data: []byte("hello"), PartitionKey: pk}, {SequenceNumber: "2", ArrivalTime: at, Data: []byte{}, PartitionKey: pk}}, NextShardIterator: "it", MillisBehindLatest: 42},
			{Records: recordsOut{}, ChildShards: []childShardOut{{ShardID: "shardId-000000000002", ParentShards: []string{"shardId-000000000000"}, HashKeyRange: hashKeyRange{"0", "1"}}}},
		} {
			matchesEncodingJSON(t, o)
		}
	}
}

func FuzzGetRecordsJSON(f *testing.F) {
	f.Add("key", []byte("data"), "seq", int64(3))
	f.Fuzz(func(t *testing.T, pk string, data []byte, seq string, ms int64) {
		o := &getRecordsOutput{Records: recordsOut{{SequenceNumber: seq, ArrivalTime: time.UnixMilli(ms % 1e13), Data: data, PartitionKey: pk}}, NextShardIterator: seq, MillisBehindLatest: ms}
		matchesEncodingJSON(t, o)
	})
}

func TestPutRecordsJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, o := range []*putRecordsOutput{
		{EncryptionType: "NONE"},
		{Records: []putRecordsResultEntry{}, EncryptionType: "NONE"},
		{FailedRecordCount: 1, Records: []putRecordsResultEntry{
			{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", ShardID: "shardId-000000000000"},
			{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: `Rate exceeded for shard "x" <&> ü`},
			{ShardID: "only"}, {},
		}, EncryptionType: "KMS"},
	} {
		matchesEncodingJSON(t, o)
	}
}

func FuzzPutRecordsJSON(f *testing.F) {
	f.Add("1", "shardId-000000000000", "", "", 0)
	f.Add("", "", "ProvisionedThroughputExceededException", "Rate exceeded", 1)
	f.Fuzz(func(t *testing.T, seq, shard, code, msg string, failed int) {
		o := &putRecordsOutput{FailedRecordCount: failed, Records: []putRecordsResultEntry{{seq, shard, code, msg}, {SequenceNumber: seq}}, EncryptionType: msg}
		matchesEncodingJSON(t, o)
	})
}

// matchesEncodingJSON fails t unless o renders itself as encoding/json
// renders it.
func matchesEncodingJSON(t *testing.T, o jsonAppender) {
	t.Helper()
	want, err := json.Marshal(o)
	require.NoError(t, err)
	got, err := o.appendJSON(nil)
	if err != nil || string(got) != string(want) {
		t.Fatalf("appendJSON = %s, %v; encoding/json = %s", got, err, want)
	}
}

// TestRenderedRecordsMatchCollected holds renderRecords, which renders a
// GetRecords answer as the store is read, to what appendJSON renders from
// the records Records collects for the same read: keys that need escaping,
// empty data, records of two commits, reads of one record and of all, and
// a closed shard's last answer with its children.
func TestRenderedRecordsMatchCollected(t *testing.T) {
	ctx := t.Context()
	at := time.UnixMilli(1767323045123)
	svc, err := stream.Open(ctx, stream.Config{InMemory: true, Now: func() time.Time { return at }})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	require.NoError(t, svc.CreateStream(ctx, "s", 1, stream.CreateOptions{}))
	keys := []string{"plain", `q"uote`, `back\slash`, "ctl\x01\n", "<&>", "ünïcødé", "\u2028"}
	var in []stream.PutInput
	for i := range 60 {
		in = append(in, stream.PutInput{PartitionKey: keys[i%len(keys)], Data: bytes.Repeat([]byte{byte(i)}, i%5)})
	}
	for _, part := range [][]stream.PutInput{in[:25], in[25:]} {
		_, err := svc.Put(ctx, "s", part)
		require.NoError(t, err)
	}
	d, err := svc.Describe("s")
	require.NoError(t, err)
	shard := d.Shards[0].ID
	require.NoError(t, svc.SplitShard(ctx, "s", shard, "170141183460469231731687303715884105728"))

	// Two reads issue their next iterators apart, and iterators differ in
	// more than their time: the answers are compared without them.
	next := regexp.MustCompile(`,"NextShardIterator":"[^"]*"`)
	for _, limit := range []int{1, 7, 10000} {
		it, err := svc.ShardIterator("s", shard, stream.IteratorSpec{Type: stream.TrimHorizon})
		require.NoError(t, err)
		read, children := 0, 0
		for calls := 0; it != "" && calls < 100; calls++ {
			res, err := svc.Records(ctx, it, limit)
			require.NoError(t, err)
			want, err := (&getRecordsOutput{Records: res.Records, NextShardIterator: res.NextIterator,
				MillisBehindLatest: res.MillisBehindLatest, ChildShards: toChildShardsOut(res.ChildShards)}).appendJSON(nil)
			require.NoError(t, err)
			got, err := renderRecords(ctx, svc, it, limit)
			require.NoError(t, err)
			require.Equal(t, next.MatchString(string(want)), next.MatchString(string(*got.buf)))
			require.Equal(t, next.ReplaceAllString(string(want), ""), next.ReplaceAllString(string(*got.buf), ""))
			read += len(res.Records)
			children += len(res.ChildShards)
			it = res.NextIterator
		}
		require.Equal(t, len(in), read, "limit %d", limit)
		require.Equal(t, 2, children, "limit %d", limit)
	}
}
