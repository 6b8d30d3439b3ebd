package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
)

// Record blocks.
//
// The records one batch adds to a shard are stored as one pebble value, a
// block, rather than one key each: a put of 500 records then costs pebble
// a key per shard instead of a key per record, in the memtable's skiplist,
// in the tables flushes and compactions write, and in the iterator steps
// of a read. A block's key is the record key of its last record followed
// by blockSuffix, so it sorts after that record's own key and before the
// next sequence number's: seeking to a sequence number lands on the block
// holding it, a shard's last key names its last record, and a range
// deletion below a sequence number removes exactly the blocks that end
// below it.
//
// A block is a run of entries, each
//
//	seq(16) uvarint(len(value)) value
//
// where value is a record value (AppendRecordValue), in ascending sequence
// order. Keys of RecordKeyLen, one record each, are what stores written
// before blocks hold; they are read as blocks of one.

const (
	// blockSuffix ends a block's key.
	blockSuffix = 1
	// blockKeyLen is the length of a block's key.
	blockKeyLen = RecordKeyLen + 1
	// maxBlockBytes bounds a block's entries: a batch starts a shard's
	// next block once this much is in the current one (a larger record
	// makes a block of its own). Reads decode a block from its start, so
	// the bound is also what a read at a sequence number in the middle of
	// a block may skip.
	maxBlockBytes = 64 << 10
	// pooledBlockBytes is the largest block buffer kept for reuse.
	pooledBlockBytes = 2 * maxBlockBytes
)

var errBadBlock = errors.New("storage: malformed record block")

// blockBufs holds block buffers between batches.
var blockBufs = sync.Pool{New: func() any { return new([]byte) }}

// shardKey names one shard of one stream.
type shardKey struct {
	stream uint64
	shard  uint32
}

// openBlock is the block a batch is filling for one shard.
type openBlock struct {
	shardKey
	last Seq
	buf  *[]byte
}

// blockWriter gathers a batch's records into a block per shard.
type blockWriter struct {
	open  []*openBlock
	index map[shardKey]*openBlock // past a few shards
	prev  *openBlock              // the block the last record went to
}

// block returns the open block of k, opening one when there is none.
func (w *blockWriter) block(k shardKey) *openBlock {
	if w.prev != nil && w.prev.shardKey == k {
		return w.prev
	}
	var ob *openBlock
	if w.index != nil {
		ob = w.index[k]
	} else {
		for _, o := range w.open {
			if o.shardKey == k {
				ob = o
				break
			}
		}
	}
	if ob == nil {
		buf := blockBufs.Get().(*[]byte)
		*buf = (*buf)[:0]
		ob = &openBlock{shardKey: k, buf: buf}
		w.open = append(w.open, ob)
		if w.index != nil {
			w.index[k] = ob
		} else if len(w.open) > 8 {
			w.index = make(map[shardKey]*openBlock, 2*len(w.open))
			for _, o := range w.open {
				w.index[o.shardKey] = o
			}
		}
	}
	w.prev = ob
	return ob
}

// appendEntry appends one record to a block's entries.
func appendEntry(dst []byte, seq Seq, partitionKey string, data []byte) []byte {
	dst = append(dst, seq[:]...)
	dst = binary.AppendUvarint(dst, uint64(valueLen(partitionKey, data)))
	return AppendRecordValue(dst, partitionKey, data)
}

// entryLen is the length appendEntry adds.
func entryLen(partitionKey string, data []byte) int {
	v := valueLen(partitionKey, data)
	return len(Seq{}) + uvarintLen(uint64(v)) + v
}

// valueLen is the length AppendRecordValue adds.
func valueLen(partitionKey string, data []byte) int {
	return uvarintLen(uint64(len(partitionKey))) + len(partitionKey) + len(data)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// release returns the writer's buffers to the pool.
func (w *blockWriter) release() {
	for _, ob := range w.open {
		if cap(*ob.buf) <= pooledBlockBytes {
			blockBufs.Put(ob.buf)
		}
		ob.buf = nil
	}
	w.open, w.index, w.prev = w.open[:0], nil, nil
}

// blockKey appends the key of a block of stream's shard whose last record
// is last.
func blockKey(dst []byte, stream uint64, shard uint32, last Seq) []byte {
	return append(AppendRecordKey(dst, stream, shard, last), blockSuffix)
}

// recordUnit tells what a key of a shard's range holds: one record (a
// store from before blocks), a block, or neither.
func recordUnit(k []byte) (block, ok bool) {
	switch {
	case len(k) == RecordKeyLen:
		return false, true
	case len(k) == blockKeyLen && k[RecordKeyLen] == blockSuffix:
		return true, true
	}
	return false, false
}

// nextEntry splits the first entry off a block's entries.
func nextEntry(b []byte) (seq Seq, value, rest []byte, err error) {
	if len(b) < len(seq)+1 {
		return seq, nil, nil, errBadBlock
	}
	copy(seq[:], b)
	n, w := binary.Uvarint(b[len(seq):])
	if w <= 0 || uint64(len(b)-len(seq)-w) < n {
		return seq, nil, nil, errBadBlock
	}
	start := len(seq) + w
	return seq, b[start : start+int(n)], b[start+int(n):], nil
}

// walkBlock calls fn for the entries of a block with from ≤ seq ≤ to, in
// order. It returns false when fn did, or when an entry past to was seen
// (nothing after it can be in range either).
func walkBlock(b []byte, from, to *Seq, fn func(seq Seq, value []byte) bool) (bool, error) {
	for len(b) > 0 {
		seq, v, rest, err := nextEntry(b)
		if err != nil {
			return true, err
		}
		b = rest
		if bytes.Compare(seq[:], from[:]) < 0 {
			continue
		}
		if bytes.Compare(seq[:], to[:]) > 0 || !fn(seq, v) {
			return false, nil
		}
	}
	return true, nil
}
