package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
)

// Persistence saves the leases of a MemoryStore so they outlive the
// process. Save receives every lease after each change, in key order;
// calls are serialized.
type Persistence interface {
	Load(ctx context.Context) ([]Lease, error)
	Save(ctx context.Context, leases []Lease) error
}

// MemoryStore is a LeaseStore for workers in one process (for instance the
// pipelines of runnel serve), optionally persisted. It is safe for
// concurrent use.
type MemoryStore struct {
	mu      sync.Mutex
	leases  map[string]Lease
	persist Persistence // may be nil
}

var _ LeaseStore = (*MemoryStore)(nil)

// NewMemoryStore returns a store holding the leases p loads, saving every
// change through p. A nil p keeps the leases in memory only.
func NewMemoryStore(ctx context.Context, p Persistence) (*MemoryStore, error) {
	s := &MemoryStore{leases: make(map[string]Lease), persist: p}
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

// NewFileStore returns a MemoryStore persisted as JSON in the file at path
// (created if missing, replaced atomically on every change).
func NewFileStore(ctx context.Context, path string) (*MemoryStore, error) {
	return NewMemoryStore(ctx, &FilePersistence{Path: path})
}

func cloneLease(l Lease) Lease {
	l.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	return l
}

// save persists the leases; the caller holds s.mu. On failure the change
// is rolled back by the caller.
func (s *MemoryStore) save(ctx context.Context) error {
	if s.persist == nil {
		return nil
	}
	out := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		out = append(out, cloneLease(l))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if err := s.persist.Save(ctx, out); err != nil {
		return fmt.Errorf("saving leases: %w", err)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.leases[l.Key]; ok {
		return ErrLeaseExists
	}
	s.leases[l.Key] = cloneLease(l)
	if err := s.save(ctx); err != nil {
		delete(s.leases, l.Key)
		return err
	}
	return nil
}

// update applies fn to the stored lease with key under the lock, if cond
// accepts it, and persists the result.
func (s *MemoryStore) update(ctx context.Context, key string, cond func(Lease) bool, fn func(*Lease)) (Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.leases[key]
	if !ok {
		return Lease{}, ErrLeaseNotFound
	}
	if !cond(old) {
		return Lease{}, ErrLeaseConflict
	}
	nl := cloneLease(old)
	fn(&nl)
	s.leases[key] = nl
	if err := s.save(ctx); err != nil {
		s.leases[key] = old
		return Lease{}, err
	}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.leases[l.Key]
	if !ok {
		return ErrLeaseNotFound
	}
	if old.Counter != l.Counter {
		return ErrLeaseConflict
	}
	delete(s.leases, l.Key)
	if err := s.save(ctx); err != nil {
		s.leases[l.Key] = old
		return err
	}
	return nil
}

// FilePersistence keeps leases as a JSON array in one file, replaced
// atomically (write to a temporary file, sync, rename).
type FilePersistence struct {
	Path string
}

var _ Persistence = (*FilePersistence)(nil)

// Load implements Persistence; a missing file holds no leases.
func (f *FilePersistence) Load(ctx context.Context) ([]Lease, error) {
	b, err := os.ReadFile(f.Path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ls []Lease
	if err := json.Unmarshal(b, &ls); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return ls, nil
}

// Save implements Persistence.
func (f *FilePersistence) Save(ctx context.Context, leases []Lease) error {
	b, err := json.MarshalIndent(leases, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(f.Path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Path)
}
