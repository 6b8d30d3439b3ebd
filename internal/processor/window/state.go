package window

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/axiomhq/hyperloglog"

	"github.com/runnel-dev/runnel/internal/seqnum"
	"github.com/runnel-dev/runnel/internal/sink/object"
)

// agg is one group's aggregates in one window, on one shard (or merged):
// the event count and one acc per accumulator of the configuration.
type agg struct {
	group []string
	count int64
	accs  []acc
}

// acc accumulates one numeric field (sum, min, max) or one field's
// distinct values (hll).
type acc struct {
	sum, min, max float64
	hll           *hyperloglog.Sketch // distinct accumulators only
}

func newAgg(group []string, accums []accum) *agg {
	a := &agg{group: group, accs: make([]acc, len(accums))}
	for i, x := range accums {
		a.accs[i] = acc{min: math.Inf(1), max: math.Inf(-1)}
		if x.distinct {
			a.accs[i].hll = hyperloglog.New14()
		}
	}
	return a
}

// add counts one event: nums[i] is its number for a numeric accumulator
// i, distinct[i] its value for a distinct one.
func (a *agg) add(nums []float64, distinct [][]byte) {
	a.count++
	for i := range a.accs {
		c := &a.accs[i]
		if c.hll != nil {
			c.hll.Insert(distinct[i])
			continue
		}
		v := nums[i]
		c.sum += v
		c.min = min(c.min, v)
		c.max = max(c.max, v)
	}
}

// merge adds o into a (a's sketches are changed; o's are not).
func (a *agg) merge(o *agg) error {
	a.count += o.count
	for i := range a.accs {
		c, d := &a.accs[i], &o.accs[i]
		c.sum += d.sum
		c.min = min(c.min, d.min)
		c.max = max(c.max, d.max)
		if c.hll != nil && d.hll != nil {
			if err := c.hll.Merge(d.hll); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *agg) clone() *agg {
	c := &agg{group: a.group, count: a.count, accs: slices.Clone(a.accs)}
	for i := range c.accs {
		if c.accs[i].hll != nil {
			c.accs[i].hll = c.accs[i].hll.Clone()
		}
	}
	return c
}

// winKey identifies one group's window: its start (Unix nanoseconds) and
// its group values joined by groupSep.
type winKey struct {
	start int64
	group string
}

const groupSep = "\x1f"

func groupKey(vals []string) string { return strings.Join(vals, groupSep) }

// shardState is what one shard has contributed and how far it has been
// applied. It is persisted, whole, after every batch.
type shardState struct {
	id string
	// lastSeq and lastSub are the last applied record (lastSub -1 for a
	// record that is not part of a KPL aggregate); "" before any.
	lastSeq string
	lastSub int64
	// hasTime says maxEvent and wm are set (an event was applied).
	hasTime  bool
	maxEvent int64 // largest event time, Unix ns
	wm       int64 // watermark, Unix ns; never moves back
	late     int64 // late events routed away
	updates  int64 // late events that updated emitted windows
	windows  map[winKey]*agg
	// dirty are the starts of emitted windows that late events updated
	// (late: update): they are emitted again.
	dirty map[int64]bool
	// broken means the in-memory state may differ from the file (a
	// batch failed half way); it is reloaded before the next batch.
	broken bool
}

func newShardState(id string) *shardState {
	return &shardState{id: id, lastSub: -1, windows: map[winKey]*agg{}, dirty: map[int64]bool{}}
}

// after reports whether record (seq, sub) comes after the last applied.
func (s *shardState) after(seq string, sub int64) bool {
	if s.lastSeq == "" {
		return true
	}
	if c := seqnum.Compare(seq, s.lastSeq); c != 0 {
		return c > 0
	}
	return sub > s.lastSub
}

// The file layout of a shard's state. Version 1 (before named
// aggregates) held one numeric and one distinct accumulator in
// Sum/Min/Max and Distinct; version 2 has Accs, one per accumulator named
// in Accums.
type stateFile struct {
	Version   int          `json:"version"`
	Shard     string       `json:"shard"`
	LastSeq   string       `json:"lastSequenceNumber,omitempty"`
	LastSub   int64        `json:"lastSubSequenceNumber"`
	HasTime   bool         `json:"hasTime"`
	MaxEvent  int64        `json:"maxEventTimeNanos"`
	Watermark int64        `json:"watermarkNanos"`
	Late      int64        `json:"late"`
	Updates   int64        `json:"lateUpdates,omitempty"`
	Accums    []string     `json:"accumulators,omitempty"`
	Dirty     []int64      `json:"dirty,omitempty"`
	Windows   []windowFile `json:"windows"`
}

type windowFile struct {
	Start int64     `json:"start"`
	Group []string  `json:"group"`
	Count int64     `json:"count"`
	Accs  []accFile `json:"accs,omitempty"`
	// Version 1.
	Sum      float64 `json:"sum,omitempty"`
	Min      float64 `json:"min,omitempty"`
	Max      float64 `json:"max,omitempty"`
	Distinct []byte  `json:"distinct,omitempty"`
}

type accFile struct {
	Sum      float64 `json:"sum,omitempty"`
	Min      float64 `json:"min,omitempty"`
	Max      float64 `json:"max,omitempty"`
	Distinct []byte  `json:"distinct,omitempty"`
}

func shardFileName(dir, shard string) string {
	return filepath.Join(dir, "shard-"+strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(shard)+".json")
}

func accumNames(accums []accum) []string {
	names := make([]string, len(accums))
	for i, a := range accums {
		names[i] = a.String()
	}
	return names
}

// encode renders the state, leaving out windows ending at or before
// forget (emitted, and no longer kept for late updates). Every stored
// aggregate has count > 0, so min and max are finite.
func (s *shardState) encode(size, forget int64, accums []accum) ([]byte, error) {
	f := stateFile{Version: 2, Shard: s.id, LastSeq: s.lastSeq, LastSub: s.lastSub, HasTime: s.hasTime,
		MaxEvent: s.maxEvent, Watermark: s.wm, Late: s.late, Updates: s.updates, Accums: accumNames(accums),
		Windows: make([]windowFile, 0, len(s.windows))}
	for start := range s.dirty {
		f.Dirty = append(f.Dirty, start)
	}
	slices.Sort(f.Dirty)
	for k, a := range s.windows {
		if k.start+size <= forget {
			continue
		}
		w := windowFile{Start: k.start, Group: a.group, Count: a.count, Accs: make([]accFile, len(a.accs))}
		for i, c := range a.accs {
			if c.hll == nil {
				w.Accs[i] = accFile{Sum: c.sum, Min: c.min, Max: c.max}
			} else {
				b, err := c.hll.MarshalBinary()
				if err != nil {
					return nil, err
				}
				w.Accs[i].Distinct = b
			}
		}
		f.Windows = append(f.Windows, w)
	}
	return json.Marshal(f)
}

// loadShard reads a shard's state file; a missing file is a new shard.
// Windows ending at or before forget are left out.
func loadShard(path, id string, size, forget int64, accums []accum) (*shardState, error) {
	s := newShardState(id)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("window state %s: %w", path, err)
	}
	switch {
	case f.Version == 1:
		if len(accums) > 2 || (len(accums) == 2 && (accums[0].distinct || !accums[1].distinct)) {
			return nil, fmt.Errorf("window state %s was written for the short form (field, distinct), not these aggregates; remove the state directory to start over", path)
		}
	case f.Version == 2:
		if want := accumNames(accums); !slices.Equal(f.Accums, want) {
			return nil, fmt.Errorf("window state %s was written for other aggregates (%s, now %s); remove the state directory to start over",
				path, strings.Join(f.Accums, ", "), strings.Join(want, ", "))
		}
	default:
		return nil, fmt.Errorf("window state %s: unknown version %d", path, f.Version)
	}
	s.id, s.lastSeq, s.lastSub, s.hasTime, s.maxEvent, s.wm, s.late, s.updates = f.Shard, f.LastSeq, f.LastSub, f.HasTime, f.MaxEvent, f.Watermark, f.Late, f.Updates
	for _, start := range f.Dirty {
		s.dirty[start] = true
	}
	for _, w := range f.Windows {
		if w.Start+size <= forget {
			continue // emitted before the state was rewritten
		}
		a := &agg{group: w.Group, count: w.Count, accs: make([]acc, len(accums))}
		if w.Group == nil {
			a.group = []string{}
		}
		for i, x := range accums {
			af := accFile{Sum: w.Sum, Min: w.Min, Max: w.Max, Distinct: w.Distinct}
			if f.Version == 2 {
				if i >= len(w.Accs) {
					return nil, fmt.Errorf("window state %s: a window lacks accumulator %d", path, i)
				}
				af = w.Accs[i]
			}
			a.accs[i] = acc{sum: af.Sum, min: af.Min, max: af.Max}
			if x.distinct {
				a.accs[i].hll = hyperloglog.New14()
				if len(af.Distinct) > 0 {
					if err := a.accs[i].hll.UnmarshalBinary(af.Distinct); err != nil {
						return nil, fmt.Errorf("window state %s: distinct sketch: %w", path, err)
					}
				}
			}
		}
		s.windows[winKey{w.Start, groupKey(a.group)}] = a
	}
	return s, nil
}

// writeFileAtomic writes data to path so that after a crash path holds
// either its old content or data.
func writeFileAtomic(path string, data []byte) error {
	return object.WriteFile(path, func(w io.Writer) error { _, err := w.Write(data); return err })
}
