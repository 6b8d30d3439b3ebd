package kinesisapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
