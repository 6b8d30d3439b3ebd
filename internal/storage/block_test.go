package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/runneltest"
)

func seqN64(n uint64) Seq {
	var s Seq
	binary.BigEndian.PutUint64(s[8:], n)
	return s
}

// scanAll returns the data of a shard's records from from on, in order.
func scanAll(t *testing.T, e *Engine, shard uint32, from Seq) []string {
	t.Helper()
	var got []string
	require.NoError(t, e.ScanRecords(context.Background(), 1, shard, from, seqN64(1<<62), func(seq Seq, v []byte) bool {
		_, data, err := ParseRecordValue(v)
		require.NoError(t, err)
		require.Equal(t, string(data), strconv.FormatUint(binary.BigEndian.Uint64(seq[8:]), 10), "a record's data is its number")
		got = append(got, string(data))
		return true
	}))
	return got
}

func nums(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// A store written before blocks holds one key a record: it reads back
// alongside the blocks written after it, from any sequence number.
func TestRecordsBeforeBlocksStillRead(t *testing.T) {
	t.Parallel()
	e := openMem(t)
	// Records 1 to 5 as stores before blocks wrote them.
	for i := uint64(1); i <= 5; i++ {
		k := AppendRecordKey(nil, 1, 0, seqN64(i))
		require.NoError(t, e.db.Set(k, AppendRecordValue(nil, "pk", []byte(strconv.FormatUint(i, 10))), nil))
	}
	// Then blocks: 6 to 8, and 9 to 10.
	for _, r := range [][2]uint64{{6, 8}, {9, 10}} {
		b := e.NewBatch()
		for i := r[0]; i <= r[1]; i++ {
			b.PutRecord(1, 0, seqN64(i), "pk", []byte(strconv.FormatUint(i, 10)))
		}
		require.NoError(t, e.Commit(b))
	}
	for from := 0; from <= 11; from++ {
		require.Equal(t, nums(max(from, 1), 10), scanAll(t, e, 0, seqN64(uint64(from))), "from %d", from)
	}
	// Up to a bound inside a block.
	var got []int
	require.NoError(t, e.ScanRecords(context.Background(), 1, 0, seqN64(4), seqN64(7), func(seq Seq, _ []byte) bool {
		got = append(got, int(binary.BigEndian.Uint64(seq[8:])))
		return true
	}))
	require.Equal(t, []int{4, 5, 6, 7}, got)

	first, ok, err := e.FirstRecord(1, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqN64(1), first)
	last, ok, err := e.LastRecord(1, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqN64(10), last)

	// Deletion below 7 takes the old records, not the block of 6 to 8.
	require.NoError(t, e.DeleteRecordsBefore(Expired{Stream: 1, Shard: 0, Before: seqN64(7)}))
	require.Equal(t, nums(6, 10), scanAll(t, e, 0, Seq{}))
	end, ok, err := e.OldestBlockEnd(1, 0, Seq{})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqN64(8), end)
	require.NoError(t, e.DeleteRecordsBefore(Expired{Stream: 1, Shard: 0, Before: seqN64(9)}))
	require.Equal(t, nums(9, 10), scanAll(t, e, 0, Seq{}))
	// A look from a bound finds the first block at or after it.
	end, ok, err = e.OldestBlockEnd(1, 0, seqN64(9))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqN64(10), end)
	_, ok, err = e.OldestBlockEnd(1, 0, seqN64(11))
	require.NoError(t, err)
	require.False(t, ok)
	first, ok, err = e.FirstRecord(1, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqN64(9), first)
}

// One batch of many records a shard, interleaved across shards as a put's
// records are, stores blocks of at most maxBlockBytes that read back in
// order from any point.
func TestBatchSplitsLargeBlocks(t *testing.T) {
	t.Parallel()
	e := openMem(t)
	const n = 3000
	data := bytes.Repeat([]byte("x"), 100)
	b := e.NewBatch()
	for i := uint64(1); i <= n; i++ {
		for shard := range uint32(3) {
			b.PutRecord(1, shard, seqN64(i), "pk", append(data[:0:0], strconv.FormatUint(i, 10)...))
		}
	}
	require.NoError(t, e.Commit(b))

	it, err := e.db.NewIter(nil)
	require.NoError(t, err)
	blocks := 0
	for ok := it.First(); ok; ok = it.Next() {
		if block, _ := recordUnit(it.Key()); block {
			blocks++
			require.LessOrEqual(t, len(it.Value()), maxBlockBytes)
		}
	}
	require.NoError(t, it.Close())
	require.Greater(t, blocks, 3, "one block a shard for %d records", n)

	for shard := range uint32(3) {
		require.Equal(t, nums(1, n), scanAll(t, e, shard, Seq{}))
		require.Equal(t, nums(1777, n), scanAll(t, e, shard, seqN64(1777)))
	}
	// A scan stops where its callback says, inside a block.
	count := 0
	require.NoError(t, e.ScanRecords(context.Background(), 1, 1, seqN64(10), seqN64(n), func(Seq, []byte) bool {
		count++
		return count < 25
	}))
	require.Equal(t, 25, count)
}

// A block whose framing is damaged is read up to the damage, logged, and
// skipped; the blocks after it still read.
func TestDamagedBlockSkipped(t *testing.T) {
	t.Parallel()
	var logs runneltest.SyncBuffer
	e, err := Open(context.Background(), Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	for _, r := range [][2]uint64{{1, 3}, {4, 6}, {7, 9}} {
		b := e.NewBatch()
		for i := r[0]; i <= r[1]; i++ {
			b.PutRecord(1, 0, seqN64(i), "pk", []byte(strconv.FormatUint(i, 10)))
		}
		require.NoError(t, e.Commit(b))
	}
	// Cut the middle block inside its last entry.
	k := blockKey(nil, 1, 0, seqN64(6))
	v, closer, err := e.db.Get(k)
	require.NoError(t, err)
	bad := bytes.Clone(v[:len(v)-1])
	require.NoError(t, closer.Close())
	require.NoError(t, e.db.Set(k, bad, nil))

	require.Equal(t, []string{"1", "2", "3", "4", "5", "7", "8", "9"}, scanAll(t, e, 0, Seq{}))
	require.Contains(t, logs.String(), "damaged record block")
}

// FuzzBlock: entries appended to a block read back as written, from any
// starting point, and arbitrary bytes read as a block never panic.
func FuzzBlock(f *testing.F) {
	f.Add([]byte("key"), []byte("data"), uint8(3), uint8(1), []byte{0, 1, 2})
	f.Add([]byte{}, []byte{}, uint8(0), uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, key, data []byte, n, from uint8, raw []byte) {
		var block []byte
		for i := range uint64(n) {
			block = appendEntry(block, seqN64(i+1), string(key), slices.Concat(data, []byte{byte(i)}))
			if len(block) != entriesLen(key, data, i+1) {
				t.Fatalf("entry %d: block is %d bytes, entryLen says %d", i, len(block), entriesLen(key, data, i+1))
			}
		}
		to := seqN64(uint64(n))
		next := max(uint64(from), 1)
		_, err := walkBlock(block, new(seqN64(uint64(from))), &to, func(seq Seq, v []byte) bool {
			pk, d, err := ParseRecordValue(v)
			if err != nil || seq != seqN64(next) || !bytes.Equal(pk, key) || !bytes.Equal(d, slices.Concat(data, []byte{byte(next - 1)})) {
				t.Fatalf("record %d read back as %x %q %q (%v)", next, seq, pk, d, err)
			}
			next++
			return true
		})
		if err != nil || next != max(uint64(n)+1, uint64(from), 1) {
			t.Fatalf("walk ended at %d of %d from %d: %v", next, n, from, err)
		}
		var lo, hi Seq
		hi[0] = 0xff
		_, _ = walkBlock(raw, &lo, &hi, func(Seq, []byte) bool { return true })
	})
}

func entriesLen(key, data []byte, n uint64) int {
	total := 0
	for range n {
		total += entryLen(string(key), slices.Concat(data, []byte{0}))
	}
	return total
}

// A deletion with From starts there: what is below it is the caller's
// (already deleted, as retention passes it).
func TestDeleteRecordsFrom(t *testing.T) {
	t.Parallel()
	e := openMem(t)
	for i := uint64(1); i <= 5; i++ {
		b := e.NewBatch()
		b.PutRecord(1, 0, seqN64(i), "pk", []byte(strconv.FormatUint(i, 10)))
		require.NoError(t, e.Commit(b))
	}
	require.NoError(t, e.DeleteRecordsBefore(Expired{Stream: 1, Shard: 0, From: seqN64(2), Before: seqN64(4)}))
	require.Equal(t, []string{"1", "4", "5"}, scanAll(t, e, 0, Seq{}))
}
