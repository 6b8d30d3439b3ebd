package storage

import (
	"bytes"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Where flushes and compactions end their tables.
//
// A shard's records are appended in sequence order and never rewritten, so
// a table holding only one shard's newest records overlaps no older table
// of that shard: pebble then leaves it in L0 or moves it down a level
// instead of rewriting it with every older table its key range spans. A
// table spanning several shards spans all their older records too, and
// each compaction out of L0 rewrites them: under sustained puts that was
// most of the server's CPU. So tables end at shard boundaries while the
// records of few shards fill each memtable. With many shards written at
// once that would make a small table per shard per flush (and a file
// sync each), so past maxSplitShards shards written between two flushes,
// tables end where pebble's sizes say.

// minShardTable is the smallest table per shard and flush, on average,
// that ending tables at shard boundaries aims for: a memtable of
// MemTableSize splits per shard while at most MemTableSize/minShardTable
// shards are written between flushes.
const minShardTable = 256 << 10

// shardSpread counts the shards written between flushes. Safe for
// concurrent use.
type shardSpread struct {
	max  int // most shards between flushes that still split per shard
	mu   sync.Mutex
	cur  shardSet // shards written since the last flush began
	prev int      // shards written before that flush began (max+1: more)
}

func (s *shardSpread) init(max int) {
	s.max = max
	s.cur = shardSet{max: max}
}

// add counts the shards of an applied batch.
func (s *shardSpread) add(b *shardSet) {
	if len(b.ids) == 0 && !b.many {
		return
	}
	s.mu.Lock()
	s.cur.merge(b)
	s.mu.Unlock()
}

// rotate starts counting afresh as a flush begins.
func (s *shardSpread) rotate() {
	s.mu.Lock()
	s.prev = s.cur.len()
	s.cur.reset()
	s.mu.Unlock()
}

func (s *shardSpread) split() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prev <= s.max && s.cur.len() <= s.max
}

// tableEnd is pebble's SpanPolicyFunc: the table that starts at start
// ends by the key returned (nil: where pebble's sizes say). Metadata
// always ends before the records.
func (s *shardSpread) tableEnd(start []byte) (pebble.SpanPolicy, []byte, error) {
	switch {
	case len(start) == 0 || start[0] < prefixRecord:
		return pebble.SpanPolicy{}, []byte{prefixRecord}, nil
	case start[0] == prefixRecord && len(start) >= 13 && s.split():
		return pebble.SpanPolicy{}, prefixEnd(start[:13]), nil
	}
	return pebble.SpanPolicy{}, nil, nil
}

// shardSet is a small set of shards (stream and shard, 12 bytes), kept
// up to max of them; past that it only says there were more.
type shardSet struct {
	max  int
	ids  [][12]byte
	many bool
}

func (s *shardSet) add(id []byte) {
	if s.many {
		return
	}
	if n := len(s.ids); n > 0 && bytes.Equal(s.ids[n-1][:], id) {
		return
	}
	for i := range s.ids {
		if bytes.Equal(s.ids[i][:], id) {
			return
		}
	}
	if len(s.ids) == s.max {
		s.many = true
		return
	}
	s.ids = append(s.ids, [12]byte(id))
}

func (s *shardSet) merge(o *shardSet) {
	if o.many {
		s.many = true
	}
	for i := range o.ids {
		s.add(o.ids[i][:])
	}
}

func (s *shardSet) len() int {
	if s.many {
		return s.max + 1
	}
	return len(s.ids)
}

func (s *shardSet) reset() {
	s.ids = s.ids[:0]
	s.many = false
}
