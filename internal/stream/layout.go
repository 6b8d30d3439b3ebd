package stream

import (
	"context"
	"errors"
	"time"
)

// Shard layout changes (SplitShard, MergeShards, UpdateShardCount) follow
// Kinesis's state machine. Without a transition delay a change is made at
// once. With Config.TransitionDelay the request is validated and answered,
// the change is persisted with the stream as pending, and the stream
// reports UPDATING with its old shards, which take every put and read, as
// on Kinesis; the children appear when the change is made, which is when
// the stream returns to ACTIVE. settleLoop makes due changes; a change
// pending at a restart is made when the engine opens, so an accepted
// change is never lost.

// Layout change operations.
const (
	opSplit = "split"
	opMerge = "merge"
	opCount = "count"
)

// layoutChange is a shard layout change as requested, and as persisted
// while pending.
type layoutChange struct {
	Op       string `json:"op"`
	Shard    string `json:"shard,omitempty"`
	Adjacent string `json:"adjacent,omitempty"`
	HashKey  string `json:"hashKey,omitempty"`
	Target   int    `json:"target,omitempty"`
}

// changeLayout validates c and makes it at once or, under a transition
// delay, persists it to make when the stream's UPDATING time is over. It
// returns the open shard count before the change.
func (s *Service) changeLayout(ctx context.Context, name string, c layoutChange) (int, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if err := s.requireActive(name); err != nil {
		return 0, err
	}
	s.mu.RLock()
	st, err := s.lookup(name)
	s.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	delayed := s.cfg.TransitionDelay > 0
	prev, err := s.makeLayoutChange(ctx, st, c, !delayed)
	if err != nil || !delayed {
		return prev, err
	}
	if ctx.Err() != nil {
		return prev, context.Cause(ctx)
	}
	s.mu.RLock()
	m := st.meta
	s.mu.RUnlock()
	m.PendingLayout = &c
	if err := s.writeMeta(&m, 0); err != nil {
		return prev, err
	}
	s.mu.Lock()
	st.meta = m
	s.beginTransition(st, StatusUpdating)
	s.mu.Unlock()
	select {
	case s.settleKick <- struct{}{}:
	default:
	}
	return prev, nil
}

// makeLayoutChange validates c against st's current layout and, when apply
// is set, makes it. The caller holds metaMu.
func (s *Service) makeLayoutChange(ctx context.Context, st *streamState, c layoutChange, apply bool) (int, error) {
	s.mu.RLock()
	current := len(st.open)
	s.mu.RUnlock()
	switch c.Op {
	case opSplit:
		return current, s.split(ctx, st, c.Shard, c.HashKey, apply)
	case opMerge:
		return current, s.merge(ctx, st, c.Shard, c.Adjacent, apply)
	case opCount:
		return s.updateShardCount(ctx, st, c.Target, apply)
	}
	return current, newError(ErrInvalidArgument, "unknown shard layout change %q", c.Op)
}

// settleLoop makes pending layout changes when they fall due.
func (s *Service) settleLoop() {
	defer s.wg.Done()
	// Close ends a change being made (storage refuses it then anyway).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stopRet:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.stopRet:
			return
		case <-s.settleKick:
		case <-t.C:
		}
		wait := s.settleLayouts(ctx)
		if wait <= 0 {
			wait = time.Hour
		}
		t.Reset(wait)
	}
}

// settleLayouts makes every pending layout change that is due and returns
// how long until the next one is, 0 when none is pending.
func (s *Service) settleLayouts(ctx context.Context) time.Duration {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	now := s.now()
	var due []*streamState
	var next time.Duration
	s.mu.RLock()
	for _, st := range s.byID {
		if st.meta.PendingLayout == nil {
			continue
		}
		if wait := st.transition.until.Sub(now); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		due = append(due, st)
	}
	s.mu.RUnlock()
	for _, st := range due {
		if err := s.settleLayout(ctx, st); err != nil {
			s.log.Warn("making a pending shard layout change; the stream stays UPDATING until it is made", "stream", s.LogName(st.name), "err", err)
			if next == 0 || time.Second < next {
				next = time.Second
			}
		}
	}
	return next
}

// settleLayout makes st's pending layout change and clears it. A change
// that no longer applies (which the refusal of changes while UPDATING
// should make impossible) is dropped with a warning; a storage failure
// leaves it pending for the next attempt. The caller holds metaMu.
func (s *Service) settleLayout(ctx context.Context, st *streamState) error {
	if st.deleted.Load() {
		return nil
	}
	s.mu.RLock()
	c := *st.meta.PendingLayout
	s.mu.RUnlock()
	if _, err := s.makeLayoutChange(ctx, st, c, true); err != nil {
		if st.deleted.Load() {
			return nil
		}
		if !errors.Is(err, ErrInvalidArgument) && !errors.Is(err, ErrLimitExceeded) && !errors.Is(err, ErrNotFound) {
			return err
		}
		s.log.Warn("dropping a pending shard layout change that no longer applies", "stream", s.LogName(st.name), "op", c.Op, "err", err)
	}
	// A split or merge clears the change in the write that makes it
	// (applyReshard); a dropped change, or a shard count change (made in
	// steps, and resumed if replayed), is cleared here.
	s.mu.RLock()
	m := st.meta
	s.mu.RUnlock()
	if m.PendingLayout != nil {
		m.PendingLayout = nil
		if err := s.writeMeta(&m, 0); err != nil {
			return err
		}
		s.mu.Lock()
		st.meta = m
		s.mu.Unlock()
	}
	s.mu.RLock()
	open := len(st.open)
	s.mu.RUnlock()
	s.log.Info("shard layout change made", "stream", s.LogName(st.name), "op", c.Op, "open_shards", open)
	return nil
}
