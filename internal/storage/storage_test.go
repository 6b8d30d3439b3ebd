package storage

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func seqOf(n byte) Seq { var s Seq; s[15] = n; return s }

func TestRecordsRangeAndTrim(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(context.Background(), Options{Dir: dir})
	require.NoError(t, err)
	// Two batches: records 1 and 2, then 3 to 5, so each shard holds two
	// blocks.
	for _, r := range [][2]byte{{1, 2}, {3, 5}} {
		b := e.NewBatch()
		for i := r[0]; i <= r[1]; i++ {
			b.PutRecord(7, 1, seqOf(i), "pk", []byte{i})
			b.PutRecord(7, 2, seqOf(i), "other", []byte{i})
		}
		p, err := e.Apply(b)
		require.NoError(t, err)
		require.NoError(t, p.Wait())
	}

	var got []byte
	require.NoError(t, e.ScanRecords(context.Background(), 7, 1, seqOf(2), seqOf(4), func(s Seq, v []byte) bool {
		pk, data, err := ParseRecordValue(v)
		require.NoError(t, err)
		require.Equal(t, "pk", string(pk))
		got = append(got, data...)
		return true
	}))
	require.Equal(t, []byte{2, 3, 4}, got)

	// Deletion goes a block at a time: below 3 removes the first block,
	// below 4 nothing more (the block of 3 to 5 holds 4).
	require.NoError(t, e.DeleteRecordsBefore(Expired{Stream: 7, Shard: 1, Before: seqOf(3)}))
	require.NoError(t, e.DeleteRecordsBefore(Expired{Stream: 7, Shard: 1, Before: seqOf(4)}))
	last, ok, err := e.LastRecord(7, 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqOf(5), last)
	first, ok, err := e.FirstRecord(7, 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqOf(3), first)
	end, ok, err := e.OldestBlockEnd(7, 1, Seq{})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, seqOf(5), end)
	require.NoError(t, e.Close())

	// Reopen: the trim and the records persist; the other shard is intact.
	e, err = Open(context.Background(), Options{Dir: dir})
	require.NoError(t, err)
	defer e.Close()
	n := 0
	require.NoError(t, e.ScanRecords(context.Background(), 7, 1, Seq{}, seqOf(255), func(Seq, []byte) bool { n++; return true }))
	require.Equal(t, 3, n)
	n = 0
	require.NoError(t, e.ScanRecords(context.Background(), 7, 2, Seq{}, seqOf(255), func(Seq, []byte) bool { n++; return true }))
	require.Equal(t, 5, n)

	b := e.NewBatch()
	b.DeleteStreamRecords(7)
	b.SetMeta("x", []byte("y"))
	require.NoError(t, e.Commit(b))
	_, ok, err = e.LastRecord(7, 2)
	require.NoError(t, err)
	require.False(t, ok)
	v, err := e.GetMeta("x")
	require.NoError(t, err)
	require.Equal(t, "y", string(v))
}

func FuzzRecordCodec(f *testing.F) {
	f.Add(uint64(1), uint32(2), []byte("0123456789abcdef"), "key", []byte("data"))
	f.Add(uint64(0), uint32(0), []byte{}, "", []byte{})
	f.Fuzz(func(t *testing.T, stream uint64, shard uint32, seqb []byte, pk string, data []byte) {
		var seq Seq
		copy(seq[:], seqb)
		k := AppendRecordKey(nil, stream, shard, seq)
		s2, sh2, seq2, err := ParseRecordKey(k)
		if err != nil || s2 != stream || sh2 != shard || seq2 != seq {
			t.Fatalf("key round trip failed: %v", err)
		}
		v := AppendRecordValue(nil, pk, data)
		pk2, data2, err := ParseRecordValue(v)
		if err != nil || string(pk2) != pk || !bytes.Equal(data2, data) {
			t.Fatalf("value round trip failed: %v", err)
		}
		// Arbitrary bytes never panic.
		ParseRecordKey(seqb)
		ParseRecordValue(seqb)
	})
}

// TestDeleteRecordsBeforeManyShards: one call trims each shard named to
// its own sequence number and leaves the others alone.
func TestDeleteRecordsBeforeManyShards(t *testing.T) {
	t.Parallel()
	e, err := Open(context.Background(), Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer e.Close()
	// A batch a record, so every record is a block of its own.
	for i := byte(1); i <= 5; i++ {
		b := e.NewBatch()
		for shard := uint32(0); shard < 4; shard++ {
			b.PutRecord(3, shard, seqOf(i), "pk", []byte{i})
		}
		require.NoError(t, e.Commit(b))
	}
	require.NoError(t, e.DeleteRecordsBefore())
	require.NoError(t, e.DeleteRecordsBefore(Expired{Stream: 3, Shard: 0, Before: seqOf(2)}, Expired{Stream: 3, Shard: 2, Before: seqOf(5)}, Expired{Stream: 3, Shard: 3, Before: seqOf(9)}))
	require.EqualValues(t, 3, e.RangeDeletions())
	for shard, want := range map[uint32]byte{0: 2, 1: 1, 2: 5} {
		first, ok, err := e.FirstRecord(3, shard)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, seqOf(want), first, "shard %d", shard)
	}
	_, ok, err := e.FirstRecord(3, 3)
	require.NoError(t, err)
	require.False(t, ok)
}
