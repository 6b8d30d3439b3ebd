// Package sinktest holds what tests of sink users share.
package sinktest

import (
	"sync"

	"github.com/runnel-dev/runnel/internal/sink"
)

// Recorder is a sink.Reporter that records the waits reported to it. It
// is safe for concurrent use.
type Recorder struct {
	// OnBlocked, when set, is called at the first wait (for example to
	// end the invocation as soon as a wait is seen).
	OnBlocked func()

	mu        sync.Mutex
	blocked   []sink.Wait
	unblocked int
}

var _ sink.Reporter = (*Recorder)(nil)

// Blocked records w.
func (r *Recorder) Blocked(w sink.Wait) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocked = append(r.blocked, w)
	if r.OnBlocked != nil {
		r.OnBlocked()
		r.OnBlocked = nil
	}
}

// Unblocked counts an end of a wait.
func (r *Recorder) Unblocked() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unblocked++
}

// Waits returns the waits reported so far and how many ended.
func (r *Recorder) Waits() (blocked []sink.Wait, unblocked int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sink.Wait(nil), r.blocked...), r.unblocked
}
