package kinesisapi

import (
	"encoding/hex"
	"errors"
	"net/http"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// Request bodies as the AWS SDK for Java v2 writes them with Jackson's CBOR
// generator: indefinite-length maps and arrays, blobs as byte strings and
// timestamps as tag 1 around integer epoch milliseconds.
var javaFixtures = map[string]string{
	// {"StreamName": "test", "Data": h'00016869', "PartitionKey": "key"}
	"PutRecord": "bf6a53747265616d4e616d656474657374644461746144000168696c506172746974696f6e4b6579636b6579ff",
	// {"StreamName": "test", "ShardId": "shardId-000000000000",
	//  "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1(1787036486712)}
	"GetShardIterator": "bf6a53747265616d4e616d656474657374675368617264496474736861726449642d3030303030303030303030307153686172644974657261746f72547970656c41545f54494d455354414d506954696d657374616d70c11b000001a013accc38ff",
	// {"Records": [_ {"Data": h'61', "PartitionKey": "p1"},
	//  {"Data": h'', "ExplicitHashKey": "0", "PartitionKey": "p2"}],
	//  "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/test"}
	"PutRecords": "bf675265636f7264739fbf644461746141616c506172746974696f6e4b6579627031ffbf6444617461406f4578706c69636974486173684b657961306c506172746974696f6e4b6579627032ffff6953747265616d41524e783261726e3a6177733a6b696e657369733a75732d656173742d313a3030303030303030303030303a73747265616d2f74657374ff",
}

func decodeFixture(t *testing.T, action string) request {
	t.Helper()
	body, err := hex.DecodeString(javaFixtures[action])
	require.NoError(t, err)
	req, err := actions()[action].decodeWith(cborCodec{}, body)
	require.NoError(t, err)
	return req
}

func TestCBORJavaFixtures(t *testing.T) {
	t.Run("PutRecord", func(t *testing.T) {
		r := decodeFixture(t, "PutRecord").(*putRecordRequest)
		require.Equal(t, "test", *r.StreamName)
		require.Equal(t, "key", *r.PartitionKey)
		require.Equal(t, []byte{0, 1, 'h', 'i'}, []byte(*r.Data))
	})
	t.Run("GetShardIterator", func(t *testing.T) {
		r := decodeFixture(t, "GetShardIterator").(*getShardIteratorRequest)
		require.Equal(t, "AT_TIMESTAMP", *r.ShardIteratorType)
		require.Equal(t, time.UnixMilli(1787036486712).UTC(), r.Timestamp.Time)
	})
	t.Run("PutRecords", func(t *testing.T) {
		r := decodeFixture(t, "PutRecords").(*putRecordsRequest)
		require.Equal(t, "arn:aws:kinesis:us-east-1:000000000000:stream/test", *r.StreamARN)
		require.Len(t, r.Records, 2)
		require.Equal(t, []byte("a"), []byte(*r.Records[0].Data))
		require.Empty(t, *r.Records[1].Data)
		require.Equal(t, "0", *r.Records[1].ExplicitHashKey)
	})
}

func TestCBORTimestampForms(t *testing.T) {
	want := time.UnixMilli(1700000000123).UTC()
	tests := []struct {
		name string
		v    any
	}{
		{"tag 1 integer milliseconds", cbor.Tag{Number: 1, Content: uint64(1700000000123)}},
		{"untagged integer milliseconds", int64(1700000000123)},
		{"tag 1 float seconds", cbor.Tag{Number: 1, Content: 1700000000.123}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := cbor.Marshal(tc.v)
			require.NoError(t, err)
			var et epochTime
			require.NoError(t, et.UnmarshalCBOR(b))
			require.Equal(t, want, et.Time)
		})
	}
	out, err := cborEnc.Marshal(epochSeconds(want))
	require.NoError(t, err)
	require.Equal(t, "c11b0000018bcfe5687b", hex.EncodeToString(out), "tag 1 around 1700000000123")
}

// TestCBORAndJSONAgree decodes the same requests from both formats.
func TestCBORAndJSONAgree(t *testing.T) {
	for action, fixture := range javaFixtures {
		t.Run(action, func(t *testing.T) {
			body, err := hex.DecodeString(fixture)
			require.NoError(t, err)
			fromCBOR, err := actions()[action].decodeWith(cborCodec{}, body)
			require.NoError(t, err)
			js, err := jsonCodec{}.encode(jsonView(t, body))
			require.NoError(t, err)
			fromJSON, err := actions()[action].decode(js)
			require.NoError(t, err, "%s", js)
			require.Equal(t, withoutArena(fromCBOR), withoutArena(fromJSON))
		})
	}
}

// jsonView turns a CBOR request into the value AWS JSON would carry:
// byte strings become base64 (by encoding/json) and tag 1 milliseconds
// become fractional seconds.
func jsonView(t *testing.T, body []byte) any {
	t.Helper()
	dm, err := cbor.DecOptions{DefaultMapType: reflect.TypeOf(map[string]any{}), TimeTagToAny: cbor.TimeTagToTime}.DecMode()
	require.NoError(t, err)
	var v any
	require.NoError(t, dm.Unmarshal(body, &v))
	var conv func(any) any
	conv = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = conv(e)
			}
		case []any:
			for i := range x {
				x[i] = conv(x[i])
			}
		case time.Time:
			// TimeTagToTime read the milliseconds as seconds.
			return float64(x.Unix()) / 1000
		}
		return v
	}
	return conv(v)
}

// FuzzDecodeCBOR feeds arbitrary bodies to every action's CBOR decoder: it
// must never panic, must answer any failure with a client error the error
// table knows, and must decode the same body the same way twice.
func FuzzDecodeCBOR(f *testing.F) {
	acts := actions()
	names := make([]string, 0, len(acts))
	for name := range acts {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if fx, ok := javaFixtures[name]; ok {
			b, _ := hex.DecodeString(fx)
			f.Add(uint8(i), b)
		}
	}
	f.Add(uint8(0), []byte{0xbf, 0xff})
	f.Add(uint8(1), []byte{0xa1, 0x6a, 'S', 't', 'r', 'e', 'a', 'm', 'N', 'a', 'm', 'e', 0x61, 's'})
	f.Add(uint8(2), []byte{0xc1, 0xfb, 0x41, 0xd9, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		act := acts[names[int(which)%len(names)]]
		first, err := act.decodeWith(cborCodec{}, body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("decode error is not a client error: %#v", err)
			}
			return
		}
		again, err := act.decodeWith(cborCodec{}, body)
		if err != nil || !reflect.DeepEqual(first, again) {
			t.Fatalf("second decode differs: %v", err)
		}
	})
}
