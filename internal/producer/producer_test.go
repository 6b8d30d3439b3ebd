package producer_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
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
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
)

// event is the data of test record i of key k: "k/i".
func event(k string, i int) []byte { return []byte(k + "/" + strconv.Itoa(i)) }

// writeKeys writes n records spread over keys key-0..key-(keys-1), in
// order per key.
func writeKeys(t testing.TB, w producer.Writer, n, keys int) {
	t.Helper()
	for i := range n {
		k := "key-" + strconv.Itoa(i%keys)
		require.NoError(t, w.Write(t.Context(), producer.Record{PartitionKey: k, Data: event(k, i)}))
	}
}

// checkDelivered asserts that the stream holds exactly the n records
// writeKeys wrote, each once, and, when ordered, in write order per key.
func checkDelivered(t testing.TB, got []string, n, keys int, ordered bool) {
	t.Helper()
	require.Len(t, got, n)
	seen := make(map[string]bool, n)
	last := make(map[string]int)
	for _, d := range got {
		require.False(t, seen[d], "record %s delivered twice", d)
		seen[d] = true
		k, i, ok := strings.Cut(d, "/")
		require.True(t, ok, d)
		idx, err := strconv.Atoi(i)
		require.NoError(t, err)
		if prev, ok := last[k]; ordered && ok {
			require.Greater(t, idx, prev, "key %s out of order", k)
		}
		last[k] = idx
	}
	for i := range n {
		require.True(t, seen[string(event("key-"+strconv.Itoa(i%keys), i))], "record %d missing", i)
	}
}

func dataOf(recs []types.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

func newProducer(t testing.TB, api producer.PutRecordsAPI, cfg producer.Config) *producer.Producer {
	t.Helper()
	p, err := producer.New(api, cfg)
	require.NoError(t, err)
	return p
}

func closeProducer(t testing.TB, p *producer.Producer) producer.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	st, err := p.Close(ctx)
	require.NoError(t, err)
	return st
}

// Ordered by shard, every shard holds its records in write order, though
// a call carries many records of a shard and calls to the four shards run
// at once.
func TestProducerOrderedByShardKeepsWriteOrderPerShard(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "s", 4)
	shards, err := producer.LoadShards(t.Context(), c, "s")
	require.NoError(t, err)
	const n, keys = 5000, 64
	p := newProducer(t, c, producer.Config{Stream: "s", OrderedByShard: true, Shards: shards, Linger: 5 * time.Millisecond})
	writeKeys(t, p, n, keys)
	st := closeProducer(t, p)
	require.Equal(t, int64(n), st.Delivered)
	require.Less(t, st.Calls, int64(n/keys), "calls carry many records of a shard")
	var all []string
	for _, sh := range producertest.ReadShards(t, c, "s") {
		last := -1
		for _, d := range dataOf(sh.Records) {
			_, i, _ := strings.Cut(d, "/")
			idx, err := strconv.Atoi(i)
			require.NoError(t, err)
			require.Greater(t, idx, last, "shard %s out of write order", sh.ID)
			last = idx
			all = append(all, d)
		}
	}
	checkDelivered(t, all, n, keys, true)
}

func TestProducerDeliversEveryRecord(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			srv := kinesistest.Start(t)
			c := srv.Client(t)
			producertest.CreateStream(t, c, "s", 4)
			const n, keys = 5000, 64
			p := newProducer(t, c, producer.Config{Stream: "s", OrderedByKey: ordered, Linger: 5 * time.Millisecond})
			writeKeys(t, p, n, keys)
			st := closeProducer(t, p)
			require.Equal(t, producer.Stats{Queued: n, Delivered: n, Calls: st.Calls, Bytes: st.Bytes, Elapsed: st.Elapsed}, st)
			checkDelivered(t, dataOf(producertest.ReadAll(t, c, "s")), n, keys, ordered)
		})
	}
}

// throttleFirstAttempts wraps a real client and answers
// ProvisionedThroughputExceededException (or code, when set), without
// forwarding, for every record whose sequence number (the part after "/")
// is divisible by 3, on its first `attempts` sends.
type throttleFirstAttempts struct {
	api      producer.PutRecordsAPI
	attempts int
	code     string
	mu       sync.Mutex
	tries    map[string]int
	calls    int
}

func (f *throttleFirstAttempts) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.calls++
	if f.tries == nil {
		f.tries = make(map[string]int)
	}
	var forward []types.PutRecordsRequestEntry
	var fwdIdx []int
	results := make([]types.PutRecordsResultEntry, len(in.Records))
	for i, r := range in.Records {
		d := string(r.Data)
		f.tries[d]++
		_, seq, _ := strings.Cut(d, "/")
		n, _ := strconv.Atoi(seq)
		if n%3 == 0 && f.tries[d] <= f.attempts {
			results[i] = types.PutRecordsResultEntry{
				ErrorCode:    aws.String("ProvisionedThroughputExceededException"),
				ErrorMessage: aws.String("Rate exceeded for shard shardId-000000000000 (injected)."),
			}
			if f.code != "" {
				results[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(f.code), ErrorMessage: aws.String("Internal service failure (injected).")}
			}
			continue
		}
		forward = append(forward, r)
		fwdIdx = append(fwdIdx, i)
	}
	f.mu.Unlock()
	if len(forward) > 0 {
		out, err := f.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: in.StreamName, StreamARN: in.StreamARN, Records: forward}, optFns...)
		if err != nil {
			return nil, err
		}
		for j, i := range fwdIdx {
			results[i] = out.Records[j]
		}
	}
	var failed int32
	for _, r := range results {
		if r.ErrorCode != nil {
			failed++
		}
	}
	return &kinesis.PutRecordsOutput{Records: results, FailedRecordCount: aws.Int32(failed)}, nil
}

func TestProducerRetriesInjectedPerRecordThrottlingOnFirstTwoAttempts(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "s", 2)
	api := &throttleFirstAttempts{api: c, attempts: 2}
	const n, keys = 3000, 10
	var (
		failures []error
		mu       sync.Mutex
		calls    []producer.Call
	)
	p := newProducer(t, api, producer.Config{
		Stream: "s", OrderedByKey: true, Linger: time.Millisecond, BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnFailure: func(_ producer.Record, err error) { failures = append(failures, err) },
		OnCall:    func(c producer.Call) { mu.Lock(); calls = append(calls, c); mu.Unlock() },
	})
	writeKeys(t, p, n, keys)
	st := closeProducer(t, p)
	require.Empty(t, failures)
	require.Equal(t, int64(n), st.Delivered)
	require.Zero(t, st.Failed)
	throttledRecords := int64(n / 3 * 2) // every third record, twice
	require.Equal(t, throttledRecords, st.Throttled)
	require.Equal(t, throttledRecords, st.Retried)

	// OnCall saw every call, each acknowledged record by its shard and
	// every throttled one.
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, int(st.Calls))
	require.Equal(t, api.calls, len(calls))
	acked, entries, throttled := 0, 0, 0
	for _, c := range calls {
		require.NoError(t, c.Err)
		require.Positive(t, c.Latency)
		entries += c.Entries
		throttled += c.Throttled
		require.Equal(t, c.Throttled, c.Failed)
		for shard, k := range c.Acked {
			require.Contains(t, []string{"shardId-000000000000", "shardId-000000000001"}, shard)
			acked += k
		}
	}
	require.Equal(t, n, acked)
	require.EqualValues(t, throttledRecords, throttled)
	require.EqualValues(t, int64(n)+throttledRecords, entries)
	checkDelivered(t, dataOf(producertest.ReadAll(t, c, "s")), n, keys, true)
}

func TestProducerGivesUpAfterMaxAttemptsAndReportsEachRecord(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "s", 1)
	api := &throttleFirstAttempts{api: c, attempts: 1 << 30, code: "InternalFailure"}
	var (
		mu     sync.Mutex
		failed = map[string]error{}
	)
	p := newProducer(t, api, producer.Config{
		Stream: "s", Endpoint: srv.URL, MaxAttempts: 3, Linger: time.Millisecond, BaseBackoff: time.Millisecond,
		OnFailure: func(r producer.Record, err error) { mu.Lock(); failed[string(r.Data)] = err; mu.Unlock() },
	})
	const n = 300
	writeKeys(t, p, n, 5)
	st := closeProducer(t, p)
	require.Equal(t, int64(n/3), st.Failed)
	require.Equal(t, int64(n-n/3), st.Delivered)
	require.Len(t, failed, n/3)
	for d, err := range failed {
		require.Contains(t, err.Error(), `stream "s" at `+srv.URL, d)
		require.Contains(t, err.Error(), "giving up after 3 attempts")
		require.Contains(t, err.Error(), "InternalFailure")
	}
	require.Len(t, producertest.ReadAll(t, c, "s"), n-n/3)
}

// Throttling is the stream asking for less, not a fault of the record: it
// does not use up MaxAttempts, and a record throttled for good is given up
// on only when MaxRetryTime has passed.
func TestProducerRetriesThrottlingPastMaxAttemptsUntilMaxRetryTime(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "s", 1)
	t.Run("throttled a while", func(t *testing.T) {
		api := &throttleFirstAttempts{api: c, attempts: 6}
		p := newProducer(t, api, producer.Config{Stream: "s", MaxAttempts: 2, Linger: time.Millisecond, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
		writeKeys(t, p, 30, 3)
		st := closeProducer(t, p)
		require.Zero(t, st.Failed, st.LastError)
		require.Equal(t, int64(30), st.Delivered)
		require.Equal(t, int64(10*6), st.Throttled)
	})
	t.Run("throttled for good", func(t *testing.T) {
		api := &throttleFirstAttempts{api: c, attempts: 1 << 30}
		var errs []error
		p := newProducer(t, api, producer.Config{
			Stream: "s", MaxAttempts: 2, MaxRetryTime: 200 * time.Millisecond, Linger: time.Millisecond, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			OnFailure: func(_ producer.Record, err error) { errs = append(errs, err) },
		})
		writeKeys(t, p, 3, 1)
		st := closeProducer(t, p)
		require.Equal(t, int64(1), st.Failed)
		require.Greater(t, st.Throttled, int64(2), "retried past MaxAttempts")
		require.Len(t, errs, 1)
		require.Contains(t, errs[0].Error(), "ProvisionedThroughputExceededException")
	})
}

func TestProducerMissingStreamFailsRecordsNamingStreamAndEndpoint(t *testing.T) {
	srv := kinesistest.Start(t)
	var errs []error
	p := newProducer(t, srv.Client(t), producer.Config{
		Stream: "nope", Endpoint: srv.URL, Linger: time.Millisecond,
		OnFailure: func(_ producer.Record, err error) { errs = append(errs, err) },
	})
	writeKeys(t, p, 10, 2)
	st := closeProducer(t, p)
	require.Equal(t, int64(10), st.Failed)
	require.Zero(t, st.Retried, "a missing stream is not retried")
	require.Len(t, errs, 10)
	require.Contains(t, errs[0].Error(), `stream "nope" at `+srv.URL)
	require.Contains(t, errs[0].Error(), "ResourceNotFoundException")
}

func TestProducerRejectsInvalidRecordsAtWrite(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "s", 1)
	var errs []error
	p := newProducer(t, c, producer.Config{Stream: "s", OnFailure: func(_ producer.Record, err error) { errs = append(errs, err) }})
	big := make([]byte, 1<<20)
	require.NoError(t, p.Write(t.Context(), producer.Record{PartitionKey: "k", Data: big}))
	require.NoError(t, p.Write(t.Context(), producer.Record{PartitionKey: "", Data: []byte("x")}))
	require.NoError(t, p.Write(t.Context(), producer.Record{PartitionKey: strings.Repeat("k", 257), Data: []byte("x")}))
	require.NoError(t, p.Write(t.Context(), producer.Record{PartitionKey: "k", Data: big[:1<<20-1]}))
	st := closeProducer(t, p)
	require.Equal(t, producer.Stats{Queued: 4, Failed: 3, Delivered: 1, Calls: 1, Bytes: 1<<20 - 1, Elapsed: st.Elapsed, LastError: st.LastError}, st)
	require.Len(t, errs, 3)
	for _, err := range errs {
		require.ErrorIs(t, err, producer.ErrInvalidRecord)
	}
	require.Contains(t, errs[0].Error(), "1048577 bytes")
	require.Len(t, producertest.ReadAll(t, c, "s"), 1)
}

// failCalls fails the first n calls as a whole with a transport error.
type failCalls struct {
	api producer.PutRecordsAPI
	mu  sync.Mutex
	n   int
}

func (f *failCalls) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: connection reset by peer (injected)")
	}
	return f.api.PutRecords(ctx, in, optFns...)
}

func TestProducerRetriesInjectedTransportErrorsOfWholeCalls(t *testing.T) {
	srv := kinesistest.Start(t)
	c := srv.Client(t)
	producertest.CreateStream(t, c, "s", 1)
	p := newProducer(t, &failCalls{api: c, n: 3}, producer.Config{Stream: "s", OrderedByKey: true, BaseBackoff: time.Millisecond, Linger: time.Millisecond})
	writeKeys(t, p, 1000, 1)
	st := closeProducer(t, p)
	require.Equal(t, int64(1000), st.Delivered)
	require.Positive(t, st.Retried)
	checkDelivered(t, dataOf(producertest.ReadAll(t, c, "s")), 1000, 1, true)
}

// blockingAPI never answers until its ctx ends.
type blockingAPI struct{}

func (blockingAPI) PutRecords(ctx context.Context, _ *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestProducerCloseGivesUpWhenContextEnds(t *testing.T) {
	var (
		mu     sync.Mutex
		failed int
	)
	p := newProducer(t, blockingAPI{}, producer.Config{Stream: "s", OnFailure: func(producer.Record, error) { mu.Lock(); failed++; mu.Unlock() }})
	writeKeys(t, p, 2000, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	st, err := p.Close(ctx)
	require.ErrorContains(t, err, "closing before every record was delivered")
	require.Equal(t, int64(2000), st.Failed)
	require.Equal(t, 2000, failed)
	require.ErrorIs(t, p.Write(t.Context(), producer.Record{PartitionKey: "k"}), producer.ErrClosed)
}

func TestProducerAggregatesThroughServer(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			srv := kinesistest.Start(t)
			c := srv.Client(t)
			producertest.CreateStream(t, c, "s", 3)
			shards, err := producer.LoadShards(t.Context(), c, "s")
			require.NoError(t, err)
			require.Len(t, shards, 3)
			const n, keys = 20000, 500
			p := newProducer(t, c, producer.Config{Stream: "s", Aggregate: true, Shards: shards, OrderedByKey: ordered, Linger: 5 * time.Millisecond})
			writeKeys(t, p, n, keys)
			st := closeProducer(t, p)
			require.Equal(t, int64(n), st.Delivered)
			require.Less(t, st.Calls, int64(n/500), "aggregation packs records")

			list, err := c.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String("s")})
			require.NoError(t, err)
			var got []string
			stored := 0
			for _, sh := range producertest.ReadShards(t, c, "s") {
				stored += len(sh.Records)
				for _, r := range sh.Records {
					users, ok, err := kpl.Deaggregate(r.Data)
					require.NoError(t, err)
					if !ok {
						users = []producer.Record{{PartitionKey: aws.ToString(r.PartitionKey), Data: r.Data}}
					}
					for _, u := range users {
						// Every user record is on the shard its own key maps to.
						require.Equal(t, shardOf(t, list.Shards, u.PartitionKey), sh.ID, "record %s", u.Data)
						got = append(got, string(u.Data))
					}
				}
			}
			require.Less(t, stored, n/10, "aggregation packs records")
			checkDelivered(t, got, n, keys, ordered)
		})
	}
}

func shardOf(t *testing.T, shards []types.Shard, key string) string {
	t.Helper()
	h := kpl.HashKey(key)
	for _, s := range shards {
		lo, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
		if h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
			return aws.ToString(s.ShardId)
		}
	}
	t.Fatalf("no shard for key %q", key)
	return ""
}

func TestProducerUnderRealShardWriteLimitsDeliversEachRecordOnce(t *testing.T) {
	url := producertest.StartLimited(t)
	c := kinesistest.NewClient(url)
	producertest.CreateStream(t, c, "s", 1)
	// 2.8 MiB of records of 4 KiB, one call of a key at a time (the
	// producer keeps per-key order): the shard takes 1 MiB a second, so
	// the producer is paced by the shard's bytes limit, and what is
	// throttled is retried.
	const n, keys = 700, 500
	pad := strings.Repeat("x", 4<<10)
	p := newProducer(t, c, producer.Config{Stream: "s", Endpoint: url, OrderedByKey: true, Linger: time.Second, BaseBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	for i := range n {
		k := "key-" + strconv.Itoa(i%keys)
		require.NoError(t, p.Write(t.Context(), producer.Record{PartitionKey: k, Data: append(event(k, i), pad...)}))
	}
	st := closeProducer(t, p)
	t.Logf("stats: %+v", st)
	require.Zero(t, st.Failed, st.LastError)
	require.Equal(t, int64(n), st.Delivered)
	got := dataOf(producertest.ReadAll(t, c, "s"))
	for i, d := range got {
		got[i] = strings.TrimSuffix(d, pad)
	}
	checkDelivered(t, got, n, keys, true)
}

func BenchmarkProducer(b *testing.B) {
	for _, agg := range []bool{false, true} {
		b.Run(fmt.Sprintf("aggregate=%v", agg), func(b *testing.B) {
			srv := kinesistest.Start(b)
			c := srv.Client(b)
			producertest.CreateStream(b, c, "bench", 4)
			shards, err := producer.LoadShards(b.Context(), c, "bench")
			require.NoError(b, err)
			data := []byte(`{"timestamp":"2026-01-02T15:04:05Z","country":"FR","eventType":"click","value":42,"id":"0b7f9b2e-7c1e-4f7e-9d57-3c7f1b8f2a11"}`)
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = "user-" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			p := newProducer(b, c, producer.Config{Stream: "bench", Aggregate: agg, Shards: shards})
			for i := range b.N {
				if err := p.Write(b.Context(), producer.Record{PartitionKey: keys[i%len(keys)], Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			st := closeProducer(b, p)
			b.StopTimer()
			if st.Delivered != int64(b.N) {
				b.Fatalf("delivered %d of %d: %s", st.Delivered, b.N, st.LastError)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(st.Calls), "calls")
		})
	}
}

// throttledShardRun puts warm+n small records as fast as it can into a new
// one-shard stream of a server that enforces the provisioned shard limit
// (1000 records/s, one second of burst), with the default settings. It
// returns the stats of the whole run and those of the last n records,
// after the producer has found the shard's limit.
func throttledShardRun(t testing.TB, warm, n int) (all, steady producer.Stats) {
	url := producertest.StartLimited(t)
	c := kinesistest.NewClient(url)
	producertest.CreateStream(t, c, "s", 1)
	shards, err := producer.LoadShards(t.Context(), c, "s")
	require.NoError(t, err)
	p := newProducer(t, c, producer.Config{Stream: "s", Endpoint: url, Shards: shards})
	writeKeys(t, p, warm, 100)
	// Once the warm-up records are delivered, the rest are measured.
	require.Eventually(t, func() bool { return p.Stats().Delivered >= int64(warm) }, time.Minute, time.Millisecond)
	before := p.Stats()
	for i := range n {
		k := "key-" + strconv.Itoa(i%100)
		require.NoError(t, p.Write(t.Context(), producer.Record{PartitionKey: k, Data: event(k, warm+i)}))
	}
	all = closeProducer(t, p)
	require.Zero(t, all.Failed, all.LastError)
	require.Equal(t, int64(warm+n), all.Delivered)
	steady = producer.Stats{
		Delivered: all.Delivered - before.Delivered,
		Retried:   all.Retried - before.Retried,
		Throttled: all.Throttled - before.Throttled,
		Calls:     all.Calls - before.Calls,
		Elapsed:   all.Elapsed - before.Elapsed,
	}
	checkDelivered(t, dataOf(producertest.ReadAll(t, c, "s")), warm+n, 100, false)
	return all, steady
}

func sendsPerRecord(st producer.Stats) float64 {
	return float64(st.Delivered+st.Retried) / float64(st.Delivered)
}

// A producer into a shard at its limit slows to the shard's rate instead
// of retrying: fewer than 1.2 sends per record once it has found the
// limit, none given up, each record stored once. (The rate it reaches is
// BenchmarkProducerThrottledShard's.)
func TestProducerPacesAThrottledShard(t *testing.T) {
	t.Parallel()
	all, steady := throttledShardRun(t, 2000, 6000)
	for _, st := range []producer.Stats{all, steady} {
		t.Logf("%d records in %s (%.0f records/s): %.3f sends per record, %d throttled, %d calls",
			st.Delivered, st.Elapsed.Round(time.Millisecond), float64(st.Delivered)/st.Elapsed.Seconds(), sendsPerRecord(st), st.Throttled, st.Calls)
	}
	require.Less(t, sendsPerRecord(steady), 1.2)
}

func BenchmarkProducerThrottledShard(b *testing.B) {
	b.ResetTimer()
	all, steady := throttledShardRun(b, 2000, max(b.N, 5000))
	b.ReportMetric(float64(steady.Delivered)/steady.Elapsed.Seconds(), "records/s")
	b.ReportMetric(sendsPerRecord(steady), "sends/record")
	b.ReportMetric(sendsPerRecord(all), "sends/record-all")
	b.ReportMetric(float64(all.Calls), "calls")
}

func TestConfigTakesRecordsUpToTenMiB(t *testing.T) {
	t.Parallel()
	ok := producer.Config{Stream: "s", MaxRecordBytes: producer.LimitRecordBytes, MaxBatchBytes: producer.LimitBatchBytes}
	require.NoError(t, ok.Validate())
	// A record limit over the default batch limit raises the batch limit
	// when that is not set.
	require.NoError(t, producer.Config{Stream: "s", MaxRecordBytes: producer.LimitRecordBytes}.Validate())

	err := producer.Config{Stream: "s", MaxRecordBytes: producer.LimitRecordBytes + 1, MaxBatchBytes: producer.LimitBatchBytes + 1}.Validate()
	require.ErrorContains(t, err, "max record bytes 10485761 is over the Kinesis limit of 10485760")
	require.ErrorContains(t, err, "max batch bytes 10485761 is over the PutRecords limit of 10485760")
	err = producer.Config{Stream: "s", MaxRecordBytes: 8 << 20, MaxBatchBytes: 4 << 20}.Validate()
	require.ErrorContains(t, err, "exceeds max batch bytes")
}

func TestProducerPutsTenMiBRecords(t *testing.T) {
	t.Parallel()
	srv := kinesistest.Start(t)
	client := srv.Client(t)
	producertest.CreateStream(t, client, "big", 1)
	out, err := client.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("big")})
	require.NoError(t, err)
	_, err = client.UpdateMaxRecordSize(t.Context(), &kinesis.UpdateMaxRecordSizeInput{
		StreamARN: out.StreamDescriptionSummary.StreamARN, MaxRecordSizeInKiB: aws.Int32(10240),
	})
	require.NoError(t, err)

	var calls []int
	var mu sync.Mutex
	p, err := producer.New(client, producer.Config{
		Stream: "big", MaxRecordBytes: producer.LimitRecordBytes, Linger: -1,
		OnCall: func(c producer.Call) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, c.Entries)
		},
	})
	require.NoError(t, err)
	data := make([]byte, producer.LimitRecordBytes-1)
	for i := range data {
		data[i] = byte(i)
	}
	for range 2 {
		require.NoError(t, p.Write(t.Context(), producer.Record{PartitionKey: "k", Data: data}))
	}
	st, err := p.Close(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Delivered)
	require.EqualValues(t, 2*len(data), st.Bytes)
	// Two records of 10 MiB never share a call.
	require.Equal(t, []int{1, 1}, calls)
	got := producertest.ReadAll(t, client, "big")
	require.Len(t, got, 2)
	for _, r := range got {
		require.Equal(t, data, r.Data)
	}
}
