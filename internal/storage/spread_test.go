package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tableShards returns, for every table in the store, how many shards its
// key range spans (0 for metadata only).
func tableShards(t *testing.T, e *Engine) []int {
	t.Helper()
	levels, err := e.db.SSTables()
	require.NoError(t, err)
	var out []int
	for _, level := range levels {
		for _, tbl := range level {
			lo, hi := tbl.Smallest.UserKey, tbl.Largest.UserKey
			switch {
			case lo[0] != prefixRecord:
				require.NotEqual(t, byte(prefixRecord), hi[0], "a table holds metadata and records")
				out = append(out, 0)
			case bytes.Equal(lo[:13], hi[:13]):
				out = append(out, 1)
			default:
				out = append(out, 2)
			}
		}
	}
	return out
}

// putShards puts perShard records into each of shards shards in one
// batch, numbered from first.
func putShards(t *testing.T, e *Engine, shards, perShard int, first uint64) {
	t.Helper()
	b := e.NewBatch()
	b.SetMeta("stream", []byte("meta"))
	var seq Seq
	for n := range perShard {
		binary.BigEndian.PutUint64(seq[8:], first+uint64(n))
		for shard := range shards {
			b.PutRecord(1, uint32(shard), seq, "pk", []byte("data"))
		}
	}
	require.NoError(t, e.Commit(b))
}

// openMem opens an in-memory store for the test.
func openMem(t *testing.T) *Engine {
	t.Helper()
	e, err := Open(context.Background(), Options{InMemory: true})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

func TestTablesEndAtShardBoundaries(t *testing.T) {
	t.Parallel()
	e := openMem(t)

	// A few shards: every flushed table holds one shard's records.
	putShards(t, e, 3, 100, 1)
	require.NoError(t, e.db.Flush())
	got := tableShards(t, e)
	require.ElementsMatch(t, []int{0, 1, 1, 1}, got)

	// More shards than a memtable splits for: tables span shards, as
	// pebble sizes them, rather than one small table per shard.
	many := e.spread.max + 5
	putShards(t, e, many, 10, 101)
	require.NoError(t, e.db.Flush())
	got = tableShards(t, e)
	require.Less(t, len(got), 4+many, "one table per shard: %v", got)
	require.Contains(t, got, 2)

	// A scan still sees every record in order across the tables.
	var last Seq
	last[0] = 0xff
	count := 0
	require.NoError(t, e.ScanRecords(context.Background(), 1, 1, Seq{}, last, func(Seq, []byte) bool { count++; return true }))
	require.Equal(t, 110, count)
}

// Retention's range deletion of a shard's oldest records drops the tables
// that hold only them, without rewriting any (a delete-only compaction).
func TestRetentionDropsWholeTables(t *testing.T) {
	t.Parallel()
	e := openMem(t)
	putShards(t, e, 2, 100, 1)
	require.NoError(t, e.db.Flush())
	// Older records have left L0 by the time retention trims them.
	require.NoError(t, e.db.Compact(context.Background(), []byte{prefixRecord}, []byte{prefixRecord + 1}, false))
	m0 := e.db.Metrics()
	before, rewrites := m0.Total().TablesSize, m0.Compact.DefaultCount
	var cut Seq
	binary.BigEndian.PutUint64(cut[8:], 101)
	require.NoError(t, e.DeleteRecordsBefore(Expired{Stream: 1, Shard: 0, Before: cut}))
	require.NoError(t, e.db.Flush())
	deadline := time.Now().Add(30 * time.Second)
	for e.db.Metrics().Compact.DeleteOnlyCount == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	m := e.db.Metrics()
	require.NotZero(t, m.Compact.DeleteOnlyCount, "no delete-only compaction")
	require.Equal(t, rewrites, m.Compact.DefaultCount, "a table was rewritten")
	require.Less(t, m.Total().TablesSize, before, "shard 0's table was not dropped")
}
