// Package storage is runnel's durable store: stream metadata and records in
// one pebble database. It is the only package that imports pebble.
//
// Key layout (all integers big-endian, so byte order is numeric order):
//
//	'm' name              → stream metadata (opaque to this package)
//	'r' stream(8) shard(4) seq(16) → record value
//
// Records of one shard are contiguous and ordered by sequence number, so a
// range scan serves GetRecords and a DeleteRange serves retention and stream
// deletion.
package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	prefixMeta   = 'm'
	prefixRecord = 'r'
	// RecordKeyLen is the length of a record key.
	RecordKeyLen = 1 + 8 + 4 + 16
)

// Seq is a 128-bit sequence number in big-endian byte order.
type Seq [16]byte

// Options configure Open.
type Options struct {
	// Dir is the data directory; it is created when missing.
	Dir string
	// InMemory keeps the database in memory, for tests. Dir is ignored.
	InMemory bool
	// NoSync acknowledges writes once they are in the operating system's
	// page cache instead of waiting for fsync. The default (false) fsyncs the
	// write-ahead log before an append is acknowledged.
	NoSync bool
	Logger *slog.Logger
}

// Engine is an open store. It is safe for concurrent use.
type Engine struct {
	db     *pebble.DB
	noSync bool
	wo     *pebble.WriteOptions
}

// Open opens or creates the store.
func Open(o Options) (*Engine, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	popts := &pebble.Options{
		Logger:       pebbleLogger{logger.With("component", "pebble")},
		MemTableSize: 64 << 20,
	}
	dir := o.Dir
	if o.InMemory {
		popts.FS = vfs.NewMem()
		dir = ""
	} else if dir == "" {
		return nil, errors.New("storage: a data directory is required")
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("opening pebble store in %q: %w", o.Dir, err)
	}
	e := &Engine{db: db, noSync: o.NoSync, wo: pebble.Sync}
	if o.NoSync {
		e.wo = pebble.NoSync
	}
	return e, nil
}

// Close flushes nothing extra (every acknowledged write is already in the
// WAL) and releases the database.
func (e *Engine) Close() error { return e.db.Close() }

func metaKey(name string) []byte {
	k := make([]byte, 1+len(name))
	k[0] = prefixMeta
	copy(k[1:], name)
	return k
}

// GetMeta returns a copy of the metadata value under name, or nil when absent.
func (e *Engine) GetMeta(name string) ([]byte, error) {
	v, closer, err := e.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading metadata %q: %w", name, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// ScanMeta calls fn for every metadata entry whose name starts with prefix,
// in name order. The slices are valid only during the call.
func (e *Engine) ScanMeta(prefix string, fn func(name string, value []byte) error) error {
	lower := metaKey(prefix)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(string(it.Key()[1:]), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// AppendRecordKey appends the key of a record to dst.
func AppendRecordKey(dst []byte, stream uint64, shard uint32, seq Seq) []byte {
	dst = append(dst, prefixRecord)
	dst = binary.BigEndian.AppendUint64(dst, stream)
	dst = binary.BigEndian.AppendUint32(dst, shard)
	return append(dst, seq[:]...)
}

// ParseRecordKey is the inverse of AppendRecordKey.
func ParseRecordKey(k []byte) (stream uint64, shard uint32, seq Seq, err error) {
	if len(k) != RecordKeyLen || k[0] != prefixRecord {
		return 0, 0, seq, fmt.Errorf("storage: malformed record key %x", k)
	}
	stream = binary.BigEndian.Uint64(k[1:])
	shard = binary.BigEndian.Uint32(k[9:])
	copy(seq[:], k[13:])
	return stream, shard, seq, nil
}

func shardPrefix(stream uint64, shard uint32) []byte {
	k := make([]byte, 0, 13)
	k = append(k, prefixRecord)
	k = binary.BigEndian.AppendUint64(k, stream)
	return binary.BigEndian.AppendUint32(k, shard)
}

func streamPrefix(stream uint64) []byte {
	k := make([]byte, 0, 9)
	k = append(k, prefixRecord)
	return binary.BigEndian.AppendUint64(k, stream)
}

// AppendRecordValue encodes a record value: uvarint(len(key)) key data.
func AppendRecordValue(dst []byte, partitionKey string, data []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(partitionKey)))
	dst = append(dst, partitionKey...)
	return append(dst, data...)
}

// ParseRecordValue splits a record value into partition key and data; both
// alias v.
func ParseRecordValue(v []byte) (partitionKey, data []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return nil, nil, errors.New("storage: malformed record value")
	}
	return v[w : w+int(n)], v[w+int(n):], nil
}

// Batch collects writes that commit atomically. Not safe for concurrent use.
type Batch struct {
	b   *pebble.Batch
	key []byte
	val []byte
}

// NewBatch returns an empty batch.
func (e *Engine) NewBatch() *Batch {
	return &Batch{b: e.db.NewBatch()}
}

// PutRecord adds one record.
func (b *Batch) PutRecord(stream uint64, shard uint32, seq Seq, partitionKey string, data []byte) {
	b.key = AppendRecordKey(b.key[:0], stream, shard, seq)
	b.val = AppendRecordValue(b.val[:0], partitionKey, data)
	_ = b.b.Set(b.key, b.val, nil) // Set on an uncommitted batch cannot fail
}

// SetMeta adds a metadata write.
func (b *Batch) SetMeta(name string, value []byte) {
	_ = b.b.Set(metaKey(name), value, nil)
}

// DeleteMeta adds a metadata deletion.
func (b *Batch) DeleteMeta(name string) {
	_ = b.b.Delete(metaKey(name), nil)
}

// DeleteStreamRecords deletes every record of a stream.
func (b *Batch) DeleteStreamRecords(stream uint64) {
	p := streamPrefix(stream)
	_ = b.b.DeleteRange(p, prefixEnd(p), nil)
}

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Commit applies the batch durably (per the engine's sync policy) and
// releases it.
func (e *Engine) Commit(b *Batch) error {
	defer b.b.Close()
	if err := b.b.Commit(e.wo); err != nil {
		return fmt.Errorf("committing batch: %w", err)
	}
	return nil
}

// Pending is a batch that is applied (readable) but maybe not yet durable.
type Pending struct {
	b    *pebble.Batch
	wait bool
}

// Apply applies a batch without waiting for its fsync. Batches become
// durable in the order they were applied; call Wait on the result, in that
// order, before acknowledging. Apply must not be called concurrently with
// itself when the order of batches matters to the caller.
func (e *Engine) Apply(b *Batch) (*Pending, error) {
	if e.noSync {
		err := e.db.Apply(b.b, pebble.NoSync)
		if err != nil {
			b.b.Close()
			return nil, fmt.Errorf("applying batch: %w", err)
		}
		return &Pending{b: b.b}, nil
	}
	if err := e.db.ApplyNoSyncWait(b.b, pebble.Sync); err != nil {
		b.b.Close()
		return nil, fmt.Errorf("applying batch: %w", err)
	}
	return &Pending{b: b.b, wait: true}, nil
}

// Wait blocks until the batch is durable, then releases it.
func (p *Pending) Wait() error {
	var err error
	if p.wait {
		err = p.b.SyncWait()
	}
	p.b.Close()
	if err != nil {
		return fmt.Errorf("syncing write-ahead log: %w", err)
	}
	return nil
}

// DeleteRecordsBefore deletes a shard's records with sequence numbers below
// seq. The deletion is not synced: losing it in a crash only delays trimming.
func (e *Engine) DeleteRecordsBefore(stream uint64, shard uint32, seq Seq) error {
	p := shardPrefix(stream, shard)
	end := AppendRecordKey(nil, stream, shard, seq)
	return e.db.DeleteRange(p, end, pebble.NoSync)
}

// LastRecord returns the highest sequence number stored for a shard.
func (e *Engine) LastRecord(stream uint64, shard uint32) (Seq, bool, error) {
	var seq Seq
	p := shardPrefix(stream, shard)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return seq, false, err
	}
	defer it.Close()
	if !it.Last() {
		return seq, false, it.Error()
	}
	_, _, seq, err = ParseRecordKey(it.Key())
	return seq, err == nil, err
}

// ScanRecords calls fn for the records of a shard with from ≤ seq ≤ to, in
// order, until fn returns false. The slices passed to fn are valid only
// during the call.
func (e *Engine) ScanRecords(ctx context.Context, stream uint64, shard uint32, from, to Seq, fn func(seq Seq, value []byte) bool) error {
	lower := AppendRecordKey(make([]byte, 0, RecordKeyLen), stream, shard, from)
	upper := AppendRecordKey(make([]byte, 0, RecordKeyLen+1), stream, shard, to)
	upper = append(upper, 0) // inclusive of `to`
	it, err := e.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	var seq Seq
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != RecordKeyLen {
			continue
		}
		copy(seq[:], k[13:])
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("reading record: %w", err)
		}
		if !fn(seq, v) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf reports an error pebble cannot continue after (it may hold locks)
// and exits, as pebble's own default logger does.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("storage failed; exiting", "err", fmt.Sprintf(format, args...))
	os.Exit(70)
}
