package kinesisapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// rawResponse is one answer read off the wire.
type rawResponse struct {
	status int
	header http.Header
	body   map[string]any
}

func send(t *testing.T, srv *kinesistest.Server, method, target, contentType string, body []byte) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+"/", bytes.NewReader(body))
	require.NoError(t, err)
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := rawResponse{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out.body), "body: %s", raw)
	}
	require.Regexp(t, uuidPattern, resp.Header.Get("x-amzn-RequestId"))
	require.Regexp(t, `^[A-Za-z0-9+/]{96}$`, resp.Header.Get("x-amz-id-2"), "72 random bytes in base64")
	if contentType == "application/json" {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	} else {
		require.Equal(t, "application/x-amz-json-1.1", resp.Header.Get("Content-Type"))
	}
	return out
}

// errorMessage is an error answer's message, checking it is spelled as
// Kinesis spells it: "Message" in a SerializationException, "message" in
// every other error.
func errorMessage(t *testing.T, body map[string]any) any {
	t.Helper()
	if body["__type"] == "SerializationException" {
		require.NotContains(t, body, "message")
		return body["Message"]
	}
	require.NotContains(t, body, "Message")
	return body["message"]
}

func call(t *testing.T, srv *kinesistest.Server, action, body string) rawResponse {
	t.Helper()
	return send(t, srv, http.MethodPost, "Kinesis_20131202."+action, "application/x-amz-json-1.1", []byte(body))
}

func TestRawProtocol(t *testing.T) {
	srv := kinesistest.Start(t)
	const ct = "application/x-amz-json-1.1"
	tests := []struct {
		name        string
		method      string
		target      string
		contentType string
		body        string
		status      int
		typ         string
		msg         string // substring
	}{
		{"unknown action", "POST", "Kinesis_20131202.Frobnicate", ct, `{}`, 400, "UnknownOperationException", "Frobnicate"},
		{"missing target", "POST", "", ct, `{}`, 400, "UnknownOperationException", ""},
		{"foreign target", "POST", "DynamoDB_20120810.ListTables", ct, `{}`, 400, "UnknownOperationException", ""},
		{"get", "GET", "Kinesis_20131202.ListStreams", ct, ``, 400, "UnknownOperationException", ""},
		{"malformed json", "POST", "Kinesis_20131202.CreateStream", ct, `{"StreamName":`, 400, "SerializationException", "not valid JSON"},
		{"trailing garbage", "POST", "Kinesis_20131202.ListStreams", ct, `{} {}`, 400, "SerializationException", ""},
		{"not an object", "POST", "Kinesis_20131202.ListStreams", ct, `[1,2]`, 400, "SerializationException", "JSON object"},
		{"shard count string", "POST", "Kinesis_20131202.CreateStream", ct, `{"StreamName":"s","ShardCount":"abc"}`, 400, "SerializationException", "ShardCount"},
		{"shard count fraction", "POST", "Kinesis_20131202.CreateStream", ct, `{"StreamName":"s","ShardCount":1.5}`, 400, "SerializationException", "ShardCount"},
		{"name number", "POST", "Kinesis_20131202.DescribeStream", ct, `{"StreamName":7}`, 400, "SerializationException", "StreamName"},
		{"data not base64", "POST", "Kinesis_20131202.PutRecord", ct, `{"StreamName":"s","PartitionKey":"k","Data":"@@@"}`, 400, "SerializationException", "Data"},
		{"data number", "POST", "Kinesis_20131202.PutRecord", ct, `{"StreamName":"s","PartitionKey":"k","Data":5}`, 400, "SerializationException", "Data"},
		{"timestamp string", "POST", "Kinesis_20131202.GetShardIterator", ct,
			`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":"yesterday"}`, 400, "SerializationException", "Timestamp"},
		{"records not a list", "POST", "Kinesis_20131202.PutRecords", ct, `{"StreamName":"s","Records":{}}`, 400, "SerializationException", "Records"},
		{"missing data", "POST", "Kinesis_20131202.PutRecord", ct, `{"StreamName":"s","PartitionKey":"k"}`, 400, "ValidationException",
			"1 validation error detected: Value null at 'data' failed to satisfy constraint: Member must not be null"},
		{"missing record data", "POST", "Kinesis_20131202.PutRecords", ct, `{"StreamName":"s","Records":[{"PartitionKey":"k"}]}`, 400, "ValidationException",
			"Value null at 'records.1.member.data'"},
		{"wrong content type", "POST", "Kinesis_20131202.ListStreams", "text/plain", `{}`, 400, "SerializationException", "Content-Type"},
		{"missing stream", "POST", "Kinesis_20131202.DescribeStream", ct, `{"StreamName":"none"}`, 400, "ResourceNotFoundException", ""},
		{"empty body", "POST", "Kinesis_20131202.ListStreams", ct, ``, 400, "SerializationException", "empty"},
		{"blank body", "POST", "Kinesis_20131202.DescribeLimits", ct, " \n", 400, "SerializationException", "empty"},
		{"unknown fields ignored", "POST", "Kinesis_20131202.ListStreams", ct, `{"Bogus":{"x":[1]},"Limit":5}`, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := send(t, srv, tc.method, tc.target, tc.contentType, []byte(tc.body))
			require.Equal(t, tc.status, resp.status, "body: %v", resp.body)
			if tc.typ == "" {
				require.NotContains(t, resp.body, "__type")
				return
			}
			require.Equal(t, tc.typ, resp.body["__type"])
			require.Contains(t, errorMessage(t, resp.body), tc.msg)
		})
	}
}

func TestRawResponses(t *testing.T) {
	srv := kinesistest.Start(t)

	resp := call(t, srv, "CreateStream", `{"StreamName":"raw","ShardCount":1,"Unknown":true}`)
	require.Equal(t, http.StatusOK, resp.status)
	require.Nil(t, resp.body, "CreateStream has no output: an empty body")

	resp = call(t, srv, "CreateStream", `{"StreamName":"raw","ShardCount":1}`)
	require.Equal(t, "ResourceInUseException", resp.body["__type"])

	resp = call(t, srv, "PutRecord", `{"StreamName":"raw","PartitionKey":"k","Data":"aGVsbG8="}`)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "shardId-000000000000", resp.body["ShardId"])
	require.Equal(t, "NONE", resp.body["EncryptionType"])
	require.Regexp(t, `^\d+$`, resp.body["SequenceNumber"])

	resp = call(t, srv, "GetShardIterator", `{"StreamName":"raw","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`)
	it, _ := resp.body["ShardIterator"].(string)
	require.NotEmpty(t, it)
	body, err := json.Marshal(map[string]any{"ShardIterator": it, "Limit": 5})
	require.NoError(t, err)
	resp = call(t, srv, "GetRecords", string(body))
	require.Equal(t, http.StatusOK, resp.status)
	recs, _ := resp.body["Records"].([]any)
	require.Len(t, recs, 1)
	rec := recs[0].(map[string]any)
	require.Equal(t, "aGVsbG8=", rec["Data"])
	require.Equal(t, "k", rec["PartitionKey"])
	require.IsType(t, float64(0), rec["ApproximateArrivalTimestamp"], "timestamps are epoch-second numbers")
	require.Contains(t, resp.body, "NextShardIterator")
	require.Contains(t, resp.body, "MillisBehindLatest")
	require.NotContains(t, resp.body, "ChildShards")

	resp = call(t, srv, "DescribeStreamSummary", `{"StreamName":"raw"}`)
	sum := resp.body["StreamDescriptionSummary"].(map[string]any)
	require.IsType(t, float64(0), sum["StreamCreationTimestamp"])
	require.Equal(t, "ACTIVE", sum["StreamStatus"])
}

func TestRawBodyLimit(t *testing.T) {
	srv := kinesistest.Start(t)
	huge := `{"StreamName":"s","PartitionKey":"k","Data":"` + strings.Repeat("A", 16<<20) + `"}`
	resp := call(t, srv, "PutRecord", huge)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
	require.Equal(t, "RequestEntityTooLargeException", resp.body["__type"])
}

// TestRawPlainJSON: Kinesis does not dispatch a request sent as plain
// application/json; it answers 200 with the error inside a Coral envelope
// and runs nothing.
func TestRawPlainJSON(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	resp := send(t, srv, http.MethodPost, "Kinesis_20131202.CreateStream", "application/json", []byte(`{"StreamName":"plain","ShardCount":1}`))
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "1.0", resp.body["Version"])
	output, _ := resp.body["Output"].(map[string]any)
	require.Equal(t, "com.amazon.coral.service#UnknownOperationException", output["__type"])
	require.Contains(t, output, "message")
	resp = call(t, srv, "DescribeStreamSummary", `{"StreamName":"plain"}`)
	require.Equal(t, "ResourceNotFoundException", resp.body["__type"], "nothing was run")
}

// TestRawValidationMessages: values in validation messages are shown as
// Kinesis shows them (lists as [a, b], maps as {k=v}), and at most ten
// failures are listed.
func TestRawValidationMessages(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	resp := call(t, srv, "PutRecords", `{"StreamName":"s","Records":[]}`)
	require.Equal(t, "ValidationException", resp.body["__type"])
	require.Equal(t, "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1",
		errorMessage(t, resp.body))

	resp = call(t, srv, "AddTagsToStream", `{"StreamName":"s","Tags":{}}`)
	require.Contains(t, errorMessage(t, resp.body), "Value '{}' at 'tags'")
	many := make(map[string]string, 11)
	for i := range 11 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	body, err := json.Marshal(map[string]any{"StreamName": "s", "Tags": many})
	require.NoError(t, err)
	resp = call(t, srv, "AddTagsToStream", string(body))
	require.Contains(t, errorMessage(t, resp.body), "Value '{k00=v, k01=v, ")

	resp = call(t, srv, "RemoveTagsFromStream", `{"StreamName":"s","TagKeys":[]}`)
	require.Contains(t, errorMessage(t, resp.body), "Value '[]' at 'tagKeys'")

	// Twelve records with neither data nor key: 24 failures, ten listed.
	recs := strings.Repeat(`{},`, 11) + `{}`
	resp = call(t, srv, "PutRecords", `{"StreamName":"s","Records":[`+recs+`]}`)
	msg, _ := errorMessage(t, resp.body).(string)
	require.True(t, strings.HasPrefix(msg, "10 validation errors detected: "), msg)
	require.Equal(t, 10, strings.Count(msg, "failed to satisfy constraint"), msg)
	for _, leak := range []string{"map[", "records]", "%!"} {
		require.NotContains(t, msg, leak)
	}
}
