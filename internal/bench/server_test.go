package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
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

func TestRunAcrossStreams(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	var out bytes.Buffer
	res, err := Run(t.Context(), client, Options{Stream: "many", Streams: 5, Shards: 2, Clients: 2, RecordsPerCall: 100, Total: 2050, Keep: true}, &out)
	require.NoError(t, err)
	require.True(t, res.Verified)
	require.Equal(t, 5, res.Streams)
	require.EqualValues(t, 2050, res.Put.Records)
	require.EqualValues(t, 2050, res.Get.Records)
	require.Contains(t, out.String(), "5 streams many-*")

	// The streams took calls of 100 records in turn: the first got the
	// last 50 too.
	for i := range 5 {
		name := fmt.Sprintf("many-%d", i)
		shards, err := listShards(t.Context(), client, name)
		require.NoError(t, err)
		require.Len(t, shards, 2)
		w := &worker{perShard: make(map[string]int64)}
		for _, id := range shards {
			require.NoError(t, w.read(t.Context(), client, name, id))
		}
		want := int64(400)
		if i == 0 {
			want = 450
		}
		require.Equal(t, want, w.records, name)
	}

	// Without Keep every stream is deleted.
	_, err = Run(t.Context(), client, Options{Stream: "gone", Streams: 3, Shards: 1, Clients: 1, Total: 30, RecordsPerCall: 10}, &bytes.Buffer{})
	require.NoError(t, err)
	streams, err := client.ListStreams(t.Context(), &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	for _, s := range streams.StreamSummaries {
		if strings.HasPrefix(aws.ToString(s.StreamName), "gone") {
			require.NotEqual(t, "ACTIVE", string(s.StreamStatus), "stream %s left active", aws.ToString(s.StreamName))
		}
	}
}

func TestRunTenMiBRecords(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	size := 10<<20 - keyChars
	res, err := Run(t.Context(), client, Options{Stream: "big", Shards: 1, Clients: 1, RecordsPerCall: 1, RecordSize: size, Total: 2, Keep: true}, &bytes.Buffer{})
	require.NoError(t, err)
	require.True(t, res.Verified)
	require.EqualValues(t, 2*size, res.Put.Bytes)
	require.EqualValues(t, 2*size, res.Get.Bytes)
	// One record a GetRecords call: each is at the 10 MiB answer limit.
	require.GreaterOrEqual(t, res.Get.Calls, int64(2))

	out, err := client.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("big")})
	require.NoError(t, err)
	require.EqualValues(t, 10240, aws.ToInt32(out.StreamDescriptionSummary.MaxRecordSizeInKiB))

	// One byte more does not fit any stream.
	o := Options{RecordSize: size + 1}
	require.ErrorContains(t, o.Validate(), "record size")
}
