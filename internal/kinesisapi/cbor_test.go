package kinesisapi_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
)

const contentTypeCBOR = "application/x-amz-cbor-1.1"

// cborRequest encodes an aws-sdk-go-v2 input struct as the Java SDK sends
// it: members by their shape names (the SDK's Go field names are the same),
// absent members left out.
func cborRequest(t *testing.T, in any) []byte {
	t.Helper()
	raw, err := cbor.Marshal(in)
	require.NoError(t, err)
	var m any
	require.NoError(t, cbor.Unmarshal(raw, &m))
	out, err := cbor.Marshal(prune(m))
	require.NoError(t, err)
	return out
}

// prune drops null and empty-string members, which the SDK structs encode
// for absent pointers and unset enums.
func prune(v any) any {
	switch x := v.(type) {
	case map[any]any:
		out := map[any]any{}
		for k, e := range x {
			if e == nil || e == "" {
				continue
			}
			out[k] = prune(e)
		}
		return out
	case []any:
		for i := range x {
			x[i] = prune(x[i])
		}
	}
	return v
}

// cborCall sends one CBOR request and returns the status and raw body,
// checking the response is CBOR with a request id.
func cborCall(t *testing.T, srv *kinesistest.Server, action string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+action)
	req.Header.Set("Content-Type", contentTypeCBOR)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, contentTypeCBOR, resp.Header.Get("Content-Type"))
	require.Regexp(t, uuidPattern, resp.Header.Get("x-amzn-RequestId"))
	require.NoError(t, cbor.Wellformed(raw), "response is not well-formed CBOR: %x", raw)
	return resp.StatusCode, raw
}

// cborOK calls an action that must succeed and decodes its answer into out.
func cborOK(t *testing.T, srv *kinesistest.Server, action string, in, out any) {
	t.Helper()
	status, raw := cborCall(t, srv, action, cborRequest(t, in))
	require.Equal(t, http.StatusOK, status, "%s: %s", action, cborDiag(raw))
	if out != nil {
		require.NoError(t, cbor.Unmarshal(raw, out), "%s: %s", action, cborDiag(raw))
	}
}

func cborDiag(raw []byte) string {
	s, err := cbor.Diagnose(raw)
	if err != nil {
		return err.Error()
	}
	return s
}

type cborError struct {
	Type    string `cbor:"__type"`
	Message string `cbor:"message"`
	// Message is spelled so in a SerializationException.
	SerializationMessage string `cbor:"Message"`
}

// epochMillis reads a timestamp as AWS CBOR sends it: tag 1 around an
// integer number of epoch milliseconds.
func epochMillis(t *testing.T, tag cbor.RawTag) time.Time {
	t.Helper()
	require.EqualValues(t, 1, tag.Number, "timestamp tag")
	var ms int64
	require.NoError(t, cbor.Unmarshal(tag.Content, &ms), "timestamp content must be an integer: %s", cborDiag(tag.Content))
	return time.UnixMilli(ms)
}

func TestCBORRoundTrip(t *testing.T) {
	srv := kinesistest.Start(t)
	before := time.Now().Add(-time.Second)

	cborOK(t, srv, "CreateStream", &kinesis.CreateStreamInput{StreamName: aws.String("cbor"), ShardCount: aws.Int32(1)}, nil)

	var summary struct {
		StreamDescriptionSummary struct {
			StreamName              string
			StreamStatus            string
			OpenShardCount          int
			StreamCreationTimestamp cbor.RawTag
		}
	}
	cborOK(t, srv, "DescribeStreamSummary", &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("cbor")}, &summary)
	require.Equal(t, "cbor", summary.StreamDescriptionSummary.StreamName)
	require.Equal(t, "ACTIVE", summary.StreamDescriptionSummary.StreamStatus)
	require.Equal(t, 1, summary.StreamDescriptionSummary.OpenShardCount)
	created := epochMillis(t, summary.StreamDescriptionSummary.StreamCreationTimestamp)
	require.WithinRange(t, created, before, time.Now().Add(time.Second))

	payload := []byte{0x00, 0xff, 0x80, 'k', 'i', 'n', 'e', 's', 'i', 's'}
	var put struct{ ShardId, SequenceNumber string }
	cborOK(t, srv, "PutRecord", &kinesis.PutRecordInput{StreamName: aws.String("cbor"), PartitionKey: aws.String("pk"), Data: payload}, &put)
	require.Equal(t, "shardId-000000000000", put.ShardId)
	require.NotEmpty(t, put.SequenceNumber)

	var puts struct {
		FailedRecordCount int
		Records           []struct{ ShardId, SequenceNumber string }
	}
	cborOK(t, srv, "PutRecords", &kinesis.PutRecordsInput{StreamName: aws.String("cbor"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("one")},
		{PartitionKey: aws.String("b"), Data: []byte{}},
	}}, &puts)
	require.Zero(t, puts.FailedRecordCount)
	require.Len(t, puts.Records, 2)

	var it struct{ ShardIterator string }
	cborOK(t, srv, "GetShardIterator", &kinesis.GetShardIteratorInput{
		StreamName: aws.String("cbor"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	}, &it)

	var got struct {
		Records []struct {
			SequenceNumber              string
			PartitionKey                string
			Data                        cbor.RawMessage
			ApproximateArrivalTimestamp cbor.RawTag
		}
		NextShardIterator  string
		MillisBehindLatest int64
	}
	cborOK(t, srv, "GetRecords", &kinesis.GetRecordsInput{ShardIterator: aws.String(it.ShardIterator)}, &got)
	require.Len(t, got.Records, 3)
	require.NotEmpty(t, got.NextShardIterator)
	want := [][]byte{payload, []byte("one"), {}}
	for i, rec := range got.Records {
		require.Equal(t, byte(2), rec.Data[0]>>5, "Data must be a CBOR byte string: %s", cborDiag(rec.Data))
		var data []byte
		require.NoError(t, cbor.Unmarshal(rec.Data, &data))
		require.Equal(t, want[i], append([]byte{}, data...))
		arrived := epochMillis(t, rec.ApproximateArrivalTimestamp)
		require.WithinRange(t, arrived, before, time.Now().Add(time.Second))
	}
	require.Equal(t, put.SequenceNumber, got.Records[0].SequenceNumber)

	// AT_TIMESTAMP with a Java-style timestamp (tag 1, epoch milliseconds)
	// a second ago finds everything; one a minute from now is refused, as
	// Kinesis refuses a timestamp in the future.
	at := func(ts time.Time) []byte {
		return cborMap(
			"StreamName", "cbor", "ShardId", "0", "ShardIteratorType", "AT_TIMESTAMP",
			"Timestamp", cbor.Tag{Number: 1, Content: ts.UnixMilli()},
		)
	}
	status, raw := cborCall(t, srv, "GetShardIterator", at(before))
	require.Equal(t, http.StatusOK, status, cborDiag(raw))
	require.NoError(t, cbor.Unmarshal(raw, &it))
	cborOK(t, srv, "GetRecords", &kinesis.GetRecordsInput{ShardIterator: aws.String(it.ShardIterator)}, &got)
	require.Len(t, got.Records, 3)
	status, raw = cborCall(t, srv, "GetShardIterator", at(time.Now().Add(time.Minute)))
	require.Equal(t, http.StatusBadRequest, status, cborDiag(raw))
	var e cborError
	require.NoError(t, cbor.Unmarshal(raw, &e))
	require.Equal(t, "InvalidArgumentException", e.Type)
	require.Contains(t, e.Message, "timestampInMillis")
}

// cborMap encodes key/value pairs as an indefinite-length map, the way the
// Java SDK's Jackson generator writes a request.
func cborMap(kv ...any) []byte {
	var buf bytes.Buffer
	buf.WriteByte(0xbf)
	for _, x := range kv {
		b, err := cbor.Marshal(x)
		if err != nil {
			panic(err)
		}
		buf.Write(b)
	}
	buf.WriteByte(0xff)
	return buf.Bytes()
}

func TestCBORErrors(t *testing.T) {
	srv := kinesistest.Start(t)
	tests := []struct {
		name   string
		action string
		body   []byte
		status int
		typ    string
	}{
		{"unknown stream", "DescribeStreamSummary", cborMap("StreamName", "nope"), 400, "ResourceNotFoundException"},
		{"validation", "CreateStream", cborMap("StreamName", "bad name!", "ShardCount", 1), 400, "ValidationException"},
		{"not CBOR", "ListStreams", []byte{0xbf, 0x61}, 400, "SerializationException"},
		{"not a map", "ListStreams", []byte{0x83, 1, 2, 3}, 400, "SerializationException"},
		{"wrong member type", "CreateStream", cborMap("StreamName", "s", "ShardCount", "one"), 400, "SerializationException"},
		{"text for a blob", "PutRecord", cborMap("StreamName", "s", "PartitionKey", "k", "Data", "aGk="), 400, "SerializationException"},
		{"trailing bytes", "ListStreams", append(cborMap(), 0x01), 400, "SerializationException"},
		{"bad timestamp tag", "GetShardIterator", cborMap("StreamName", "s", "ShardId", "shardId-000000000000",
			"ShardIteratorType", "AT_TIMESTAMP", "Timestamp", cbor.Tag{Number: 0, Content: "2024-01-01T00:00:00Z"}), 400, "SerializationException"},
		{"unknown operation", "NoSuchThing", cborMap(), 400, "UnknownOperationException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := cborCall(t, srv, tc.action, tc.body)
			require.Equal(t, tc.status, status)
			var e cborError
			require.NoError(t, cbor.Unmarshal(raw, &e), cborDiag(raw))
			msg := e.Message
			if tc.typ == "SerializationException" {
				require.Empty(t, e.Message)
				msg = e.SerializationMessage
			}
			require.Equal(t, tc.typ, e.Type, msg)
			require.NotEmpty(t, msg)
			t.Log(msg)
		})
	}
}

func TestCBOREmptyBodyIsEmptyRequest(t *testing.T) {
	srv := kinesistest.Start(t)
	status, raw := cborCall(t, srv, "ListStreams", nil)
	require.Equal(t, http.StatusOK, status)
	var out struct {
		StreamNames    []string
		HasMoreStreams bool
	}
	require.NoError(t, cbor.Unmarshal(raw, &out))
	require.Empty(t, out.StreamNames)
}
