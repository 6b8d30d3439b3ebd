package stream

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func open(t testing.TB, dir string, c *clock) *Service {
	t.Helper()
	cfg := Config{Dir: dir, RetentionInterval: time.Hour}
	if c != nil {
		cfg.Now = c.Now
	}
	s, err := Open(t.Context(), cfg)
	require.NoError(t, err)
	return s
}

func readAll(t testing.TB, s *Service, name, shard string, spec IteratorSpec) []Record {
	t.Helper()
	it, err := s.ShardIterator(name, shard, spec)
	require.NoError(t, err)
	var out []Record
	for range 1000 {
		res, err := s.Records(context.Background(), it, 3)
		require.NoError(t, err)
		out = append(out, res.Records...)
		it = res.NextIterator
		if len(res.Records) == 0 {
			require.Zero(t, res.MillisBehindLatest)
			return out
		}
	}
	t.Fatal("shard never caught up")
	return nil
}

func TestPutAndReadBack(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 4, CreateOptions{}))

	var in []PutInput
	for i := range 100 {
		in = append(in, PutInput{PartitionKey: fmt.Sprint("key-", i), Data: []byte(fmt.Sprint("data-", i))})
	}
	res, err := s.Put(ctx, "s", in)
	require.NoError(t, err)
	require.Len(t, res, 100)

	d, err := s.Describe("s")
	require.NoError(t, err)
	got := map[string]Record{}
	for _, sh := range d.Shards {
		recs := readAll(t, s, "s", sh.ID, IteratorSpec{Type: TrimHorizon})
		for i, r := range recs {
			if i > 0 {
				require.Negative(t, mustSeq(t, recs[i-1].SequenceNumber).cmp(mustSeq(t, r.SequenceNumber)))
			}
			// Routed by MD5 into this shard's range.
			h := hashKey(r.PartitionKey)
			require.True(t, mustParse(t, sh.StartingHashKey).cmp(h) <= 0 && h.cmp(mustParse(t, sh.EndingHashKey)) <= 0)
			got[r.SequenceNumber] = r
		}
	}
	for i, r := range res {
		rec, ok := got[r.SequenceNumber]
		require.True(t, ok, "record %d not read back", i)
		require.Equal(t, in[i].PartitionKey, rec.PartitionKey)
		require.Equal(t, in[i].Data, rec.Data)
	}
}

func mustParse(t testing.TB, s string) u128 {
	v, err := parseU128(s)
	require.NoError(t, err)
	return v
}

func mustSeq(t testing.TB, s string) u128 {
	v, ok := parseSeq(s)
	require.True(t, ok, s)
	return v
}

func TestExplicitHashKeyRoutes(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 2, CreateOptions{}))
	res, err := s.Put(ctx, "s", []PutInput{
		{PartitionKey: "x", ExplicitHashKey: "0", Data: []byte("a")},
		{PartitionKey: "x", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("b")},
		{PartitionKey: "x", ExplicitHashKey: "170141183460469231731687303715884105728", Data: []byte("c")},
	})
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000000", res[0].ShardID)
	require.Equal(t, "shardId-000000000001", res[1].ShardID)
	require.Equal(t, "shardId-000000000001", res[2].ShardID)

	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "x", ExplicitHashKey: "340282366920938463463374607431768211456"}})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestIteratorTypes(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, t.TempDir(), c)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	const sh = "shardId-000000000000"

	latest, err := s.ShardIterator("s", sh, IteratorSpec{Type: Latest})
	require.NoError(t, err)
	var seqs []string
	var times []time.Time
	for i := range 5 {
		times = append(times, c.Now())
		r, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte{byte(i)}}})
		require.NoError(t, err)
		seqs = append(seqs, r[0].SequenceNumber)
		c.Advance(time.Second)
	}
	res, err := s.Records(ctx, latest, 100)
	require.NoError(t, err)
	require.Len(t, res.Records, 5, "LATEST issued before the puts sees them")

	require.Len(t, readAll(t, s, "s", sh, IteratorSpec{Type: AtSequenceNumber, SequenceNumber: seqs[2]}), 3)
	require.Len(t, readAll(t, s, "s", sh, IteratorSpec{Type: AfterSequenceNumber, SequenceNumber: seqs[2]}), 2)
	require.Len(t, readAll(t, s, "s", sh, IteratorSpec{Type: AtTimestamp, Timestamp: times[3]}), 2)
	require.Len(t, readAll(t, s, "s", sh, IteratorSpec{Type: AtTimestamp, Timestamp: times[0].Add(-time.Hour)}), 5)
	require.Empty(t, readAll(t, s, "s", sh, IteratorSpec{Type: Latest}))

	// A timestamp in the future is refused, as Kinesis refuses it; the
	// present starts at the tip, and then sees new records.
	_, err = s.ShardIterator("s", sh, IteratorSpec{Type: AtTimestamp, Timestamp: c.Now().Add(time.Millisecond)})
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.ErrorContains(t, err, "timestampInMillis")
	c.Advance(time.Second)
	now, err := s.ShardIterator("s", sh, IteratorSpec{Type: AtTimestamp, Timestamp: c.Now()})
	require.NoError(t, err)
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("new")}})
	require.NoError(t, err)
	res, err = s.Records(ctx, now, 100)
	require.NoError(t, err)
	require.Len(t, res.Records, 1)
	require.Equal(t, "new", string(res.Records[0].Data))

	// Sequence numbers of another shard, or not ours, are rejected.
	require.NoError(t, s.CreateStream(ctx, "t", 2, CreateOptions{}))
	r, err := s.Put(ctx, "t", []PutInput{{PartitionKey: "k", ExplicitHashKey: "0", Data: []byte("x")}})
	require.NoError(t, err)
	_, err = s.ShardIterator("t", "shardId-000000000001", IteratorSpec{Type: AtSequenceNumber, SequenceNumber: r[0].SequenceNumber})
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = s.ShardIterator("t", "shardId-000000000000", IteratorSpec{Type: AtSequenceNumber, SequenceNumber: "12345"})
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = s.ShardIterator("t", "shardId-000000000009", IteratorSpec{Type: Latest})
	require.ErrorIs(t, err, ErrNotFound)
}

func TestIteratorExpiresAndIsAuthenticated(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, t.TempDir(), c)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	it, err := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.NoError(t, err)

	// Any altered byte is rejected.
	b := []byte(it)
	b[10] ^= 1
	_, err = s.Records(ctx, string(b), 1)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = s.Records(ctx, "not an iterator", 1)
	require.ErrorIs(t, err, ErrInvalidArgument)

	c.Advance(IteratorTTL - time.Second)
	res, err := s.Records(ctx, it, 1)
	require.NoError(t, err)
	c.Advance(2 * time.Second)
	_, err = s.Records(ctx, it, 1)
	require.ErrorIs(t, err, ErrExpiredIterator)
	_, err = s.Records(ctx, res.NextIterator, 1)
	require.NoError(t, err, "the next iterator has its own five minutes")
}

func TestDurableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, nil)
	require.NoError(t, s.CreateStream(ctx, "s", 2, CreateOptions{Tags: map[string]string{"team": "web"}}))
	require.NoError(t, s.SetRetention(ctx, "s", 48, true))
	r1, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}})
	require.NoError(t, err)
	it, err := s.ShardIterator("s", r1[0].ShardID, IteratorSpec{Type: AfterSequenceNumber, SequenceNumber: r1[0].SequenceNumber})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = open(t, dir, nil)
	defer s.Close()
	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, 48, d.RetentionHours)
	tags, _ := s.Tags("s")
	require.Equal(t, map[string]string{"team": "web"}, tags)

	// New records get higher sequence numbers than before the restart, and
	// an iterator issued before the restart still works.
	r2, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("3")}})
	require.NoError(t, err)
	require.Equal(t, r1[0].ShardID, r2[0].ShardID)
	require.Positive(t, mustSeq(t, r2[0].SequenceNumber).cmp(mustSeq(t, r1[0].SequenceNumber)))
	res, err := s.Records(ctx, it, 10)
	require.NoError(t, err)
	require.Len(t, res.Records, 1)
	require.Equal(t, "3", string(res.Records[0].Data))
}

func TestDeleteAndRecreateSeesNoOldRecords(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("old")}})
	require.NoError(t, err)
	it, err := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.NoError(t, err)
	require.NoError(t, s.DeleteStream(ctx, "s", false))
	require.ErrorIs(t, s.DeleteStream(ctx, "s", false), ErrNotFound)
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("x")}})
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Records(ctx, it, 10)
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	require.ErrorIs(t, s.CreateStream(ctx, "s", 1, CreateOptions{}), ErrInUse)
	require.Empty(t, readAll(t, s, "s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon}))
}

func TestRetentionTrims(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, t.TempDir(), c)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("old")}})
	require.NoError(t, err)
	c.Advance(23 * time.Hour)
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("new")}})
	require.NoError(t, err)
	c.Advance(2 * time.Hour)

	recs := readAll(t, s, "s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.Len(t, recs, 1, "records past retention are not served")
	require.Equal(t, "new", string(recs[0].Data))

	s.trim()
	first, ok, err := s.eng.LastRecord(1, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, recs[0].SequenceNumber, seqString(u128FromBytes(first)))

	require.ErrorIs(t, s.SetRetention(ctx, "s", 23, true), ErrInvalidArgument)
	require.ErrorIs(t, s.SetRetention(ctx, "s", 8761, true), ErrInvalidArgument)
	require.NoError(t, s.SetRetention(ctx, "s", 100, true))
	require.ErrorIs(t, s.SetRetention(ctx, "s", 50, true), ErrInvalidArgument)
	require.ErrorIs(t, s.SetRetention(ctx, "s", 200, false), ErrInvalidArgument)
	require.NoError(t, s.SetRetention(ctx, "s", 50, false))
}

func TestConcurrentPutsKeepShardOrder(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 2, CreateOptions{}))
	const writers, perWriter = 8, 50
	var wg sync.WaitGroup
	acked := make([][]PutResult, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				r, err := s.Put(ctx, "s", []PutInput{{PartitionKey: fmt.Sprint(w), Data: []byte(fmt.Sprint(w, "-", i))}})
				if err != nil {
					t.Error(err)
					return
				}
				acked[w] = append(acked[w], r[0])
			}
		})
	}
	wg.Wait()
	total := 0
	for _, sh := range []string{"shardId-000000000000", "shardId-000000000001"} {
		recs := readAll(t, s, "s", sh, IteratorSpec{Type: TrimHorizon})
		total += len(recs)
		next := map[string]int{}
		for _, r := range recs {
			var w, i int
			fmt.Sscanf(string(r.Data), "%d-%d", &w, &i)
			require.Equal(t, next[r.PartitionKey], i, "per-key order kept")
			next[r.PartitionKey]++
		}
	}
	require.Equal(t, writers*perWriter, total)
}

func TestLimitsAndErrors(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.Context(), Config{InMemory: true, ShardLimit: 5})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "a", 3, CreateOptions{MaxRecordSizeKiB: 1024}))
	err = s.CreateStream(ctx, "b", 3, CreateOptions{})
	require.ErrorIs(t, err, ErrLimitExceeded)
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Contains(t, e.Msg, "shard limit")

	big := make([]byte, 1<<20)
	rand.Read(big)
	_, err = s.Put(ctx, "a", []PutInput{{PartitionKey: "k", Data: big}})
	require.ErrorIs(t, err, ErrInvalidArgument, "data plus key over 1 MiB")
	_, err = s.Put(ctx, "a", []PutInput{{PartitionKey: "k", Data: big[:1<<20-1]}})
	require.NoError(t, err)
	_, err = s.Put(ctx, "missing", []PutInput{{PartitionKey: "k"}})
	require.ErrorIs(t, err, ErrNotFound)
	require.Contains(t, err.Error(), "Stream missing under account 000000000000 not found.")

	name, err := s.NameFromARN(s.ARN("a"))
	require.NoError(t, err)
	require.Equal(t, "a", name)
	_, err = s.NameFromARN("arn:aws:kinesis:eu-west-1:000000000000:stream/a")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.NameFromARN("arn:aws:sqs:us-east-1:000000000000:queue")
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func FuzzDecodeIterator(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	f.Add(encodeIterator(secret, iterator{stream: 1, shard: 2, pos: makeSeq(3, 2, 4), issued: time.UnixMilli(5)}))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		it, ok := decodeIterator(secret, s)
		if !ok {
			return
		}
		// Anything accepted must be exactly what we would have issued.
		if again := encodeIterator(secret, it); again != s {
			t.Fatalf("accepted %q which re-encodes as %q", s, again)
		}
	})
}

func BenchmarkPut500(b *testing.B) {
	ctx := context.Background()
	s := open(b, b.TempDir(), nil)
	defer s.Close()
	require.NoError(b, s.CreateStream(ctx, "s", 4, CreateOptions{}))
	recs := make([]PutInput, 500)
	for i := range recs {
		recs[i] = PutInput{PartitionKey: fmt.Sprint("k", i), Data: make([]byte, 100)}
	}
	b.ReportAllocs()
	b.SetBytes(500 * 100)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Put(ctx, "s", recs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkRecords10000(b *testing.B) {
	ctx := context.Background()
	s := open(b, b.TempDir(), nil)
	defer s.Close()
	require.NoError(b, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	recs := make([]PutInput, 500)
	for i := range recs {
		recs[i] = PutInput{PartitionKey: fmt.Sprint("k", i), Data: make([]byte, 100)}
	}
	for range 20 {
		_, err := s.Put(ctx, "s", recs)
		require.NoError(b, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		it, _ := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
		res, err := s.Records(ctx, it, 10000)
		if err != nil || len(res.Records) != 10000 {
			b.Fatal(err, len(res.Records))
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "records/s")
}

func TestShardWriteLimits(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, err := Open(t.Context(), Config{InMemory: true, Now: c.Now, ShardWriteLimits: true})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	recs := make([]PutInput, 500)
	for i := range recs {
		recs[i] = PutInput{PartitionKey: fmt.Sprint(i), Data: []byte("x")}
	}
	ok, throttled := 0, 0
	for range 3 {
		res, err := s.Put(ctx, "s", recs)
		require.NoError(t, err)
		for _, r := range res {
			if r.ErrorCode == "" {
				ok++
				require.NotEmpty(t, r.SequenceNumber)
			} else {
				throttled++
				require.Equal(t, ErrorCodeThroughputExceeded, r.ErrorCode)
				require.Contains(t, r.ErrorMessage, "Rate exceeded for shard shardId-000000000000 in stream s")
			}
		}
	}
	require.Equal(t, ShardWriteRecordsPerSecond, ok)
	require.Equal(t, 500, throttled)
	require.Len(t, readAll(t, s, "s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon}), ok, "throttled records are not stored")

	c.Advance(time.Second)
	res, err := s.Put(ctx, "s", recs)
	require.NoError(t, err)
	for _, r := range res {
		require.Empty(t, r.ErrorCode)
	}

	// The byte limit applies too: two 600 KiB records in the same second.
	c.Advance(time.Second)
	big := make([]byte, 600<<10)
	res, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: big}, {PartitionKey: "b", Data: big}})
	require.NoError(t, err)
	require.Empty(t, res[0].ErrorCode)
	require.Equal(t, ErrorCodeThroughputExceeded, res[1].ErrorCode)
}

// A record larger than a second of write capacity (records may be up to
// 10 MiB after UpdateMaxRecordSize) is taken when the shard or stream is
// idle and leaves its bucket in debt: the next one waits until the
// average rate allows it.
func TestShardWriteLimitsRecordOverBurst(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		perSecond int
	}{
		{ModeProvisioned, ShardWriteBytesPerSecond},
		{ModeOnDemand, OnDemandWriteMiBps << 20},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx := context.Background()
			c := newClock()
			s, err := Open(t.Context(), Config{InMemory: true, Now: c.Now, ShardWriteLimits: true})
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{Mode: tc.mode}))
			require.NoError(t, s.SetMaxRecordSize(ctx, "s", 10240))
			big := []PutInput{{PartitionKey: "k", Data: make([]byte, tc.perSecond+tc.perSecond/2)}}
			small := []PutInput{{PartitionKey: "k", Data: []byte("x")}}

			res, err := s.Put(ctx, "s", big)
			require.NoError(t, err)
			require.Empty(t, res[0].ErrorCode, "a record over the burst is taken when the bucket is full")
			res, err = s.Put(ctx, "s", big)
			require.NoError(t, err)
			require.Equal(t, ErrorCodeThroughputExceeded, res[0].ErrorCode)

			// 1.5 s of capacity was taken from a full bucket (1 s): it is
			// half a second in debt, still a quarter second later.
			c.Advance(time.Second / 4)
			res, err = s.Put(ctx, "s", small)
			require.NoError(t, err)
			require.Equal(t, ErrorCodeThroughputExceeded, res[0].ErrorCode)
			c.Advance(time.Second)
			res, err = s.Put(ctx, "s", small)
			require.NoError(t, err)
			require.Empty(t, res[0].ErrorCode)
		})
	}
}

func TestWaitIteratorWakesOnAppend(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	it, err := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: Latest})
	require.NoError(t, err)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.WaitIterator(short, it), context.DeadlineExceeded)

	woke := make(chan error, 1)
	go func() { woke <- s.WaitIterator(ctx, it) }()
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: []byte("x")}})
	require.NoError(t, err)
	select {
	case err := <-woke:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitIterator did not wake on append")
	}
	res, err := s.Records(ctx, it, 10)
	require.NoError(t, err)
	require.Len(t, res.Records, 1)
	require.NoError(t, s.WaitIterator(ctx, it), "a record is already there")
}

func TestShardReadLimits(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, err := Open(t.Context(), Config{InMemory: true, Now: c.Now, ShardReadLimits: true})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	it, err := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.NoError(t, err)
	for range ShardReadCallsPerSecond {
		_, err := s.Records(ctx, it, 10)
		require.NoError(t, err)
	}
	_, err = s.Records(ctx, it, 10)
	require.ErrorIs(t, err, ErrThroughputExceeded)
	c.Advance(time.Second)

	// A 3 MiB read succeeds, then the shard is refused until the byte
	// budget has refilled (half a second here).
	big := make([]byte, 1000<<10)
	for range 3 {
		_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "k", Data: big}})
		require.NoError(t, err)
	}
	res, err := s.Records(ctx, it, 10)
	require.NoError(t, err)
	require.Len(t, res.Records, 3)
	c.Advance(200 * time.Millisecond)
	_, err = s.Records(ctx, res.NextIterator, 10)
	require.ErrorIs(t, err, ErrThroughputExceeded)
	c.Advance(time.Second)
	_, err = s.Records(ctx, res.NextIterator, 10)
	require.NoError(t, err)
}

func TestStatsCountTraffic(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("12345")}, {PartitionKey: "b", Data: []byte("678")}})
	require.NoError(t, err)
	require.Len(t, readAll(t, s, "s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon}), 2)
	st := s.Stats()
	require.Len(t, st, 1)
	sh := st[0].Shards[0]
	require.Equal(t, int64(2), sh.RecordsIn)
	require.Equal(t, int64(8), sh.BytesIn)
	require.Equal(t, int64(2), sh.RecordsOut)
	require.Equal(t, int64(8), sh.BytesOut)
	require.NotEmpty(t, sh.LastSequenceNumber)
	require.True(t, sh.Open)
}

// FuzzOpenToken: the one token codec accepts only what it sealed, and
// never a token of another kind.
func FuzzOpenToken(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	f.Add(sealToken(secret, tokenPage, []byte(`{"k":"streams","a":"x","t":1}`)))
	f.Add(sealToken(secret, tokenIterator, []byte("payload")))
	f.Add("")
	sealed := sealToken(secret, tokenPage, []byte(`{"k":"streams"}`))
	f.Add(sealed[:4] + "\n" + sealed[4:])
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []byte{tokenIterator, tokenPage} {
			payload, ok := openToken(secret, kind, s)
			if !ok {
				continue
			}
			if again := sealToken(secret, kind, payload); again != s {
				t.Fatalf("accepted %q which re-seals as %q", s, again)
			}
			if _, other := openToken(secret, tokenIterator+tokenPage-kind, s); other {
				t.Fatalf("%q opens as both kinds", s)
			}
		}
	})
}

// TestRetentionTrimsHourByHour: passes that start where the last deletion
// ended still delete each put once it expires, before and after a
// restart (which forgets where they ended), and nothing else.
func TestRetentionTrimsHourByHour(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	dir := t.TempDir()
	s := open(t, dir, c)
	require.NoError(t, s.CreateStream(ctx, "s", 2, CreateOptions{}))
	for h := range 40 {
		if h == 30 {
			require.NoError(t, s.Close())
			s = open(t, dir, c)
		}
		before := s.eng.RangeDeletions()
		s.trim()
		if h > 24 {
			// The put of hour h-25 expires at this pass (the one of
			// h-24 is exactly at the horizon, and stays). One shard
			// holds each put.
			require.Equal(t, before+1, s.eng.RangeDeletions(), "hour %d", h)
			// The pass remembers where its deletion ended, for the
			// next pass to look and delete from there.
			cut := seqFloor(uint64(c.Now().Add(-24*time.Hour).UnixMilli()), 0)
			ends := 0
			s.trimMu.Lock()
			for sh := range uint32(2) {
				if end, ok := s.trimmed[trimShard{1, sh}]; ok && u128FromBytes(end).cmp(seqFloor(0, sh)) > 0 {
					require.LessOrEqual(t, seqMillis(u128FromBytes(end)), seqMillis(cut), "hour %d", h)
					if seqMillis(u128FromBytes(end)) == seqMillis(cut) {
						ends++
					}
				}
			}
			s.trimMu.Unlock()
			require.Equal(t, 1, ends, "hour %d: the shard trimmed at this pass has its bound", h)
		}
		recs := readAll(t, s, "s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
		recs = append(recs, readAll(t, s, "s", "shardId-000000000001", IteratorSpec{Type: TrimHorizon})...)
		require.Len(t, recs, min(h, 24), "hour %d", h)
		for sh := range uint32(2) {
			first, ok, err := s.eng.FirstRecord(1, sh)
			require.NoError(t, err)
			if ok {
				require.GreaterOrEqual(t, seqMillis(u128FromBytes(first)), uint64(c.Now().Add(-24*time.Hour).UnixMilli()), "hour %d: an expired record is left", h)
			}
		}
		_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: strconv.Itoa(h), Data: []byte("x")}})
		require.NoError(t, err)
		c.Advance(time.Hour)
	}
	require.NoError(t, s.Close())
}
