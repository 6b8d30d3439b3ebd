package window

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/axiomhq/hyperloglog"

	"github.com/runnel-dev/runnel/internal/sink/object"
)

// agg is one group's aggregates in one window, on one shard (or merged).
type agg struct {
	group    []string
	count    int64
	sum      float64
	min, max float64
	distinct *hyperloglog.Sketch // nil unless Config.Distinct
}

func newAgg(group []string, distinct bool) *agg {
	a := &agg{group: group, min: math.Inf(1), max: math.Inf(-1)}
	if distinct {
		a.distinct = hyperloglog.New14()
	}
	return a
}

func (a *agg) add(v float64, distinct []byte) {
	a.count++
	a.sum += v
	a.min = min(a.min, v)
	a.max = max(a.max, v)
	if a.distinct != nil {
		a.distinct.Insert(distinct)
	}
}

// merge adds o into a (a's sketch is changed; o is not).
func (a *agg) merge(o *agg) error {
	a.count += o.count
	a.sum += o.sum
	a.min = min(a.min, o.min)
	a.max = max(a.max, o.max)
	if a.distinct != nil && o.distinct != nil {
		return a.distinct.Merge(o.distinct)
	}
	return nil
}

func (a *agg) clone() *agg {
	c := *a
	if a.distinct != nil {
		c.distinct = a.distinct.Clone()
	}
	return &c
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
	windows  map[winKey]*agg
	// broken means the in-memory state may differ from the file (a
	// batch failed half way); it is reloaded before the next batch.
	broken bool
}

func newShardState(id string) *shardState {
	return &shardState{id: id, lastSub: -1, windows: map[winKey]*agg{}}
}

// after reports whether record (seq, sub) comes after the last applied.
func (s *shardState) after(seq string, sub int64) bool {
	if s.lastSeq == "" {
		return true
	}
	if c := cmpSeq(seq, s.lastSeq); c != 0 {
		return c > 0
	}
	return sub > s.lastSub
}

// cmpSeq compares decimal sequence numbers as integers.
func cmpSeq(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// The file layout of a shard's state.
type stateFile struct {
	Version   int          `json:"version"`
	Shard     string       `json:"shard"`
	LastSeq   string       `json:"lastSequenceNumber,omitempty"`
	LastSub   int64        `json:"lastSubSequenceNumber"`
	HasTime   bool         `json:"hasTime"`
	MaxEvent  int64        `json:"maxEventTimeNanos"`
	Watermark int64        `json:"watermarkNanos"`
	Late      int64        `json:"late"`
	Windows   []windowFile `json:"windows"`
}

type windowFile struct {
	Start    int64    `json:"start"`
	Group    []string `json:"group"`
	Count    int64    `json:"count"`
	Sum      float64  `json:"sum"`
	Min      float64  `json:"min"`
	Max      float64  `json:"max"`
	Distinct []byte   `json:"distinct,omitempty"`
}

func shardFileName(dir, shard string) string {
	return filepath.Join(dir, "shard-"+strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(shard)+".json")
}

// encode renders the state, leaving out windows ending at or before
// emitted (already emitted), with min and max of an empty aggregate as 0
// (JSON has no infinities; count 0 never happens for a stored window).
func (s *shardState) encode(size, emitted int64) ([]byte, error) {
	f := stateFile{Version: 1, Shard: s.id, LastSeq: s.lastSeq, LastSub: s.lastSub, HasTime: s.hasTime,
		MaxEvent: s.maxEvent, Watermark: s.wm, Late: s.late, Windows: make([]windowFile, 0, len(s.windows))}
	for k, a := range s.windows {
		if k.start+size <= emitted {
			continue
		}
		w := windowFile{Start: k.start, Group: a.group, Count: a.count, Sum: a.sum, Min: a.min, Max: a.max}
		if a.distinct != nil {
			b, err := a.distinct.MarshalBinary()
			if err != nil {
				return nil, err
			}
			w.Distinct = b
		}
		f.Windows = append(f.Windows, w)
	}
	return json.Marshal(f)
}

// loadShard reads a shard's state file; a missing file is a new shard.
func loadShard(path, id string, size, emitted int64, distinct bool) (*shardState, error) {
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
	if f.Version != 1 {
		return nil, fmt.Errorf("window state %s: unknown version %d", path, f.Version)
	}
	s.id, s.lastSeq, s.lastSub, s.hasTime, s.maxEvent, s.wm, s.late = f.Shard, f.LastSeq, f.LastSub, f.HasTime, f.MaxEvent, f.Watermark, f.Late
	for _, w := range f.Windows {
		if w.Start+size <= emitted {
			continue // emitted before the state was rewritten
		}
		a := &agg{group: w.Group, count: w.Count, sum: w.Sum, min: w.Min, max: w.Max}
		if w.Group == nil {
			a.group = []string{}
		}
		if distinct {
			a.distinct = hyperloglog.New14()
			if len(w.Distinct) > 0 {
				if err := a.distinct.UnmarshalBinary(w.Distinct); err != nil {
					return nil, fmt.Errorf("window state %s: distinct sketch: %w", path, err)
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
