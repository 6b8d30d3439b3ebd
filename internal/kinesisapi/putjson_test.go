package kinesisapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeBoth decodes body into a fresh request of type R through decodeJSON
// (the hand decoder first) and through encoding/json alone, and fails t
// unless both give the same request and the same error. It reports whether
// the hand decoder took the body.
func decodeBoth[R any, P interface {
	*R
	fastJSONDecoder
}](t *testing.T, body []byte) bool {
	t.Helper()
	fast, slow := P(new(R)), P(new(R))
	took := P(new(R)).decodeFastJSON(body)
	errFast := decodeJSON(body, fast)
	errSlow := decodeJSONReflect(body, slow)
	if fmt.Sprint(errFast) != fmt.Sprint(errSlow) {
		t.Fatalf("body %q: decodeJSON error %v, encoding/json %v", body, errFast, errSlow)
	}
	if long, ok := any(slow).(*putRecordsRequest); ok && errSlow == nil && len(long.Records) > maxPutRecords {
		// The hand decoder keeps no more than a refusal needs: the
		// refusal is the same.
		require.Equal(t, fmt.Sprint(long.validate()), fmt.Sprint(any(fast).(*putRecordsRequest).validate()), "body %q", body)
	} else if errSlow == nil {
		require.Equal(t, withoutArena(slow), withoutArena(fast), "body %q", body)
	}
	if took {
		require.NoError(t, errSlow, "the hand decoder took a body encoding/json refuses: %q", body)
	}
	return took
}

var putRecordsBodies = []string{
	`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"aGk="},{"PartitionKey":"j","Data":"","ExplicitHashKey":"0"}]}`,
	`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Records":[{"Data":"AAECAw==","PartitionKey":"ünï"}]}`,
	` { "Records" : [ { "Data" : "aGVsbG8=" , "PartitionKey" : "a" } ] , "StreamName" : "s" } `,
	`{"StreamName":null,"Records":null}`,
	`{"StreamName":"s","Records":[]}`,
	`{"StreamName":"s","Records":[{}]}`,
	`{"StreamName":"s","Records":[{"Data":null,"PartitionKey":null,"ExplicitHashKey":null}]}`,
	`{"StreamName":"s","Extra":{"a":[1,-2.5e+3,true,false,null,"x",{}],"b":[]},"Records":[{"PartitionKey":"k","Data":"AA==","Other":0}]}`,
	`{}`,
}

// Bodies the hand decoder must leave to encoding/json, which answers them.
var putRecordsDeclined = []string{
	`null`,
	`[]`,
	`{"StreamName":"s"`,
	`{"StreamName":"s"} x`,
	`{"streamname":"s","Records":[]}`,
	`{"ſtreamName":"s","Records":[]}`,
	`{"StreamName":"a","StreamName":"b","Records":[]}`,
	`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"aGk="}],"Records":[{"PartitionKey":"j"}]}`,
	`{"StreamName":"s","Records":[{"PartitionKey":"k\n","Data":"aGk="}]}`,
	`{"StreamName":"s","Records":[{"PartitionKey":"k\u00e9","Data":"aGk="}]}`,
	`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"aG\/k"}]}`,
	"{\"StreamName\":\"s\",\"Records\":[{\"PartitionKey\":\"k\",\"Data\":\"aGk=\n\n\n\n\"}]}",
	"{\"StreamName\":\"s\",\"Records\":[{\"PartitionKey\":\"k\",\"Data\":\"aG\nk\"}]}",
	`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"not base64!"}]}`,
	`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":5}]}`,
	`{"StreamName":5,"Records":[]}`,
	`{"StreamName":"s","Records":{}}`,
	`{"StreamName":"s","Records":[null]}`,
	`{"StreamName":"s","Records":[1]}`,
	`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"aGk="},]}`,
	`{"StreamName":"s","X":01,"Records":[]}`,
	`{"StreamName":"s","X":1.,"Records":[]}`,
	`{"StreamName":"s","X":tru,"Records":[]}`,
	"{\"StreamName\":\"s\xff\",\"Records\":[]}",
	`{"StreamName":"s","X":"\ud800","Records":[]}`,
}

func TestDecodePutRecordsMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, body := range putRecordsBodies {
		require.True(t, decodeBoth[putRecordsRequest](t, []byte(body)), "the hand decoder declined %s", body)
	}
	for _, body := range putRecordsDeclined {
		require.False(t, decodeBoth[putRecordsRequest](t, []byte(body)), "the hand decoder took %s", body)
	}
}

func TestDecodePutRecordMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"StreamName":"s","PartitionKey":"k","Data":"aGVsbG8=","ExplicitHashKey":"12345","SequenceNumberForOrdering":"1"}`,
		`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","PartitionKey":"k","Data":""}`,
		`{"StreamName":"s","PartitionKey":null,"Data":null,"Unknown":[{"x":null}]}`,
	} {
		require.True(t, decodeBoth[putRecordRequest](t, []byte(body)), "the hand decoder declined %s", body)
	}
	for _, body := range []string{`{"StreamName":"s","partitionKey":"k","Data":""}`, `{"StreamName":"s","Data":"","Data":"AA=="}`, `{"StreamName":"s","Data":"A"}`} {
		require.False(t, decodeBoth[putRecordRequest](t, []byte(body)), "the hand decoder took %s", body)
	}
}

// TestDecodePutRecordsSDKBody: what the SDKs send takes the hand decoder,
// so the hot path is the fast one.
func TestDecodePutRecordsSDKBody(t *testing.T) {
	t.Parallel()
	body := putRecordsBody(t, 500, 100)
	var r putRecordsRequest
	require.True(t, r.decodeFastJSON(body))
	require.Len(t, r.Records, 500)
	require.Len(t, *r.Records[499].Data, 100)
	require.Equal(t, "key-499", *r.Records[499].PartitionKey)
	decodeBoth[putRecordsRequest](t, body)
}

// putRecordsBody is a PutRecords body as an SDK marshals it: n records of
// size bytes.
func putRecordsBody(tb testing.TB, n, size int) []byte {
	type entry struct {
		Data         []byte
		PartitionKey string
	}
	recs := make([]entry, n)
	for i := range recs {
		recs[i] = entry{Data: make([]byte, size), PartitionKey: fmt.Sprintf("key-%d", i)}
		recs[i].Data[0] = byte(i)
	}
	body, err := json.Marshal(map[string]any{"StreamName": "bench", "Records": recs})
	require.NoError(tb, err)
	return body
}

// FuzzDecodePutRecords is a differential test: whatever body it is given,
// decodeJSON (the hand decoder, falling back to encoding/json) and
// encoding/json alone decode PutRecords and PutRecord requests to the same
// value or the same client error.
func FuzzDecodePutRecords(f *testing.F) {
	for _, b := range putRecordsBodies {
		f.Add([]byte(b))
	}
	for _, b := range putRecordsDeclined {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"StreamName":"s","PartitionKey":"k","Data":"aGVsbG8=","ExplicitHashKey":"12345","SequenceNumberForOrdering":"1"}`))
	f.Add([]byte(`{"StreamName":"s","Records":[{"Data":"AA=="},{"Data":"AA==","PartitionKey":null},{"Data":"AA==","PartitionKey":""}]}`))
	f.Add([]byte(`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"` + base64.StdEncoding.EncodeToString([]byte("some bytes")) + `"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeBoth[putRecordsRequest](t, body)
		decodeBoth[putRecordRequest](t, body)
	})
}

// Data long enough for the vector decoder (45 characters and more), with
// a wrong character at every place, decodes as encoding/json decodes it,
// or is refused as it refuses it.
func TestDecodePutRecordsDataEveryFault(t *testing.T) {
	t.Parallel()
	for _, n := range []int{33, 34, 35, 36, 48, 100, 101, 102, 150} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		text := base64.StdEncoding.EncodeToString(data)
		bodies := []string{text}
		for i := range len(text) {
			for _, bad := range []string{"!", "=", "\\n", "\\r\\n", "-", "\\u0041", "é"} {
				bodies = append(bodies, text[:i]+bad+text[i+1:], text[:i]+bad+text[i:])
			}
		}
		for _, d := range bodies {
			body := []byte(`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"` + d + `"},{"PartitionKey":"k","Data":"` + text + `"}]}`)
			decodeBoth[putRecordsRequest](t, body)
		}
	}
}

// TestPutRecordsTooLongIsBounded: a body of a million empty entries is
// refused with the error a fully decoded one gets, and decoding it
// allocates a bounded amount, not per entry.
// Not parallel: it counts the process's allocations.
func TestPutRecordsTooLongIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"StreamName":"s","Records":[`)
	for i := range 1_000_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("{}")
	}
	b.WriteString(`]}`)
	body := []byte(b.String())

	var slow putRecordsRequest
	require.NoError(t, decodeJSONReflect(body, &slow))
	require.Len(t, slow.Records, 1_000_000)
	want := slow.validate()
	require.Error(t, want)

	var fast putRecordsRequest
	require.True(t, fast.decodeFastJSON(body))
	require.Len(t, fast.Records, maxPutRecords)
	require.Equal(t, want.Error(), fast.validate().Error())

	// A bad entry past the limit is still named, at its position.
	late := bytes.Replace(body, []byte(`{},{}]}`), []byte(`{"Data":"AA==","PartitionKey":""},{}]}`), 1)
	slow, fast = putRecordsRequest{}, putRecordsRequest{}
	require.NoError(t, decodeJSONReflect(late, &slow))
	require.True(t, fast.decodeFastJSON(late))
	require.Equal(t, slow.validate().Error(), fast.validate().Error())

	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	var r putRecordsRequest
	require.True(t, r.decodeFastJSON(body))
	runtime.ReadMemStats(&m1)
	allocated := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("decoding %d bytes of 1,000,000 entries allocated %d bytes in %d allocations", len(body), allocated, m1.Mallocs-m0.Mallocs)
	// The arena for the data is sized by the body (3/4 of it); nothing
	// else may grow with the entries.
	require.Less(t, allocated, uint64(len(body)), "allocations bounded by the body, not the entries")
	require.Less(t, m1.Mallocs-m0.Mallocs, uint64(1000))
}

// withoutArena drops what a decoded PutRecords request holds to release
// its buffer (the records' data is compared), so that requests decoded
// different ways compare equal.
func withoutArena(v any) any {
	if r, ok := v.(*putRecordsRequest); ok {
		c := *r
		c.arena = nil
		return &c
	}
	return v
}
