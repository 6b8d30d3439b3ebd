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
	// Calls with these numbers (1-based) fail: reject with an error
	// response and store nothing; lose stores the records, then fails as a
	// broken connection would.
	reject, lose map[int]bool
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

func (f *fakeKinesis) UpdateMaxRecordSize(context.Context, *kinesis.UpdateMaxRecordSizeInput, ...func(*kinesis.Options)) (*kinesis.UpdateMaxRecordSizeOutput, error) {
	return nil, errors.New("records over 1 MiB are run against the real server (server_test.go)")
}

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
	if f.reject[f.putCalls] {
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	}
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
	if f.lose[f.putCalls] {
		return nil, errors.New("read tcp: use of closed network connection")
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

func TestRunResendsFailedCalls(t *testing.T) {
	// Call 2 is rejected (nothing stored), call 4 is lost after storing its
	// 10 records, so they are stored twice.
	f := &fakeKinesis{reject: map[int]bool{2: true}, lose: map[int]bool{4: true}}
	var out bytes.Buffer
	res, err := Run(t.Context(), f, Options{Shards: 2, Clients: 1, RecordsPerCall: 10, Total: 100}, &out)
	require.NoError(t, err)
	require.True(t, res.Verified)
	require.EqualValues(t, 100, res.Put.Records)
	require.EqualValues(t, 2, res.Put.CallErrors)
	require.EqualValues(t, 10, res.Put.AmbiguousRecords)
	// 10 full calls and the two resent; the producer may split the resent
	// records over more calls (each retried record waits its own backoff).
	require.EqualValues(t, f.putCalls, res.Put.Calls)
	require.GreaterOrEqual(t, res.Put.Calls, int64(12))
	require.Equal(t, 110, f.seen, "only the failed calls' records are sent again")
	require.EqualValues(t, 110, res.Get.Records)
	require.Contains(t, out.String(), "at most 10 more")
}

func TestVerify(t *testing.T) {
	put := map[string]int64{"a": 5, "b": 7}
	require.NoError(t, verify(put, map[string]int64{"a": 5, "b": 7}, 0))
	require.ErrorIs(t, verify(put, map[string]int64{"a": 5, "b": 8}, 0), ErrMismatch)
	require.ErrorIs(t, verify(put, map[string]int64{"a": 4, "b": 7}, 0), ErrMismatch)
	require.ErrorIs(t, verify(put, map[string]int64{"a": 5}, 0), ErrMismatch)
	require.ErrorIs(t, verify(put, map[string]int64{"a": 5, "b": 7, "c": 1}, 0), ErrMismatch)
	require.NoError(t, verify(put, map[string]int64{"a": 6, "b": 8}, 2))
	require.ErrorIs(t, verify(put, map[string]int64{"a": 6, "b": 9}, 2), ErrMismatch)
	require.ErrorIs(t, verify(put, map[string]int64{"a": 4, "b": 9}, 2), ErrMismatch)
}
