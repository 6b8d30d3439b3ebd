package consumer

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/runnel-dev/runnel/internal/backoff"
)

// Worker is one member of a consumer application: it takes its fair share
// of the application's shard leases, processes those shards, and gives
// them up gracefully when another worker takes them or when it stops.
//
// Lease protocol. A worker renews its leases every RenewInterval. Another
// worker considers a lease expired when it has seen the lease's counter
// unchanged for LeaseDuration (by its own clock, as the KCL does), and
// may then take it. A worker short of its fair share,
// ceil(unfinished shards / live workers), takes unowned and expired
// leases first, then steals from the most loaded worker; a steal is a
// graceful hand-off: the thief becomes owner and the victim becomes
// checkpoint owner, and on its next renewal the victim finishes the batch
// in flight, checkpoints it, stops the shard and clears the checkpoint
// owner; only then does the thief start (or after LeaseDuration, if the
// victim is gone). A worker that cannot renew stops processing a shard
// before LeaseDuration has passed since its last successful renewal, so
// before anyone can consider the lease expired.
type Worker struct {
	cfg Config
	log *slog.Logger

	streamARN   string
	streamName  string
	consumerARN string // the FanOut stream consumer's, set before shards start

	wake chan struct{} // asks the lease taker for a pass now

	mu       sync.Mutex
	held     map[string]*heldLease
	seen     map[string]observation // lease counters as last observed
	leases   []Lease                // last lease list read
	lastErr  string
	started  bool
	stopping bool
	shardsWG sync.WaitGroup

	// counters are the figures of every shard this worker has processed,
	// kept after its lease moves on so Status (and the exit summary)
	// report what was done; lostLeases says when and why a shard was last
	// stopped because its lease was lost.
	counters   map[string]*shardCounters
	lostLeases map[string]string
	leasesLost atomic.Int64
}

// observation is when a lease's counter was last seen to change.
type observation struct {
	counter int64
	owner   string
	at      time.Time
}

// NewWorker validates cfg and returns a Worker; it does no I/O.
func NewWorker(cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer configuration: %w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.WorkerID == "" {
		cfg.WorkerID = defaultWorkerID()
	}
	return &Worker{
		cfg:        cfg,
		log:        cfg.Logger.With("application", cfg.Application, "stream", cfg.Stream, "worker", cfg.WorkerID),
		wake:       make(chan struct{}, 1),
		held:       make(map[string]*heldLease),
		seen:       make(map[string]observation),
		counters:   make(map[string]*shardCounters),
		lostLeases: make(map[string]string),
	}, nil
}

func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	var b [4]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ID returns the worker id used in leases.
func (w *Worker) ID() string { return w.cfg.WorkerID }

func (w *Worker) now() time.Time { return w.cfg.Now() }

// poke asks the lease taker for a pass without waiting for TakeInterval.
func (w *Worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Worker) setErr(err error) {
	w.mu.Lock()
	w.lastErr = err.Error()
	w.mu.Unlock()
}

// Run processes the stream until ctx is done, then stops every shard
// gracefully (the batch in flight finishes and is checkpointed) and
// releases its leases so other workers take them at once. It returns nil
// after a graceful stop, or the error that kept it from starting (the
// stream cannot be described). Errors while running (reads, lease store,
// handler) are retried, logged and shown in Status, never fatal.
// Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("consumer: Worker.Run called twice")
	}
	w.started = true
	w.mu.Unlock()

	if err := w.describe(ctx); err != nil {
		return err
	}
	if w.cfg.FanOut != "" {
		if err := w.registerConsumer(ctx); err != nil {
			return err
		}
	}
	w.log.Info("worker starting", "streamArn", w.streamARN)

	// The renewer keeps running while shards stop, so their leases stay
	// valid during a graceful stop; it ends when every shard has.
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		w.renewLoop(renewCtx)
	}()

	w.takeLoop(ctx)

	// Graceful stop: every shard finishes its batch in flight and
	// checkpoints, then its lease is released.
	w.mu.Lock()
	held := make([]*heldLease, 0, len(w.held))
	for _, h := range w.held {
		held = append(held, h)
	}
	w.mu.Unlock()
	for _, h := range held {
		h.proc.stop()
	}
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	w.shardsWG.Wait()
	stopRenew()
	<-renewDone
	w.log.Info("worker stopped")
	return nil
}

// describe resolves the stream's name and ARN.
func (w *Worker) describe(ctx context.Context) error {
	in := &kinesis.DescribeStreamSummaryInput{}
	if strings.HasPrefix(w.cfg.Stream, "arn:") {
		in.StreamARN = aws.String(w.cfg.Stream)
	} else {
		in.StreamName = aws.String(w.cfg.Stream)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		out, err := w.cfg.Kinesis.DescribeStreamSummary(ctx, in)
		if err == nil {
			w.mu.Lock()
			w.streamARN = aws.ToString(out.StreamDescriptionSummary.StreamARN)
			w.streamName = aws.ToString(out.StreamDescriptionSummary.StreamName)
			w.mu.Unlock()
			return nil
		}
		lastErr = err
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) || ctx.Err() != nil {
			break
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt+1, 100*time.Millisecond, 2*time.Second)) {
			break
		}
	}
	return fmt.Errorf("describing stream %s: %w", w.cfg.Stream, lastErr)
}

// streamRef fills the stream name or ARN of a request, as configured.
func (w *Worker) streamRef() (name, arn *string) {
	if strings.HasPrefix(w.cfg.Stream, "arn:") {
		return nil, aws.String(w.streamARN)
	}
	return aws.String(w.streamName), nil
}

// takeLoop syncs shards and takes leases until ctx is done.
func (w *Worker) takeLoop(ctx context.Context) {
	var lastSync time.Time
	take := time.NewTicker(w.cfg.TakeInterval)
	defer take.Stop()
	for {
		if w.now().Sub(lastSync) >= w.cfg.ShardSyncInterval || lastSync.IsZero() {
			if err := w.syncShards(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				w.log.Warn("shard sync failed", "err", err)
				w.setErr(err)
			} else {
				lastSync = w.now()
			}
		}
		if err := w.takeLeases(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("taking leases failed", "err", err)
			w.setErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-take.C:
		case <-w.wake:
		}
	}
}

// syncShards creates a lease for every shard of the stream without one.
func (w *Worker) syncShards(ctx context.Context) error {
	var shards []types.Shard
	name, arn := w.streamRef()
	in := &kinesis.ListShardsInput{StreamName: name, StreamARN: arn}
	for pages := 0; pages < 10000; pages++ {
		out, err := w.cfg.Kinesis.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("listing shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	leases, err := w.cfg.Leases.ListLeases(ctx)
	if err != nil {
		return fmt.Errorf("listing leases: %w", err)
	}
	have := make(map[string]bool, len(leases))
	for _, l := range leases {
		have[l.Key] = true
	}
	initial := len(leases) == 0
	listed := make(map[string]bool, len(shards))
	for _, s := range shards {
		listed[aws.ToString(s.ShardId)] = true
	}
	// A finished shard that the stream no longer lists (aged out) needs
	// its lease no more: its children treat a missing parent as finished.
	for _, l := range leases {
		if l.Checkpoint.ShardEnd() && !listed[l.Key] && len(shards) > 0 {
			if err := w.cfg.Leases.DeleteLease(ctx, l); err == nil {
				w.log.Info("lease of an aged-out shard deleted", "shard", l.Key)
			}
		}
	}
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		if have[id] {
			continue
		}
		var parents []string
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p := aws.ToString(p); p != "" {
				parents = append(parents, p)
			}
		}
		closed := s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
		cp := w.initialCheckpoint(closed)
		if !initial {
			for _, p := range parents {
				if have[p] {
					// A child of a shard this application read is read
					// from its start.
					cp = Checkpoint{SequenceNumber: SentinelTrimHorizon}
				}
			}
		}
		l := Lease{Key: id, Checkpoint: cp, ParentShardIDs: parents}
		if err := w.cfg.Leases.CreateLease(ctx, l); err != nil && !errors.Is(err, ErrLeaseExists) {
			return fmt.Errorf("creating lease %s: %w", id, err)
		}
		have[id] = true
		w.log.Debug("lease created", "shard", id, "checkpoint", cp.String(), "parents", parents)
	}
	return nil
}

// initialCheckpoint is the checkpoint of a new lease for a shard without a
// parent the application read.
func (w *Worker) initialCheckpoint(closed bool) Checkpoint {
	switch w.cfg.StartingPosition {
	case Latest:
		if closed {
			return Checkpoint{SequenceNumber: SentinelShardEnd}
		}
		return Checkpoint{SequenceNumber: SentinelLatest}
	case AtTimestamp:
		return Checkpoint{SequenceNumber: SentinelAtTimestamp}
	}
	return Checkpoint{SequenceNumber: SentinelTrimHorizon}
}

// createChildLeases creates the leases of a finished shard's children.
func (w *Worker) createChildLeases(ctx context.Context, children []types.ChildShard) {
	for _, c := range children {
		l := Lease{
			Key:            aws.ToString(c.ShardId),
			Checkpoint:     Checkpoint{SequenceNumber: SentinelTrimHorizon},
			ParentShardIDs: c.ParentShards,
		}
		if err := w.cfg.Leases.CreateLease(ctx, l); err != nil && !errors.Is(err, ErrLeaseExists) {
			w.log.Warn("creating child lease failed; the next shard sync retries", "shard", l.Key, "err", err)
		}
	}
}

// takeLeases reads the lease table and takes leases up to this worker's
// fair share.
func (w *Worker) takeLeases(ctx context.Context) error {
	leases, err := w.cfg.Leases.ListLeases(ctx)
	if err != nil {
		return fmt.Errorf("listing leases: %w", err)
	}
	now := w.now()
	byKey := make(map[string]Lease, len(leases))
	for _, l := range leases {
		byKey[l.Key] = l
	}

	w.mu.Lock()
	w.leases = leases
	for _, l := range leases {
		o, ok := w.seen[l.Key]
		if !ok || o.counter != l.Counter || o.owner != l.Owner {
			w.seen[l.Key] = observation{counter: l.Counter, owner: l.Owner, at: now}
		}
	}
	for k := range w.seen {
		if _, ok := byKey[k]; !ok {
			delete(w.seen, k)
		}
	}
	me := w.cfg.WorkerID
	expired := func(l Lease) bool {
		return l.Owner == "" || now.Sub(w.seen[l.Key].at) > w.cfg.LeaseDuration
	}
	var candidates []Lease
	for _, l := range leases {
		if l.Checkpoint.ShardEnd() || !parentsDone(l, byKey) {
			continue
		}
		candidates = append(candidates, l)
	}
	counts := map[string]int{me: 0}
	var available []Lease
	for _, l := range candidates {
		if _, mine := w.held[l.Key]; mine {
			counts[me]++
			continue
		}
		if l.Owner == me || expired(l) {
			// Leases recorded as ours but not held (a restart under the
			// same id) are as good as expired.
			available = append(available, l)
			continue
		}
		counts[l.Owner]++
	}
	w.mu.Unlock()

	if len(candidates) == 0 {
		return nil
	}
	target := (len(candidates) + len(counts) - 1) / len(counts)
	need := target - counts[me]
	if need <= 0 {
		return nil
	}
	rand.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
	var errs []error
	for _, l := range available {
		if need == 0 {
			break
		}
		if err := w.take(ctx, l, false); err != nil {
			errs = append(errs, err)
			continue
		}
		need--
	}
	// Steal from the most loaded worker while it has more than the target.
	for need > 0 {
		victim, most := "", 0
		for owner, n := range counts {
			if owner != me && (n > most || n == most && owner < victim) {
				victim, most = owner, n
			}
		}
		if victim == "" || most <= target {
			break
		}
		var theirs []Lease
		for _, l := range candidates {
			if l.Owner == victim && l.CheckpointOwner == "" {
				theirs = append(theirs, l)
			}
		}
		counts[victim]--
		if len(theirs) == 0 {
			continue
		}
		l := theirs[rand.IntN(len(theirs))]
		if err := w.take(ctx, l, true); err != nil {
			errs = append(errs, err)
			continue
		}
		w.log.Info("lease stolen for balance", "shard", l.Key, "from", victim, "target", target)
		need--
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// parentsDone reports whether every parent of l is finished or has no
// lease (trimmed, or never read by this application).
func parentsDone(l Lease, byKey map[string]Lease) bool {
	for _, p := range l.ParentShardIDs {
		if pl, ok := byKey[p]; ok && !pl.Checkpoint.ShardEnd() {
			return false
		}
	}
	return true
}

// take takes l and starts processing its shard.
func (w *Worker) take(ctx context.Context, l Lease, handOff bool) error {
	sent := w.now()
	nl, err := w.cfg.Leases.TakeLease(ctx, l, w.cfg.WorkerID, handOff)
	if errors.Is(err, ErrLeaseConflict) {
		return nil // someone else was quicker; the next pass sees it
	}
	if err != nil {
		return fmt.Errorf("taking lease %s: %w", l.Key, err)
	}
	h := &heldLease{w: w, lease: nl, takenAt: sent}
	h.renewedAt.Store(&sent)
	w.mu.Lock()
	c := w.counters[nl.Key]
	if c == nil {
		c = &shardCounters{}
		w.counters[nl.Key] = c
	}
	w.mu.Unlock()
	h.proc = newShardProc(w, h, c)
	w.mu.Lock()
	if old, ok := w.held[nl.Key]; ok {
		// Cannot happen (a held lease is never available), but never run
		// two processors for one shard.
		w.mu.Unlock()
		old.proc.kill()
		return fmt.Errorf("lease %s already held", nl.Key)
	}
	w.held[nl.Key] = h
	w.mu.Unlock()
	w.log.Info("lease taken", "shard", nl.Key, "counter", nl.Counter, "checkpoint", nl.Checkpoint.String(), "handOffFrom", nl.CheckpointOwner)
	w.shardsWG.Add(1)
	go func() {
		defer w.shardsWG.Done()
		h.proc.run()
		w.release(h)
	}()
	return nil
}

// release drops a lease whose processor has ended: after a graceful stop
// it is evicted (so any worker may take it at once) or handed off; after
// losing it nothing is written.
func (w *Worker) release(h *heldLease) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration)
	defer cancel()
	p := h.proc
	h.mu.Lock()
	l := h.lease
	h.mu.Unlock()
	lost := h.lostReason() != ""
	switch {
	case p.handingOff():
		var cp *Checkpoint
		if h.valid() {
			cp = p.finalCheckpoint()
		}
		if _, err := w.cfg.Leases.HandOff(ctx, l.Key, w.cfg.WorkerID, cp); err != nil {
			w.log.Warn("hand-off failed; the new owner starts after a lease duration", "shard", l.Key, "err", err)
		} else {
			w.log.Info("lease handed off", "shard", l.Key, "checkpoint", cpString(cp))
		}
	case !lost && h.valid():
		if _, err := w.cfg.Leases.EvictLease(ctx, l); err != nil {
			w.log.Warn("releasing lease failed; it expires instead", "shard", l.Key, "err", err)
		} else {
			w.log.Info("lease released", "shard", l.Key)
		}
	case lost:
		// Not renewed in time: nobody else may have it yet, so release it
		// for the next owner at once. After a take by another worker the
		// conditional eviction simply fails.
		if _, err := w.cfg.Leases.EvictLease(ctx, l); err == nil {
			w.log.Info("lost lease released", "shard", l.Key)
		}
	}
	w.mu.Lock()
	if w.held[l.Key] == h {
		delete(w.held, l.Key)
	}
	w.mu.Unlock()
	w.poke()
}

func cpString(cp *Checkpoint) string {
	if cp == nil {
		return ""
	}
	return cp.String()
}

// renewLoop renews held leases every RenewInterval until ctx is done.
// Each renewal runs on its own, bounded by the lease's validity (at least
// one RenewInterval), so a slow or hanging lease-store call delays no
// other lease; a lease whose renewal is still in flight is skipped until
// it returns.
func (w *Worker) renewLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.RenewInterval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		held := make([]*heldLease, 0, len(w.held))
		for _, h := range w.held {
			held = append(held, h)
		}
		w.mu.Unlock()
		for _, h := range held {
			if !h.renewing.CompareAndSwap(false, true) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer h.renewing.Store(false)
				// A renewal is worth waiting for while the lease is
				// still valid, and at least one interval.
				deadline := h.validUntil()
				if d := w.now().Add(w.cfg.RenewInterval); deadline.Before(d) {
					deadline = d
				}
				rctx, cancel := context.WithDeadline(ctx, deadline)
				defer cancel()
				h.renew(rctx)
			}()
		}
	}
}

// heldLease is a lease this worker holds, with the processor of its shard.
// mu serializes the worker's writes to the lease, since each increments
// the counter the next one is conditional on.
type heldLease struct {
	w    *Worker
	proc *shardProc

	// renewedAt is when the last successful take or renewal was sent, by
	// Config.Now (time.Now: with its monotonic reading, so a step of the
	// wall clock changes no validity); lost holds why the lease was lost,
	// once it is. Both are read without mu, so invocations never wait for
	// a lease write.
	renewedAt atomic.Pointer[time.Time]
	lost      atomic.Pointer[string]
	renewing  atomic.Bool // a renewal is in flight

	mu      sync.Mutex
	lease   Lease
	takenAt time.Time
}

// validUntil is when this worker must have stopped processing the shard
// unless it renews the lease: a tenth of the lease duration before any
// other worker may see it expired.
func (h *heldLease) validUntil() time.Time {
	if h.lostReason() != "" {
		return time.Time{}
	}
	return h.renewedAt.Load().Add(h.w.cfg.LeaseDuration - h.w.cfg.LeaseDuration/10)
}

// lostReason says why the lease was lost, "" while it is not.
func (h *heldLease) lostReason() string {
	if r := h.lost.Load(); r != nil {
		return *r
	}
	return ""
}

func (h *heldLease) valid() bool { return h.w.now().Before(h.validUntil()) }

func (h *heldLease) current() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// renew renews the lease once, noticing a loss or a hand-off request.
func (h *heldLease) renew(ctx context.Context) {
	w := h.w
	h.mu.Lock()
	if h.lostReason() != "" {
		h.mu.Unlock()
		return
	}
	sent := w.now()
	nl, err := w.cfg.Leases.RenewLease(ctx, h.lease)
	if err == nil {
		h.lease = nl
		h.renewedAt.Store(&sent)
		h.mu.Unlock()
		return
	}
	key := h.lease.Key
	h.mu.Unlock()
	if !errors.Is(err, ErrLeaseConflict) && !errors.Is(err, ErrLeaseNotFound) {
		w.log.Warn("renewing lease failed", "shard", key, "err", err)
		w.setErr(err)
		if !h.valid() {
			h.lose(fmt.Sprintf("lease not renewed in time (last error: %v)", err))
		}
		return
	}
	h.onConflict(ctx, err)
}

// onConflict handles a conditional write that found the lease changed:
// either another worker stole it with a hand-off, and the shard stops
// gracefully, or the lease is lost and the shard stops at once.
func (h *heldLease) onConflict(ctx context.Context, cause error) {
	w := h.w
	key := h.current().Key
	cur, err := w.cfg.Leases.GetLease(ctx, key)
	if err == nil && cur.Owner != w.cfg.WorkerID && cur.CheckpointOwner == w.cfg.WorkerID {
		// Stolen with a hand-off: finish the batch in flight, stop, then
		// checkpoint and clear the checkpoint owner (release does). The
		// processor keeps its deadline, so it stops before the new owner
		// gives up waiting, one lease duration after its take.
		if h.proc.requestHandOff(cur.Owner) {
			w.log.Info("lease taken over; handing off", "shard", key, "to", cur.Owner)
			// The new owner starts one lease duration after its take
			// whatever happens here: an invocation still running then
			// is abandoned, as for any lease lost.
			deadline := h.validUntil()
			time.AfterFunc(max(deadline.Sub(w.now()), 0), func() {
				if !h.proc.ended() {
					h.lose("lease handed off to " + cur.Owner + " and the batch in flight did not finish before its hand-off deadline")
				}
			})
		}
		return
	}
	owner := cur.Owner
	if owner == "" {
		owner = "nobody"
	}
	h.lose(fmt.Sprintf("lease taken by %s (%v)", owner, cause))
}

// lose marks the lease lost for reason and stops its shard at once,
// loudly: the batch in flight is abandoned without a checkpoint (the next
// owner handles it again), a WARN is logged, the worker's lost-lease count
// (a metric) grows and Status shows the reason.
func (h *heldLease) lose(reason string) {
	if !h.lost.CompareAndSwap(nil, &reason) {
		return
	}
	w := h.w
	w.leasesLost.Add(1)
	w.mu.Lock()
	w.lostLeases[h.proc.shard] = w.now().UTC().Format(time.RFC3339) + " " + reason
	w.mu.Unlock()
	w.log.Warn("lease lost; batch in flight abandoned without checkpoint, shard released for its next owner", "shard", h.proc.shard, "reason", reason)
	h.proc.noteErr(errors.New("lease lost: " + reason))
	h.proc.kill()
}

// checkpoint writes cp to the lease, conditional on this worker still
// holding it.
func (h *heldLease) checkpoint(ctx context.Context, cp Checkpoint) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lostReason() != "" {
		return ErrLeaseConflict
	}
	if !h.w.now().Before(h.validUntil()) {
		return errors.New("lease not renewed in time")
	}
	nl, err := h.w.cfg.Leases.UpdateCheckpoint(ctx, h.lease, cp)
	if err != nil {
		return err
	}
	h.lease = nl
	return nil
}

// Status returns a snapshot of the worker. It is safe to call at any time
// from any goroutine.
func (w *Worker) Status() Status {
	w.mu.Lock()
	leases := w.leases
	held := make(map[string]*heldLease, len(w.held))
	for k, h := range w.held {
		held[k] = h
	}
	counters := make(map[string]*shardCounters, len(w.counters))
	for k, c := range w.counters {
		counters[k] = c
	}
	lostWhy := make(map[string]string, len(w.lostLeases))
	for k, r := range w.lostLeases {
		lostWhy[k] = r
	}
	st := Status{
		Application: w.cfg.Application,
		Stream:      w.cfg.Stream,
		StreamARN:   w.streamARN,
		WorkerID:    w.cfg.WorkerID,
		Held:        len(w.held),
		LastError:   w.lastErr,
		Stopping:    w.stopping,
		LeasesLost:  w.leasesLost.Load(),
	}
	w.mu.Unlock()

	byKey := make(map[string]Lease, len(leases))
	for _, l := range leases {
		byKey[l.Key] = l
	}
	for k, h := range held {
		byKey[k] = h.current()
	}
	// Shards this worker processed whose lease is gone from the table
	// (a finished shard aged out) still count in the totals.
	for k := range counters {
		if _, ok := byKey[k]; !ok {
			byKey[k] = Lease{Key: k}
		}
	}
	now := w.now()
	for _, l := range byKey {
		s := ShardStatus{
			ShardID:        l.Key,
			Owner:          l.Owner,
			Checkpoint:     l.Checkpoint.String(),
			ParentShardIDs: l.ParentShardIDs,
			LeaseCounter:   l.Counter,
		}
		switch {
		case l.Checkpoint.ShardEnd():
			s.State = ShardFinished
		case held[l.Key] != nil:
			s.State = ShardRunning
			if held[l.Key].proc.waitingHandOff() {
				s.State = ShardHandOff
			}
		case !parentsDone(l, byKey):
			s.State = ShardWaitingParents
		case l.Owner == "":
			s.State = ShardUnowned
		default:
			s.State = ShardOwned
		}
		if c := counters[l.Key]; c != nil {
			c.fill(&s)
		}
		s.LeaseLost = lostWhy[l.Key]
		if h := held[l.Key]; h != nil {
			h.proc.fillStatus(&s, now)
			st.RecordsBehind += s.RecordsBehind
			st.MillisBehindLatest = max(st.MillisBehindLatest, s.MillisBehindLatest)
		}
		st.Shards = append(st.Shards, s)
	}
	sort.Slice(st.Shards, func(i, j int) bool { return st.Shards[i].ShardID < st.Shards[j].ShardID })
	return st
}
