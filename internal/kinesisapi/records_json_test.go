package kinesisapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
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

// Every byte, alone and between plain ones, is written as encoding/json
// writes it.
func TestAppendJSONStringEveryByte(t *testing.T) {
	for c := range 256 {
		for _, s := range []string{string([]byte{byte(c)}), "ab" + string([]byte{byte(c)}) + "cd"} {
			want, err := json.Marshal(s)
			require.NoError(t, err)
			require.Equal(t, string(want), string(appendJSONString(nil, s)), "byte %#x", c)
			require.Equal(t, string(want), string(appendJSONString(nil, []byte(s))), "byte %#x", c)
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

func TestPutRecordsCBORMatchesEncoder(t *testing.T) {
	t.Parallel()
	many := make([]putRecordsResultEntry, 500)
	for i := range many {
		many[i] = putRecordsResultEntry{SequenceNumber: fmt.Sprintf("4959%052d", i), ShardID: "shardId-000000000003"}
	}
	for _, o := range []*putRecordsOutput{
		{EncryptionType: "NONE"},
		{Records: []putRecordsResultEntry{}, EncryptionType: "NONE"},
		{Records: many, EncryptionType: "NONE"},
		{FailedRecordCount: 1, Records: []putRecordsResultEntry{
			{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", ShardID: "shardId-000000000000"},
			{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: `Rate exceeded for shard "x" <&> ü`},
			{ShardID: "only"}, {},
		}, EncryptionType: "KMS"},
	} {
		matchesCBOREncoder(t, o)
	}
}

// FuzzPutRecordsJSON holds the PutRecords answer to encoding/json's bytes,
// and to the CBOR encoder's.
func FuzzPutRecordsJSON(f *testing.F) {
	f.Add("1", "shardId-000000000000", "", "", 0)
	f.Add("", "", "ProvisionedThroughputExceededException", "Rate exceeded", 1)
	f.Fuzz(func(t *testing.T, seq, shard, code, msg string, failed int) {
		o := &putRecordsOutput{FailedRecordCount: failed, Records: []putRecordsResultEntry{{seq, shard, code, msg}, {SequenceNumber: seq}}, EncryptionType: msg}
		matchesEncodingJSON(t, o)
		matchesCBOREncoder(t, o)
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
// GetRecords answer as the store is read, to what encoding/json and the
// CBOR encoder render from the records Records collects for the same read:
// keys that need escaping, empty data, records of three commits, answers
// of 1, 7, 100 and all 360 records (the CBOR array's head in each of its
// forms), and a closed shard's last answer with its children.
func TestRenderedRecordsMatchCollected(t *testing.T) {
	ctx := t.Context()
	at := time.UnixMilli(1767323045123)
	svc, err := stream.Open(ctx, stream.Config{InMemory: true, Now: func() time.Time { return at }})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	require.NoError(t, svc.CreateStream(ctx, "s", 1, stream.CreateOptions{}))
	keys := []string{"plain", `q"uote`, `back\slash`, "ctl\x01\n", "<&>", "ünïcødé", "\u2028"}
	var in []stream.PutInput
	for i := range 360 {
		in = append(in, stream.PutInput{PartitionKey: keys[i%len(keys)], Data: bytes.Repeat([]byte{byte(i)}, i%5)})
	}
	for _, part := range [][]stream.PutInput{in[:25], in[25:60], in[60:]} {
		_, err := svc.Put(ctx, "s", part)
		require.NoError(t, err)
	}
	d, err := svc.Describe("s")
	require.NoError(t, err)
	shard := d.Shards[0].ID
	require.NoError(t, svc.SplitShard(ctx, "s", shard, "170141183460469231731687303715884105728"))

	for _, c := range []codec{jsonCodec{}, cborCodec{}} {
		for _, limit := range []int{1, 7, 100, 10000} {
			it, err := svc.ShardIterator("s", shard, stream.IteratorSpec{Type: stream.TrimHorizon})
			require.NoError(t, err)
			read, children := 0, 0
			for calls := 0; it != "" && calls < 400; calls++ {
				res, err := svc.Records(ctx, it, limit)
				require.NoError(t, err)
				want, err := c.encode(&getRecordsOutput{Records: res.Records, NextShardIterator: res.NextIterator,
					MillisBehindLatest: res.MillisBehindLatest, ChildShards: toChildShardsOut(res.ChildShards)})
				require.NoError(t, err)
				r, err := renderRecords(ctx, svc, c, it, limit)
				require.NoError(t, err)
				got := r.buf[r.off:]
				// Two reads issue their next iterators apart, and
				// iterators differ in more than their time: the answers
				// are compared with the rendered one's iterator replaced
				// by the collected one's (of the same length).
				var next struct{ NextShardIterator string }
				require.NoError(t, c.decode(got, &next))
				require.Equal(t, res.NextIterator == "", next.NextShardIterator == "")
				require.Len(t, next.NextShardIterator, len(res.NextIterator))
				if next.NextShardIterator != "" {
					got = bytes.Replace(got, []byte(next.NextShardIterator), []byte(res.NextIterator), 1)
				}
				require.Equal(t, string(want), string(got), "%s, limit %d, call %d", c.contentType(), limit, calls)
				read += len(res.Records)
				children += len(res.ChildShards)
				it = res.NextIterator
			}
			require.Equal(t, len(in), read, "limit %d", limit)
			require.Equal(t, 2, children, "limit %d", limit)
		}
	}
}

func TestGetRecordsCBORMatchesEncoder(t *testing.T) {
	at := time.UnixMilli(1767323045123)
	for _, pk := range []string{"plain", "", "ünïcødé", strings.Repeat("k", 256)} {
		for _, o := range []*getRecordsOutput{
			{Records: recordsOut{}, NextShardIterator: "AQAB+/=", MillisBehindLatest: 0},
			{Records: recordsOut{{SequenceNumber: "1", ArrivalTime: at, Data: []byte("hello"), PartitionKey: pk}, {SequenceNumber: "2", ArrivalTime: time.UnixMilli(-1), Data: []byte{}, PartitionKey: pk}}, NextShardIterator: "it", MillisBehindLatest: 42},
			{Records: recordsOut{{SequenceNumber: "3", ArrivalTime: at, Data: make([]byte, 70000), PartitionKey: pk}}, MillisBehindLatest: 1 << 40},
			{Records: recordsOut{}, ChildShards: []childShardOut{{ShardID: "shardId-000000000002", ParentShards: []string{"shardId-000000000000"}, HashKeyRange: hashKeyRange{"0", "1"}}}},
		} {
			matchesCBOREncoder(t, o)
		}
	}
}

func FuzzGetRecordsCBOR(f *testing.F) {
	f.Add("key", []byte("data"), "seq", int64(3), uint16(1))
	f.Fuzz(func(t *testing.T, pk string, data []byte, seq string, ms int64, n uint16) {
		rec := stream.Record{SequenceNumber: seq, ArrivalTime: time.UnixMilli(ms % 1e13), Data: append([]byte{}, data...), PartitionKey: pk}
		o := &getRecordsOutput{Records: recordsOut(slices.Repeat([]stream.Record{rec}, int(n%300))), NextShardIterator: seq, MillisBehindLatest: ms}
		matchesCBOREncoder(t, o)
	})
}

// matchesCBOREncoder fails t unless o renders itself as the CBOR encoder
// renders it.
func matchesCBOREncoder(t *testing.T, o cborAppender) {
	t.Helper()
	want, err := cborEnc.Marshal(o)
	require.NoError(t, err)
	got, err := o.appendCBOR(nil)
	if err != nil || string(got) != string(want) {
		t.Fatalf("appendCBOR = %x, %v; encoder = %x", got, err, want)
	}
}

// TestCBORHeads holds the hand-written heads to the encoder's at every
// boundary of their forms.
func TestCBORHeads(t *testing.T) {
	for _, n := range []int64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<63 - 1} {
		for _, v := range []int64{n, -n, -n - 1} {
			want, err := cborEnc.Marshal(v)
			require.NoError(t, err)
			require.Equal(t, want, appendCBORInt(nil, v), "%d", v)
		}
		if n < 1<<20 {
			s := strings.Repeat("x", int(n))
			want, err := cborEnc.Marshal(s)
			require.NoError(t, err)
			require.Equal(t, want, appendCBORString(nil, cborText, s), "text of %d", n)
			want, err = cborEnc.Marshal([]byte(s))
			require.NoError(t, err)
			require.Equal(t, want, appendCBORString(nil, cborBytes, []byte(s)), "bytes of %d", n)
		}
	}
}

// getRecordsOutput is a GetRecords answer as a struct, for the encoders to
// render the reference answers from.
type getRecordsOutput struct {
	Records            recordsOut      `json:"Records"`
	NextShardIterator  string          `json:"NextShardIterator,omitempty"`
	MillisBehindLatest int64           `json:"MillisBehindLatest"`
	ChildShards        []childShardOut `json:"ChildShards,omitempty"`
}

// recordsOut are the records of an answer as the engine collects them;
// the encoders convert them to recordOut.
type recordsOut []stream.Record

func (r recordsOut) MarshalJSON() ([]byte, error) { return json.Marshal(toRecordsOut(r)) }
func (r recordsOut) MarshalCBOR() ([]byte, error) { return cborEnc.Marshal(toRecordsOut(r)) }

// appendJSON renders the answer through the functions renderRecords
// renders with, to hold them to encoding/json.
func (o *getRecordsOutput) appendJSON(b []byte) ([]byte, error) {
	size := 64 + len(o.NextShardIterator)
	for _, r := range o.Records {
		// Timestamp and member names: 101 bytes.
		size += 101 + len(r.SequenceNumber) + len(r.PartitionKey) + base64.StdEncoding.EncodedLen(len(r.Data))
	}
	b = slices.Grow(b, size)
	b = append(b, recordsStart...)
	for i, r := range o.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRecordJSON(b, r.SequenceNumber, r.ArrivalTime, r.Data, r.PartitionKey)
	}
	return nextIteratorTail(o.NextShardIterator, o.MillisBehindLatest, o.ChildShards).appendJSON(append(b, ']'))
}

// appendCBOR renders the answer through the functions renderRecords
// renders with, to hold them to the CBOR encoder (which writes nil data as
// null, where these write an empty byte string).
func (o *getRecordsOutput) appendCBOR(b []byte) ([]byte, error) {
	t := nextIteratorTail(o.NextShardIterator, o.MillisBehindLatest, o.ChildShards)
	b = appendRecordsCBORStart(b, len(o.Records), false, t)
	for _, r := range o.Records {
		b = appendRecordCBOR(b, r.SequenceNumber, r.ArrivalTime, r.Data, r.PartitionKey)
	}
	return t.appendCBOR(b)
}

// TestGetRecordsReadFaultIsAnError: a read of the store that fails part way
// through an answer being rendered (EIO on a table's block) is answered
// with InternalFailure in either format, not with the records rendered so
// far, and the same read answers in full once the disk reads again.
func TestGetRecordsReadFaultIsAnError(t *testing.T) {
	var failing atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && strings.HasSuffix(op.Path, ".sst") && op.Kind == errorfs.OpFileReadAt {
			return &os.PathError{Op: "read", Path: op.Path, Err: syscall.EIO}
		}
		return nil
	}))
	ctx := t.Context()
	svc, err := stream.Open(ctx, stream.Config{Dir: "data", FS: fs, MemTableSize: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, svc.CreateStream(ctx, "s", 1, stream.CreateOptions{}))
	var in []stream.PutInput
	for i := range 500 {
		in = append(in, stream.PutInput{PartitionKey: fmt.Sprint("k", i), Data: bytes.Repeat([]byte{byte(i)}, 1000)})
	}
	for range 4 {
		_, err := svc.Put(ctx, "s", in)
		require.NoError(t, err)
	}
	// Reopened, the records are in tables on disk, and none of their
	// blocks are cached.
	require.NoError(t, svc.Close())
	svc, err = stream.Open(ctx, stream.Config{Dir: "data", FS: fs, MemTableSize: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	h := newHandler(svc, nil, time.Now)
	it, err := svc.ShardIterator("s", "shardId-000000000000", stream.IteratorSpec{Type: stream.TrimHorizon})
	require.NoError(t, err)

	serve := func(c codec) *httptest.ResponseRecorder {
		get, err := c.encode(map[string]any{"ShardIterator": it})
		require.NoError(t, err)
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(get))
		r.Header.Set("X-Amz-Target", targetPrefix+"GetRecords")
		r.Header.Set("Content-Type", c.contentType())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	codecs := []codec{jsonCodec{}, cborCodec{}}
	// A first read caches the block of the first records; no table reads
	// after it: a read from the start renders those records, then fails
	// at the next block.
	_, err = svc.Records(ctx, it, 1)
	require.NoError(t, err)
	failing.Store(true)
	visited := 0
	_, err = svc.VisitRecords(ctx, it, 10000, func(*stream.RecordView) { visited++ })
	require.ErrorContains(t, err, syscall.EIO.Error())
	require.Positive(t, visited, "the read fails part way, after some records")
	for _, c := range codecs {
		w := serve(c)
		require.Equal(t, http.StatusInternalServerError, w.Code, c.contentType())
		var e struct {
			Type string `json:"__type"`
		}
		require.NoError(t, c.decode(w.Body.Bytes(), &e))
		require.Contains(t, e.Type, typeInternalFailure)
	}
	// (The blocks the full reads read are cached: they come after.)
	failing.Store(false)
	for _, c := range codecs {
		w := serve(c)
		require.Equal(t, http.StatusOK, w.Code, c.contentType())
		var out struct{ Records []struct{ Data []byte } }
		require.NoError(t, c.decode(w.Body.Bytes(), &out))
		require.Len(t, out.Records, 4*len(in), c.contentType())
	}
}
