package kinesisapi_test

import (
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// TestPartitionKeyOptionalOnAuto: a stream that uses the AUTO record
// distribution takes records without a partition key (PutRecord and
// PutRecords, through the SDK, raw JSON and CBOR), and GetRecords and
// SubscribeToShard answer them with no PartitionKey member, as Kinesis
// does; every other stream still refuses them with the
// ValidationException of a missing member.
func TestPartitionKeyOptionalOnAuto(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, name := range []string{"auto", "user"} {
		_, err := e.c.CreateStream(e.ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name),
			StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
		require.NoError(t, err)
		e.waitActive(t, name)
	}
	e.createStream(t, "prov", 1)
	sum, err := e.c.DescribeStreamSummary(e.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("auto")})
	require.NoError(t, err)
	_, err = e.c.UpdateStreamRecordDistributionStrategy(e.ctx, &kinesis.UpdateStreamRecordDistributionStrategyInput{
		StreamARN: sum.StreamDescriptionSummary.StreamARN, RecordDistributionStrategy: types.RecordDistributionStrategyAuto})
	require.NoError(t, err)

	// The SDK sends no PartitionKey member when it is nil (it no longer
	// requires one client-side).
	_, err = e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("auto"), Data: []byte("sdk-one")})
	require.NoError(t, err)
	out, err := e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String("auto"), Records: []types.PutRecordsRequestEntry{
		{Data: []byte("sdk-a")}, {Data: []byte("sdk-b"), PartitionKey: aws.String("kept")}, {Data: []byte("sdk-c")},
	}})
	require.NoError(t, err)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	raw := call(t, e.srv, "PutRecord", `{"StreamName":"auto","Data":"cmF3"}`)
	require.Equal(t, http.StatusOK, raw.status, "%v", raw.body)
	raw = call(t, e.srv, "PutRecords", `{"StreamName":"auto","Records":[{"Data":"cmF3LWE="},{"Data":"cmF3LWI=","PartitionKey":null}]}`)
	require.Equal(t, http.StatusOK, raw.status, "%v", raw.body)
	require.EqualValues(t, 0, raw.body["FailedRecordCount"])
	status, _ := cborCall(t, e.srv, "PutRecords", cborRequest(t, &kinesis.PutRecordsInput{StreamName: aws.String("auto"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("cbor")}}}))
	require.Equal(t, http.StatusOK, status)

	// An empty key is still too short.
	_, err = e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String("auto"), Data: []byte("x"), PartitionKey: aws.String("")})
	require.Contains(t, requireAPIError(t, err, "ValidationException"), "'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1")

	// Read back: no PartitionKey where none was put.
	keys := map[string]*string{}
	perShard := map[string]int{}
	sh, err := e.c.ListShards(e.ctx, &kinesis.ListShardsInput{StreamName: aws.String("auto")})
	require.NoError(t, err)
	for _, s := range sh.Shards {
		it, err := e.c.GetShardIterator(e.ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("auto"), ShardId: s.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		got, err := e.c.GetRecords(e.ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		require.NoError(t, err)
		for _, r := range got.Records {
			keys[string(r.Data)] = r.PartitionKey
		}
		perShard[aws.ToString(s.ShardId)] = len(got.Records)
		raw := call(t, e.srv, "GetRecords", `{"ShardIterator":"`+aws.ToString(it.ShardIterator)+`"}`)
		for _, r := range raw.body["Records"].([]any) {
			if r.(map[string]any)["Data"] != "c2RrLWI=" {
				require.NotContains(t, r, "PartitionKey", "the member is absent on the wire")
			}
		}
		status, body := cborCall(t, e.srv, "GetRecords", cborRequest(t, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator}))
		require.Equal(t, http.StatusOK, status)
		var m struct{ Records []map[string]any }
		require.NoError(t, cbor.Unmarshal(body, &m))
		for _, r := range m.Records {
			if string(r["Data"].([]byte)) != "sdk-b" {
				require.NotContains(t, r, "PartitionKey", "the member is absent in CBOR too")
			}
		}
	}
	require.Len(t, keys, 8)

	// SubscribeToShard answers the same.
	reg, err := e.c.RegisterStreamConsumer(e.ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("c")})
	require.NoError(t, err)
	subscribed := 0
	for id, n := range perShard {
		if n == 0 {
			continue
		}
		sub := subscribe(t, subscriber(t, e.srv), e.ctx, aws.ToString(reg.Consumer.ConsumerARN), id,
			types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
		for _, r := range sub.collect(t, n) {
			require.Equal(t, keys[string(r.Data)], r.PartitionKey, "record %s", r.Data)
			subscribed++
		}
	}
	require.Equal(t, 8, subscribed)
	for data, key := range keys {
		if data == "sdk-b" {
			require.Equal(t, "kept", aws.ToString(key), "a key given is kept")
			continue
		}
		require.Nil(t, key, "record %s", data)
	}

	// Elsewhere the key is required, as before.
	for _, name := range []string{"user", "prov", "missing"} {
		_, err = e.c.PutRecord(e.ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), Data: []byte("x")})
		require.Equal(t, "1 validation error detected: Value null at 'partitionKey' failed to satisfy constraint: Member must not be null",
			requireAPIError(t, err, "ValidationException"), name)
		_, err = e.c.PutRecords(e.ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: []types.PutRecordsRequestEntry{
			{Data: []byte("a"), PartitionKey: aws.String("k")}, {Data: []byte("b")}, {Data: []byte("c")}}})
		require.Equal(t, "2 validation errors detected: Value null at 'records.2.member.partitionKey' failed to satisfy constraint: Member must not be null; "+
			"Value null at 'records.3.member.partitionKey' failed to satisfy constraint: Member must not be null",
			requireAPIError(t, err, "ValidationException"), name)
	}
	raw = call(t, e.srv, "PutRecords", `{"StreamName":"user","Records":[{"Data":"eA=="}]}`)
	require.Equal(t, http.StatusBadRequest, raw.status)
	require.Equal(t, "ValidationException", raw.body["__type"])
}
