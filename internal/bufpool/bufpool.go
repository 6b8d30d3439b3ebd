// Package bufpool keeps byte buffers for reuse: on a hot path whose buffers
// are large (request bodies, the data they carry, answers), a fresh buffer
// costs more to allocate and clear than to fill.
package bufpool

import "sync"

// Pool holds buffers of at most a set capacity. It is safe for concurrent
// use.
type Pool struct {
	max int
	p   sync.Pool // of *[]byte
}

// New returns a pool that keeps buffers of up to max bytes of capacity.
func New(max int) *Pool { return &Pool{max: max} }

// Get returns an empty buffer, nil when the pool has none. Its memory is
// the caller's until the caller gives it back with Put.
func (p *Pool) Get() []byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}

// Put gives b to a later Get, unless it is nil or larger than the pool
// keeps. Nothing may use b after.
func (p *Pool) Put(b []byte) {
	if b != nil && cap(b) <= p.max {
		p.p.Put(&b)
	}
}
