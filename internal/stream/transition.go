package stream

import "time"

// Kinesis takes time to create, reshard, update and delete a stream; the
// stream is CREATING, UPDATING or DELETING meanwhile, and clients wait for
// it (the SDK waiters, the CLI's `wait stream-exists`). runnel needs no such
// time, but with Config.TransitionDelay it reports the same states for that
// long, so code that waits on them is exercised as it would be on AWS.
// Settings take effect at once; the reported status and the refusal of
// further changes (ResourceInUseException) are delayed. Shard layout
// changes wait for the end of UPDATING, as on Kinesis (see layout.go).

// transition is a state a stream reports until a moment.
type transition struct {
	status string
	until  time.Time
}

// statusLocked returns a stream's current status. The caller holds s.mu.
func (s *Service) statusLocked(st *streamState) string {
	if st.meta.PendingLayout != nil {
		return StatusUpdating
	}
	if st.transition.status != "" && s.now().Before(st.transition.until) {
		return st.transition.status
	}
	return StatusActive
}

// beginTransition marks a stream status (CREATING, UPDATING) for the
// configured delay. The caller holds s.mu for writing.
func (s *Service) beginTransition(st *streamState, status string) {
	if s.cfg.TransitionDelay > 0 {
		st.transition = transition{status: status, until: s.now().Add(s.cfg.TransitionDelay)}
	}
}

// markUpdating reports a stream UPDATING after a change, for the delay.
func (s *Service) markUpdating(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.byName[name]; ok {
		s.beginTransition(st, StatusUpdating)
	}
}

// requireActive returns ResourceInUseException, worded as Kinesis words
// it, for a stream that is not ACTIVE, and ResourceNotFoundException for a
// missing one.
func (s *Service) requireActive(name string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(name)
	if err != nil {
		return err
	}
	if status := s.statusLocked(st); status != StatusActive {
		return newError(ErrInUse, "Stream %s not ACTIVE, instead in state %s", s.InAccount(name), status)
	}
	return nil
}

// deletingStream is a deleted stream still reported as DELETING.
type deletingStream struct {
	desc  *Description
	until time.Time
}

// deletingLocked returns the description of a stream being deleted, or
// nil. The caller holds s.mu.
func (s *Service) deletingLocked(name string) *Description {
	d, ok := s.deleting[name]
	if !ok || !s.now().Before(d.until) {
		return nil
	}
	desc := *d.desc
	desc.Status = StatusDeleting
	return &desc
}

// notCreatingLocked refuses reads and writes of a stream still CREATING
// as Kinesis does: the stream is not found until it is ACTIVE
// (ResourceNotFoundException, which PutRecord and GetShardIterator
// document; ResourceInUseException is not an error they may return). The
// caller holds s.mu.
func (s *Service) notCreatingLocked(st *streamState) error {
	if status := s.statusLocked(st); status == StatusCreating {
		return newError(ErrNotFound, "Stream %s not found.", s.InAccount(st.name))
	}
	return nil
}
