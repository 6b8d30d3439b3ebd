package storage

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCommit500 commits batches of 500 records of 100 bytes, synced,
// from one writer into 4 shards: the storage engine's own ingest rate, the
// ceiling the stream engine's group commit works under.
func BenchmarkCommit500(b *testing.B) {
	e, err := Open(context.Background(), Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	data := make([]byte, 100)
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	var seq Seq
	n := uint64(0)
	b.ReportAllocs()
	b.SetBytes(500 * 100)
	for b.Loop() {
		batch := e.NewBatch()
		for i, k := range keys {
			n++
			binary.BigEndian.PutUint64(seq[8:], n)
			batch.PutRecord(1, uint32(i%4), seq, k, data)
		}
		if err := e.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkScanRecords scans 10000 records of 100 bytes of one shard.
func BenchmarkScanRecords(b *testing.B) {
	ctx := context.Background()
	e, err := Open(ctx, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	data := make([]byte, 100)
	var seq Seq
	for i := range 20 {
		batch := e.NewBatch()
		for n := range 500 {
			binary.BigEndian.PutUint64(seq[8:], uint64(i*500+n+1))
			batch.PutRecord(1, 0, seq, "key", data)
		}
		if err := e.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	var last Seq
	last[0] = 0xff
	b.ReportAllocs()
	for b.Loop() {
		count := 0
		if err := e.ScanRecords(ctx, 1, 0, Seq{}, last, func(Seq, []byte) bool { count++; return true }); err != nil || count != 10000 {
			b.Fatal(err, count)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkIngestWriteAmp commits a fixed 128 MiB of 100-byte records,
// synced, in batches of 500 spread over 4, 16 and 256 shards, then
// reports pebble's own accounting of the work that took: bytes written by
// flushes and compactions per byte flushed (write-amp), compactions that
// rewrote tables and those that only moved them, and the tables left. It
// does not depend on the machine's load.
// ingestMiB is how much BenchmarkIngestWriteAmp writes: go test -run -
// -bench IngestWriteAmp ./internal/storage -args -ingest-mib=512.
var (
	ingestMiB         = flag.Int("ingest-mib", 128, "MiB of records BenchmarkIngestWriteAmp writes")
	ingestMemTableMiB = flag.Int("ingest-memtable-mib", DefaultMemTableSize>>20, "memtable size in MiB BenchmarkIngestWriteAmp's store uses")
)

func BenchmarkIngestWriteAmp(b *testing.B) {
	for _, shards := range []int{4, 16, 256} {
		b.Run(fmt.Sprint("shards=", shards), func(b *testing.B) {
			for b.Loop() {
				ingestWriteAmp(b, shards)
			}
		})
	}
}

func ingestWriteAmp(b *testing.B, shards int) {
	e, err := Open(context.Background(), Options{Dir: b.TempDir(), MemTableSize: int64(*ingestMemTableMiB) << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	data := make([]byte, 104)
	rng := rand.New(rand.NewPCG(1, 2))
	var seq Seq
	records := *ingestMiB << 20 / 128
	cpu0 := cpuTime(b)
	for n := 0; n < records; {
		batch := e.NewBatch()
		for range 500 {
			n++
			binary.BigEndian.PutUint64(seq[8:], uint64(n))
			for i := 0; i < len(data); i += 8 {
				binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
			}
			batch.PutRecord(1, uint32(n%shards), seq, "partition-key", data[:100])
		}
		if err := e.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	// Flush what is left in the memtable, then let the compactions the
	// writes called for finish: none in progress at three looks in a
	// row, since one may be about to start when none is.
	if err := e.db.Flush(); err != nil {
		b.Fatal(err)
	}
	m := e.db.Metrics()
	for idle, deadline := 0, time.Now().Add(time.Minute); idle < 3 && time.Now().Before(deadline); m = e.db.Metrics() {
		if m.Compact.NumInProgress > 0 {
			idle = 0
		} else {
			idle++
		}
		time.Sleep(50 * time.Millisecond)
	}
	t := m.Total()
	b.ReportMetric((cpuTime(b) - cpu0).Seconds(), "cpu-s")
	b.ReportMetric(float64(t.TableBytesFlushed+t.TableBytesCompacted)/float64(t.TableBytesFlushed), "write-amp")
	b.ReportMetric(float64(t.TableBytesCompacted)/(1<<20), "compacted-MiB")
	b.ReportMetric(float64(m.Compact.DefaultCount), "rewrites")
	b.ReportMetric(float64(m.Compact.MoveCount), "moves")
	b.ReportMetric(float64(t.TablesCount), "tables")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
