package stream

import (
	"context"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/storage"
)

// Resharding closes shards and opens children in their place, as Kinesis
// does. Each change runs on the commit goroutine (see onCommitter), so every
// record put before it lands in the parent, below the parent's ending
// sequence number, and every record put after it lands in a child. Readers
// that finish a closed shard get no next iterator and the list of its
// children, and read children only after their parents (the KCL rule).

// childSpec describes one shard to open.
type childSpec struct {
	start, end       u128
	parent, adjacent string
}

// reshard closes the shards in closing and opens children. The caller
// holds metaMu and has validated the change.
func (s *Service) reshard(ctx context.Context, st *streamState, closing []*shardState, children []childSpec, whole bool) error {
	var err error
	qerr := s.onCommitter(ctx, func() { err = s.applyReshard(st, closing, children, whole) })
	if qerr != nil {
		return qerr
	}
	return err
}

// applyReshard runs on the commit goroutine. When the reshard is the
// whole of a layout change (a split or merge), the stream's pending
// change is cleared in the same write, so a crash cannot leave it to be
// made again.
func (s *Service) applyReshard(st *streamState, closing []*shardState, children []childSpec, whole bool) error {
	if st.deleted.Load() {
		return s.notFound(st.name)
	}
	now := s.now()
	ms := uint64(now.UnixMilli())
	s.mu.RLock()
	m := st.meta
	s.mu.RUnlock()
	m.Shards = slices.Clone(m.Shards)
	endings := make([]u128, len(closing))
	for i, sh := range closing {
		ending := sh.startSeq
		if sh.counter > 0 {
			if last := makeSeq(sh.lastMS, sh.index, sh.counter-1); last.cmp(ending) > 0 {
				ending = last
			}
		}
		endings[i] = ending
		for j := range m.Shards {
			if m.Shards[j].Index == sh.index {
				m.Shards[j].EndingSeq = ending.String()
				m.Shards[j].Closed = &now
			}
		}
	}
	var opened []*shardState
	for _, c := range children {
		idx := m.NextShardIndex
		m.NextShardIndex++
		sm := shardMeta{
			Index: idx, StartingHashKey: c.start.String(), EndingHashKey: c.end.String(),
			StartingSeq: seqFloor(ms, idx).String(), Parent: c.parent, AdjacentParent: c.adjacent,
			Created: now,
		}
		m.Shards = append(m.Shards, sm)
		sh, err := newShardState(sm)
		if err != nil {
			return err
		}
		sh.lastMS = ms
		opened = append(opened, sh)
	}
	if whole {
		m.PendingLayout = nil
	}
	if err := s.writeMeta(&m, 0); err != nil {
		return err
	}
	s.mu.Lock()
	st.meta = m
	for i, sh := range closing {
		sh.ending.Store(&endings[i])
		sh.closed = now
	}
	st.shards = append(slices.Clone(st.shards), opened...)
	st.open = openShards(st.shards)
	s.mu.Unlock()
	for _, sh := range closing {
		sh.wake()
	}
	return nil
}

// openShard returns the open shard named id, or the Kinesis error for a
// missing or closed one. The caller holds s.mu.
func (s *Service) openShard(st *streamState, id, op string) (*shardState, error) {
	sh := st.shard(id)
	if sh == nil {
		return nil, newError(ErrNotFound, "Could not find shard %s in stream %s.", id, s.InAccount(st.name))
	}
	if sh.ending.Load() != nil {
		return nil, newError(ErrInvalidArgument, "Shard %s in stream %s has already been merged or split, and thus is not eligible for %s.", id, s.InAccount(st.name), op)
	}
	return sh, nil
}

// checkShardLimit returns ErrLimitExceeded when opening extra more shards
// in the stream named name would pass the limit of its account and
// region. The caller holds s.mu.
func (s *Service) checkShardLimit(name string, extra int) error {
	total := 0
	for _, st := range s.byName {
		if s.sameScope(st.name, name) {
			total += len(st.open)
		}
	}
	if total+extra > s.cfg.ShardLimit {
		region, account, _ := s.SplitName(name)
		return newError(ErrLimitExceeded,
			"This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d.",
			account, region, total, s.cfg.ShardLimit, extra)
	}
	return nil
}

// SplitShard closes a shard and opens two children: one from its starting
// hash key to newStartingHashKey-1, one from newStartingHashKey to its
// ending hash key.
func (s *Service) SplitShard(ctx context.Context, name, shardID, newStartingHashKey string) error {
	_, err := s.changeLayout(ctx, name, layoutChange{Op: opSplit, Shard: shardID, HashKey: newStartingHashKey})
	return err
}

// split validates a split and, when apply is set, makes it. The caller
// holds metaMu.
func (s *Service) split(ctx context.Context, st *streamState, shardID, newStartingHashKey string, apply bool) error {
	name := st.name
	s.mu.RLock()
	sh, err := s.openShard(st, shardID, "splitting")
	if err == nil {
		err = s.checkShardLimit(st.name, 1)
	}
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	// As on Kinesis, each child gets at least two hash keys: the new
	// starting key lies above StartingHashKey+1 and below EndingHashKey.
	at, perr := parseU128(newStartingHashKey)
	if perr != nil || at.cmp(sh.start.add1()) <= 0 || at.cmp(sh.end) >= 0 {
		return newError(ErrInvalidArgument,
			"NewStartingHashKey %s used in SplitShard() on shard %s in stream %s is not both greater than one plus the shard's StartingHashKey %s and less than the shard's EndingHashKey %s.",
			newStartingHashKey, shardID, s.InAccount(name), sh.start, sh.end)
	}
	if !apply {
		return nil
	}
	return s.reshard(ctx, st, []*shardState{sh}, []childSpec{
		{start: sh.start, end: at.sub1(), parent: sh.id},
		{start: at, end: sh.end, parent: sh.id},
	}, true)
}

// MergeShards closes two adjacent shards and opens one child covering both
// hash-key ranges, with shardID as its parent and adjacentShardID as its
// adjacent parent.
func (s *Service) MergeShards(ctx context.Context, name, shardID, adjacentShardID string) error {
	_, err := s.changeLayout(ctx, name, layoutChange{Op: opMerge, Shard: shardID, Adjacent: adjacentShardID})
	return err
}

// merge validates a merge and, when apply is set, makes it. The caller
// holds metaMu.
func (s *Service) merge(ctx context.Context, st *streamState, shardID, adjacentShardID string, apply bool) error {
	name := st.name
	s.mu.RLock()
	a, err := s.openShard(st, shardID, "merging")
	var b *shardState
	if err == nil {
		b, err = s.openShard(st, adjacentShardID, "merging")
	}
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	lo, hi := a, b
	if b.start.cmp(a.start) < 0 {
		lo, hi = b, a
	}
	if a == b || lo.end.add1() != hi.start {
		return newError(ErrInvalidArgument, "Shards %s and %s in stream %s are not an adjacent pair of shards eligible for merging", shardID, adjacentShardID, s.InAccount(name))
	}
	if !apply {
		return nil
	}
	return s.reshard(ctx, st, []*shardState{a, b}, []childSpec{
		{start: lo.start, end: hi.end, parent: a.id, adjacent: b.id},
	}, true)
}

// UpdateShardCount reshards a stream to target shards of equal hash-key
// ranges (UNIFORM_SCALING), through the same splits and merges a client
// could make, so every child has its parents. It returns the open shard
// count before the change.
func (s *Service) UpdateShardCount(ctx context.Context, name string, target int) (int, error) {
	return s.changeLayout(ctx, name, layoutChange{Op: opCount, Target: target})
}

// updateShardCount validates a change of shard count and, when apply is
// set, makes it. The caller holds metaMu.
func (s *Service) updateShardCount(ctx context.Context, st *streamState, target int, apply bool) (int, error) {
	name := st.name
	s.mu.RLock()
	current := len(st.open)
	var err error
	if target > 2*current || 2*target < current {
		err = newError(ErrLimitExceeded, "UpdateShardCount of stream %s from %d to %d shards: the target must be between half and double the current open shard count.", s.InAccount(name), current, target)
	} else if target > current {
		err = s.checkShardLimit(st.name, target-current)
	}
	noop := target == current && uniform(st, target)
	s.mu.RUnlock()
	if err != nil || noop || !apply {
		return current, err
	}
	starts := splitHashRange(target)
	// Split every open shard that straddles a target boundary.
	for _, b := range starts[1:] {
		s.mu.RLock()
		sh := st.route(b)
		s.mu.RUnlock()
		if sh.start != b {
			if err := s.reshard(ctx, st, []*shardState{sh}, []childSpec{
				{start: sh.start, end: b.sub1(), parent: sh.id},
				{start: b, end: sh.end, parent: sh.id},
			}, false); err != nil {
				return current, err
			}
		}
	}
	// Merge the shards inside each target range, left to right.
	for i, start := range starts {
		end := maxU128
		if i+1 < len(starts) {
			end = starts[i+1].sub1()
		}
		for {
			s.mu.RLock()
			first := st.route(start)
			var next *shardState
			if first.end.cmp(end) < 0 {
				next = st.route(first.end.add1())
			}
			s.mu.RUnlock()
			if next == nil {
				break
			}
			if err := s.reshard(ctx, st, []*shardState{first, next}, []childSpec{
				{start: first.start, end: next.end, parent: first.id, adjacent: next.id},
			}, false); err != nil {
				return current, err
			}
		}
	}
	return current, nil
}

// uniform reports whether st's open shards already split the hash space
// into n equal ranges.
func uniform(st *streamState, n int) bool {
	starts := splitHashRange(n)
	if len(st.open) != n {
		return false
	}
	for i, sh := range st.open {
		if sh.start != starts[i] {
			return false
		}
	}
	return true
}

// childShards returns the children of sh. The caller holds s.mu.
func (st *streamState) childShards(sh *shardState) []ChildShard {
	var out []ChildShard
	for _, c := range st.shards {
		if c.parent == sh.id || c.adjacentParent == sh.id {
			parents := []string{c.parent}
			if c.adjacentParent != "" {
				parents = append(parents, c.adjacentParent)
			}
			out = append(out, ChildShard{ShardID: c.id, ParentShards: parents, StartingHashKey: c.start.String(), EndingHashKey: c.end.String()})
		}
	}
	return out
}

// expireClosedShards forgets closed shards whose every record is past the
// retention period, as Kinesis does.
func (s *Service) expireClosedShards(now time.Time) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.RLock()
	var streams []*streamState
	for _, st := range s.byID {
		streams = append(streams, st)
	}
	s.mu.RUnlock()
	for _, st := range streams {
		s.mu.RLock()
		cutoff := now.Add(-time.Duration(st.meta.RetentionHours) * time.Hour)
		var keep []*shardState
		for _, sh := range st.shards {
			if sh.ending.Load() == nil || sh.closed.After(cutoff) {
				keep = append(keep, sh)
			}
		}
		m := st.meta
		s.mu.RUnlock()
		if len(keep) == len(st.shards) || st.deleted.Load() {
			continue
		}
		m.Shards = nil
		var forgotten []uint32
		for _, sm := range st.meta.Shards {
			if slices.ContainsFunc(keep, func(sh *shardState) bool { return sh.index == sm.Index }) {
				m.Shards = append(m.Shards, sm)
			} else {
				forgotten = append(forgotten, sm.Index)
			}
		}
		// The shard's records go with it, in the same batch: every one is
		// past the horizon, and nothing would trim them later.
		err := s.writeMeta(&m, 0, func(b *storage.Batch) {
			for _, idx := range forgotten {
				b.DeleteShardRecords(m.ID, idx)
			}
		})
		if err != nil {
			s.log.Warn("forgetting expired closed shards; retrying at the next interval", "stream", s.LogName(m.Name), "err", err)
			continue
		}
		s.mu.Lock()
		st.meta = m
		st.shards = keep
		s.mu.Unlock()
	}
}
