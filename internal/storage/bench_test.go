package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
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
