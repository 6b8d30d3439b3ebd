package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/pipeline/pipelinetest"
)

// keyed is a record's partition key and data.
type keyed struct{ key, data string }

// streamRecords reads every record of every shard of stream.
func streamRecords(t *testing.T, client *kinesis.Client, stream string) []keyed {
	t.Helper()
	ctx := t.Context()
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	var out []keyed
	for _, sh := range shards.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		iter := it.ShardIterator
		for range 1000 {
			res, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			require.NoError(t, err)
			for _, r := range res.Records {
				out = append(out, keyed{aws.ToString(r.PartitionKey), string(r.Data)})
			}
			iter = res.NextShardIterator
			if len(res.Records) == 0 {
				break
			}
		}
	}
	return out
}

// TestReplay sends every record of a stream to the on-failure file of a
// pipeline whose handler fails, then puts them back with runnel replay:
// into another stream, into their source stream, and into a stream that
// does not exist (reported, exit code 1).
func TestReplay(t *testing.T) {
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	ctx := t.Context()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "this handler fails every batch", http.StatusInternalServerError)
	}))
	defer failing.Close()
	r := pipelinetest.Start(t, client, fmt.Sprintf(`streams:
  - name: events
    shards: 3
  - name: replayed
    shards: 2
pipelines:
  - name: failing
    source: events
    batchSize: 25
    maxRetries: 0
    onFailure: {file: failed.jsonl}
    handler: {type: http, url: %q}
`, failing.URL), pipeline.Builtins{})
	dir := r.Dir

	var want []keyed
	var entries []types.PutRecordsRequestEntry
	for i := range 200 {
		k := keyed{fmt.Sprintf("user-%d", i%13), fmt.Sprintf(`{"n":%d}`, i)}
		if i%10 == 0 {
			k.data = string([]byte{0xff, 0x00, byte(i), '\n'}) // not text
		}
		want = append(want, k)
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(k.key), Data: []byte(k.data)})
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("events"), Records: entries})
	require.NoError(t, err)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))

	failed := filepath.Join(dir, "failed.jsonl")
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(failed)
		if strings.Count(string(b), `"partitionKey"`) >= len(want) {
			break
		}
		require.False(t, time.Now().After(deadline), "on-failure file after 60s:\n%s", b)
		<-time.After(50 * time.Millisecond)
	}
	// Stop the pipeline, or it would fail the replayed records again.
	r.Stop(t)

	code, _, stderr := runCLI(t, "--endpoint", srv.URL, "replay", failed, "--stream", "replayed")
	require.Zero(t, code, stderr)
	require.Contains(t, stderr, "200 records of ")
	require.Contains(t, stderr, "200 put, 0 not put; 0 lines skipped")
	require.ElementsMatch(t, want, streamRecords(t, client, "replayed"))

	code, _, stderr = runCLI(t, "--endpoint", srv.URL, "replay", failed)
	require.Zero(t, code, stderr)
	require.ElementsMatch(t, append(want, want...), streamRecords(t, client, "events"), "each record once more in its source stream")

	code, _, stderr = runCLI(t, "--endpoint", srv.URL, "replay", failed, "--stream", "missing")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "not put into missing")
	require.Contains(t, stderr, "200 not put")

	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte("not json\n"+`{"KinesisBatchInfo":{"shardId":"shardId-000000000001","startSequenceNumber":"1","endSequenceNumber":"9"}}`+"\n"), 0o644))
	code, _, stderr = runCLI(t, "--endpoint", srv.URL, "replay", bad)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "line 1: not an on-failure entry")
	require.Contains(t, stderr, "line 2: holds no records, only their position (shard shardId-000000000001, sequence numbers 1 to 9)")
}

// FuzzFailureRecords: any line decodes to records bound for a named
// stream, or to an error; never a panic.
func FuzzFailureRecords(f *testing.F) {
	f.Add([]byte(`{"KinesisBatchInfo":{"streamArn":"arn:aws:kinesis:us-east-1:000000000000:stream/s"},"payload":{"Records":[{"kinesis":{"partitionKey":"k","data":"aGk="}}]}}`), "")
	f.Add([]byte(`{"payload":{"Records":[{"eventSourceARN":"arn:aws:kinesis:r:1:stream/a/consumer/c:1","kinesis":{"data":"!"}}]}}`), "")
	f.Add([]byte(`not json`), "other")
	f.Fuzz(func(t *testing.T, line []byte, stream string) {
		recs, err := failureRecords(line, stream)
		if err != nil {
			require.Empty(t, recs)
			return
		}
		require.NotEmpty(t, recs)
		for _, r := range recs {
			require.NotEmpty(t, r.stream)
			if stream != "" {
				require.Equal(t, stream, r.stream)
			}
		}
	})
}
