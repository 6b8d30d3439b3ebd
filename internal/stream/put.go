package stream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/runnel-dev/runnel/internal/seqnum"
	"github.com/runnel-dev/runnel/internal/storage"
)

// Appends go through two goroutines:
//
//	commitLoop: takes queued puts, assigns sequence numbers, applies them to
//	            storage as one batch (visible to storage, not yet to readers)
//	syncLoop:   waits for each batch's WAL fsync in order, then publishes
//	            the shard tips (making the records readable) and answers
//	            the puts
//
// While one group waits for its fsync the next one is being built, and every
// put queued meanwhile shares the next fsync (group commit). Readers never
// read past a shard's published tip, so a record is never seen before it is
// durable, and sequence numbers become visible in order.
//
// No wait in this path outlasts the request or storage's health: a put is
// refused at once while storage refuses writes (storage.ErrUnavailable). A
// queued put whose context ends is withdrawn, never applied, and fails;
// once the commit goroutine has taken it, it waits for its real answer,
// which storage gives within its stall timeout at worst. If storage starts
// refusing writes meanwhile the put fails at once; one already handed to
// storage may then still be stored, so, as on Kinesis, an error means
// "maybe stored", never "stored".

const (
	maxGroupRequests = 256
	maxGroupRecords  = 32768
)

// States of a putReq: queued until the commit goroutine takes it (or its
// caller withdraws it first), then applied once storage has it.
const (
	reqQueued int32 = iota
	reqTaken
	reqApplied
	reqWithdrawn
)

type putReq struct {
	state   atomic.Int32
	st      *streamState // nil for a barrier or fn
	fn      func()       // run on the commit goroutine, between groups
	hashes  []u128
	recs    []PutInput
	results []PutResult
	err     error
	done    chan struct{}
}

type pendingGroup struct {
	pending *storage.Pending
	reqs    []*putReq
	tips    map[*shardState]u128
	err     error
}

var errClosed = fmt.Errorf("stream engine: %w", storage.ErrClosed)

// Put appends records durably and returns one result per input, in order.
// It returns only after the records are committed (and, unless NoSync,
// fsynced). An error means nothing was acknowledged. The caller has checked
// field syntax; Put checks record sizes against the stream's maximum and
// routes each record by ExplicitHashKey or the MD5 of its partition key to
// the open shard whose hash-key range holds it, or, under the AUTO record
// distribution, to the next open shard in turn.
func (s *Service) Put(ctx context.Context, name string, recs []PutInput) ([]PutResult, error) {
	s.mu.RLock()
	st, err := s.lookup(name)
	var maxBytes int
	hashes := make([]u128, len(recs))
	auto := false
	if err == nil {
		maxBytes = st.meta.MaxRecordSizeKiB << 10
		err = s.notCreatingLocked(st)
		if auto = st.meta.autoDistribution(); auto {
			st.spreadHashes(hashes)
		}
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if err := s.eng.Health(); err != nil {
		return nil, err
	}
	for i, r := range recs {
		if n := len(r.Data) + len(r.PartitionKey); n > maxBytes {
			return nil, newError(ErrInvalidArgument,
				"Record size %d bytes (data plus partition key) at index %d exceeds the maximum record size of %d bytes for stream %s.",
				n, i, maxBytes, name)
		}
		if auto {
			continue
		}
		if r.ExplicitHashKey != "" {
			hashes[i], err = parseU128(r.ExplicitHashKey)
			if err != nil {
				return nil, newError(ErrInvalidArgument, "Invalid ExplicitHashKey %q at index %d. ExplicitHashKey must be a decimal integer between 0 and 2^128-1.", r.ExplicitHashKey, i)
			}
		} else {
			hashes[i] = hashKey(r.PartitionKey)
		}
	}
	if !s.cfg.ShardWriteLimits {
		req := &putReq{st: st, recs: recs, hashes: hashes, done: make(chan struct{})}
		if err := s.enqueue(ctx, req); err != nil {
			return nil, err
		}
		return req.results, req.err
	}
	// Records over their shard's write limit fail alone, as on Kinesis.
	results := make([]PutResult, len(recs))
	req := &putReq{st: st, done: make(chan struct{})}
	var accepted []int
	now := s.now()
	advantage := s.advantage(now)
	s.mu.RLock()
	// An on-demand stream's capacity is the stream's (see capacity.go).
	onDemand, warm := st.meta.Mode == ModeOnDemand, st.meta.WarmThroughputMiBps
	if !advantage {
		warm = 0
	}
	if onDemand {
		st.capacity.mu.Lock()
	}
	for i, r := range recs {
		sh := st.route(hashes[i])
		size := len(r.Data) + len(r.PartitionKey)
		if onDemand && !st.capacity.take(now, warm, size) || !onDemand && !sh.limits.allow(now, size) {
			sh.throttled.Add(1)
			results[i] = PutResult{
				ErrorCode:    ErrorCodeThroughputExceeded,
				ErrorMessage: fmt.Sprintf("Rate exceeded for shard %s in stream %s.", sh.id, s.InAccount(name)),
			}
			continue
		}
		accepted = append(accepted, i)
		req.recs = append(req.recs, r)
		req.hashes = append(req.hashes, hashes[i])
	}
	if onDemand {
		st.capacity.mu.Unlock()
	}
	s.mu.RUnlock()
	if len(accepted) > 0 {
		if err := s.enqueue(ctx, req); err != nil {
			return nil, err
		}
		if req.err != nil {
			return nil, req.err
		}
		for j, i := range accepted {
			results[i] = req.results[j]
		}
	}
	return results, nil
}

// route returns the open shard whose hash-key range holds h. The caller
// holds Service.mu or is the commit goroutine.
func (st *streamState) route(h u128) *shardState {
	i := sort.Search(len(st.open), func(i int) bool { return st.open[i].end.cmp(h) >= 0 })
	if i == len(st.open) {
		i = len(st.open) - 1
	}
	return st.open[i]
}

// enqueue hands req to the commit goroutine and waits for its answer,
// until ctx is done or storage refuses writes. The results in req are valid
// only when it returns nil.
func (s *Service) enqueue(ctx context.Context, req *putReq) error {
	unavailable := s.eng.Unavailable()
	s.putMu.RLock()
	if s.closed {
		s.putMu.RUnlock()
		return errClosed
	}
	select {
	case s.putCh <- req:
		s.putMu.RUnlock()
	case <-ctx.Done():
		s.putMu.RUnlock()
		return fmt.Errorf("waiting to write: %w", context.Cause(ctx))
	case <-unavailable:
		s.putMu.RUnlock()
		return s.eng.Health()
	}
	done := ctx.Done()
	for {
		select {
		case <-req.done:
			return nil
		case <-done:
			if req.state.CompareAndSwap(reqQueued, reqWithdrawn) {
				return fmt.Errorf("waiting to write: %w", context.Cause(ctx))
			}
			// Taken: its answer comes within the stall timeout at worst,
			// and cutting it off now would report a failure for records
			// about to be durable.
			done = nil
		case <-unavailable:
			err := s.eng.Health()
			if err == nil {
				unavailable = s.eng.Unavailable() // it recovered meanwhile
				continue
			}
			if req.state.CompareAndSwap(reqQueued, reqWithdrawn) {
				return err
			}
			if req.fn != nil || req.state.Load() == reqApplied {
				// fn runs under locks its caller holds, and an applied
				// put only waits for its log write, which ends either
				// way: the real answer is due.
				<-req.done
				return nil
			}
			select {
			case <-req.done:
				return nil
			default:
				return err // in a write storage cannot finish: maybe stored
			}
		}
	}
}

// take claims a queued request for the commit goroutine; false when its
// caller withdrew it.
func (r *putReq) take() bool {
	if r.state.CompareAndSwap(reqQueued, reqTaken) {
		return true
	}
	close(r.done)
	return false
}

// onCommitter runs fn on the commit goroutine, after every put queued
// before it has been assigned its sequence numbers and applied, and before
// any put queued after it. fn does not run when the caller stopped waiting
// before it started.
func (s *Service) onCommitter(ctx context.Context, fn func()) error {
	return s.enqueue(ctx, &putReq{fn: fn, done: make(chan struct{})})
}

// barrier returns once every put queued before it has been answered.
func (s *Service) barrier(ctx context.Context) error {
	req := &putReq{done: make(chan struct{})}
	if err := s.enqueue(ctx, req); err != nil {
		return err
	}
	return req.err
}

func (s *Service) commitLoop() {
	defer s.wg.Done()
	defer close(s.syncCh)
	for first := range s.putCh {
		if !first.take() {
			continue
		}
		if first.fn != nil {
			first.fn()
			close(first.done)
			continue
		}
		group := []*putReq{first}
		n := len(first.recs)
		var fn *putReq
	drain:
		for len(group) < maxGroupRequests && n < maxGroupRecords {
			select {
			case r, ok := <-s.putCh:
				if !ok {
					break drain
				}
				if !r.take() {
					continue
				}
				if r.fn != nil {
					fn = r
					break drain
				}
				group = append(group, r)
				n += len(r.recs)
			default:
				break drain
			}
		}
		s.syncCh <- s.applyGroup(group)
		if fn != nil {
			fn.fn()
			close(fn.done)
		}
	}
}

// applyGroup assigns sequence numbers to a group of puts and applies them
// as one storage batch.
func (s *Service) applyGroup(group []*putReq) *pendingGroup {
	pg := &pendingGroup{reqs: group, tips: map[*shardState]u128{}}
	b := s.eng.NewBatch()
	ms := uint64(s.now().UnixMilli())
	for _, req := range group {
		if req.st == nil {
			continue
		}
		if req.st.deleted.Load() {
			req.err = s.notFound(req.st.name)
			continue
		}
		req.results = make([]PutResult, len(req.recs))
		// The request's sequence numbers share one string, built in
		// place (a strings.Builder's bytes become its string uncopied).
		var digits strings.Builder
		digits.Grow(len(req.recs) * seqnum.Digits)
		var num [seqnum.Digits]byte
		id := req.st.id
		for i, r := range req.recs {
			sh := req.st.route(req.hashes[i])
			sh.lastMS = max(sh.lastMS, ms)
			seq := makeSeq(sh.lastMS, sh.index, sh.counter)
			sh.counter++
			b.PutRecord(id, sh.index, seq.bytes(), r.PartitionKey, r.Data)
			pg.tips[sh] = seq
			digits.Write(sh.runs.Append(num[:0], seq.hi, seq.lo))
			req.results[i].ShardID = sh.id
			sh.recordsIn.Add(1)
			sh.bytesIn.Add(int64(len(r.Data)))
		}
		all := digits.String()
		for i := range req.results {
			req.results[i].SequenceNumber = all[i*seqnum.Digits : (i+1)*seqnum.Digits]
		}
	}
	if b.Empty() {
		return pg
	}
	pg.pending, pg.err = s.eng.Apply(b)
	if pg.err == nil {
		for _, req := range group {
			req.state.Store(reqApplied)
		}
	}
	return pg
}

func (s *Service) syncLoop() {
	defer s.wg.Done()
	for pg := range s.syncCh {
		err := pg.err
		if pg.pending != nil {
			err = pg.pending.Wait()
		}
		if err != nil {
			if !errors.Is(err, storage.ErrUnavailable) {
				// Refusals are logged once, when storage starts refusing.
				s.log.Error("append failed", "err", err)
			}
		} else {
			for sh, tip := range pg.tips {
				sh.publish(tip)
			}
		}
		for _, req := range pg.reqs {
			if err != nil && req.err == nil {
				req.err = err
				req.results = nil
			}
			close(req.done)
		}
	}
}

// Per-shard write limits of a provisioned Kinesis shard.
const (
	ShardWriteRecordsPerSecond = 1000
	ShardWriteBytesPerSecond   = 1 << 20
	// ErrorCodeThroughputExceeded is the per-record error code of a record
	// over its shard's limit.
	ErrorCodeThroughputExceeded = "ProvisionedThroughputExceededException"
)

// writeLimiter holds a shard's write token buckets (one second of burst).
type writeLimiter struct {
	records, bytes *rate.Limiter
}

func newWriteLimiter() *writeLimiter {
	return &writeLimiter{
		records: rate.NewLimiter(ShardWriteRecordsPerSecond, ShardWriteRecordsPerSecond),
		bytes:   rate.NewLimiter(ShardWriteBytesPerSecond, ShardWriteBytesPerSecond),
	}
}

// allow takes one record of size bytes from the buckets, or nothing when
// either is short. A record larger than the byte bucket (after
// UpdateMaxRecordSize a record may be 10 MiB, the bucket 1 or 4 MiB) is
// taken when the bucket is full and leaves it in debt for the rest, so
// the average rate still holds.
func (l *writeLimiter) allow(now time.Time, size int) bool {
	r := l.records.ReserveN(now, 1)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return false
	}
	burst := l.bytes.Burst()
	b := l.bytes.ReserveN(now, min(size, burst))
	if !b.OK() || b.DelayFrom(now) > 0 {
		b.CancelAt(now)
		r.CancelAt(now)
		return false
	}
	for rest := size - burst; rest > 0; rest -= burst {
		l.bytes.ReserveN(now, min(rest, burst))
	}
	return true
}
