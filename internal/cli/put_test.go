package cli

import (
	"cmp"
	"context"
	"fmt"
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

	"github.com/runnel-dev/runnel/internal/producer"
)

// fakeKinesis records PutRecords calls and fails the records reject says.
type fakeKinesis struct {
	mu      sync.Mutex
	batches [][]types.PutRecordsRequestEntry
	got     []string
	// reject reports whether a record fails on this attempt, with code
	// (default ProvisionedThroughputExceededException).
	reject func(data string, attempt int) bool
	code   string
	tries  map[string]int
}

func (f *fakeKinesis) PutRecord(ctx context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	return &kinesis.PutRecordOutput{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String("1")}, nil
}

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries == nil {
		f.tries = make(map[string]int)
	}
	f.batches = append(f.batches, in.Records)
	out := &kinesis.PutRecordsOutput{}
	var failed int32
	for _, r := range in.Records {
		d := string(r.Data)
		f.tries[d]++
		if f.reject != nil && f.reject(d, f.tries[d]) {
			failed++
			out.Records = append(out.Records, types.PutRecordsResultEntry{
				ErrorCode:    aws.String(cmp.Or(f.code, "ProvisionedThroughputExceededException")),
				ErrorMessage: aws.String("Rate exceeded for shard shardId-000000000000."),
			})
			continue
		}
		f.got = append(f.got, d)
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String("1")})
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

func newTestPutter(f *fakeKinesis, key string) *putter {
	return &putter{
		api: f, stream: "s", key: key,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		tune: func(c *producer.Config) {
			// Batches end by count, bytes or end of input only, however
			// slowly the machine feeds the lines, and retries go at once.
			c.Linger = time.Hour
			c.BaseBackoff, c.MaxBackoff = time.Nanosecond, time.Nanosecond
			// The fake stream has no limits to pace for: calls are as
			// large as Kinesis takes.
			c.Unpaced = true
		},
	}
}

func lines(n int, width int) (string, []string) {
	var b strings.Builder
	var want []string
	for i := range n {
		l := fmt.Sprintf("%0*d", width, i)
		want = append(want, l)
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String(), want
}

func TestPutLinesBatchesByCount(t *testing.T) {
	f := &fakeKinesis{}
	in, want := lines(1234, 6)
	st, err := newTestPutter(f, "k").putLines(t.Context(), strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, putStats{sent: 1234}, st)
	require.Equal(t, want, f.got)
	require.Len(t, f.batches, 3)
	require.Len(t, f.batches[0], 500)
	require.Len(t, f.batches[1], 500)
	require.Len(t, f.batches[2], 234)
	require.Equal(t, "k", aws.ToString(f.batches[0][0].PartitionKey))
}

func TestPutLinesBatchesByBytes(t *testing.T) {
	f := &fakeKinesis{}
	in, want := lines(30, 400<<10) // 30 records of 400 KiB: 12 fit in 5 MiB
	st, err := newTestPutter(f, "").putLines(t.Context(), strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, 30, st.sent)
	require.Equal(t, want, f.got)
	for _, b := range f.batches {
		size := 0
		for _, r := range b {
			size += len(r.Data) + len(aws.ToString(r.PartitionKey))
		}
		require.LessOrEqual(t, size, producer.DefaultMaxBatchBytes)
	}
	require.Len(t, f.batches, 3)
}

func TestPutLinesKeepsLineContent(t *testing.T) {
	f := &fakeKinesis{}
	st, err := newTestPutter(f, "").putLines(t.Context(), strings.NewReader("a\r\n\nlast without newline"))
	require.NoError(t, err)
	require.Equal(t, 3, st.sent)
	require.Equal(t, []string{"a", "", "last without newline"}, f.got)
	require.NotEqual(t, f.batches[0][0].PartitionKey, f.batches[0][1].PartitionKey, "random key per record")
}

func TestPutLinesRetriesOnlyFailedRecords(t *testing.T) {
	// Every third record fails twice before it is accepted.
	f := &fakeKinesis{reject: func(d string, attempt int) bool {
		n, _ := strconv.Atoi(d)
		return n%3 == 0 && attempt <= 2
	}}
	in, want := lines(10, 2)
	st, err := newTestPutter(f, "k").putLines(t.Context(), strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, putStats{sent: 10, throttled: 4 * 2, lastErr: "ProvisionedThroughputExceededException: Rate exceeded for shard shardId-000000000000."}, st)
	require.ElementsMatch(t, want, f.got)
	require.Len(t, f.batches, 3)
	require.Len(t, f.batches[1], 4, "only the 4 failed records are sent again")
	require.Len(t, f.batches[2], 4)
}

func TestPutLinesGivesUp(t *testing.T) {
	// Throttling is retried until the record is too old, other failures
	// up to putMaxAttempts times.
	f := &fakeKinesis{code: "InternalFailure", reject: func(d string, _ int) bool { return d == "01" }}
	in, _ := lines(3, 2)
	st, err := newTestPutter(f, "k").putLines(t.Context(), strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, 2, st.sent)
	require.Equal(t, 1, st.failed)
	require.Equal(t, putMaxAttempts, f.tries["01"])
}

func TestPutLinesRejectsOversizedRecord(t *testing.T) {
	f := &fakeKinesis{}
	in := "small\n" + strings.Repeat("x", producer.DefaultMaxRecordBytes) + "\nafter\n"
	st, err := newTestPutter(f, "k").putLines(t.Context(), strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, 2, st.sent)
	require.Equal(t, 1, st.failed)
	require.Contains(t, st.lastErr, "line 2")
	require.Equal(t, []string{"small", "after"}, f.got)
}
