// Package counterstore is runnel's own counter store: named integer counters per
// pipeline, kept in a pebble database of their own, for the count
// processor's local store (store: local) when there is no Redis.
//
// A batch of increments is applied exactly once per shard, as the Redis
// path does it: each shard of each pipeline has a marker, the position of
// the last record counted, written in the same committed batch as the
// counters it moved. A batch wholly at or before the marker is skipped; a
// batch that straddles it is refused with the marker, so the caller sends
// again only the records after it.
//
// Positions are sequence numbers ("seq"), or within a KPL aggregate
// "seq/sub"; sequence numbers are decimal strings without leading zeros
// and compare as integers.
package counterstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/runnel-dev/runnel/internal/storage"
)

// Result is what Apply did.
type Result int

// Results of Apply.
const (
	// Skipped: the marker is at or past the batch's last record.
	Skipped Result = iota
	// Applied: the increments were added and the marker moved.
	Applied
	// Partial: the marker lies within the batch; nothing was written, and
	// the caller applies again the records after the marker.
	Partial
)

// ErrClosed is returned by a Store's methods after Close.
var ErrClosed = errors.New("counterstore: store is closed")

// Store is an open counter store. Its methods are safe for concurrent use;
// Apply calls are serialized.
type Store struct {
	dir string
	mu  sync.Mutex // serializes Apply and guards eng against Close
	eng *storage.Engine
}

// Open opens or creates the store in dir.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	eng, err := storage.Open(context.Background(), storage.Options{Dir: dir, Logger: logger,
		MemTableSize: storage.SmallMemTableSize, CacheSize: storage.SmallCacheSize})
	if err != nil {
		return nil, fmt.Errorf("opening counts store: %w", err)
	}
	return &Store{dir: dir, eng: eng}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng == nil {
		return nil
	}
	err := s.eng.Close()
	s.eng = nil
	return err
}

// Metadata names: "c/<pipeline>/<key>" holds a counter (decimal),
// "m/<pipeline>/<shard>" a shard's marker. Pipeline names hold no '/'.
func counterName(pipeline, key string) string  { return "c/" + pipeline + "/" + key }
func markerName(pipeline, shard string) string { return "m/" + pipeline + "/" + shard }

// Apply adds sums to the pipeline's counters and moves the shard's marker
// to last, in one committed batch, unless the marker already is at or past
// last (Skipped) or at or past first (Partial, nothing written). It returns
// the marker found ("" when the shard has none).
func (s *Store) Apply(pipeline, shard, first, last string, sums map[string]int64) (Result, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng == nil {
		return 0, "", ErrClosed
	}
	mark, err := s.eng.GetMeta(markerName(pipeline, shard))
	if err != nil {
		return 0, "", err
	}
	if mark != nil {
		m := string(mark)
		if ComparePositions(m, last) >= 0 {
			return Skipped, m, nil
		}
		if ComparePositions(m, first) >= 0 {
			return Partial, m, nil
		}
	}
	b := s.eng.NewBatch()
	var buf []byte
	for key, incr := range sums {
		name := counterName(pipeline, key)
		v, err := s.eng.GetMeta(name)
		if err != nil {
			return 0, "", err
		}
		var n int64
		if v != nil {
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return 0, "", fmt.Errorf("counterstore: counter %q holds %q: %w", key, v, err)
			}
		}
		buf = strconv.AppendInt(buf[:0], n+incr, 10)
		b.SetMeta(name, buf)
	}
	b.SetMeta(markerName(pipeline, shard), []byte(last))
	if err := s.eng.Commit(b); err != nil {
		return 0, "", fmt.Errorf("counterstore: %w", err)
	}
	return Applied, string(mark), nil
}

// Marker returns the position of the last record of shard counted by
// pipeline, "" when none.
func (s *Store) Marker(pipeline, shard string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng == nil {
		return "", ErrClosed
	}
	v, err := s.eng.GetMeta(markerName(pipeline, shard))
	return string(v), err
}

// Count is one counter's value.
type Count struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// Summary is a pipeline's counters at one moment: the largest, and the
// number and sum of all.
type Summary struct {
	Top   []Count `json:"top"`
	Keys  int     `json:"keys"`
	Total int64   `json:"total"`
}

// scan calls fn for every counter of pipeline, in key order. Apply waits
// meanwhile, so the counters seen are those of whole batches.
func (s *Store) scan(pipeline string, fn func(Count) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng == nil {
		return ErrClosed
	}
	prefix := counterName(pipeline, "")
	return s.eng.ScanMeta(prefix, func(name string, v []byte) error {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("counterstore: counter %q holds %q: %w", name[len(prefix):], v, err)
		}
		return fn(Count{Key: name[len(prefix):], Value: n})
	})
}

// All returns every counter of pipeline, in key order.
func (s *Store) All(pipeline string) ([]Count, error) {
	var out []Count
	err := s.scan(pipeline, func(c Count) error { out = append(out, c); return nil })
	return out, err
}

// Top returns the n counters of pipeline with the largest values, largest
// first (equal values in key order), and the number and sum of all.
func (s *Store) Top(pipeline string, n int) (Summary, error) {
	var sum Summary
	err := s.scan(pipeline, func(c Count) error {
		sum.Keys++
		sum.Total += c.Value
		if n <= 0 {
			return nil
		}
		// Keep the n largest in order; n is small, insertion is enough.
		i, _ := slices.BinarySearchFunc(sum.Top, c, ByValue)
		if i < n {
			sum.Top = slices.Insert(sum.Top, i, c)
			if len(sum.Top) > n {
				sum.Top = sum.Top[:n]
			}
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	return sum, nil
}

// ByValue orders counts largest value first, then by key.
func ByValue(a, b Count) int {
	if c := cmp.Compare(b.Value, a.Value); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}

// ComparePositions compares positions "seq" or "seq/sub": sequence numbers
// as integers (a longer one is larger), then sub-sequence numbers.
func ComparePositions(a, b string) int {
	as, asub := splitPosition(a)
	bs, bsub := splitPosition(b)
	if len(as) != len(bs) {
		return cmp.Compare(len(as), len(bs))
	}
	if c := strings.Compare(as, bs); c != 0 {
		return c
	}
	return cmp.Compare(asub, bsub)
}

func splitPosition(p string) (string, int64) {
	seq, sub, ok := strings.Cut(p, "/")
	if !ok {
		return seq, 0
	}
	n, _ := strconv.ParseInt(sub, 10, 64)
	return seq, n
}

// Shared opens one Store per directory and hands out references to it, so
// that every pipeline of a process (and the server answering for them)
// uses the same open database: pebble allows one opener per directory.
// The zero value is ready to use.
type Shared struct {
	mu     sync.Mutex
	stores map[string]*sharedStore
}

type sharedStore struct {
	store *Store
	refs  int
}

// Open returns the store of dir, opening it on first use, and a release
// function; the store closes when its last reference is released.
func (sh *Shared) Open(dir string, logger *slog.Logger) (*Store, func() error, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.stores == nil {
		sh.stores = map[string]*sharedStore{}
	}
	ss := sh.stores[dir]
	if ss == nil {
		st, err := Open(dir, logger)
		if err != nil {
			return nil, nil, err
		}
		ss = &sharedStore{store: st}
		sh.stores[dir] = ss
	}
	ss.refs++
	var once sync.Once
	release := func() error {
		var err error
		once.Do(func() {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			ss.refs--
			if ss.refs == 0 {
				delete(sh.stores, dir)
				err = ss.store.Close()
			}
		})
		return err
	}
	return ss.store, release, nil
}
