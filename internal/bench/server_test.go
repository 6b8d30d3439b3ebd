package bench

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
)

func TestRunAgainstServer(t *testing.T) {
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	var out bytes.Buffer
	res, err := Run(t.Context(), client, Options{Shards: 3, Clients: 3, RecordsPerCall: 100, RecordSize: 50, Total: 2050, Readers: 2, JSON: true}, &out)
	require.NoError(t, err)
	require.True(t, res.Verified)
	require.EqualValues(t, 2050, res.Put.Records)
	require.EqualValues(t, 2050*50, res.Put.Bytes)
	require.EqualValues(t, 2050, res.Get.Records)
	require.EqualValues(t, 2050*50, res.Get.Bytes)
	require.EqualValues(t, 21, res.Put.Calls)
	require.Zero(t, res.Put.RetriedRecords)

	var got Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, *res, got)

	// The stream is deleted (or being deleted) after the run.
	streams, err := client.ListStreams(t.Context(), &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	for _, s := range streams.StreamSummaries {
		require.NotEqual(t, "ACTIVE", string(s.StreamStatus), "stream %s left active", aws.ToString(s.StreamName))
	}
}

func TestRunKeepsStream(t *testing.T) {
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	res, err := Run(t.Context(), client, Options{Stream: "kept", Shards: 1, Clients: 1, Total: 10, Keep: true}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "kept", res.Stream)
	out, err := client.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("kept")})
	require.NoError(t, err)
	require.EqualValues(t, 1, aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount))

	// A second run on the same name fails: the stream must be fresh.
	_, err = Run(t.Context(), client, Options{Stream: "kept", Total: 10}, &bytes.Buffer{})
	require.Error(t, err)
}
