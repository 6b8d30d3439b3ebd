package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesistest"
	"github.com/runnel-dev/runnel/internal/kpl"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
)

// fakeShards serves one open shard holding records "r0".."r9". Iterators
// are "pos:N"; the first GetRecords at position 2 answers
// ExpiredIteratorException.
type fakeShards struct {
	mu         sync.Mutex
	iterInputs []kinesis.GetShardIteratorInput
	expired    bool
}

func (f *fakeShards) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("shardId-000000000000")}}}, nil
}

func (f *fakeShards) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.iterInputs = append(f.iterInputs, *in)
	pos := 0
	if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber {
		seq, err := strconv.Atoi(aws.ToString(in.StartingSequenceNumber))
		if err != nil {
			return nil, err
		}
		pos = seq + 1
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("pos:" + strconv.Itoa(pos))}, nil
}

func (f *fakeShards) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pos, err := strconv.Atoi(strings.TrimPrefix(aws.ToString(in.ShardIterator), "pos:"))
	if err != nil {
		return nil, err
	}
	if pos == 2 && !f.expired {
		f.expired = true
		return nil, &types.ExpiredIteratorException{Message: aws.String("Iterator expired.")}
	}
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0)}
	// Two records per call, so the expiry hits between calls.
	for i := pos; i < min(pos+2, 10); i++ {
		now := time.Unix(0, 0)
		out.Records = append(out.Records, types.Record{
			Data: []byte("r" + strconv.Itoa(i)), SequenceNumber: aws.String(strconv.Itoa(i)),
			PartitionKey: aws.String("k"), ApproximateArrivalTimestamp: &now,
		})
	}
	out.NextShardIterator = aws.String("pos:" + strconv.Itoa(min(pos+2, 10)))
	return out, nil
}

func TestTailRenewsExpiredIteratorAfterLastRecord(t *testing.T) {
	f := &fakeShards{}
	var out bytes.Buffer
	tl := &tailer{
		api: f, stream: "s", start: types.ShardIteratorTypeTrimHorizon, poll: time.Millisecond,
		out: &recordWriter{w: &out}, logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	require.NoError(t, tl.run(t.Context()))
	require.Equal(t, "r0\nr1\nr2\nr3\nr4\nr5\nr6\nr7\nr8\nr9\n", out.String())
	require.True(t, f.expired)
	require.Len(t, f.iterInputs, 2)
	require.Equal(t, types.ShardIteratorTypeAfterSequenceNumber, f.iterInputs[1].ShardIteratorType)
	require.Equal(t, "1", aws.ToString(f.iterInputs[1].StartingSequenceNumber), "resumes after the last record printed")
}

func TestRecordWriterJSON(t *testing.T) {
	var out bytes.Buffer
	rw := &recordWriter{w: &out, json: true}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, rw.write("shardId-000000000001", []types.Record{
		{Data: []byte("hi"), SequenceNumber: aws.String("42"), PartitionKey: aws.String("k"), ApproximateArrivalTimestamp: &at},
		{Data: []byte{0xff, 0x00}, SequenceNumber: aws.String("43"), PartitionKey: aws.String("k")},
	}))
	require.Equal(t,
		`{"shardId":"shardId-000000000001","sequenceNumber":"42","partitionKey":"k","arrival":"2026-01-02T03:04:05Z","data":"hi"}`+"\n"+
			`{"shardId":"shardId-000000000001","sequenceNumber":"43","partitionKey":"k","data":"/wA=","dataEncoding":"base64"}`+"\n",
		out.String())
}

// TestRecordWriterDeaggregatesKPL prints the user records of a KPL
// aggregate, each with its own partition key and subSequenceNumber, and
// the aggregate itself with --kpl-raw.
func TestRecordWriterDeaggregatesKPL(t *testing.T) {
	agg, err := kpl.Aggregate([]kpl.Record{
		{PartitionKey: "a", Data: []byte("one")},
		{PartitionKey: "b", Data: []byte("two")},
	})
	require.NoError(t, err)
	recs := []types.Record{
		{Data: agg.Data, SequenceNumber: aws.String("7"), PartitionKey: aws.String(agg.PartitionKey)},
		{Data: []byte("plain"), SequenceNumber: aws.String("8"), PartitionKey: aws.String("c")},
	}

	var out bytes.Buffer
	rw := &recordWriter{w: &out, json: true, deaggregate: true}
	require.NoError(t, rw.write("shardId-000000000000", recs))
	require.Equal(t,
		`{"shardId":"shardId-000000000000","sequenceNumber":"7","partitionKey":"a","subSequenceNumber":0,"data":"one"}`+"\n"+
			`{"shardId":"shardId-000000000000","sequenceNumber":"7","partitionKey":"b","subSequenceNumber":1,"data":"two"}`+"\n"+
			`{"shardId":"shardId-000000000000","sequenceNumber":"8","partitionKey":"c","data":"plain"}`+"\n",
		out.String())

	out.Reset()
	rw = &recordWriter{w: &out, deaggregate: true}
	require.NoError(t, rw.write("shardId-000000000000", recs))
	require.Equal(t, "one\ntwo\nplain\n", out.String())

	out.Reset()
	rw = &recordWriter{w: &out}
	require.NoError(t, rw.write("shardId-000000000000", recs))
	require.Equal(t, string(agg.Data)+"\nplain\n", out.String(), "--kpl-raw prints the aggregate as stored")
}

// TestTailNoFollowPrintsWhatIsThere checks that --no-follow starts at the
// oldest record by default, and --from latest still wins.
func TestTailNoFollowPrintsWhatIsThere(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	producertest.CreateStream(t, client, "s", 2)
	for i := range 3 {
		_, err := client.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("r" + strconv.Itoa(i))})
		require.NoError(t, err)
	}
	run := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
		require.Equal(t, exitOK, e.main(t.Context(), append([]string{"--endpoint", srv.URL, "tail", "s", "--no-follow"}, args...)), stderr.String())
		return stdout.String()
	}
	require.Equal(t, "r0\nr1\nr2\n", run())
	require.Equal(t, "", run("--from", "latest"))
}
