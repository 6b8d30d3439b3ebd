package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinesislocal"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/stream"
)

func TestLocalDeliversAndFollowsResharding(t *testing.T) {
	e := start(t)
	e.createStream(t, "s", 2)
	h := &recorder{}
	cfg := baseConfig(e, "s", memStore(t), h)
	l := kinesislocal.New(e.srv.Service)
	l.LongPoll = 100 * time.Millisecond
	cfg.Kinesis = l
	cfg.Stream = e.srv.Service.ARN("s")
	startWorker(t, cfg)
	want := e.put(t, "s", 500, 20, "a-")
	_, err := e.c.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName:         aws.String("s"),
		ShardToSplit:       aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("85070591730234615865843651857942052864"),
	})
	require.NoError(t, err)
	e.waitActive(t, "s")
	want = append(want, e.put(t, "s", 500, 20, "b-")...)
	eventually(t, 20*time.Second, "every record delivered", func() bool { return h.distinct() == len(want) })
	got := h.deliveries()
	checkInOrder(t, got, want)
	require.Len(t, got, len(want))
	shards := map[string]bool{}
	for _, d := range got {
		shards[d.shard] = true
	}
	require.Len(t, shards, 4, "parent, untouched shard and both children")
}

// arrivals signals each record's handling time.
type arrivals struct{ ch chan time.Time }

func (a *arrivals) Invoke(_ context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	now := time.Now()
	for range ev.Records {
		a.ch <- now
	}
	return nil, nil
}

// The readers putToHandler measures.
const (
	readLocal   = "local"   // kinesislocal: GetRecords in process, woken by appends
	readPolling = "polling" // GetRecords over HTTP every PollInterval (the default, 250 ms)
	readFanOut  = "fan-out" // SubscribeToShard over HTTP
)

// startReader starts a worker on stream s that hands records to h,
// reading through the reader named.
func startReader(t testing.TB, e *env, h lambda.Handler, reader string) {
	cfg := baseConfig(e, "s", memStore(t), nil)
	cfg.Handler = h
	switch reader {
	case readLocal:
		cfg.Kinesis = kinesislocal.New(e.srv.Service)
	case readPolling:
		cfg.PollInterval = 0
	case readFanOut:
		cfg.FanOut = "latency"
	}
	startWorker(t, cfg)
}

// putToHandler measures, n times, the time from a Put returning to the
// handler seeing the record, through the reader named.
func putToHandler(t testing.TB, n int, reader string) []time.Duration {
	e := start(t)
	e.createStream(t, "s", 1)
	a := &arrivals{ch: make(chan time.Time, 1)}
	startReader(t, e, a, reader)
	ctx := context.Background()
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		if _, err := e.srv.Service.Put(ctx, "s", []stream.PutInput{{PartitionKey: "k", Data: []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		select {
		case got := <-a.ch:
			out = append(out, got.Sub(acked))
		case <-time.After(10 * time.Second):
			t.Fatalf("record %d not handled within 10s", i)
		}
	}
	slices.Sort(out)
	return out
}

func TestLocalPutToHandlerLatency(t *testing.T) {
	lat := putToHandler(t, 200, readLocal)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("put-to-handler latency p50 %s p99 %s", p50, p99)
	// The local reader wakes on each append rather than polling: a reader
	// polling every 250 ms (the default interval) would hand over the
	// median record about 125 ms after its put. The median tells the two
	// apart on a starved machine, where the slowest records can take as
	// long as a poll (p99 273 ms beside a CI run and two busy loops); the
	// figures themselves are BenchmarkPutToHandlerLatency's.
	require.Less(t, p50, 50*time.Millisecond)
}

// BenchmarkPutToHandlerLatency reports put-to-handler latency
// percentiles (b.N records, at least 100, put one at a time) through
// kinesislocal, GetRecords polling over HTTP and enhanced fan-out.
func BenchmarkPutToHandlerLatency(b *testing.B) {
	for _, reader := range []string{readLocal, readPolling, readFanOut} {
		b.Run(reader, func(b *testing.B) {
			lat := putToHandler(b, max(b.N, 100), reader)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// stamps records when the handler sees each record, by the record's
// number (its data, in decimal).
type stamps struct {
	mu   sync.Mutex
	seen []time.Time
	n    atomic.Int64
}

func (h *stamps) Invoke(_ context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range ev.Records {
		i, err := strconv.Atoi(string(r.Kinesis.Data))
		if err != nil || i >= len(h.seen) {
			return nil, fmt.Errorf("record %q is not one put", r.Kinesis.Data)
		}
		if h.seen[i].IsZero() {
			h.seen[i] = now
			h.n.Add(1)
		}
	}
	return nil, nil
}

// putAtRate offers rate records/s for d (a PutRecords call of the records
// due, at most 500, every millisecond tick, 4 shards) and returns, sorted,
// the time from each record's PutRecords call being sent to the handler
// seeing it, through the reader named.
func putAtRate(b *testing.B, rate int, d time.Duration, reader string) []time.Duration {
	e := start(b)
	e.createStream(b, "s", 4)
	total := int(int64(rate) * int64(d) / int64(time.Second))
	h := &stamps{seen: make([]time.Time, total)}
	startReader(b, e, h, reader)
	ctx := context.Background()
	// When each record's PutRecords call was sent: the handler may see a
	// record before its put's answer is back.
	put := make([]time.Time, total)
	begin := time.Now()
	for next := 0; next < total; {
		// Records due by now, at most 500 a call.
		due := min(total, int(time.Since(begin).Seconds()*float64(rate))+1)
		if due <= next {
			time.Sleep(time.Millisecond)
			continue
		}
		due = min(due, next+500)
		in := make([]types.PutRecordsRequestEntry, 0, due-next)
		for i := next; i < due; i++ {
			in = append(in, types.PutRecordsRequestEntry{PartitionKey: aws.String(strconv.Itoa(i)), Data: []byte(strconv.Itoa(i))})
		}
		sent := time.Now()
		out, err := e.c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: in})
		if err != nil {
			b.Fatal(err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n > 0 {
			b.Fatalf("%d of %d records refused", n, len(in))
		}
		for i := next; i < due; i++ {
			put[i] = sent
		}
		next = due
	}
	offered := float64(total) / time.Since(begin).Seconds()
	deadline := time.Now().Add(time.Minute)
	for h.n.Load() < int64(total) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d records handled within a minute", h.n.Load(), total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(offered, "put-records/s")
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]time.Duration, total)
	for i := range out {
		out[i] = h.seen[i].Sub(put[i])
	}
	slices.Sort(out)
	return out
}

// BenchmarkPutToHandlerAtRate reports put-to-handler latency percentiles
// while records are offered at 1,000 and 100,000 records/s for a second
// (put-records/s says the rate reached), through the same readers as
// BenchmarkPutToHandlerLatency. Records are put as producers put them,
// with PutRecords calls (up to 500 records) over HTTP, and a record's
// latency runs from the moment its call was sent to the moment the
// handler got it.
func BenchmarkPutToHandlerAtRate(b *testing.B) {
	for _, rate := range []int{1000, 100000} {
		for _, reader := range []string{readLocal, readPolling, readFanOut} {
			b.Run(fmt.Sprintf("rate=%d/%s", rate, reader), func(b *testing.B) {
				var lat []time.Duration
				for b.Loop() {
					lat = putAtRate(b, rate, time.Second, reader)
				}
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// BenchmarkLocalNoopHandler is BenchmarkWorkerNoopHandler through kinesislocal.
func BenchmarkLocalNoopHandler(b *testing.B) { benchNoopHandler(b, true) }
