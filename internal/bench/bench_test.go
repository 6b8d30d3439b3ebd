package bench

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
)

// fakeKinesis is an in-memory stream that fails every failEvery-th record
// of PutRecords with ProvisionedThroughputExceededException, and can
// duplicate what it returns to provoke a verification failure.
type fakeKinesis struct {
	mu        sync.Mutex
	name      string
	shards    [][][]byte
	deleted   bool
	describes int
	putCalls  int
	seen      int
	failEvery int
	duplicate bool
}

func (f *fakeKinesis) CreateStream(_ context.Context, in *kinesis.CreateStreamInput, _ ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.name != "" {
		return nil, &types.ResourceInUseException{Message: aws.String("exists")}
	}
	f.name = aws.ToString(in.StreamName)
	f.shards = make([][][]byte, aws.ToInt32(in.ShardCount))
	return &kinesis.CreateStreamOutput{}, nil
}

func (f *fakeKinesis) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	status := types.StreamStatusCreating
	if f.describes > 2 {
		status = types.StreamStatusActive
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{StreamStatus: status}}, nil
}

func (f *fakeKinesis) DeleteStream(context.Context, *kinesis.DeleteStreamInput, ...func(*kinesis.Options)) (*kinesis.DeleteStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = true
	return &kinesis.DeleteStreamOutput{}, nil
}

func shardID(i int) string { return fmt.Sprintf("shardId-%012d", i) }

func (f *fakeKinesis) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// One shard per page, to exercise paging.
	next := 0
	if in.NextToken != nil {
		next, _ = strconv.Atoi(*in.NextToken)
	}
	out := &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String(shardID(next))}}}
	if next+1 < len(f.shards) {
		out.NextToken = aws.String(strconv.Itoa(next + 1))
	}
	return out, nil
}

func (f *fakeKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putCalls++
	out := &kinesis.PutRecordsOutput{}
	for _, r := range in.Records {
		f.seen++
		if f.failEvery > 0 && f.seen%f.failEvery == 0 {
			out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
			out.Records = append(out.Records, types.PutRecordsResultEntry{
				ErrorCode:    aws.String("ProvisionedThroughputExceededException"),
				ErrorMessage: aws.String("slow down"),
			})
			continue
		}
		h := md5.Sum([]byte(aws.ToString(r.PartitionKey)))
		s := int(binary.BigEndian.Uint64(h[:8]) % uint64(len(f.shards)))
		f.shards[s] = append(f.shards[s], bytes.Clone(r.Data))
		out.Records = append(out.Records, types.PutRecordsResultEntry{
			ShardId:        aws.String(shardID(s)),
			SequenceNumber: aws.String(strconv.Itoa(len(f.shards[s]))),
		})
	}
	return out, nil
}

func (f *fakeKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(strings.TrimPrefix(aws.ToString(in.ShardId), "shardId-") + ":0")}, nil
}

func (f *fakeKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	shard, pos, _ := strings.Cut(aws.ToString(in.ShardIterator), ":")
	s, _ := strconv.Atoi(shard)
	p, _ := strconv.Atoi(pos)
	// Return at most 7 records per call, to exercise the read loop.
	end := min(p+7, len(f.shards[s]), p+int(aws.ToInt32(in.Limit)))
	out := &kinesis.GetRecordsOutput{
		NextShardIterator:  aws.String(fmt.Sprintf("%s:%d", shard, end)),
		MillisBehindLatest: aws.Int64(0),
	}
	for _, d := range f.shards[s][p:end] {
		out.Records = append(out.Records, types.Record{Data: d})
		if f.duplicate {
			out.Records = append(out.Records, types.Record{Data: d})
		}
	}
	return out, nil
}

func TestRunCountsAndRetriesFailedRecords(t *testing.T) {
	f := &fakeKinesis{failEvery: 13}
	var out bytes.Buffer
	res, err := Run(t.Context(), f, Options{Shards: 3, Clients: 3, RecordsPerCall: 40, RecordSize: 10, Total: 1001}, &out)
	require.NoError(t, err)
	require.True(t, res.Verified)
	require.EqualValues(t, 1001, res.Put.Records)
	require.EqualValues(t, 10010, res.Put.Bytes)
	require.EqualValues(t, 1001, res.Get.Records)
	require.Positive(t, res.Put.RetriedRecords)
	require.EqualValues(t, f.putCalls, res.Put.Calls)
	require.True(t, f.deleted)
	total := 0
	for _, s := range f.shards {
		total += len(s)
		for _, d := range s {
			require.Len(t, d, 10)
		}
	}
	require.Equal(t, 1001, total)
	require.Contains(t, out.String(), "put ")
	require.Contains(t, out.String(), "verified")
	require.Positive(t, res.Put.Latency.Max)
	require.LessOrEqual(t, res.Put.Latency.P50, res.Put.Latency.P99)
}

func TestRunDetectsMismatch(t *testing.T) {
	f := &fakeKinesis{duplicate: true}
	res, err := Run(t.Context(), f, Options{Shards: 2, Clients: 2, RecordsPerCall: 10, Total: 50}, &bytes.Buffer{})
	require.ErrorIs(t, err, ErrMismatch)
	require.False(t, res.Verified)
	require.EqualValues(t, 100, res.Get.Records)
	require.True(t, f.deleted)
}

func TestRunDurationKeepJSON(t *testing.T) {
	f := &fakeKinesis{}
	var out bytes.Buffer
	res, err := Run(t.Context(), f, Options{Stream: "s1", Shards: 1, Clients: 2, RecordsPerCall: 5, Duration: 50 * time.Millisecond, Keep: true, JSON: true}, &out)
	require.NoError(t, err)
	require.False(t, f.deleted)
	require.Equal(t, "s1", f.name)
	require.Positive(t, res.Put.Records)
	var got Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, *res, got)
}

func TestValidateReportsEveryProblem(t *testing.T) {
	o := Options{Shards: -1, Clients: -1, RecordsPerCall: 501, RecordSize: -1, Total: 5, Duration: time.Second, Readers: -1}
	err := o.Validate()
	require.Error(t, err)
	for _, want := range []string{"shards", "clients", "records per call", "record size", "exclusive", "readers"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = Run(t.Context(), &fakeKinesis{}, o, &bytes.Buffer{})
	require.Error(t, err)
}

func TestRunStreamInUse(t *testing.T) {
	f := &fakeKinesis{name: "taken"}
	_, err := Run(t.Context(), f, Options{Stream: "taken", Total: 1}, &bytes.Buffer{})
	var inUse *types.ResourceInUseException
	require.True(t, errors.As(err, &inUse))
}

func TestSummarize(t *testing.T) {
	require.Equal(t, Latency{}, summarize(nil))
	lat := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, Latency{P50: 50, P99: 99, Max: 100}, summarize(lat))
	require.Equal(t, Latency{P50: 7, P99: 7, Max: 7}, summarize([]time.Duration{7 * time.Millisecond}))
}
