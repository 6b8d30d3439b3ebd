// Package window is the window built-in processor: event-time tumbling
// and sliding windows, grouped by any number of fields, each result
// carrying the named aggregates the configuration asks for (count, and
// sum, min, max, avg or an approximate distinct count over any fields),
// emitted when a window closes to any sink: files, S3 objects, a
// DynamoDB table, a Redis hash or a stream.
//
// # Watermarks and lateness
//
// Each shard has a watermark: the largest event time applied from it minus
// AllowedLateness. It never moves back. A shard that delivers nothing for
// IdleTimeout (wall clock) has its watermark moved forward by the wall time
// elapsed since its last batch, so an idle shard does not hold windows open
// forever. A window closes when the watermark of every shard that has
// delivered an event passes its end; then the shards' partial aggregates
// are merged and emitted. An event is late when every window it belongs to
// ends at or before its shard's watermark (or before the last emission):
// by default it is counted and handed to the pipeline's on-failure
// destination with the reason ErrLate, never dropped silently. With late:
// update it is added to its windows instead, as long as they closed less
// than KeepClosed ago (the shards keep their partial aggregates that
// long), and the windows it changed are emitted again, whole; older ones
// are rejected as before. A sliding-window event that is late for some of
// its windows counts in the others.
//
// # State and restarts
//
// Every batch's effect is written, before the batch is acknowledged, to a
// file per shard in the state directory (atomically: a synced temporary
// file renamed over the old one): the shard's open windows, its watermark
// and the last applied sequence number. A batch delivered again after a
// crash skips the records at or before that sequence number, so nothing is
// counted twice. Results are written under keys derived from the window
// and the group (a file per window, a hash field, an item key), then the
// end of the last emitted window is recorded; a crash between the two
// emits the same results again, overwriting them. A window updated by a
// late event is marked in its shard's file with the event, and the mark
// cleared once the update is written, so an update is neither lost nor
// counted twice. A stream output cannot overwrite: there a crash or an
// update repeats a result, each with the same "id".
//
// The state is local to one runnel run (its state directory); run one
// worker per window pipeline, with parallelization 1 (records of a shard
// in order).
package window

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/sink"
)

// ErrLate marks an event whose windows had closed when it arrived.
var ErrLate = errors.New("late event")

// ErrMissingField marks an event without a field the windows need.
var ErrMissingField = errors.New("missing field")

// Builtin is the window processor for pipelines.yaml.
var Builtin = pipeline.Builtin{
	Doc:     "event-time tumbling or sliding windows grouped by fields (count, sum, min, max, avg, approximate distinct), emitted when they close",
	Options: Spec,
	New: func(ctx context.Context, env pipeline.BuiltinEnv) (lambda.Handler, error) {
		c, err := Spec.DecodeMap(env.Options)
		if err != nil {
			return nil, err
		}
		if c.StateDir == "" {
			if env.StateDir == "" {
				return nil, errors.New("stateDir: is required (the runner has no state directory)")
			}
			c.StateDir = filepath.Join(env.StateDir, env.Pipeline+".window")
		}
		out, err := newOutput(ctx, c.Output)
		if err != nil {
			return nil, err
		}
		p, err := New(c, Env{Output: out, Reject: env.Reject, Logger: env.Logger, Shards: env.Shards})
		if err != nil {
			_ = out.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		p.Start()
		return p, nil
	},
}

// Sink receives the results of closed windows. Write must be idempotent
// for the same results (they are written again after a crash) and return
// only once they are stored.
type Sink interface {
	Write(ctx context.Context, results []Result) error
	Close(ctx context.Context) error
}

// Env is what a Processor is built with besides its Config.
type Env struct {
	Output Sink
	// Reject receives records that cannot be used (do not decode, lack a
	// field) and late events, with the reason. Required.
	Reject func(ctx context.Context, rec *lambda.KinesisEventRecord, reason error) error
	Logger *slog.Logger
	// Now is the wall clock (idle shards); default time.Now.
	Now func() time.Time
	// Shards lists the source stream's open shards; it is called before
	// the first batch is applied. A window closes only once each of them
	// has delivered an event past its end (or has been idle for
	// IdleTimeout), so a shard whose lease this worker has not taken yet
	// cannot be left out of a window. Optional: without it only the
	// shards seen count.
	Shards func(ctx context.Context) ([]string, error)
}

// Processor is the window processor's handler. It is safe for concurrent
// use; batches of different shards are applied one at a time.
type Processor struct {
	cfg    Config
	p      parsed
	size   int64 // ns
	slide  int64
	late   int64
	dir    string
	out    Sink
	retry  *sink.Retry // writes to out
	reject func(ctx context.Context, rec *lambda.KinesisEventRecord, reason error) error
	log    *slog.Logger
	now    func() time.Time

	mu     sync.Mutex
	shards map[string]*shardState
	active map[string]time.Time // wall time of each shard's last batch
	// expected are shards of the stream not yet seen, with the wall time
	// the wait for them began (see Env.Shards).
	expected map[string]time.Time
	// listShards is Env.Shards until it has answered once.
	listShards func(ctx context.Context) ([]string, error)
	// emitted is the end of the last emitted windows (Unix ns): every
	// window ending at or before it has been emitted.
	emitted    int64
	hasEmitted bool

	started  bool
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

var _ lambda.Handler = (*Processor)(nil)

const emittedFile = "emitted.json"

// New opens (creating) the state directory and loads the state of every
// shard in it.
func New(c Config, env Env) (*Processor, error) {
	p, err := c.parse()
	if err != nil {
		return nil, err
	}
	if c.StateDir == "" {
		return nil, errors.New("stateDir: is required")
	}
	if env.Output == nil || env.Reject == nil {
		return nil, errors.New("window: an output and a reject function are required")
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	w := &Processor{
		cfg: c, p: p, size: int64(p.size), slide: int64(p.slide), late: int64(p.lateness),
		dir: c.StateDir, out: env.Output, reject: env.Reject, log: env.Logger, now: env.Now,
		retry:  &sink.Retry{Target: c.Output.target(), Logger: env.Logger},
		shards: map[string]*shardState{}, active: map[string]time.Time{}, expected: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating window state directory: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(w.dir, emittedFile)); err == nil {
		var e struct {
			EmittedNanos int64 `json:"emittedThroughNanos"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("window state %s: %w", emittedFile, err)
		}
		w.emitted, w.hasEmitted = e.EmittedNanos, true
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(w.dir, "shard-*.json"))
	if err != nil {
		return nil, err
	}
	now := w.now()
	for _, f := range files {
		s, err := loadShard(f, "", w.size, w.forget(), p.accums)
		if err != nil {
			return nil, err
		}
		w.shards[s.id] = s
		w.active[s.id] = now
	}
	w.listShards = env.Shards
	return w, nil
}

// expectShardsLocked learns the stream's shards once, before the first
// batch is applied.
func (w *Processor) expectShardsLocked(ctx context.Context) error {
	if w.listShards == nil {
		return nil
	}
	ids, err := w.listShards(ctx)
	if err != nil {
		return fmt.Errorf("listing the source stream's shards: %w", err)
	}
	now := w.now()
	for _, id := range ids {
		if _, ok := w.shards[id]; !ok {
			w.expected[id] = now
		}
	}
	w.listShards = nil
	return nil
}

// forget is the window end at or before which windows are dropped from
// the state: emitted, and (late: update) kept for KeepClosed.
func (w *Processor) forget() int64 {
	if w.hasEmitted {
		return w.emitted - int64(w.p.keep)
	}
	return math.MinInt64
}

// Start runs the idle-shard clock: every quarter of IdleTimeout (at most
// every second) windows the watermarks have passed are emitted. Close
// stops it.
func (w *Processor) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	every := min(w.p.idle/4, time.Second)
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := w.Tick(ctx)
				cancel()
				if err != nil {
					w.log.Warn("emitting windows", "err", err)
				}
			}
		}
	}()
}

// Tick emits the windows that the watermarks, with idle shards moved by
// the wall clock, have passed.
func (w *Processor) Tick(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	// The stream's shards must be known before anything is emitted, even
	// when no batch has come yet: a shard whose lease is elsewhere may
	// hold part of every open window.
	if err := w.expectShardsLocked(ctx); err != nil {
		return err
	}
	return w.emitLocked(ctx)
}

// Close stops the idle-shard clock and closes the output. Open windows
// stay in the state directory for the next run.
func (w *Processor) Close(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stop) })
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if started {
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Close(ctx)
}

// Stats is a snapshot of the processor's counters.
type Stats struct {
	// Late counts late events routed away, over all shards.
	Late int64
	// LateUpdates counts late events that updated closed windows
	// (late: update).
	LateUpdates int64
	// Open counts open (shard, window, group) aggregates.
	Open int
	// Watermark is the smallest shard watermark (zero when none).
	Watermark time.Time
}

// Stats returns the counters; safe to call concurrently.
func (w *Processor) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	var st Stats
	for _, s := range w.shards {
		st.Late += s.late
		st.LateUpdates += s.updates
		st.Open += len(s.windows)
	}
	if g, ok := w.globalWatermarkLocked(); ok {
		st.Watermark = time.Unix(0, g).UTC()
	}
	return st
}

// Invoke applies a batch of one shard's records and emits the windows
// that closed. Records at or before the shard's last applied record are
// skipped (a redelivery). The batch succeeds once its effect is durable.
func (w *Processor) Invoke(ctx context.Context, event *lambda.KinesisEvent) (*lambda.Response, error) {
	if len(event.Records) == 0 {
		return nil, nil
	}
	shard, _, _ := strings.Cut(event.Records[0].EventID, ":")
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.expectShardsLocked(ctx); err != nil {
		return nil, err
	}
	s, err := w.shardLocked(shard)
	if err != nil {
		return nil, err
	}
	now := w.now()
	if idle := now.Sub(w.active[shard]); s.hasTime && w.active[shard] != (time.Time{}) && idle >= w.p.idle {
		// The watermark moved with the wall clock while the shard was
		// idle (see globalWatermarkLocked); it does not move back.
		s.wm += int64(idle)
	}
	w.active[shard] = now
	if err := w.applyLocked(ctx, s, event.Records); err != nil {
		s.broken = true
		return nil, err
	}
	if err := w.persistLocked(s); err != nil {
		s.broken = true
		return nil, fmt.Errorf("saving window state of %s: %w", shard, err)
	}
	if err := w.emitLocked(ctx); err != nil {
		return nil, err
	}
	return nil, nil
}

func (w *Processor) shardLocked(id string) (*shardState, error) {
	s, ok := w.shards[id]
	if ok && !s.broken {
		return s, nil
	}
	s, err := loadShard(shardFileName(w.dir, id), id, w.size, w.forget(), w.p.accums)
	if err != nil {
		return nil, err
	}
	s.id = id
	w.shards[id] = s
	return s, nil
}

func (w *Processor) persistLocked(s *shardState) error {
	b, err := s.encode(w.size, w.forget(), w.p.accums)
	if err != nil {
		return err
	}
	return writeFileAtomic(shardFileName(w.dir, s.id), b)
}

// closedBefore is the time at or before which a window end is closed for
// shard s.
func (w *Processor) closedBefore(s *shardState) int64 {
	c := int64(math.MinInt64)
	if s.hasTime {
		c = s.wm
	}
	if w.hasEmitted {
		c = max(c, w.emitted)
	}
	return c
}

func (w *Processor) applyLocked(ctx context.Context, s *shardState, recs []lambda.KinesisEventRecord) error {
	groupVals := make([]string, len(w.cfg.GroupBy))
	for i := range recs {
		rec := &recs[i]
		_, seq, _ := strings.Cut(rec.EventID, ":")
		if seq == "" {
			seq = rec.Kinesis.SequenceNumber
		}
		sub := int64(-1)
		if rec.Kinesis.SubSequenceNumber != nil {
			sub = *rec.Kinesis.SubSequenceNumber
		}
		if !s.after(seq, sub) {
			continue
		}
		if reason := w.applyOne(s, rec, groupVals); reason != nil {
			if err := w.reject(ctx, rec, reason); err != nil {
				return err
			}
		}
		s.lastSeq, s.lastSub = seq, sub
	}
	return nil
}

// applyOne adds one record to its windows; a non-nil result is why the
// record was not used.
func (w *Processor) applyOne(s *shardState, rec *lambda.KinesisEventRecord, groupVals []string) error {
	ev, err := w.cfg.Decode.Decode(rec)
	if err != nil {
		return err
	}
	t, err := ev.Time(w.cfg.TimeField, w.cfg.TimeLayout)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMissingField, err)
	}
	for i, g := range w.cfg.GroupBy {
		v, ok := ev.Lookup(g)
		if !ok || v == nil {
			return fmt.Errorf("%w: group field %q is missing", ErrMissingField, g)
		}
		groupVals[i] = ev.String(g)
	}
	nums := make([]float64, len(w.p.accums))
	distinct := make([][]byte, len(w.p.accums))
	for i, x := range w.p.accums {
		if x.distinct {
			d, ok := ev.Lookup(x.field)
			if !ok || d == nil {
				return fmt.Errorf("%w: distinct field %q is missing", ErrMissingField, x.field)
			}
			distinct[i] = []byte(ev.String(x.field))
			continue
		}
		if nums[i], err = ev.Number(x.field); err != nil {
			return fmt.Errorf("%w: %v", ErrMissingField, err)
		}
	}
	ts := t.UnixNano()
	closed := w.closedBefore(s)
	// With late: update, windows closed within KeepClosed still take
	// events; those already emitted are emitted again.
	horizon := closed
	if w.p.update && closed > math.MinInt64+int64(w.p.keep) {
		horizon = max(closed-int64(w.p.keep), w.forget())
	}
	// The windows holding ts start at the slide multiples in
	// (ts-size, ts].
	last := floorDiv(ts, w.slide) * w.slide
	added, late := false, false
	gk := ""
	for start := last; start > ts-w.size; start -= w.slide {
		if start+w.size <= horizon {
			break // this and every earlier window are closed
		}
		if !added {
			gk = groupKey(groupVals)
		}
		k := winKey{start, gk}
		a, ok := s.windows[k]
		if !ok {
			a = newAgg(slices.Clone(groupVals), w.p.accums)
			s.windows[k] = a
		}
		a.add(nums, distinct)
		added = true
		if start+w.size <= closed {
			late = true
			if w.hasEmitted && start+w.size <= w.emitted {
				s.dirty[start] = true
			}
		}
	}
	if !added {
		s.late++
		return fmt.Errorf("%w: event time %s is behind the watermark %s of shard %s; its window [%s, %s) has closed",
			ErrLate, t.Format(time.RFC3339Nano), time.Unix(0, closed).UTC().Format(time.RFC3339Nano), s.id,
			time.Unix(0, last).UTC().Format(time.RFC3339), time.Unix(0, last+w.size).UTC().Format(time.RFC3339))
	}
	if late {
		s.updates++
	}
	if !s.hasTime || ts > s.maxEvent {
		s.maxEvent = ts
	}
	if wm := s.maxEvent - w.late; !s.hasTime || wm > s.wm {
		s.wm = wm
	}
	s.hasTime = true
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// globalWatermarkLocked is the smallest watermark of the shards that have
// applied an event, idle shards moved by the wall time since their last
// batch.
func (w *Processor) globalWatermarkLocked() (int64, bool) {
	now := w.now()
	for id, since := range w.expected {
		if _, seen := w.shards[id]; seen {
			delete(w.expected, id)
			continue
		}
		if now.Sub(since) < w.p.idle {
			return 0, false // a shard of the stream has not delivered yet
		}
	}
	g, ok := int64(0), false
	for id, s := range w.shards {
		if !s.hasTime {
			continue
		}
		wm := s.wm
		if idle := now.Sub(w.active[id]); idle >= w.p.idle {
			wm += int64(idle)
		}
		if !ok || wm < g {
			g, ok = wm, true
		}
	}
	return g, ok
}

// emitLocked emits every window ending at or before the global
// watermark, and (late: update) every emitted window late events
// updated: the shards' partial aggregates merged, written to the output,
// then the emission recorded.
func (w *Processor) emitLocked(ctx context.Context) error {
	g, ok := w.globalWatermarkLocked()
	advance := ok && (!w.hasEmitted || g > w.emitted)
	dirty := map[int64]bool{}
	for _, s := range w.shards {
		for start := range s.dirty {
			dirty[start] = true
		}
	}
	if !advance && len(dirty) == 0 {
		return nil
	}
	through := w.emitted
	if advance {
		through = g
	}
	due := func(start int64) bool {
		end := start + w.size
		return dirty[start] || (advance && end <= g && (!w.hasEmitted || end > w.emitted))
	}
	merged := map[winKey]*agg{}
	for _, s := range w.shards {
		for k, a := range s.windows {
			if !due(k.start) {
				continue
			}
			if m, ok := merged[k]; ok {
				if err := m.merge(a); err != nil {
					return err
				}
			} else {
				merged[k] = a.clone()
			}
		}
	}
	if len(merged) > 0 {
		keys := make([]winKey, 0, len(merged))
		for k := range merged {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b winKey) int {
			if a.start != b.start {
				return cmp.Compare(a.start, b.start)
			}
			return strings.Compare(a.group, b.group)
		})
		results := make([]Result, len(keys))
		for i, k := range keys {
			results[i] = w.result(k.start, merged[k])
		}
		// An output that is down holds the emission (and with it the
		// batch that closed the windows) until it is back or ctx ends;
		// the batch is then given back as unavailable and invoked
		// again, its records skipped as already applied.
		if err := w.retry.Do(ctx, func(ctx context.Context) error { return w.out.Write(ctx, results) }); err != nil {
			return fmt.Errorf("writing %d window results: %w", len(results), err)
		}
		if advance {
			b, _ := json.Marshal(map[string]int64{"emittedThroughNanos": g})
			if err := writeFileAtomic(filepath.Join(w.dir, emittedFile), b); err != nil {
				return fmt.Errorf("recording emitted windows: %w", err)
			}
		}
		w.log.Debug("windows emitted", "results", len(results), "through", time.Unix(0, through).UTC(), "updated", len(dirty))
	}
	// With nothing to emit, windows ending before g would be late now,
	// and that needs no record across a restart.
	w.emitted, w.hasEmitted = through, true
	forget := w.forget()
	for _, s := range w.shards {
		for k := range s.windows {
			if k.start+w.size <= forget {
				delete(s.windows, k)
			}
		}
		if len(s.dirty) > 0 {
			// The updates are out: a crash before this is saved emits
			// the same results again.
			clear(s.dirty)
			if err := w.persistLocked(s); err != nil {
				s.broken = true
				return fmt.Errorf("saving window state of %s: %w", s.id, err)
			}
		}
	}
	return nil
}

// Result is one group's aggregates over one window.
type Result struct {
	WindowStart time.Time
	WindowEnd   time.Time
	// StartName and EndName name WindowStart and WindowEnd in the
	// fields; default "windowStart" and "windowEnd".
	StartName, EndName string
	// GroupBy are the group field names and Group their values.
	GroupBy []string
	Group   []string
	// Values are the aggregates, in the order they are written.
	Values []Value
}

// Value is one named aggregate of a result.
type Value struct {
	Name  string
	Value float64
}

// Number renders v as JSON and DynamoDB write numbers: integers without
// an exponent (up to 2^53), others in the shortest form that reads back
// the same.
func (v Value) Number() string {
	if v.Value == math.Trunc(v.Value) && math.Abs(v.Value) <= 1<<53 {
		return strconv.FormatFloat(v.Value, 'f', -1, 64)
	}
	return strconv.FormatFloat(v.Value, 'g', -1, 64)
}

func (w *Processor) result(start int64, a *agg) Result {
	r := Result{
		WindowStart: time.Unix(0, start).UTC(), WindowEnd: time.Unix(0, start+w.size).UTC(),
		StartName: w.p.startName, EndName: w.p.endName,
		GroupBy: w.cfg.GroupBy, Group: a.group, Values: make([]Value, len(w.p.outputs)),
	}
	for i, o := range w.p.outputs {
		var v float64
		switch o.op {
		case "count":
			v = float64(a.count)
		case "sum":
			v = a.accs[o.acc].sum
		case "min":
			v = a.accs[o.acc].min
		case "max":
			v = a.accs[o.acc].max
		case "avg":
			v = a.accs[o.acc].sum / float64(a.count)
		case "distinct":
			v = float64(a.accs[o.acc].hll.Estimate())
		}
		r.Values[i] = Value{Name: o.name, Value: v}
	}
	return r
}

// ID identifies the result: its window start and group values, the key
// under which outputs store it.
func (r Result) ID() string {
	parts := append([]string{r.WindowStart.Format(time.RFC3339)}, r.Group...)
	return strings.Join(parts, "/")
}

func (r Result) names() (start, end string) {
	return cmp.Or(r.StartName, "windowStart"), cmp.Or(r.EndName, "windowEnd")
}

// Fields returns the result as JSON-ready fields: the window start and
// end (RFC 3339), the group fields and the aggregates. Numbers are
// json.Number.
func (r Result) Fields() map[string]any {
	start, end := r.names()
	m := map[string]any{
		start: r.WindowStart.Format(time.RFC3339),
		end:   r.WindowEnd.Format(time.RFC3339),
	}
	for i, g := range r.GroupBy {
		m[g] = r.Group[i]
	}
	for _, v := range r.Values {
		m[v.Name] = json.Number(v.Number())
	}
	return m
}

// AppendJSON appends the result as one JSON object, fields in the order
// window start, window end, group fields, aggregates.
func (r Result) AppendJSON(b []byte) []byte {
	start, end := r.names()
	b = append(b, '{')
	b = appendJSONString(b, start)
	b = append(b, ':')
	b = strconv.AppendQuote(b, r.WindowStart.Format(time.RFC3339))
	b = append(b, ',')
	b = appendJSONString(b, end)
	b = append(b, ':')
	b = strconv.AppendQuote(b, r.WindowEnd.Format(time.RFC3339))
	for i, g := range r.GroupBy {
		b = append(b, ',')
		b = appendJSONString(b, g)
		b = append(b, ':')
		b = appendJSONString(b, r.Group[i])
	}
	for _, v := range r.Values {
		b = append(b, ',')
		b = appendJSONString(b, v.Name)
		b = append(b, ':')
		b = append(b, v.Number()...)
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// MarshalJSON renders AppendJSON.
func (r Result) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }
