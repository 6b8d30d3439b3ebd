package kinesisapi_test

import (
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// TestInvalidUnicodeIsRefused: a partition key (or any string) that is not
// valid UTF-8, or escapes a lone surrogate, gets a SerializationException
// instead of being stored as U+FFFD; valid keys, surrogate pairs included,
// are stored exactly as sent.
func TestInvalidUnicodeIsRefused(t *testing.T) {
	e := start(t)
	e.createStream(t, "u", 1)
	for _, tc := range []struct{ name, body, msg string }{
		{"invalid byte", "{\"StreamName\":\"u\",\"PartitionKey\":\"a\xffb\",\"Data\":\"AA==\"}", "not valid UTF-8"},
		{"encoded surrogate", "{\"StreamName\":\"u\",\"PartitionKey\":\"a\xed\xa0\x80\",\"Data\":\"AA==\"}", "not valid UTF-8"},
		{"lone high surrogate", `{"StreamName":"u","PartitionKey":"a\ud800","Data":"AA=="}`, `\ud800`},
		{"high then not low", `{"StreamName":"u","PartitionKey":"\ud800\u0041","Data":"AA=="}`, `\ud800`},
		{"lone low surrogate", `{"StreamName":"u","PartitionKey":"\udc00x","Data":"AA=="}`, `\udc00`},
		{"in a stream name", `{"StreamName":"\ud83d","PartitionKey":"k","Data":"AA=="}`, `\ud83d`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, e.srv, "PutRecord", tc.body)
			require.Equal(t, http.StatusBadRequest, res.status)
			require.Equal(t, "SerializationException", res.body["__type"])
			require.Contains(t, errorMessage(t, res.body), tc.msg)
		})
	}

	// A surrogate pair and an escaped backslash before "u" are fine.
	for _, body := range []string{
		`{"StreamName":"u","PartitionKey":"\ud83d\ude00","Data":"AA=="}`,
		`{"StreamName":"u","PartitionKey":"\\ud800","Data":"AA=="}`,
	} {
		res := call(t, e.srv, "PutRecord", body)
		require.Equal(t, http.StatusOK, res.status, "%s: %v", body, res.body)
	}
	it, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("u"),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: "TRIM_HORIZON"})
	require.NoError(t, err)
	got, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, got.Records, 2, "nothing refused was stored")
	require.Equal(t, "\U0001F600", aws.ToString(got.Records[0].PartitionKey))
	require.Equal(t, `\ud800`, aws.ToString(got.Records[1].PartitionKey))
}

// TestInvalidUnicodeCBOR: over CBOR (the Java SDK and KCL), a text string
// that is not valid UTF-8 is a SerializationException too.
func TestInvalidUnicodeCBOR(t *testing.T) {
	e := start(t)
	e.createStream(t, "u", 1)
	type textString string
	body, err := cbor.Marshal(map[string]any{"StreamName": "u", "PartitionKey": textString("a\xed\xa0\x80"), "Data": []byte{1}})
	require.NoError(t, err)
	status, raw := cborCall(t, e.srv, "PutRecord", body)
	var out cborError
	require.NoError(t, cbor.Unmarshal(raw, &out))
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "SerializationException", out.Type, "%v", out)
}
