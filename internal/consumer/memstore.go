package consumer

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// Persistence saves the leases of a MemoryStore so they outlive the
// process. Put and Delete receive one changed lease at a time, so the cost
// of a change does not grow with the number of leases; calls for one key
// are serialized, calls for different keys may run concurrently.
type Persistence interface {
	Load(ctx context.Context) ([]Lease, error)
	Put(ctx context.Context, l Lease) error
	Delete(ctx context.Context, key string) error
}

// MemoryStore is a LeaseStore for workers in one process (for instance the
// pipelines of runnel serve), optionally persisted. It is safe for
// concurrent use. A change is persisted before it is visible, under a lock
// of its lease alone: a slow write delays no other lease.
type MemoryStore struct {
	mu      sync.Mutex
	leases  map[string]Lease
	keyMu   map[string]*sync.Mutex // serializes the writes of each lease
	persist Persistence            // may be nil
}

var _ LeaseStore = (*MemoryStore)(nil)

// NewMemoryStore returns a store holding the leases p loads, saving every
// change through p. A nil p keeps the leases in memory only.
func NewMemoryStore(ctx context.Context, p Persistence) (*MemoryStore, error) {
	s := &MemoryStore{leases: make(map[string]Lease), keyMu: make(map[string]*sync.Mutex), persist: p}
	if p != nil {
		ls, err := p.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading leases: %w", err)
		}
		for _, l := range ls {
			s.leases[l.Key] = l
		}
	}
	return s, nil
}

func cloneLease(l Lease) Lease {
	l.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	return l
}

// lockKey takes the write lock of one lease.
func (s *MemoryStore) lockKey(key string) func() {
	s.mu.Lock()
	m := s.keyMu[key]
	if m == nil {
		m = &sync.Mutex{}
		s.keyMu[key] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (s *MemoryStore) put(ctx context.Context, l Lease) error {
	if s.persist == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.persist.Put(ctx, l); err != nil {
		return fmt.Errorf("saving lease %s: %w", l.Key, err)
	}
	return nil
}

// ListLeases implements LeaseStore.
func (s *MemoryStore) ListLeases(ctx context.Context) ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		out = append(out, cloneLease(l))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// GetLease implements LeaseStore.
func (s *MemoryStore) GetLease(ctx context.Context, key string) (Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[key]
	if !ok {
		return Lease{}, ErrLeaseNotFound
	}
	return cloneLease(l), nil
}

// CreateLease implements LeaseStore.
func (s *MemoryStore) CreateLease(ctx context.Context, l Lease) error {
	defer s.lockKey(l.Key)()
	s.mu.Lock()
	_, ok := s.leases[l.Key]
	s.mu.Unlock()
	if ok {
		return ErrLeaseExists
	}
	l = cloneLease(l)
	if err := s.put(ctx, l); err != nil {
		return err
	}
	s.mu.Lock()
	s.leases[l.Key] = l
	s.mu.Unlock()
	return nil
}

// update applies fn to the stored lease with key, if cond accepts it,
// persists the result and makes it visible, under the lease's lock.
func (s *MemoryStore) update(ctx context.Context, key string, cond func(Lease) bool, fn func(*Lease)) (Lease, error) {
	defer s.lockKey(key)()
	s.mu.Lock()
	old, ok := s.leases[key]
	s.mu.Unlock()
	if !ok {
		return Lease{}, ErrLeaseNotFound
	}
	if !cond(old) {
		return Lease{}, ErrLeaseConflict
	}
	nl := cloneLease(old)
	fn(&nl)
	if err := s.put(ctx, nl); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	s.leases[key] = nl
	s.mu.Unlock()
	return cloneLease(nl), nil
}

func sameCounterOwner(l Lease) func(Lease) bool {
	return func(st Lease) bool { return st.Counter == l.Counter && st.Owner == l.Owner }
}

// TakeLease implements LeaseStore.
func (s *MemoryStore) TakeLease(ctx context.Context, l Lease, owner string, handOff bool) (Lease, error) {
	return s.update(ctx, l.Key, func(st Lease) bool { return st.Counter == l.Counter }, func(st *Lease) {
		if handOff && st.Owner != "" && st.Owner != owner {
			st.CheckpointOwner = st.Owner
		} else {
			st.CheckpointOwner = ""
		}
		if st.Owner != owner {
			st.OwnerSwitchesSinceCheckpoint++
		}
		st.Owner = owner
		st.Counter++
	})
}

// RenewLease implements LeaseStore.
func (s *MemoryStore) RenewLease(ctx context.Context, l Lease) (Lease, error) {
	return s.update(ctx, l.Key, sameCounterOwner(l), func(st *Lease) { st.Counter++ })
}

// UpdateCheckpoint implements LeaseStore.
func (s *MemoryStore) UpdateCheckpoint(ctx context.Context, l Lease, cp Checkpoint) (Lease, error) {
	return s.update(ctx, l.Key, sameCounterOwner(l), func(st *Lease) {
		st.Checkpoint = cp
		st.OwnerSwitchesSinceCheckpoint = 0
		st.Counter++
	})
}

// HandOff implements LeaseStore.
func (s *MemoryStore) HandOff(ctx context.Context, key, from string, cp *Checkpoint) (Lease, error) {
	return s.update(ctx, key, func(st Lease) bool { return from != "" && st.CheckpointOwner == from }, func(st *Lease) {
		if cp != nil {
			st.Checkpoint = *cp
			st.OwnerSwitchesSinceCheckpoint = 0
		}
		st.CheckpointOwner = ""
	})
}

// EvictLease implements LeaseStore.
func (s *MemoryStore) EvictLease(ctx context.Context, l Lease) (Lease, error) {
	return s.update(ctx, l.Key, sameCounterOwner(l), func(st *Lease) {
		st.Owner = ""
		st.CheckpointOwner = ""
		st.Counter++
	})
}

// DeleteLease implements LeaseStore.
func (s *MemoryStore) DeleteLease(ctx context.Context, l Lease) error {
	defer s.lockKey(l.Key)()
	s.mu.Lock()
	old, ok := s.leases[l.Key]
	s.mu.Unlock()
	if !ok {
		return ErrLeaseNotFound
	}
	if old.Counter != l.Counter {
		return ErrLeaseConflict
	}
	if s.persist != nil {
		if err := s.persist.Delete(ctx, l.Key); err != nil {
			return fmt.Errorf("deleting lease %s: %w", l.Key, err)
		}
	}
	s.mu.Lock()
	delete(s.leases, l.Key)
	s.mu.Unlock()
	return nil
}
