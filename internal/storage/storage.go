// Package storage is runnel's durable store: stream metadata and records in
// one pebble database. It is the only package that imports pebble.
//
// Key layout (all integers big-endian, so byte order is numeric order):
//
//	'm' name              → stream metadata (opaque to this package)
//	'r' stream(8) shard(4) seq(16) 0x01 → block of records, seq its last
//	'r' stream(8) shard(4) seq(16)      → one record (stores written
//	                                      before blocks)
//
// Records of one shard are contiguous and ordered by sequence number, so a
// range scan serves GetRecords and a DeleteRange serves retention and stream
// deletion. A batch stores the records it adds to a shard as one block
// (block.go).
// While few shards are written at once, pebble's tables end at shard
// boundaries (spread.go), so compactions move them instead of rewriting.
package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

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

// Defaults of Options.
const (
	// DefaultMemTableSize is the default Options.MemTableSize. A flush
	// ends its tables at shard boundaries (spread.go), so the memtable's
	// size sets how large a shard's tables are and how many shards one
	// flush still splits for: against 4 MiB, 16 MiB made 512 MiB over 16
	// shards into 544 tables instead of 2171, and over 256 shards halved
	// the bytes compactions rewrote (BenchmarkIngestWriteAmp), for up to
	// two memtables' more memory and write-ahead log files preallocated
	// at 110% of the larger memtable.
	DefaultMemTableSize = 16 << 20
	// DefaultCacheSize is the default Options.CacheSize. Pebble's own
	// default, 8 MiB, holds the index and range deletion blocks of too few
	// tables: a retention pass over 1000 shards after a simulated day of
	// trimming read them from disk again for every shard.
	DefaultCacheSize = 64 << 20
	// SmallMemTableSize and SmallCacheSize suit a store of a few small
	// keys (a lease table, counters): what streams need would only take
	// memory, and disk a small machine may not have.
	SmallMemTableSize = 4 << 20
	SmallCacheSize    = 8 << 20
	// DefaultStallTimeout is the default Options.StallTimeout.
	DefaultStallTimeout = 10 * time.Second
)

// Options configure Open.
type Options struct {
	// Dir is the data directory; it is created when missing.
	Dir string
	// InMemory keeps the database in memory, for tests. Dir is ignored
	// unless FS is set.
	InMemory bool
	// FS is the filesystem pebble uses. Nil means the operating system's,
	// or a fresh in-memory one with InMemory. Tests pass pebble's
	// crash-simulating (vfs.NewCrashableMem) and error-injecting (errorfs)
	// filesystems here. The data-dir lock and its pid file are taken only
	// on the operating system's filesystem.
	FS vfs.FS
	// NoSync acknowledges writes once the write-ahead log has been written
	// to the operating system, without waiting for fsync: that survives a
	// crash of the process, not of the machine. The default (false) fsyncs
	// the write-ahead log before an append is acknowledged.
	NoSync bool
	// MemTableSize is the size of one pebble memtable; the write-ahead log
	// preallocates 110% of it per file. Smaller means a smaller footprint
	// on disk and in memory, larger means fewer flushes under sustained
	// load. The default is DefaultMemTableSize (16 MiB).
	MemTableSize int64
	// CacheSize is the size of pebble's block cache in bytes: the tables'
	// index, filter and range deletion blocks, and recently read data.
	// The default is DefaultCacheSize.
	CacheSize int64
	// MinFreeBytes is the free space below which writes are refused (see
	// Health): what pebble needs to finish the flushes, compactions and
	// write-ahead log switches already under way, so a full disk never
	// reaches it. The default is four memtables plus 8 MiB. Negative turns
	// the guard off.
	MinFreeBytes int64
	// StallTimeout is how long pebble may hold writes back (a write stall:
	// flushes not keeping up, or failing) before writes are refused. The
	// default is DefaultStallTimeout.
	StallTimeout time.Duration
	Logger       *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 4*o.MemTableSize + 8<<20
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
}

// ErrClosed is returned by every read and write after Close.
var ErrClosed = fmt.Errorf("%w: the store is closed", ErrUnavailable)

// Engine is an open store. It is safe for concurrent use.
type Engine struct {
	db     *pebble.DB
	dir    string
	log    *slog.Logger
	health health
	// closeMu guards db against Close: every use of db holds it for
	// reading and checks closed.
	closeMu sync.RWMutex
	closed  bool
	unlock  func() error // releases the data-dir lock; nil when none
	// rangeDels counts the range deletions DeleteRecordsBefore wrote.
	rangeDels atomic.Int64
	spread    shardSpread
}

// Open opens or creates the store. It fails at once, saying so, when
// another process holds the data directory or the disk has less than
// MinFreeBytes free, and returns when ctx is done even if pebble is still
// busy opening (the process is then expected to exit).
func Open(ctx context.Context, o Options) (*Engine, error) {
	o.setDefaults()
	fs, dir := o.FS, o.Dir
	switch {
	case fs == nil && o.InMemory:
		fs, dir = vfs.NewMem(), ""
	case fs == nil && dir == "":
		return nil, errors.New("storage: a data directory is required")
	case fs == nil:
		fs = vfs.Default
	}
	e := &Engine{dir: o.Dir, log: o.Logger}
	e.spread.init(int(o.MemTableSize / minShardTable))
	e.health.init(o)
	if fs == vfs.Default {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating data dir: %w", err)
		}
		unlock, err := lockDir(dir)
		if err != nil {
			return nil, err
		}
		e.unlock = unlock
	}
	if err := e.health.checkSpace(fs, dir, true); err != nil {
		e.releaseLock()
		return nil, err
	}
	cache := pebble.NewCache(o.CacheSize)
	popts := &pebble.Options{
		Cache:        cache,
		FS:           &walFS{FS: fs, noSync: o.NoSync, health: &e.health},
		Logger:       pebbleLogger{l: o.Logger.With("component", "pebble"), health: &e.health},
		MemTableSize: uint64(o.MemTableSize),
		EventListener: &pebble.EventListener{
			FlushBegin:      func(pebble.FlushInfo) { e.spread.rotate() },
			BackgroundError: func(err error) { e.health.fail(fmt.Errorf("pebble background work: %w", err)) },
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) { e.health.stallBegin(info.Reason) },
			WriteStallEnd:   e.health.stallEnd,
			DiskSlow: func(info pebble.DiskSlowInfo) {
				o.Logger.Warn("disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
			},
		},
	}
	popts.Experimental.SpanPolicyFunc = e.spread.tableEnd
	type opened struct {
		db  *pebble.DB
		err error
	}
	done := make(chan opened, 1)
	go func() {
		db, err := pebble.Open(dir, popts)
		cache.Unref() // an open database holds its own reference
		done <- opened{db, err}
	}()
	select {
	case r := <-done:
		if r.err == nil && e.health.err() != nil {
			r.db.Close()
			r.err = e.health.err()
		}
		if r.err != nil {
			e.releaseLock()
			return nil, fmt.Errorf("opening pebble store in %q: %w", o.Dir, r.err)
		}
		e.db = r.db
	case <-e.health.failedCh():
		// A background error while opening (a flush on a full disk)
		// would otherwise be retried for ever.
		return nil, fmt.Errorf("opening pebble store in %q: %w", o.Dir, e.health.err())
	case <-ctx.Done():
		return nil, fmt.Errorf("opening pebble store in %q: interrupted: %w", o.Dir, context.Cause(ctx))
	}
	e.health.start(fs, dir)
	return e, nil
}

func (e *Engine) releaseLock() {
	if e.unlock != nil {
		if err := e.unlock(); err != nil {
			e.log.Warn("releasing the data dir lock", "err", err)
		}
		e.unlock = nil
	}
}

// Close releases the database. Every acknowledged write is already in the
// WAL, so nothing is flushed. Reads and writes after Close return
// ErrClosed; Close is idempotent.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.health.stop()
	err := e.db.Close()
	if err != nil && e.health.failedSticky() {
		// The failure already reported: pebble's close repeats it.
		e.log.Warn("closing pebble after its failure", "err", err)
		err = nil
	}
	e.releaseLock()
	return err
}

// use returns the database for one read or write; release must be called
// when the caller is done with it. It fails with ErrClosed after Close.
func (e *Engine) use() (*pebble.DB, error) {
	e.closeMu.RLock()
	if e.closed {
		e.closeMu.RUnlock()
		return nil, ErrClosed
	}
	return e.db, nil
}

func (e *Engine) release() { e.closeMu.RUnlock() }

func metaKey(name string) []byte {
	k := make([]byte, 1+len(name))
	k[0] = prefixMeta
	copy(k[1:], name)
	return k
}

// GetMeta returns a copy of the metadata value under name, or nil when absent.
func (e *Engine) GetMeta(name string) ([]byte, error) {
	db, err := e.use()
	if err != nil {
		return nil, err
	}
	defer e.release()
	v, closer, err := db.Get(metaKey(name))
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
	db, err := e.use()
	if err != nil {
		return err
	}
	defer e.release()
	lower := metaKey(prefix)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
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
	b      *pebble.Batch
	key    []byte
	shards shardSet
	blocks blockWriter
}

// NewBatch returns an empty batch.
func (e *Engine) NewBatch() *Batch {
	return &Batch{b: e.db.NewBatch(), shards: shardSet{max: e.spread.max}}
}

// PutRecord adds one record. A shard's records must be added in ascending
// sequence order, above every sequence number the shard already holds;
// they are stored in blocks (block.go).
func (b *Batch) PutRecord(stream uint64, shard uint32, seq Seq, partitionKey string, data []byte) {
	ob := b.blocks.block(shardKey{stream, shard})
	if n := len(*ob.buf); n > 0 && n+entryLen(partitionKey, data) > maxBlockBytes {
		b.writeBlock(ob)
	}
	*ob.buf = appendEntry(*ob.buf, seq, partitionKey, data)
	ob.last = seq
}

// writeBlock adds an open block to the pebble batch and empties it.
func (b *Batch) writeBlock(ob *openBlock) {
	b.key = blockKey(b.key[:0], ob.stream, ob.shard, ob.last)
	_ = b.b.Set(b.key, *ob.buf, nil) // Set on an uncommitted batch cannot fail
	b.shards.add(b.key[1:13])
	*ob.buf = (*ob.buf)[:0]
}

// closeBlocks adds every open block to the pebble batch. Every write
// other than PutRecord closes them first, so the batch keeps the order of
// the calls made on it.
func (b *Batch) closeBlocks() {
	if len(b.blocks.open) == 0 {
		return
	}
	for _, ob := range b.blocks.open {
		if len(*ob.buf) > 0 {
			b.writeBlock(ob)
		}
	}
	b.blocks.release()
}

// SetMeta adds a metadata write.
func (b *Batch) SetMeta(name string, value []byte) {
	b.closeBlocks()
	_ = b.b.Set(metaKey(name), value, nil)
}

// DeleteMeta adds a metadata deletion.
func (b *Batch) DeleteMeta(name string) {
	b.closeBlocks()
	_ = b.b.Delete(metaKey(name), nil)
}

// DeleteStreamRecords deletes every record of a stream.
func (b *Batch) DeleteStreamRecords(stream uint64) {
	b.closeBlocks()
	p := streamPrefix(stream)
	_ = b.b.DeleteRange(p, prefixEnd(p), nil)
}

// DeleteShardRecords deletes every record of a shard.
func (b *Batch) DeleteShardRecords(stream uint64, shard uint32) {
	b.closeBlocks()
	p := shardPrefix(stream, shard)
	_ = b.b.DeleteRange(p, prefixEnd(p), nil)
}

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return b.b.Empty() && len(b.blocks.open) == 0 }

// Commit applies the batch durably (per the engine's sync policy) and
// releases it. While Health reports an error the batch is not applied and
// that error is returned.
func (e *Engine) Commit(b *Batch) error {
	p, err := e.Apply(b)
	if err != nil {
		return fmt.Errorf("committing batch: %w", err)
	}
	return p.Wait()
}

// Pending is a batch that is applied (readable) but maybe not yet durable.
type Pending struct {
	e *Engine
	b *pebble.Batch
}

// Apply applies a batch without waiting for it to be durable. Batches
// become durable in the order they were applied; call Wait on the result,
// in that order, before acknowledging. Apply must not be called
// concurrently with itself when the order of batches matters to the
// caller. While Health reports an error (or after Close) nothing is
// applied and that error is returned.
func (e *Engine) Apply(b *Batch) (*Pending, error) {
	b.closeBlocks()
	db, err := e.use()
	if err != nil {
		b.b.Close()
		return nil, err
	}
	defer e.release()
	if err := e.health.beforeWrite(len(b.b.Repr())); err != nil {
		b.b.Close()
		return nil, err
	}
	// Sync even with NoSync: walFS then skips the fsync itself, so the
	// wait still covers the write of the log to the operating system.
	if err := db.ApplyNoSyncWait(b.b, pebble.Sync); err != nil {
		b.b.Close()
		e.health.fail(fmt.Errorf("applying batch: %w", err))
		return nil, e.health.err()
	}
	e.spread.add(&b.shards)
	return &Pending{e: e, b: b.b}, nil
}

// Wait blocks until the batch is durable (in the operating system with
// NoSync), then releases it. An error latches the engine (see Health).
func (p *Pending) Wait() error {
	err := p.b.SyncWait()
	p.b.Close()
	if err != nil {
		p.e.health.fail(fmt.Errorf("writing the write-ahead log: %w", err))
		return p.e.health.err()
	}
	return nil
}

// Health returns nil while writes are accepted, else why they are
// refused: an error wrapping ErrUnavailable that names the cause and what
// clears it. See ErrUnavailable for the rules.
func (e *Engine) Health() error { return e.health.err() }

// Unavailable returns a channel closed once writes are refused; while they
// are, it is already closed. Waiters use it to stop waiting for a write
// that will not complete.
func (e *Engine) Unavailable() <-chan struct{} { return e.health.failedCh() }

// Expired names the records of one shard below a sequence number.
type Expired struct {
	Stream uint64
	Shard  uint32
	Before Seq
	// From, when set, is where the deletion starts: the caller knows the
	// shard holds nothing below it (an earlier deletion's Before). Range
	// deletions that do not overlap stay cheap for pebble to hold and to
	// compact away; each one from the shard's start would overlap every
	// one before it.
	From Seq
}

// DeleteRecordsBefore deletes, for each shard named, its blocks whose
// records all have sequence numbers below Before, as range deletions in
// one batch. The records below Before in the block that holds Before stay
// until their whole block is below it: readers skip them by sequence
// number (the stream's retention horizon), and OldestBlockEnd says when
// deleting would remove anything. The
// batch is not synced: losing it in a crash only delays trimming. One
// batch, rather than one write a shard, matters: every range deletion
// written to the memtable invalidates its cache of fragmented deletions,
// which the next read then rebuilds from all of them, so deleting and
// reading shard by shard cost the square of the deletions held.
func (e *Engine) DeleteRecordsBefore(shards ...Expired) error {
	if len(shards) == 0 {
		return nil
	}
	db, err := e.use()
	if err != nil {
		return err
	}
	defer e.release()
	if err := e.health.beforeWrite(64 * len(shards)); err != nil {
		return err
	}
	b := db.NewBatch()
	defer b.Close()
	var start, end []byte
	for _, x := range shards {
		if x.From == (Seq{}) {
			start = append(start[:0], shardPrefix(x.Stream, x.Shard)...)
		} else {
			start = AppendRecordKey(start[:0], x.Stream, x.Shard, x.From)
		}
		end = AppendRecordKey(end[:0], x.Stream, x.Shard, x.Before)
		_ = b.DeleteRange(start, end, nil) // cannot fail on an uncommitted batch
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	e.rangeDels.Add(int64(len(shards)))
	return nil
}

// RangeDeletions is how many range deletions DeleteRecordsBefore has
// written since Open. Each is a tombstone reads may step over until
// compactions drop it.
func (e *Engine) RangeDeletions() int64 { return e.rangeDels.Load() }

// LastRecord returns the highest sequence number stored for a shard.
func (e *Engine) LastRecord(stream uint64, shard uint32) (Seq, bool, error) {
	return e.edgeRecord(stream, shard, false, nil)
}

// FirstRecord returns the lowest sequence number stored for a shard.
func (e *Engine) FirstRecord(stream uint64, shard uint32) (Seq, bool, error) {
	var first, last Seq
	for i := range last {
		last[i] = 0xff
	}
	found := false
	err := e.ScanRecords(context.Background(), stream, shard, Seq{}, last, func(seq Seq, _ []byte) bool {
		first, found = seq, true
		return false
	})
	return first, found, err
}

// OldestBlockEnd returns the highest sequence number in a shard's oldest
// block at or after from (a record, in a store from before blocks):
// DeleteRecordsBefore removes something from the shard only when that is
// below its bound. A caller that has deleted everything below a bound
// passes it as from, so the look does not step over the deletions.
func (e *Engine) OldestBlockEnd(stream uint64, shard uint32, from Seq) (Seq, bool, error) {
	return e.edgeRecord(stream, shard, true, AppendRecordKey(nil, stream, shard, from))
}

// edgeRecord returns the sequence number in the key of a shard's first
// (at or after lower, when given) or last record or block: a block's key
// names its last record.
func (e *Engine) edgeRecord(stream uint64, shard uint32, first bool, lower []byte) (Seq, bool, error) {
	var seq Seq
	db, err := e.use()
	if err != nil {
		return seq, false, err
	}
	defer e.release()
	p := shardPrefix(stream, shard)
	if lower == nil {
		lower = p
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(p)})
	if err != nil {
		return seq, false, err
	}
	defer it.Close()
	for ok := edge(it, first); ok; ok = step(it, first) {
		if _, ok := recordUnit(it.Key()); ok {
			copy(seq[:], it.Key()[13:RecordKeyLen])
			return seq, true, nil
		}
	}
	return seq, false, it.Error()
}

func edge(it *pebble.Iterator, first bool) bool {
	if first {
		return it.First()
	}
	return it.Last()
}

func step(it *pebble.Iterator, forward bool) bool {
	if forward {
		return it.Next()
	}
	return it.Prev()
}

// ScanRecords calls fn for the records of a shard with from ≤ seq ≤ to, in
// order, until fn returns false. The slices passed to fn are valid only
// during the call. A block whose framing is damaged is skipped from the
// damage on, with an error logged, rather than wedging readers of the
// shard.
func (e *Engine) ScanRecords(ctx context.Context, stream uint64, shard uint32, from, to Seq, fn func(seq Seq, value []byte) bool) error {
	db, err := e.use()
	if err != nil {
		return err
	}
	defer e.release()
	// The block holding from is the first whose key is at or after
	// from's; the block holding to may end past to, so the scan runs to
	// the shard's end and stops at the first record past to.
	lower := AppendRecordKey(make([]byte, 0, RecordKeyLen), stream, shard, from)
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(shardPrefix(stream, shard))})
	if err != nil {
		return err
	}
	var seq Seq
	more := true
	for ok := it.First(); ok && more; ok = it.Next() {
		k := it.Key()
		block, unit := recordUnit(k)
		if !unit {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("reading record: %w", err)
		}
		if !block {
			copy(seq[:], k[13:])
			more = bytes.Compare(seq[:], to[:]) <= 0 && fn(seq, v)
			continue
		}
		if more, err = walkBlock(v, &from, &to, fn); err != nil {
			e.log.Error("skipping the rest of a damaged record block", "stream", stream, "shard", shard, "block_end", fmt.Sprintf("%x", k[13:RecordKeyLen]), "err", err)
		}
	}
	return errors.Join(it.Error(), it.Close())
}

type pebbleLogger struct {
	l      *slog.Logger
	health *health
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf reports an error pebble cannot continue after (it may hold locks
// or have lost a write) and exits with status 70 for the supervisor to
// restart runnel, as pebble's own default logger exits.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.health.fail(errors.New(msg))
	p.l.Error("storage failed; exiting: restart runnel once the cause is fixed (a full disk: free space first)", "err", msg)
	os.Exit(70)
}
