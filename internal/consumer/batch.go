package consumer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/sink"
)

// errStopped means the processor was stopped (lease lost or graceful
// stop) in the middle of handling a batch; the batch is not done.
var errStopped = errors.New("shard processing stopped")

// lane invokes the handler for one share of a shard's records (all of
// them when ParallelizationFactor is 1), batch after batch, in order.
type lane struct {
	p *shardProc

	mu     sync.Mutex
	q      []*rec
	closed bool
	signal chan struct{}

	// Tumbling window state (ParallelizationFactor 1 only).
	win     time.Time // start of the open window; zero when none
	state   map[string]string
	winDone []int64 // records of the open window, done when it closes
}

func newLane(p *shardProc) *lane {
	return &lane{p: p, signal: make(chan struct{}, 1)}
}

func (l *lane) push(r *rec) {
	l.mu.Lock()
	l.q = append(l.q, r)
	l.mu.Unlock()
	l.wake()
}

// close says no more records will come.
func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wake()
}

func (l *lane) wake() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// job is the next thing a lane does: invoke a batch, or close the open
// window with its final invocation.
type job struct {
	recs  []*rec
	final bool
}

func (l *lane) windowOf(r *rec) time.Time {
	return r.arrival.Truncate(l.p.w.cfg.TumblingWindow)
}

// next waits for the next job; false means the lane is done.
func (l *lane) next() (job, bool) {
	cfg := l.p.w.cfg
	windows := cfg.TumblingWindow > 0
	for {
		if l.p.ctx.Err() != nil {
			return job{}, false
		}
		l.mu.Lock()
		// A graceful stop finishes the batch in flight (the caller's) and
		// starts nothing new.
		if l.p.stopping() {
			l.mu.Unlock()
			return job{}, false
		}
		now := l.p.w.now()
		var wait time.Duration = -1
		if windows && !l.win.IsZero() {
			end := l.win.Add(cfg.TumblingWindow)
			switch {
			case len(l.q) > 0 && !l.windowOf(l.q[0]).Equal(l.win):
				l.mu.Unlock()
				return job{final: true}, true
			case len(l.q) == 0 && (l.closed || l.p.caughtUpAt.Load() >= end.UnixNano()):
				l.mu.Unlock()
				return job{final: true}, true
			case len(l.q) == 0:
				wait = max(end.Sub(now), cfg.PollInterval)
			}
		}
		if len(l.q) > 0 {
			n, size := 0, 0
			var win time.Time
			if windows {
				win = l.windowOf(l.q[0])
			}
			for n < len(l.q) && n < cfg.BatchSize {
				r := l.q[n]
				if windows && !l.windowOf(r).Equal(win) {
					break
				}
				if n > 0 && size+r.size > MaxEventBytes-1024 {
					break
				}
				size += r.size
				n++
			}
			full := n == cfg.BatchSize || n < len(l.q)
			due := l.q[0].queuedAt.Add(cfg.MaximumBatchingWindow)
			if full || l.closed || !now.Before(due) {
				recs := make([]*rec, n)
				copy(recs, l.q[:n])
				l.q = l.q[n:]
				if len(l.q) == 0 {
					l.q = nil
				}
				l.mu.Unlock()
				return job{recs: recs}, true
			}
			if d := due.Sub(now); wait < 0 || d < wait {
				wait = d
			}
		} else if l.closed && (!windows || l.win.IsZero()) {
			l.mu.Unlock()
			return job{}, false
		}
		l.mu.Unlock()
		var timer *time.Timer
		var timeout <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-l.signal:
		case <-timeout:
		case <-l.p.stopCh:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// run handles jobs until the lane is done.
func (l *lane) run() {
	for {
		j, ok := l.next()
		if !ok {
			return
		}
		var err error
		if j.final {
			err = l.closeWindow()
		} else {
			err = l.handle(j.recs)
			l.p.tr.finished(len(j.recs))
		}
		if errors.Is(err, errStopped) {
			return
		}
	}
}

// markDone records that recs are handled: done now, or, inside a tumbling
// window, when the window closes.
func (l *lane) markDone(recs []*rec) {
	if len(recs) == 0 {
		return
	}
	l.p.records.Add(int64(len(recs)))
	idx := make([]int64, len(recs))
	for i, r := range recs {
		idx[i] = r.idx
	}
	if l.p.w.cfg.TumblingWindow > 0 {
		l.winDone = append(l.winDone, idx...)
		return
	}
	l.p.tr.done(l.p.w.now(), idx...)
}

// work is a part of a batch still to handle, with its invocation count.
type work struct {
	recs    []*rec
	invokes int // invocations of these records so far
	retries int // retries counted against MaximumRetryAttempts
	waits   int // consecutive invocations that found the target unavailable
}

// handle takes a batch through invocation, partial failures, bisection,
// retries and the on-failure destination, in order. It returns errStopped
// if the processor stopped before the batch was done.
func (l *lane) handle(batch []*rec) error {
	cfg := l.p.w.cfg
	maxRetries := *cfg.MaximumRetryAttempts
	if cfg.TumblingWindow > 0 && l.win.IsZero() {
		l.openWindow(l.windowOf(batch[0]))
	}
	stack := []work{{recs: batch}}
	for len(stack) > 0 {
		cur := &stack[len(stack)-1]
		// Records past the maximum age go to the destination unseen.
		if cfg.MaximumRecordAge > 0 {
			cutoff := l.p.w.now().Add(-cfg.MaximumRecordAge)
			k := 0
			for k < len(cur.recs) && cur.recs[k].arrival.Before(cutoff) {
				k++
			}
			if k > 0 {
				if err := l.fail(cur.recs[:k], ConditionRecordAgeExceeded, cur.invokes, ""); err != nil {
					return err
				}
				cur.recs = cur.recs[k:]
				if len(cur.recs) == 0 {
					stack = stack[:len(stack)-1]
					continue
				}
			}
		}
		if cur.invokes > 0 && l.p.stopping() {
			// Stopping: leave the retry to the next owner.
			return errStopped
		}
		failedAt, invokeErr := l.invoke(cur.recs, false)
		if errors.Is(invokeErr, errStopped) {
			return errStopped
		}
		if errors.Is(invokeErr, sink.ErrUnavailable) {
			// The handler could not get to the records (a sink down, a
			// handler process restarting): not a failure of the batch.
			// Hold it, in order, and try again without counting a retry.
			cur.waits++
			if l.p.stopping() || !backoff.Sleep(l.p.ctx, backoff.Delay(cur.waits, 50*time.Millisecond, 5*time.Second)) {
				return errStopped
			}
			continue
		}
		cur.waits = 0
		cur.invokes++
		switch {
		case invokeErr == nil && failedAt < 0:
			l.markDone(cur.recs)
			stack = stack[:len(stack)-1]
			continue
		case invokeErr == nil:
			// Partial failure: the records before the lowest failed one
			// are done; the rest is retried.
			l.markDone(cur.recs[:failedAt])
			cur.recs = cur.recs[failedAt:]
		case cfg.BisectBatchOnFunctionError && len(cur.recs) > 1:
			// Splitting does not count as a retry.
			half := len(cur.recs) / 2
			first := work{recs: cur.recs[:half], retries: cur.retries}
			second := work{recs: cur.recs[half:], retries: cur.retries}
			stack = append(stack[:len(stack)-1], second, first)
			continue
		}
		cur.retries++
		if maxRetries >= 0 && cur.retries > maxRetries {
			msg := ""
			if invokeErr != nil {
				msg = invokeErr.Error()
			} else {
				msg = "batch item failures reported"
			}
			if err := l.fail(cur.recs, ConditionRetryAttemptsExhausted, cur.invokes, msg); err != nil {
				return err
			}
			stack = stack[:len(stack)-1]
			continue
		}
		if !backoff.Sleep(l.p.ctx, backoff.Delay(cur.retries, 50*time.Millisecond, 5*time.Second)) {
			return errStopped
		}
	}
	return nil
}

// invoke calls the handler once with recs (or, with final, the closing
// invocation of the open window). It returns the index of the lowest
// failed record for a partial failure, -1 for success, or an error for a
// failure of the whole batch.
func (l *lane) invoke(recs []*rec, final bool) (int, error) {
	p := l.p
	cfg := p.w.cfg
	if p.ctx.Err() != nil {
		return -1, errStopped
	}
	now := p.w.now()
	if !now.Before(p.h.validUntil()) {
		// The renewer has not renewed in time (it stops the shard itself
		// on its next attempt); start nothing another worker may redo.
		p.h.lose("lease not renewed in time")
		return -1, errStopped
	}
	// The invocation's deadline is the pipeline's timeout alone: lease
	// renewals go on meanwhile, and only a lease really lost (which
	// cancels p.ctx) cuts it short.
	deadline := now.Add(cfg.InvocationTimeout)
	ev := &lambda.KinesisEvent{Records: make([]lambda.KinesisEventRecord, len(recs))}
	for i, r := range recs {
		ev.Records[i] = r.ev
	}
	windows := cfg.TumblingWindow > 0
	if windows {
		ev.Window = &lambda.TimeWindow{
			Start: l.win.UTC().Format(time.RFC3339),
			End:   l.win.Add(cfg.TumblingWindow).UTC().Format(time.RFC3339),
		}
		ev.State = make(map[string]string, len(l.state))
		for k, v := range l.state {
			ev.State[k] = v
		}
		ev.ShardID = p.shard
		ev.EventSourceARN = p.w.streamARN
		f, early := final, false
		ev.IsFinalInvokeForWindow = &f
		ev.IsWindowTerminatedEarly = &early
	}
	ictx, cancel := context.WithDeadline(sink.WithReporter(p.ctx, p), deadline)
	p.invoking.Store(now.UnixNano())
	resp, err := callHandler(ictx, cfg.Handler, ev)
	p.invoking.Store(0)
	ictxErr := ictx.Err()
	cancel()
	if p.ctx.Err() != nil {
		return -1, errStopped
	}
	if errors.Is(err, sink.ErrUnavailable) {
		var ue *sink.UnavailableError
		if errors.As(err, &ue) {
			p.Blocked(ue.Wait)
		}
		return -1, err
	}
	p.Unblocked()
	p.invokes.Add(1)
	// A response that came after the deadline is still the handler's
	// answer (a command handler times its run from when the process
	// got the event, not from a wait for a free process).
	if err != nil {
		if errors.Is(ictxErr, context.DeadlineExceeded) {
			err = fmt.Errorf("invocation timed out after %s: %w", cfg.InvocationTimeout, err)
		}
		p.noteErr(err)
		return -1, err
	}
	if windows && (resp == nil || resp.State == nil) {
		err := errors.New("response has no state (required with a tumbling window)")
		p.noteErr(err)
		return -1, err
	}
	failedAt := -1
	if cfg.ReportBatchItemFailures && resp != nil && len(resp.BatchItemFailures) > 0 {
		failedAt, err = lowestFailure(recs, resp.BatchItemFailures)
		if err != nil {
			p.noteErr(err)
			return -1, err
		}
		p.noteErr(fmt.Errorf("batch item failures from %s", recs[failedAt].seq))
	}
	if windows {
		l.state = resp.State
	}
	return failedAt, nil
}

// callHandler invokes h, turning a panic into an error.
func callHandler(ctx context.Context, h lambda.Handler, ev *lambda.KinesisEvent) (resp *lambda.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			resp, err = nil, fmt.Errorf("handler panicked: %v", v)
		}
	}()
	return h.Invoke(ctx, ev)
}

// lowestFailure applies Lambda's rules to batchItemFailures: an empty or
// unknown itemIdentifier fails the whole batch; otherwise the result is
// the index of the first record with the lowest failed sequence number.
func lowestFailure(recs []*rec, fs []lambda.BatchItemFailure) (int, error) {
	first := make(map[string]int, len(recs))
	for i, r := range recs {
		if _, ok := first[r.seq]; !ok {
			first[r.seq] = i
		}
	}
	lowest := -1
	for _, f := range fs {
		i, ok := first[f.ItemIdentifier]
		if f.ItemIdentifier == "" || !ok {
			return -1, fmt.Errorf("batchItemFailures names %q, which is not a sequence number of the batch", f.ItemIdentifier)
		}
		if lowest < 0 || i < lowest {
			lowest = i
		}
	}
	return lowest, nil
}

// fail sends recs to the on-failure destination and marks them done,
// logging a warning with the condition and its cause (msg, the last
// error). It retries the destination until it accepts or the processor
// stops.
func (l *lane) fail(recs []*rec, condition string, invokes int, msg string) error {
	p := l.p
	cfg := p.w.cfg
	f := l.failure(recs, condition, invokes, msg)
	reason := msg
	if reason == "" && condition == ConditionRecordAgeExceeded {
		reason = fmt.Sprintf("older than maximumRecordAge (%s)", cfg.MaximumRecordAge)
	}
	args := []any{"condition", condition, "first", f.KinesisBatchInfo.StartSequenceNumber, "last", f.KinesisBatchInfo.EndSequenceNumber,
		"count", len(recs), "invocations", invokes, "err", reason}
	if cfg.OnFailure == nil {
		p.log.Warn("records given up on (no on-failure destination)", args...)
	} else {
		for attempt := 1; ; attempt++ {
			err := cfg.OnFailure.Send(p.ctx, f)
			if err == nil {
				break
			}
			if p.ctx.Err() != nil {
				return errStopped
			}
			p.noteErr(fmt.Errorf("on-failure destination: %w", err))
			p.log.Warn("on-failure destination failed; retrying", "err", err, "attempt", attempt)
			if !backoff.Sleep(p.ctx, backoff.Delay(attempt, 100*time.Millisecond, 10*time.Second)) {
				return errStopped
			}
		}
		p.log.Warn("records given up on; sent to the on-failure destination", args...)
	}
	p.toDest.Add(int64(len(recs)))
	l.markDone(recs)
	return nil
}

// failure builds Lambda's failure document for recs, with their payload.
func (l *lane) failure(recs []*rec, condition string, invokes int, msg string) *Failure {
	p := l.p
	cfg := p.w.cfg
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	ev := &lambda.KinesisEvent{Records: make([]lambda.KinesisEventRecord, len(recs))}
	for i, r := range recs {
		ev.Records[i] = r.ev
	}
	f := &Failure{
		RequestContext: FailureRequestContext{
			RequestID:              requestID(),
			FunctionARN:            cfg.FunctionARN,
			Condition:              condition,
			ApproximateInvokeCount: invokes,
		},
		ResponseContext: FailureResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST"},
		Version:         "1.0",
		Timestamp:       stamp(p.w.now()),
		KinesisBatchInfo: KinesisBatchInfo{
			ShardID:                         p.shard,
			StartSequenceNumber:             recs[0].seq,
			EndSequenceNumber:               recs[len(recs)-1].seq,
			ApproximateArrivalOfFirstRecord: stamp(recs[0].arrival),
			ApproximateArrivalOfLastRecord:  stamp(recs[len(recs)-1].arrival),
			BatchSize:                       len(recs),
			StreamARN:                       p.w.streamARN,
		},
		Payload: ev,
	}
	if msg != "" {
		f.ResponseContext.FunctionError = "Unhandled"
		f.ResponseContext.ErrorMessage = msg
	}
	return f
}

// requestID returns a random UUID (version 4).
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// openWindow starts window w with empty state.
func (l *lane) openWindow(w time.Time) {
	l.win = w
	l.state = map[string]string{}
	l.winDone = nil
}

// closeWindow makes the final invocation of the open window, retried like
// a batch; when it succeeds (or is given up on) the window's records are
// done and the checkpoint may pass them.
func (l *lane) closeWindow() error {
	maxRetries := *l.p.w.cfg.MaximumRetryAttempts
	waits := 0
	for attempt := 1; ; attempt++ {
		if attempt > 1 && l.p.stopping() {
			return errStopped
		}
		_, err := l.invoke(nil, true)
		if errors.Is(err, errStopped) {
			return errStopped
		}
		if errors.Is(err, sink.ErrUnavailable) {
			waits++
			attempt--
			if l.p.stopping() || !backoff.Sleep(l.p.ctx, backoff.Delay(waits, 50*time.Millisecond, 5*time.Second)) {
				return errStopped
			}
			continue
		}
		waits = 0
		if err == nil {
			break
		}
		if maxRetries >= 0 && attempt > maxRetries {
			l.p.log.Warn("final invocation of window given up on", "window", l.win, "err", err)
			break
		}
		if !backoff.Sleep(l.p.ctx, backoff.Delay(attempt, 50*time.Millisecond, 5*time.Second)) {
			return errStopped
		}
	}
	l.p.tr.done(l.p.w.now(), l.winDone...)
	l.win = time.Time{}
	l.state = nil
	l.winDone = nil
	return nil
}
