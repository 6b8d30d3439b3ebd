package stream

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/seqnum"
	"github.com/runnel-dev/runnel/internal/storage"
)

func (st *streamState) shard(id string) *shardState {
	for _, sh := range st.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

// ShardIterator returns a new opaque shard iterator.
func (s *Service) ShardIterator(name, shard string, spec IteratorSpec) (string, error) {
	s.mu.RLock()
	st, err := s.lookup(name)
	var sh *shardState
	if err == nil {
		err = s.notCreatingLocked(st)
	}
	if err == nil {
		if sh = st.shard(shard); sh == nil {
			err = newError(ErrNotFound, "Shard %s in stream %s does not exist", shard, s.InAccount(name))
		}
	}
	s.mu.RUnlock()
	if err != nil {
		return "", err
	}
	now := s.now()
	var pos u128
	switch spec.Type {
	case TrimHorizon:
		pos = seqFloor(0, sh.index)
	case Latest:
		pos = sh.next()
	case AtTimestamp:
		if spec.Timestamp.UnixMilli() > now.UnixMilli() {
			return "", newError(ErrInvalidArgument,
				"The timestampInMillis parameter cannot be greater than the current time. timestampInMillis: %d, currentTimestampInMillis: %d",
				spec.Timestamp.UnixMilli(), now.UnixMilli())
		}
		pos = seqFloor(uint64(max(spec.Timestamp.UnixMilli(), 0)), sh.index)
	case AtSequenceNumber, AfterSequenceNumber:
		seq, ok := parseSeq(spec.SequenceNumber)
		if !ok {
			return "", newError(ErrInvalidArgument, "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s is invalid.", spec.SequenceNumber, shard, s.InAccount(name))
		}
		if got := seqShard(seq); got != sh.index {
			return "", newError(ErrInvalidArgument, "Invalid StartingSequenceNumber. It encodes %s, while it was used in a call to a shard with %s", shardID(got), shard)
		}
		pos = seq
		if spec.Type == AfterSequenceNumber {
			pos = seq.add1()
		}
	default:
		return "", newError(ErrInvalidArgument, "Unknown ShardIteratorType %q.", spec.Type)
	}
	return encodeIterator(s.secret, iterator{stream: st.id, shard: sh.index, pos: pos, issued: now}), nil
}

// next is the sequence number right after the shard's tip: where LATEST
// starts.
func (sh *shardState) next() u128 {
	if tip := sh.tip.Load(); tip != nil {
		return tip.add1()
	}
	return seqFloor(0, sh.index)
}

// Records reads up to limit records (1..MaxGetRecordsLimit) from iterator.
// ErrExpiredIterator after IteratorTTL, ErrInvalidArgument for a malformed or
// forged iterator, ErrNotFound when the stream is gone.
func (s *Service) Records(ctx context.Context, iter string, limit int) (*GetResult, error) {
	return s.records(ctx, iter, limit, s.cfg.ShardReadLimits, nil)
}

// A RecordView is one record as VisitRecords hands it over. Its slices are
// the store's: they are valid only during the visit, and must not be
// changed.
type RecordView struct {
	PartitionKey []byte
	Data         []byte
	ArrivalTime  time.Time
	seq          u128
	runs         *seqnum.Runs
}

// AppendSequenceNumber appends the record's sequence number (its 56-digit
// decimal form) to b.
func (v *RecordView) AppendSequenceNumber(b []byte) []byte {
	return v.runs.Append(b, v.seq.hi, v.seq.lo)
}

// VisitRecords is Records for a caller that renders each record as it is
// read (the GetRecords answer) instead of holding them all: it calls visit
// with each record in order, and returns the answer without its Records.
// When it fails, the records visited so far are no answer: a read that
// fails part way has visited some.
func (s *Service) VisitRecords(ctx context.Context, iter string, limit int, visit func(*RecordView)) (*GetResult, error) {
	return s.records(ctx, iter, limit, s.cfg.ShardReadLimits, visit)
}

// SubscriberRecords is Records for an enhanced fan-out subscription, which
// has its own throughput on Kinesis and so is not held to the shard's
// GetRecords limits.
func (s *Service) SubscriberRecords(ctx context.Context, iter string, limit int) (*GetResult, error) {
	return s.records(ctx, iter, limit, false, nil)
}

// records reads for Records (visit nil: the answer holds the records) and
// VisitRecords.
func (s *Service) records(ctx context.Context, iter string, limit int, limited bool, visit func(*RecordView)) (*GetResult, error) {
	it, ok := decodeIterator(s.secret, iter)
	if !ok {
		return nil, newError(ErrInvalidArgument, "Invalid ShardIterator.")
	}
	now := s.now()
	if age := now.Sub(it.issued); age > IteratorTTL {
		return nil, newError(ErrExpiredIterator,
			"Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			it.issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), IteratorTTL.Milliseconds())
	}
	st, sh, err := s.iteratorShard(it)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	retention := time.Duration(st.meta.RetentionHours) * time.Hour
	s.mu.RUnlock()
	if limited && !sh.reads.allow(now) {
		sh.throttled.Add(1)
		return nil, newError(ErrThroughputExceeded, "Rate exceeded for Shard - %s in stream %s.", sh.id, s.InAccount(st.name))
	}
	limit = min(max(limit, 1), MaxGetRecordsLimit)
	res := &GetResult{}
	tipPtr := sh.tip.Load()
	pos := it.pos
	if horizon := seqFloor(uint64(max(now.Add(-retention).UnixMilli(), 0)), sh.index); pos.cmp(horizon) < 0 {
		pos = horizon
	}
	if tipPtr != nil && pos.cmp(*tipPtr) <= 0 {
		tip := *tipPtr
		var col *collector
		if visit == nil {
			// A shard's counters grow by one a record, so the records
			// from pos to the tip are at most the counters between them
			// (a position at a time rather than a record, such as
			// TRIM_HORIZON, has counter 0, and a shard with a long past
			// bounds little). The first guess is at most 4096 records,
			// since large records stop at the answer's bytes first and
			// retention may have trimmed most of the span; past it, the
			// records grow once to that most.
			most := uint64(limit)
			if c, p := seqCounter(tip), seqCounter(pos); p <= c && c-p < most {
				most = c - p + 1
			}
			col = &collector{recs: make([]Record, 0, min(most, 4096)), most: int(most)}
			visit = col.add
		}
		var (
			view  RecordView
			runs  seqnum.Runs
			count int
			bytes int
			last  u128
		)
		view.runs = &runs
		err := s.eng.ScanRecords(ctx, it.stream, it.shard, pos.bytes(), tip.bytes(), func(seq storage.Seq, v []byte) bool {
			pk, data, err := storage.ParseRecordValue(v)
			if err != nil {
				return true // skip a damaged value rather than wedge the shard
			}
			last = u128FromBytes(seq)
			view.PartitionKey, view.Data, view.seq = pk, data, last
			view.ArrivalTime = time.UnixMilli(int64(seqMillis(last)))
			visit(&view)
			count++
			bytes += len(data)
			return count < limit && bytes < MaxGetRecordsBytes
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s of %s: %w", sh.id, st.name, err)
		}
		if col != nil {
			res.Records = col.finish()
		}
		if limited {
			sh.reads.consume(bytes)
		}
		sh.recordsOut.Add(int64(count))
		sh.bytesOut.Add(int64(bytes))
		if count > 0 {
			pos = last.add1()
			if last.cmp(tip) < 0 {
				res.MillisBehindLatest = max(now.UnixMilli()-int64(seqMillis(last)), 0)
			}
		} else {
			// Nothing durable at or after pos: everything up to the tip is
			// trimmed or was never there.
			pos = tip.add1()
		}
	}
	if ending := sh.ending.Load(); ending != nil && (pos.cmp(*ending) > 0 || tipPtr == nil && *ending == sh.startSeq) {
		// The shard is closed and everything in it has been read.
		s.mu.RLock()
		res.ChildShards = st.childShards(sh)
		s.mu.RUnlock()
		return res, nil
	}
	res.NextIterator = encodeIterator(s.secret, iterator{stream: it.stream, shard: it.shard, pos: pos, issued: now})
	return res, nil
}

// WaitIterator blocks until the shard an iterator reads has a record at or
// after the iterator's position, or ctx is done (returning ctx.Err()). It
// lets a reader that got an empty GetRecords answer wake on append instead
// of polling. Iterator errors are those of Records.
func (s *Service) WaitIterator(ctx context.Context, iter string) error {
	it, ok := decodeIterator(s.secret, iter)
	if !ok {
		return newError(ErrInvalidArgument, "Invalid ShardIterator.")
	}
	_, sh, err := s.iteratorShard(it)
	if err != nil {
		return err
	}
	for {
		ch := sh.waitChan()
		if tip := sh.tip.Load(); tip != nil && it.pos.cmp(*tip) <= 0 {
			return nil
		}
		if sh.ending.Load() != nil {
			return nil // closed: the next read ends the shard
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopRet:
			return errClosed
		case <-ch:
		}
	}
}

// iteratorShard returns the stream and shard an iterator reads.
func (s *Service) iteratorShard(it iterator) (*streamState, *shardState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.byID[it.stream]
	if st == nil {
		return nil, nil, newError(ErrNotFound, "The stream this shard iterator belongs to no longer exists.")
	}
	for _, sh := range st.shards {
		if sh.index == it.shard {
			return st, sh, nil
		}
	}
	return nil, nil, newError(ErrNotFound, "Shard %s in stream %s does not exist", shardID(it.shard), s.InAccount(st.name))
}

// retentionLoop deletes records older than their stream's retention period.
func (s *Service) retentionLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopRet:
			return
		case <-t.C:
			s.trim()
		}
	}
}

type trimShard struct {
	stream uint64
	shard  uint32
}

type trimTarget struct {
	trimShard
	before u128
}

// trim deletes every record older than its stream's retention period. A
// shard gets a range deletion only when its oldest block is past the
// horizon, so idle shards do not pile up tombstones that every read would
// then step over.
func (s *Service) trim() {
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	now := s.now()
	s.expireClosedShards(now)
	var targets []trimTarget
	s.mu.RLock()
	for _, st := range s.byID {
		cutoff := uint64(max(now.Add(-time.Duration(st.meta.RetentionHours)*time.Hour).UnixMilli(), 0))
		for _, sh := range st.shards {
			targets = append(targets, trimTarget{trimShard{st.id, sh.index}, seqFloor(cutoff, sh.index)})
		}
	}
	s.mu.RUnlock()
	// Every shard is looked at before anything is deleted, and the
	// deletions go in one batch (see storage's DeleteRecordsBefore).
	var expired []storage.Expired
	trimmed := make(map[trimShard]storage.Seq, len(targets))
	for _, t := range targets {
		// Storage deletes a block at a time. A block holds one commit
		// group's records of a shard, which share their arrival
		// millisecond, so a horizon never falls inside one. The look,
		// and the deletion, start where the last deletion ended: below
		// that nothing is left but deletions pebble has not compacted
		// yet, which a look from the shard's start would step over
		// every pass, and which a deletion from there would overlap.
		from := s.trimmed[t.trimShard]
		trimmed[t.trimShard] = from
		end, ok, err := s.eng.OldestBlockEnd(t.stream, t.shard, from)
		if err != nil {
			// One shard that cannot be read does not hold up the others.
			s.log.Warn("trimming a shard's expired records; retrying at the next interval", "shard", shardID(t.shard), "err", err)
			continue
		}
		if ok && u128FromBytes(end).cmp(t.before) < 0 {
			expired = append(expired, storage.Expired{Stream: t.stream, Shard: t.shard, From: from, Before: t.before.bytes()})
		}
	}
	if err := s.eng.DeleteRecordsBefore(expired...); err != nil {
		s.log.Warn("trimming expired records; retrying at the next interval", "err", err)
	} else {
		for _, x := range expired {
			trimmed[trimShard{x.Stream, x.Shard}] = x.Before
		}
	}
	// Shards gone since the last pass drop out.
	s.trimmed = trimmed
}

// Read limits of a Kinesis shard.
const (
	ShardReadCallsPerSecond = 5
	ShardReadBytesPerSecond = 2 << 20
)

// readLimiter allows ShardReadCallsPerSecond calls and
// ShardReadBytesPerSecond bytes a second. As on Kinesis, one call may read
// more than a second's bytes; the calls after it are refused until the
// budget has refilled.
type readLimiter struct {
	mu    sync.Mutex
	calls float64 // available call tokens
	bytes float64 // available bytes; negative after a large read
	last  time.Time
}

func (l *readLimiter) refill(now time.Time) {
	if l.last.IsZero() {
		l.calls, l.bytes, l.last = ShardReadCallsPerSecond, ShardReadBytesPerSecond, now
		return
	}
	dt := now.Sub(l.last).Seconds()
	if dt <= 0 {
		return
	}
	l.last = now
	l.calls = min(l.calls+dt*ShardReadCallsPerSecond, ShardReadCallsPerSecond)
	l.bytes = min(l.bytes+dt*ShardReadBytesPerSecond, ShardReadBytesPerSecond)
}

func (l *readLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	if l.calls < 1 || l.bytes <= 0 {
		return false
	}
	l.calls--
	return true
}

func (l *readLimiter) consume(n int) {
	l.mu.Lock()
	l.bytes -= float64(n)
	l.mu.Unlock()
}

// IteratorStream returns the name of the stream a shard iterator reads, so
// an authorizer can check the caller may read it. Errors are those of
// Records (an expired iterator still names its stream).
func (s *Service) IteratorStream(iter string) (string, error) {
	it, ok := decodeIterator(s.secret, iter)
	if !ok {
		return "", newError(ErrInvalidArgument, "Invalid ShardIterator.")
	}
	st, _, err := s.iteratorShard(it)
	if err != nil {
		return "", err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return st.name, nil
}

// collector gathers a read's records for Records. Their data is copied into
// chunks shared by many records, and their sequence numbers and partition
// keys are made strings together, a chunk of records at a time: a read of
// thousands of records allocates tens of times, not thousands.
type collector struct {
	recs []Record
	// most is the most records the read may hold: the counters it spans,
	// up to its limit.
	most  int
	arena []byte
	chunk int
	// The sequence numbers and partition keys of the records from done
	// on are gathered in strs: ends[2i] is where record done+i's number
	// ends and its key starts.
	strs []byte
	ends []int32
	done int
}

func (c *collector) add(v *RecordView) {
	if c.arena == nil || cap(c.arena)-len(c.arena) < len(v.Data) {
		// Chunks grow from 4 KiB to 1 MiB, so a small read allocates
		// little and a large one few times. The first is made even for
		// a record of no data, whose Data is then empty rather than nil
		// (which encoders write as null).
		c.chunk = min(max(c.chunk*2, 4<<10), 1<<20)
		c.arena = make([]byte, 0, max(c.chunk, len(v.Data)))
	}
	start := len(c.arena)
	c.arena = append(c.arena, v.Data...)
	if len(c.strs)+seqnum.Digits+len(v.PartitionKey) > cap(c.strs) {
		c.setStrings()
		if cap(c.strs) < 24<<10 {
			// The buffer grows from 1 KiB to 24 KiB.
			c.strs = make([]byte, 0, min(max(2*cap(c.strs), 1<<10), 24<<10))
		}
	}
	c.strs = v.AppendSequenceNumber(c.strs)
	c.ends = append(c.ends, int32(len(c.strs)))
	c.strs = append(c.strs, v.PartitionKey...)
	c.ends = append(c.ends, int32(len(c.strs)))
	if len(c.recs) == cap(c.recs) {
		// Past the first guess, the read is a large one: grown at once
		// to the most it may hold, rather than by append's quarters,
		// each a copy of records full of pointers.
		more := c.most - len(c.recs)
		if more <= 0 {
			// Past the counters' bound, which a read cannot reach:
			// doubled, should it ever.
			more = len(c.recs)
		}
		c.recs = slices.Grow(c.recs, more)
	}
	c.recs = append(c.recs, Record{
		Data:        c.arena[start:len(c.arena):len(c.arena)],
		ArrivalTime: v.ArrivalTime,
	})
}

// setStrings makes the strings of the records from done on.
func (c *collector) setStrings() {
	all, start := string(c.strs), int32(0)
	for i := range len(c.recs) - c.done {
		r := &c.recs[c.done+i]
		r.SequenceNumber, r.PartitionKey = all[start:c.ends[2*i]], all[c.ends[2*i]:c.ends[2*i+1]]
		start = c.ends[2*i+1]
	}
	c.done, c.strs, c.ends = len(c.recs), c.strs[:0], c.ends[:0]
}

func (c *collector) finish() []Record {
	c.setStrings()
	return c.recs
}
