package counterstore

import (
	"path/filepath"
	"sync"
	"testing"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apply(t *testing.T, s *Store, shard, first, last string, sums map[string]int64) (Result, string) {
	t.Helper()
	res, mark, err := s.Apply("p", shard, first, last, sums)
	if err != nil {
		t.Fatal(err)
	}
	return res, mark
}

func wantCounts(t *testing.T, s *Store, want map[string]int64) {
	t.Helper()
	all, err := s.All("p")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range all {
		got[c.Key] = c.Value
	}
	if len(got) != len(want) {
		t.Fatalf("counters %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("counters %v, want %v", got, want)
		}
	}
}

func TestApplyExactlyOnce(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()

	if res, mark := apply(t, s, "shard-0", "100", "105", map[string]int64{"a": 2, "b": 1}); res != Applied || mark != "" {
		t.Fatalf("first batch: %v %q", res, mark)
	}
	// The same batch again (a retry after a crash) is skipped.
	if res, mark := apply(t, s, "shard-0", "100", "105", map[string]int64{"a": 2, "b": 1}); res != Skipped || mark != "105" {
		t.Fatalf("replayed batch: %v %q", res, mark)
	}
	// A batch overlapping the marker is refused with it, writing nothing.
	if res, mark := apply(t, s, "shard-0", "103", "110", map[string]int64{"a": 100}); res != Partial || mark != "105" {
		t.Fatalf("overlapping batch: %v %q", res, mark)
	}
	wantCounts(t, s, map[string]int64{"a": 2, "b": 1})
	// Its part after the marker is counted.
	if res, _ := apply(t, s, "shard-0", "106", "110", map[string]int64{"a": 1, "c": 4}); res != Applied {
		t.Fatalf("rest of the overlapping batch: %v", res)
	}
	// Another shard has a marker of its own; a longer sequence number is larger.
	if res, _ := apply(t, s, "shard-1", "99", "99", map[string]int64{"a": 1}); res != Applied {
		t.Fatalf("other shard: %v", res)
	}
	if res, _ := apply(t, s, "shard-0", "99", "1000", map[string]int64{"a": 1}); res != Partial {
		t.Fatalf("longer sequence number after the marker: %v", res)
	}
	// Sub-sequence numbers within one aggregate.
	if res, _ := apply(t, s, "shard-1", "120", "120/3", map[string]int64{"d": 4}); res != Applied {
		t.Fatal(res)
	}
	if res, mark := apply(t, s, "shard-1", "120/2", "120/3", map[string]int64{"d": 2}); res != Skipped || mark != "120/3" {
		t.Fatal(res, mark)
	}
	if res, _ := apply(t, s, "shard-1", "120/4", "121", map[string]int64{"d": 1}); res != Applied {
		t.Fatal(res)
	}
	wantCounts(t, s, map[string]int64{"a": 4, "b": 1, "c": 4, "d": 5})
	if m, err := s.Marker("p", "shard-1"); err != nil || m != "121" {
		t.Fatalf("marker %q %v", m, err)
	}
	// Another pipeline's counters are apart.
	if _, _, err := s.Apply("other", "shard-0", "1", "1", map[string]int64{"a": 7}); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, map[string]int64{"a": 4, "b": 1, "c": 4, "d": 5})
}

func TestRestartKeepsTotals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "counts")
	s := open(t, dir)
	apply(t, s, "shard-0", "1", "5", map[string]int64{"x": 5, "y": 1})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Apply("p", "shard-0", "6", "6", nil); err != ErrClosed {
		t.Fatalf("Apply after Close: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	if res, _ := apply(t, s, "shard-0", "1", "5", map[string]int64{"x": 5, "y": 1}); res != Skipped {
		t.Fatalf("batch replayed after restart: %v", res)
	}
	apply(t, s, "shard-0", "6", "7", map[string]int64{"x": 2})
	wantCounts(t, s, map[string]int64{"x": 7, "y": 1})
}

func TestTop(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	apply(t, s, "s", "1", "1", map[string]int64{"a": 3, "b": 9, "c": 3, "d": 1, "e": 5})
	sum, err := s.Top("p", 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []Count{{"b", 9}, {"e", 5}, {"a", 3}}
	if sum.Keys != 5 || sum.Total != 21 || len(sum.Top) != 3 {
		t.Fatalf("summary %+v", sum)
	}
	for i := range want {
		if sum.Top[i] != want[i] {
			t.Fatalf("top %v, want %v", sum.Top, want)
		}
	}
}

// Concurrent batches of many shards count every increment exactly once.
func TestConcurrentShards(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	var wg sync.WaitGroup
	for sh := range 4 {
		wg.Go(func() {
			for i := 1; i <= 50; i++ {
				pos := []byte("1000")
				pos = append(pos, byte('0'+i/10), byte('0'+i%10))
				// Each batch is sent twice, as after a lost acknowledgement.
				for range 2 {
					if _, _, err := s.Apply("p", "shard-"+string(rune('0'+sh)), string(pos), string(pos), map[string]int64{"k": 1}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	wantCounts(t, s, map[string]int64{"k": 200})
}

func TestShared(t *testing.T) {
	var sh Shared
	dir := t.TempDir()
	a, relA, err := sh.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, relB, err := sh.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two stores for one directory")
	}
	if err := relA(); err != nil {
		t.Fatal(err)
	}
	_ = relA() // a second release does nothing
	apply(t, b, "s", "1", "1", map[string]int64{"k": 1})
	if err := relB(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Apply("p", "s", "2", "2", nil); err != ErrClosed {
		t.Fatalf("store open after its last release: %v", err)
	}
}
