package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/kpl"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/sink"
)

// rec is one user record read from a shard (a Kinesis record, or one user
// record of a KPL aggregate).
type rec struct {
	idx      int64 // position in the tracker
	seq      string
	sub      int64
	agg      bool // from an aggregate: sub is meaningful
	arrival  time.Time
	size     int // approximate share of the event's JSON size
	queuedAt time.Time
	ev       lambda.KinesisEventRecord
}

func (r *rec) checkpoint() Checkpoint {
	return Checkpoint{SequenceNumber: r.seq, SubSequenceNumber: r.sub}
}

// page is the records of one GetRecords answer; end marks the end of a
// closed shard.
type page struct {
	recs     []*rec
	end      bool
	children []types.ChildShard
}

// shardProc processes one held shard: a reader goroutine polls
// GetRecords (or, with Config.FanOut, subscribes to the shard), the dispatcher spreads records over ParallelizationFactor
// lanes by partition key, each lane invokes the handler batch by batch,
// and the checkpointer writes the highest position below which every
// record is done.
type shardProc struct {
	w     *Worker
	h     *heldLease
	shard string
	log   *slog.Logger

	ctx    context.Context // cancelled by kill: stop now
	cancel context.CancelFunc

	stopOnce sync.Once
	stopCh   chan struct{} // closed by stop: stop after the batches in flight

	mu          sync.Mutex
	handOffTo   string
	waitingPrev bool        // waiting for the previous owner's hand-off
	stored      *Checkpoint // last checkpoint written (or read at start)
	tr          *tracker

	caughtUpAt atomic.Int64 // unix nanos a GetRecords found nothing newer
	millis     atomic.Int64
	*shardCounters
	blocked *sink.Wait // set while a batch waits for an unavailable target (under errMu)
	started time.Time
	done    chan struct{} // closed when run returns

	// invoking is when the invocation in flight started (unix nanos), 0
	// when none is.
	invoking atomic.Int64
}

var _ sink.Reporter = (*shardProc)(nil)

// Blocked records that a batch of the shard waits for an unavailable
// target (a sink, a handler process); status shows it until Unblocked.
func (p *shardProc) Blocked(w sink.Wait) {
	p.errMu.Lock()
	if p.blocked != nil {
		w.Since = p.blocked.Since
	}
	p.blocked = &w
	p.errMu.Unlock()
}

// Unblocked clears what Blocked recorded.
func (p *shardProc) Unblocked() {
	p.errMu.Lock()
	p.blocked = nil
	p.errMu.Unlock()
}

// shardCounters are the running totals of one shard on this worker, over
// every time it held the shard.
type shardCounters struct {
	records   atomic.Int64
	invokes   atomic.Int64
	errs      atomic.Int64
	toDest    atomic.Int64
	errMu     sync.Mutex
	lastErr   string
	lastErrAt time.Time
}

func (c *shardCounters) fill(s *ShardStatus) {
	s.Records = c.records.Load()
	s.Invocations = c.invokes.Load()
	s.Errors = c.errs.Load()
	s.ToDestination = c.toDest.Load()
	c.errMu.Lock()
	s.LastError, s.LastErrorTime = c.lastErr, c.lastErrAt
	c.errMu.Unlock()
}

func newShardProc(w *Worker, h *heldLease, c *shardCounters) *shardProc {
	ctx, cancel := context.WithCancel(context.Background())
	return &shardProc{
		w:       w,
		h:       h,
		shard:   h.lease.Key,
		log:     w.log.With("shard", h.lease.Key),
		ctx:     ctx,
		cancel:  cancel,
		stopCh:  make(chan struct{}),
		tr:      newTracker(w.now()),
		started: w.now(),
		done:    make(chan struct{}),

		shardCounters: c,
	}
}

// ended reports whether run has returned.
func (p *shardProc) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks for a graceful stop.
func (p *shardProc) stop() { p.stopOnce.Do(func() { close(p.stopCh) }) }

// kill stops at once: the invocation in flight is cancelled and nothing
// more is checkpointed.
func (p *shardProc) kill() {
	p.stop()
	p.cancel()
}

func (p *shardProc) stopping() bool {
	select {
	case <-p.stopCh:
		return true
	default:
		return false
	}
}

// requestHandOff makes the processor stop gracefully for a hand-off to
// owner; it reports whether this is a new request.
func (p *shardProc) requestHandOff(owner string) bool {
	p.mu.Lock()
	first := p.handOffTo == ""
	p.handOffTo = owner
	p.mu.Unlock()
	p.stop()
	return first
}

func (p *shardProc) handingOff() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handOffTo != ""
}

func (p *shardProc) waitingHandOff() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitingPrev
}

// finalCheckpoint is the watermark if it is ahead of what was stored.
func (p *shardProc) finalCheckpoint() *Checkpoint {
	cp, ok := p.tr.watermark()
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stored != nil && (*p.stored == cp || p.stored.ShardEnd()) {
		return nil
	}
	return &cp
}

func (p *shardProc) noteErr(err error) {
	p.errs.Add(1)
	p.errMu.Lock()
	p.lastErr = err.Error()
	p.lastErrAt = p.w.now()
	p.errMu.Unlock()
}

func (p *shardProc) fillStatus(s *ShardStatus, now time.Time) {
	s.RecordsBehind = int64(p.tr.pending())
	s.MillisBehindLatest = p.millis.Load()
	p.errMu.Lock()
	if b := p.blocked; b != nil {
		s.Blocked, s.BlockedSince = b.String(), b.Since
	}
	p.errMu.Unlock()
	s.LastProgress = p.tr.progressAt()
	waiting := s.RecordsBehind > 0 || s.MillisBehindLatest > 0
	s.Stalled = waiting && now.Sub(s.LastProgress) > p.w.cfg.StallAfter
	if s.Stalled {
		s.StallReason = p.stallReason(s, now)
	}
}

// stallReason says why a stalled shard is not moving.
func (p *shardProc) stallReason(s *ShardStatus, now time.Time) string {
	if s.Blocked != "" {
		return "blocked since " + s.BlockedSince.UTC().Format(time.RFC3339) + ": " + s.Blocked
	}
	if at := p.invoking.Load(); at != 0 {
		return fmt.Sprintf("handler invocation in flight for %s (timeout %s)",
			now.Sub(time.Unix(0, at)).Round(time.Second), p.w.cfg.InvocationTimeout)
	}
	if p.waitingHandOff() {
		return "waiting for the previous owner to hand the lease off"
	}
	if s.LastError != "" {
		return "retrying after: " + s.LastError
	}
	if s.RecordsBehind == 0 {
		return "no record read yet: the reader is behind by " + (time.Duration(s.MillisBehindLatest) * time.Millisecond).String()
	}
	return "records read and waiting for a handler invocation"
}

// waitForPrevious waits until the previous owner has handed the lease off
// (CheckpointOwner cleared) or one lease duration after the take.
func (p *shardProc) waitForPrevious() bool {
	l := p.h.current()
	if l.CheckpointOwner == "" {
		return true
	}
	p.mu.Lock()
	p.waitingPrev = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waitingPrev = false
		p.mu.Unlock()
	}()
	deadline := p.h.takenAt.Add(p.w.cfg.LeaseDuration)
	for p.w.now().Before(deadline) {
		if !backoff.Sleep(p.ctx, 20*time.Millisecond) || p.stopping() {
			return false
		}
		cur, err := p.w.cfg.Leases.GetLease(p.ctx, p.shard)
		if err != nil {
			continue
		}
		if cur.Owner != p.w.cfg.WorkerID {
			return false
		}
		if cur.CheckpointOwner == "" {
			p.h.mu.Lock()
			// Adopt the checkpoint the previous owner wrote.
			p.h.lease.Checkpoint = cur.Checkpoint
			p.h.mu.Unlock()
			return true
		}
	}
	p.log.Warn("previous owner did not hand off in time; starting from the stored checkpoint", "previous", l.CheckpointOwner)
	// End the hand-off on the previous owner's behalf, so the lease does
	// not look mid-hand-off forever (and can be balanced again).
	if _, err := p.w.cfg.Leases.HandOff(p.ctx, p.shard, l.CheckpointOwner, nil); err != nil && !errors.Is(err, ErrLeaseConflict) {
		p.log.Warn("clearing the checkpoint owner failed", "err", err)
	}
	cur, err := p.w.cfg.Leases.GetLease(p.ctx, p.shard)
	if err == nil && cur.Owner == p.w.cfg.WorkerID {
		p.h.mu.Lock()
		p.h.lease.Checkpoint = cur.Checkpoint
		p.h.lease.CheckpointOwner = cur.CheckpointOwner
		p.h.mu.Unlock()
	}
	return p.ctx.Err() == nil
}

// run processes the shard until it ends, the processor is stopped, or the
// lease is lost.
func (p *shardProc) run() {
	defer close(p.done)
	defer p.cancel()
	if !p.waitForPrevious() {
		return
	}
	start := p.h.current().Checkpoint
	p.mu.Lock()
	p.stored = &start
	p.mu.Unlock()
	if start.ShardEnd() {
		return
	}
	p.tr.setStart(start, p.w.now())

	cfg := p.w.cfg
	readCtx, stopRead := context.WithCancel(p.ctx)
	pages := make(chan page, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		if cfg.FanOut != "" {
			p.readFanOut(readCtx, start, pages)
			return
		}
		p.read(readCtx, start, pages)
	}()

	lanes := make([]*lane, cfg.ParallelizationFactor)
	var lanesWG sync.WaitGroup
	for i := range lanes {
		lanes[i] = newLane(p)
		lanesWG.Add(1)
		go func() {
			defer lanesWG.Done()
			lanes[i].run()
		}()
	}
	cpQuit := make(chan struct{})
	cpDone := make(chan struct{})
	go func() {
		defer close(cpDone)
		p.checkpointLoop(cpQuit)
	}()

	// Keep at most about two GetRecords pages queued in the lanes.
	maxQueued := int64(2 * max(cfg.BatchSize*cfg.ParallelizationFactor, getRecordsLimit))
	var end *page
dispatch:
	for {
		select {
		case <-p.stopCh:
			break dispatch
		case pg := <-pages:
			now := p.w.now()
			for _, r := range pg.recs {
				r.queuedAt = now
				r.idx = p.tr.add(r.checkpoint())
				lanes[laneOf(r.ev.Kinesis.PartitionKey, len(lanes))].push(r)
			}
			if pg.end {
				end = &pg
				break dispatch
			}
			for p.queued() > maxQueued {
				select {
				case <-p.stopCh:
					break dispatch
				case <-p.tr.doneSignal():
				}
			}
		}
	}
	for _, l := range lanes {
		l.close()
	}
	lanesWG.Wait()
	stopRead()
	<-readDone

	if end != nil && p.ctx.Err() == nil && !p.stopping() {
		p.finishShard(end.children)
	}
	close(cpQuit)
	<-cpDone
	if !p.handingOff() && p.ctx.Err() == nil {
		p.flushCheckpoint(context.WithoutCancel(p.ctx))
	}
}

// queued counts records handed to lanes and not yet finished by them.
func (p *shardProc) queued() int64 { return p.tr.undone() }

// finishShard checkpoints SHARD_END once every record is done and creates
// the children's leases.
func (p *shardProc) finishShard(children []types.ChildShard) {
	if p.tr.pending() > 0 {
		return // a window was left open or records were not finished
	}
	p.flushCheckpoint(p.ctx)
	end := Checkpoint{SequenceNumber: SentinelShardEnd}
	if err := p.h.checkpoint(p.ctx, end); err != nil {
		p.noteErr(err)
		p.log.Warn("checkpointing SHARD_END failed", "err", err)
		return
	}
	p.mu.Lock()
	p.stored = &end
	p.mu.Unlock()
	p.w.createChildLeases(p.ctx, children)
	p.log.Info("shard finished", "children", len(children))
}

// checkpointLoop writes the watermark whenever it advances, one write at a
// time, until quit is closed.
func (p *shardProc) checkpointLoop(quit <-chan struct{}) {
	for {
		select {
		case <-quit:
			return
		case <-p.ctx.Done():
			return
		case <-p.tr.changedSignal():
		}
		p.flushCheckpoint(p.ctx)
	}
}

// flushCheckpoint writes the watermark if it is ahead of what is stored.
func (p *shardProc) flushCheckpoint(ctx context.Context) {
	if p.handingOff() {
		return
	}
	cp := p.finalCheckpoint()
	if cp == nil {
		return
	}
	err := p.h.checkpoint(ctx, *cp)
	switch {
	case err == nil:
		p.mu.Lock()
		p.stored = cp
		p.mu.Unlock()
	case errors.Is(err, ErrLeaseConflict) || errors.Is(err, ErrLeaseNotFound):
		p.h.onConflict(ctx, err)
	default:
		p.noteErr(err)
		p.log.Warn("checkpoint failed; retried with the next one", "err", err)
	}
}

func laneOf(key string, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// getRecordsLimit is the Limit of every GetRecords call.
const getRecordsLimit = 10000

// read polls the shard from start and sends pages until the shard ends or
// ctx is done.
func (p *shardProc) read(ctx context.Context, start Checkpoint, out chan<- page) {
	iter := ""
	lastSeq := ""
	failures := 0
	fail := func(what string, err error) bool {
		failures++
		p.noteErr(err)
		p.log.Warn(what, "err", err, "attempt", failures)
		return backoff.Sleep(ctx, backoff.Delay(failures, 100*time.Millisecond, 5*time.Second))
	}
	for ctx.Err() == nil {
		if iter == "" {
			it, err := p.iterator(ctx, start, lastSeq)
			if err != nil {
				if ctx.Err() != nil || !fail("getting shard iterator failed", err) {
					return
				}
				continue
			}
			iter = it
		}
		sent := p.w.now()
		res, err := p.w.cfg.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: aws.String(iter),
			Limit:         aws.Int32(getRecordsLimit),
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var expired *types.ExpiredIteratorException
			var invalid *types.InvalidArgumentException
			if errors.As(err, &expired) || errors.As(err, &invalid) {
				// Renew the iterator from the last record read (or the
				// checkpoint).
				iter = ""
			}
			if !fail("reading shard failed", err) {
				return
			}
			continue
		}
		failures = 0
		p.millis.Store(aws.ToInt64(res.MillisBehindLatest))
		if aws.ToInt64(res.MillisBehindLatest) == 0 {
			p.caughtUpAt.Store(sent.UnixNano())
		}
		recs := p.convert(res.Records, start)
		if n := len(res.Records); n > 0 {
			lastSeq = aws.ToString(res.Records[n-1].SequenceNumber)
		}
		if res.NextShardIterator == nil {
			select {
			case out <- page{recs: recs, end: true, children: res.ChildShards}:
			case <-ctx.Done():
			}
			return
		}
		iter = aws.ToString(res.NextShardIterator)
		if len(recs) > 0 {
			select {
			case out <- page{recs: recs}:
			case <-ctx.Done():
				return
			}
		}
		// After an empty answer wait out the rest of PollInterval; a
		// client that long-polls (waits for an append before answering
		// empty, as kinesislocal does) has already waited.
		if len(res.Records) == 0 {
			if !backoff.Sleep(ctx, p.w.cfg.PollInterval-p.w.now().Sub(sent)) {
				return
			}
		}
	}
}

// iterator returns a shard iterator after lastSeq, or at start when
// nothing was read yet.
func (p *shardProc) iterator(ctx context.Context, start Checkpoint, lastSeq string) (string, error) {
	name, arn := p.w.streamRef()
	in := &kinesis.GetShardIteratorInput{StreamName: name, StreamARN: arn, ShardId: aws.String(p.shard)}
	switch {
	case lastSeq != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(lastSeq)
	case start.SequenceNumber == SentinelTrimHorizon:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case start.SequenceNumber == SentinelLatest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	case start.SequenceNumber == SentinelAtTimestamp:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(p.w.cfg.StartingTimestamp)
	default:
		// At, not after: the checkpoint may be inside an aggregate; the
		// records up to it are filtered out.
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(start.SequenceNumber)
	}
	out, err := p.w.cfg.Kinesis.GetShardIterator(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ShardIterator), nil
}

// convert turns Kinesis records into user records, de-aggregating KPL
// aggregates and dropping positions at or before a sequence-number start.
func (p *shardProc) convert(in []types.Record, start Checkpoint) []*rec {
	out := make([]*rec, 0, len(in))
	filter := !start.IsSentinel()
	for i := range in {
		kr := &in[i]
		seq := aws.ToString(kr.SequenceNumber)
		arrival := aws.ToTime(kr.ApproximateArrivalTimestamp)
		users, agg, err := kpl.Deaggregate(kr.Data)
		if err != nil {
			p.log.Warn("malformed KPL aggregate; handled as one record", "sequenceNumber", seq, "err", err)
			agg = false
		}
		if !agg {
			users = []kpl.Record{{PartitionKey: aws.ToString(kr.PartitionKey), Data: kr.Data}}
		}
		for j, u := range users {
			r := &rec{seq: seq, arrival: arrival, agg: agg}
			if agg {
				r.sub = int64(j)
			}
			if filter && !start.before(seq, r.sub) {
				continue
			}
			r.ev = p.eventRecord(r, u)
			r.size = 4*(len(u.Data)+2)/3 + len(u.PartitionKey) + len(seq)*2 + len(p.shard) + len(p.w.streamARN) + 300
			out = append(out, r)
		}
	}
	return out
}

func (p *shardProc) eventRecord(r *rec, u kpl.Record) lambda.KinesisEventRecord {
	ev := lambda.KinesisEventRecord{
		Kinesis: lambda.KinesisRecord{
			KinesisSchemaVersion:        "1.0",
			PartitionKey:                u.PartitionKey,
			SequenceNumber:              r.seq,
			Data:                        u.Data,
			ApproximateArrivalTimestamp: float64(r.arrival.UnixMilli()) / 1000,
		},
		EventSource:       "aws:kinesis",
		EventVersion:      "1.0",
		EventID:           p.shard + ":" + r.seq,
		EventName:         "aws:kinesis:record",
		InvokeIdentityArn: p.w.cfg.InvokeIdentityARN,
		AwsRegion:         p.w.cfg.Region,
		EventSourceARN:    p.w.streamARN,
	}
	if r.agg {
		sub := r.sub
		ev.Kinesis.SubSequenceNumber = &sub
	}
	return ev
}

// tracker orders the records of a shard by index and computes the
// watermark: the position of the last record below which every record is
// done.
type tracker struct {
	mu       sync.Mutex
	base     int64 // index of entries[0]
	entries  []trackEntry
	mark     Checkpoint
	hasMark  bool
	inLanes  int64 // records pushed to lanes and not yet finished by them
	progress time.Time
	changed  chan struct{}
	freed    chan struct{}
}

type trackEntry struct {
	cp   Checkpoint
	done bool
}

func newTracker(now time.Time) *tracker {
	return &tracker{progress: now, changed: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
}

func (t *tracker) setStart(cp Checkpoint, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mark, t.hasMark, t.progress = cp, true, now
}

func (t *tracker) add(cp Checkpoint) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries = append(t.entries, trackEntry{cp: cp})
	t.inLanes++
	return t.base + int64(len(t.entries)) - 1
}

// finished notes that a lane is through with n records (done or, in a
// window, waiting for the window's end).
func (t *tracker) finished(n int) {
	t.mu.Lock()
	t.inLanes -= int64(n)
	t.mu.Unlock()
	select {
	case t.freed <- struct{}{}:
	default:
	}
}

// done marks records done and advances the watermark.
func (t *tracker) done(now time.Time, idx ...int64) {
	t.mu.Lock()
	for _, i := range idx {
		if j := i - t.base; j >= 0 && j < int64(len(t.entries)) {
			t.entries[j].done = true
		}
	}
	k := 0
	for k < len(t.entries) && t.entries[k].done {
		k++
	}
	if k > 0 {
		t.mark, t.hasMark = t.entries[k-1].cp, true
		t.entries = t.entries[k:]
		t.base += int64(k)
		t.progress = now
		if len(t.entries) == 0 {
			t.entries = nil
		}
	}
	t.mu.Unlock()
	if k > 0 {
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

func (t *tracker) watermark() (Checkpoint, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mark, t.hasMark
}

func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

func (t *tracker) undone() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inLanes
}

func (t *tracker) progressAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.progress
}

func (t *tracker) changedSignal() <-chan struct{} { return t.changed }
func (t *tracker) doneSignal() <-chan struct{}    { return t.freed }
