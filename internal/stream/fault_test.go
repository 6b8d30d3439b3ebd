package stream

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

// putConcurrently puts n records from each of writers goroutines and
// returns every acknowledged one by its data.
func putConcurrently(t *testing.T, s *Service, writers, n int) map[string]PutResult {
	t.Helper()
	var mu sync.Mutex
	acked := map[string]PutResult{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < n; i += 10 {
				var in []PutInput
				for j := i; j < i+10 && j < n; j++ {
					in = append(in, PutInput{PartitionKey: fmt.Sprint("k", w, j), Data: []byte(fmt.Sprint(w, "-", j))})
				}
				res, err := s.Put(context.Background(), "s", in)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for k, r := range res {
					acked[string(in[k].Data)] = r
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return acked
}

// readStream returns every record of every shard of stream s by data.
func readStream(t *testing.T, s *Service) map[string]Record {
	t.Helper()
	d, err := s.Describe("s")
	require.NoError(t, err)
	got := map[string]Record{}
	for _, sh := range d.Shards {
		for _, r := range readAll(t, s, "s", sh.ID, IteratorSpec{Type: TrimHorizon}) {
			_, dup := got[string(r.Data)]
			require.False(t, dup, "record %s stored twice", r.Data)
			got[string(r.Data)] = r
		}
	}
	return got
}

// TestCrashKeepsAcknowledgedPuts crashes the machine (pebble's crashable
// filesystem drops every write not synced) while concurrent puts run:
// after recovery every acknowledged record is there, once, with its
// sequence number. With fsync off (NoSync) it fails: see the storage
// package's TestCrashKeepsAcknowledged.
func TestCrashKeepsAcknowledgedPuts(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := Open(t.Context(), Config{Dir: "data", FS: fs})
	require.NoError(t, err)
	require.NoError(t, s.CreateStream(t.Context(), "s", 3, CreateOptions{}))
	acked := putConcurrently(t, s, 4, 200)

	// More puts keep running while the machine crashes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = s.Put(context.Background(), "s", []PutInput{{PartitionKey: "late", Data: []byte(fmt.Sprint("late-", i))}})
		}
	})
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	close(stop)
	wg.Wait()
	require.NoError(t, s.Close())

	s, err = Open(t.Context(), Config{Dir: "data", FS: crashed})
	require.NoError(t, err)
	defer s.Close()
	got := readStream(t, s)
	for data, r := range acked {
		rec, ok := got[data]
		require.True(t, ok, "acknowledged record %s lost", data)
		require.Equal(t, r.SequenceNumber, rec.SequenceNumber)
	}
	// And the engine goes on after recovery with higher sequence numbers.
	res, err := s.Put(t.Context(), "s", []PutInput{{PartitionKey: "k00", Data: []byte("after")}})
	require.NoError(t, err)
	require.Positive(t, mustSeq(t, res[0].SequenceNumber).cmp(mustSeq(t, acked["0-0"].SequenceNumber)))
}

// TestStorageErrorRefusesPuts: ENOSPC or EIO on the write-ahead log fails
// the puts in flight and every later one at once with ErrUnavailable,
// naming the cause, while reads go on; acknowledged records survive a
// restart.
func TestStorageErrorRefusesPuts(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
		t.Run(errno.Error(), func(t *testing.T) {
			var on atomic.Bool
			mem := vfs.NewMem()
			fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if on.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind == errorfs.OpFileWrite {
					return &os.PathError{Op: "write", Path: op.Path, Err: errno}
				}
				return nil
			}))
			s, err := Open(t.Context(), Config{Dir: "data", FS: fs})
			require.NoError(t, err)
			require.NoError(t, s.CreateStream(t.Context(), "s", 2, CreateOptions{}))
			acked := putConcurrently(t, s, 2, 100)

			on.Store(true)
			var failed atomic.Int64
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := range 20 {
						_, err := s.Put(context.Background(), "s", []PutInput{{PartitionKey: "x", Data: fmt.Appendf(nil, "fail-%d-%d", w, i)}})
						if err != nil {
							require.ErrorIs(t, err, ErrUnavailable)
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			require.Positive(t, failed.Load())
			on.Store(false) // the disk works again; the engine stays latched

			start := time.Now()
			_, err = s.Put(t.Context(), "s", []PutInput{{PartitionKey: "x", Data: []byte("refused")}})
			require.ErrorIs(t, err, ErrUnavailable)
			require.ErrorContains(t, err, errno.Error())
			require.ErrorContains(t, err, "restarted")
			require.Less(t, time.Since(start), time.Second, "a refused put is answered at once")
			require.ErrorIs(t, s.Health(), ErrUnavailable)

			got := readStream(t, s)
			for data := range acked {
				require.Contains(t, got, data)
			}
			require.NoError(t, s.Close())

			s, err = Open(t.Context(), Config{Dir: "data", FS: fs})
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, s.Health())
			got = readStream(t, s)
			for data, r := range acked {
				require.Equal(t, r.SequenceNumber, got[data].SequenceNumber)
			}
			_, err = s.Put(t.Context(), "s", []PutInput{{PartitionKey: "x", Data: []byte("after restart")}})
			require.NoError(t, err)
		})
	}
}

// TestPutHonoursContext: a put queued behind a commit goroutine that
// cannot proceed returns when its context ends, and is never applied.
func TestPutHonoursContext(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(t.Context(), "s", 1, CreateOptions{}))
	release := make(chan struct{})
	blocked := make(chan struct{})
	go func() {
		_ = s.onCommitter(context.Background(), func() { close(blocked); <-release })
	}()
	<-blocked
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("withdrawn")}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	_, err = s.Put(t.Context(), "s", []PutInput{{PartitionKey: "a", Data: []byte("kept")}})
	require.NoError(t, err)
	recs := readAll(t, s, "s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.Len(t, recs, 1)
	require.Equal(t, "kept", string(recs[0].Data))
}

// TestAfterCloseErrors: reads, writes and waits after Close return
// errors; nothing panics.
func TestAfterCloseErrors(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	require.NoError(t, s.CreateStream(t.Context(), "s", 1, CreateOptions{}))
	_, err := s.Put(t.Context(), "s", []PutInput{{PartitionKey: "a", Data: []byte("x")}})
	require.NoError(t, err)
	it, err := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
	require.NoError(t, err)
	latest, err := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: Latest})
	require.NoError(t, err)
	waited := make(chan error, 1)
	go func() { waited <- s.WaitIterator(context.Background(), latest) }()

	require.NoError(t, s.Close())
	select {
	case err := <-waited:
		require.ErrorIs(t, err, ErrUnavailable)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitIterator did not return on Close")
	}
	_, err = s.Records(t.Context(), it, 10)
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = s.Put(t.Context(), "s", []PutInput{{PartitionKey: "a", Data: []byte("y")}})
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, s.DeleteStream(t.Context(), "s", true), ErrUnavailable)
	s.trim() // logs, does not panic
}

// TestClosedShardRecordsGoWithIt: once a closed shard ages out, its
// records are deleted with it, even those put just before it closed.
func TestClosedShardRecordsGoWithIt(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	s := open(t, t.TempDir(), c)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("before split")}})
	require.NoError(t, err)
	c.Advance(30 * time.Second)
	require.NoError(t, s.SplitShard(ctx, "s", "shardId-000000000000", "170141183460469231731687303715884105728"))
	for range 24 * 60 {
		c.Advance(time.Minute)
		s.trim()
	}
	d, err := s.Describe("s")
	require.NoError(t, err)
	for _, sh := range d.Shards {
		require.NotEqual(t, "shardId-000000000000", sh.ID, "the closed shard is still listed")
	}
	_, ok, err := s.eng.LastRecord(1, 0)
	require.NoError(t, err)
	require.False(t, ok, "a record of the forgotten shard is still stored")
}

// TestTrimWritesNothingWhenNothingExpired: a trim over shards whose records
// are all within retention, or that are empty, writes no range deletion.
func TestTrimWritesNothingWhenNothingExpired(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	s := open(t, t.TempDir(), c)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 4, CreateOptions{}))
	_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: "a", Data: []byte("x")}})
	require.NoError(t, err)
	before := s.eng.RangeDeletions()
	for range 60 {
		c.Advance(time.Minute)
		s.trim()
	}
	require.Equal(t, before, s.eng.RangeDeletions())
	c.Advance(24 * time.Hour)
	s.trim()
	require.Equal(t, before+1, s.eng.RangeDeletions(), "the one shard with an expired record is trimmed")
}

// BenchmarkRecordsAfterTrims reads 10 records from one of 1000 shards
// after hours of simulated retention passes (one a minute) in which
// nothing expired: the read costs the same as before the passes.
func BenchmarkRecordsAfterTrims(b *testing.B) {
	for _, hours := range []int{0, 3} {
		b.Run(fmt.Sprintf("hours=%d", hours), func(b *testing.B) {
			ctx := context.Background()
			c := newClock()
			s := open(b, b.TempDir(), c)
			defer s.Close()
			for i := range 10 {
				require.NoError(b, s.CreateStream(ctx, fmt.Sprint("s", i), 100, CreateOptions{}))
			}
			var in []PutInput
			for i := range 10 {
				in = append(in, PutInput{ExplicitHashKey: "0", PartitionKey: "k", Data: fmt.Appendf(nil, "record-%d", i)})
			}
			_, err := s.Put(ctx, "s0", in)
			require.NoError(b, err)
			for range hours * 60 {
				c.Advance(time.Minute)
				s.trim()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				it, err := s.ShardIterator("s0", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
				if err != nil {
					b.Fatal(err)
				}
				res, err := s.Records(ctx, it, 10)
				if err != nil || len(res.Records) != 10 {
					b.Fatal(err, len(res.Records))
				}
			}
		})
	}
}
