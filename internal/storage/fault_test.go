package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

// putAcked writes n one-record batches to shard 1 of stream 1, numbered
// from first, each acknowledged (Apply then Wait) before the next.
func putAcked(t *testing.T, e *Engine, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		b := e.NewBatch()
		b.PutRecord(1, 1, seqN(i), "pk", []byte(strconv.Itoa(i)))
		p, err := e.Apply(b)
		require.NoError(t, err)
		require.NoError(t, p.Wait())
	}
}

func seqN(i int) Seq {
	var s Seq
	s[12], s[13], s[14], s[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return s
}

// records returns the data of every record of shard 1 of stream 1.
func records(t *testing.T, e *Engine) []string {
	t.Helper()
	var out []string
	var last Seq
	for i := range last {
		last[i] = 0xff
	}
	require.NoError(t, e.ScanRecords(context.Background(), 1, 1, Seq{}, last, func(_ Seq, v []byte) bool {
		_, data, err := ParseRecordValue(v)
		require.NoError(t, err)
		out = append(out, string(data))
		return true
	}))
	return out
}

func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// TestCrashKeepsAcknowledged crashes a machine under the engine (pebble's
// crashable filesystem drops everything not synced) after acknowledged
// writes and a batch applied but not yet waited for: every acknowledged
// record is there after recovery, once.
func TestCrashKeepsAcknowledged(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e, err := Open(context.Background(), Options{Dir: "data", FS: fs})
	require.NoError(t, err)
	putAcked(t, e, 0, 200)
	b := e.NewBatch()
	b.PutRecord(1, 1, seqN(200), "pk", []byte("200"))
	_, err = e.Apply(b) // applied, never acknowledged
	require.NoError(t, err)

	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	require.NoError(t, e.Close())
	e, err = Open(context.Background(), Options{Dir: "data", FS: crashed})
	require.NoError(t, err)
	defer e.Close()
	got := records(t, e)
	if len(got) == 201 {
		got = got[:200] // the unacknowledged one may have made it
	}
	require.Equal(t, numbers(200), got)
}

// TestNoSyncSurvivesProcessCrashOnly: with NoSync an acknowledged write has
// reached the operating system (a crash of the process, which keeps what
// was written, loses nothing) but not the disk (a crash of the machine
// loses some).
func TestNoSyncSurvivesProcessCrashOnly(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e, err := Open(context.Background(), Options{Dir: "data", FS: fs, NoSync: true})
	require.NoError(t, err)
	putAcked(t, e, 0, 200)
	process := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	machine := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	require.NoError(t, e.Close())

	e, err = Open(context.Background(), Options{Dir: "data", FS: process})
	require.NoError(t, err)
	require.Equal(t, numbers(200), records(t, e), "a process crash lost acknowledged records")
	require.NoError(t, e.Close())

	e, err = Open(context.Background(), Options{Dir: "data", FS: machine})
	require.NoError(t, err)
	require.Less(t, len(records(t, e)), 200, "nothing was left unsynced: NoSync fsyncs")
	require.NoError(t, e.Close())
}

// injectOn returns an injector failing operations on files with suffix
// with errno while on is set.
func injectOn(on *atomic.Bool, suffix string, kinds []errorfs.OpKind, errno syscall.Errno) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !on.Load() || !strings.HasSuffix(op.Path, suffix) {
			return nil
		}
		for _, k := range kinds {
			if op.Kind == k {
				return &os.PathError{Op: "write", Path: op.Path, Err: errno}
			}
		}
		return nil
	})
}

// TestWALErrorLatches: ENOSPC or EIO writing the write-ahead log fails
// that write, and every later write at once without reaching pebble, with
// an error naming the cause; reads go on; Close works.
func TestWALErrorLatches(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
		t.Run(errno.Error(), func(t *testing.T) {
			var on atomic.Bool
			fs := errorfs.Wrap(vfs.NewMem(), injectOn(&on, ".log",
				[]errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}, errno))
			e, err := Open(context.Background(), Options{Dir: "data", FS: fs})
			require.NoError(t, err)
			putAcked(t, e, 0, 10)
			require.NoError(t, e.Health())

			on.Store(true)
			b := e.NewBatch()
			b.PutRecord(1, 1, seqN(10), "pk", []byte("10"))
			p, err := e.Apply(b)
			if err == nil {
				err = p.Wait()
			}
			require.ErrorIs(t, err, errno)
			select {
			case <-e.Unavailable():
			default:
				t.Fatal("Unavailable not closed after a failed write")
			}
			require.ErrorIs(t, e.Health(), ErrUnavailable)
			require.Contains(t, e.Health().Error(), errno.Error())
			require.Contains(t, e.Health().Error(), "restarted")

			on.Store(false) // space is back: pebble's error is sticky all the same
			b = e.NewBatch()
			b.PutRecord(1, 1, seqN(11), "pk", []byte("11"))
			_, err = e.Apply(b)
			require.ErrorIs(t, err, ErrUnavailable)
			b = e.NewBatch()
			b.SetMeta("m", []byte("v"))
			require.ErrorIs(t, e.Commit(b), ErrUnavailable)
			require.ErrorIs(t, e.DeleteRecordsBefore(Expired{Stream: 1, Shard: 1, Before: seqN(5)}), ErrUnavailable)

			require.Equal(t, numbers(10), records(t, e)[:10])
			_ = e.Close() // pebble reports its own error; it must not hang or panic
			_, err = e.GetMeta("m")
			require.ErrorIs(t, err, ErrClosed)
		})
	}
}

// TestFlushErrorLatches: ENOSPC or EIO writing a table during a memtable
// flush (pebble retries it for ever) latches the engine through pebble's
// event listener; once the disk works again the flush completes and
// reopening shows every acknowledged record.
func TestFlushErrorLatches(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
		t.Run(errno.Error(), func(t *testing.T) {
			var on atomic.Bool
			mem := vfs.NewMem()
			fs := errorfs.Wrap(mem, injectOn(&on, ".sst", []errorfs.OpKind{errorfs.OpCreate, errorfs.OpFileWrite}, errno))
			e, err := Open(context.Background(), Options{Dir: "data", FS: fs})
			require.NoError(t, err)
			putAcked(t, e, 0, 50)
			on.Store(true)
			_, err = e.db.AsyncFlush()
			require.NoError(t, err)
			deadline := time.Now().Add(10 * time.Second)
			for e.Health() == nil {
				require.True(t, time.Now().Before(deadline), "a failing flush was not reported")
				select {
				case <-e.Unavailable():
				case <-time.After(10 * time.Millisecond):
				}
			}
			require.ErrorIs(t, e.Health(), ErrUnavailable)
			require.Contains(t, e.Health().Error(), errno.Error())
			b := e.NewBatch()
			b.PutRecord(1, 1, seqN(50), "pk", []byte("50"))
			_, err = e.Apply(b)
			require.ErrorIs(t, err, ErrUnavailable)
			require.Equal(t, numbers(50), records(t, e))

			on.Store(false)
			require.NoError(t, e.Close())
			e, err = Open(context.Background(), Options{Dir: "data", FS: fs})
			require.NoError(t, err)
			defer e.Close()
			require.NoError(t, e.Health())
			require.Equal(t, numbers(50), records(t, e))
			putAcked(t, e, 50, 1)
		})
	}
}

// TestLowSpaceRefusesAndRecovers: below MinFreeBytes free, opening fails at
// once and writes are refused, naming the shortage; once space is back
// writes resume by themselves.
func TestLowSpaceRefusesAndRecovers(t *testing.T) {
	mem := vfs.NewMem()
	const total = 1 << 30
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: total, UsedBytes: total - 1<<20})
	_, err := Open(context.Background(), Options{Dir: "data", FS: mem})
	require.ErrorContains(t, err, "1.0 MiB free; runnel needs at least 72.0 MiB free to open it")

	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 100 << 20, TotalBytes: total, UsedBytes: total - 100<<20})
	e, err := Open(context.Background(), Options{Dir: "data", FS: mem})
	require.NoError(t, err)
	defer e.Close()
	putAcked(t, e, 0, 5)

	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 10 << 20, TotalBytes: total, UsedBytes: total - 10<<20})
	e.health.lastCheck.Store(0) // check on the next write
	b := e.NewBatch()
	b.PutRecord(1, 1, seqN(5), "pk", []byte("5"))
	_, err = e.Apply(b)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "10.0 MiB free, below the 72.0 MiB")
	require.Equal(t, numbers(5), records(t, e))

	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 100 << 20, TotalBytes: total, UsedBytes: total - 100<<20})
	deadline := time.Now().Add(10 * time.Second)
	for e.Health() != nil {
		require.True(t, time.Now().Before(deadline), "writes did not resume once space was back")
		time.Sleep(10 * time.Millisecond) // polling the condition itself
	}
	putAcked(t, e, 5, 5)
	require.Equal(t, numbers(10), records(t, e))
}

// TestStallPastTimeoutRefuses: a write stall longer than StallTimeout
// refuses writes until it ends.
func TestStallPastTimeoutRefuses(t *testing.T) {
	e, err := Open(context.Background(), Options{InMemory: true, StallTimeout: 20 * time.Millisecond})
	require.NoError(t, err)
	defer e.Close()
	e.health.stallBegin("memtable count limit reached")
	select {
	case <-e.Unavailable():
	case <-time.After(10 * time.Second):
		t.Fatal("a long stall was not reported")
	}
	require.ErrorContains(t, e.Health(), "memtable count limit reached")
	e.health.stallEnd()
	require.NoError(t, e.Health())
	putAcked(t, e, 0, 1)
}

func TestAfterClose(t *testing.T) {
	e, err := Open(context.Background(), Options{InMemory: true})
	require.NoError(t, err)
	putAcked(t, e, 0, 3)
	require.NoError(t, e.Close())
	require.NoError(t, e.Close())
	_, err = e.GetMeta("x")
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, e.ScanRecords(context.Background(), 1, 1, Seq{}, seqN(9), func(Seq, []byte) bool { return true }), ErrClosed)
	_, _, err = e.LastRecord(1, 1)
	require.ErrorIs(t, err, ErrClosed)
	_, err = e.Apply(e.NewBatch())
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, e.DeleteRecordsBefore(Expired{Stream: 1, Shard: 1, Before: seqN(1)}), ErrClosed)
}

func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(context.Background(), Options{Dir: dir})
	require.NoError(t, err)
	_, err = Open(context.Background(), Options{Dir: dir})
	require.EqualError(t, err, fmt.Sprintf("data dir %s is in use by another runnel (pid %d)", dir, os.Getpid()))
	require.NoError(t, e.Close())
	e, err = Open(context.Background(), Options{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, e.Close())
	_, err = os.Stat(filepath.Join(dir, lockFile))
	require.NoError(t, err)
}

// blockingFS holds every file creation until release is closed.
type blockingFS struct {
	vfs.FS
	release chan struct{}
}

func (fs blockingFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	<-fs.release
	return fs.FS.Create(name, category)
}

// TestOpenHonoursContext: an Open that pebble does not finish returns when
// its context is done.
func TestOpenHonoursContext(t *testing.T) {
	fs := blockingFS{FS: vfs.NewMem(), release: make(chan struct{})}
	defer close(fs.release)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Open(ctx, Options{Dir: "data", FS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		done <- err
	}()
	cancel(errors.New("terminated"))
	select {
	case err := <-done:
		require.ErrorContains(t, err, "interrupted: terminated")
	case <-time.After(10 * time.Second):
		t.Fatal("Open ignored its context")
	}
}
