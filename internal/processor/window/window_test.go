package window_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/processor/window"
	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/sink/sinktest"
)

// clock is an injected wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type rejects struct {
	mu   sync.Mutex
	recs []string
	why  []error
}

func (r *rejects) reject(_ context.Context, rec *lambda.KinesisEventRecord, reason error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, string(rec.Kinesis.Data))
	r.why = append(r.why, reason)
	return nil
}

func (r *rejects) count(target error) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.why {
		if errors.Is(e, target) {
			n++
		}
	}
	return n
}

// shardFeed builds batches of one shard with increasing sequence numbers.
type shardFeed struct {
	shard string
	seq   int
}

func (f *shardFeed) batch(datas ...string) *lambda.KinesisEvent {
	ev := &lambda.KinesisEvent{}
	for _, d := range datas {
		f.seq++
		seq := fmt.Sprintf("49600000000000000000000000000000000000000000%08d", f.seq)
		ev.Records = append(ev.Records, lambda.KinesisEventRecord{
			EventID: f.shard + ":" + seq,
			Kinesis: lambda.KinesisRecord{SequenceNumber: seq, PartitionKey: "k", Data: []byte(d), ApproximateArrivalTimestamp: 1.7e9},
		})
	}
	return ev
}

func ev(country string, at string, value int, user string) string {
	return fmt.Sprintf(`{"country":%q,"ts":%q,"v":%d,"user":%q}`, country, at, value, user)
}

type fixture struct {
	t     *testing.T
	cfg   window.Config
	out   string
	clock *clock
	rej   *rejects
	p     *window.Processor
}

func newFixture(t *testing.T, mutate func(*window.Config)) *fixture {
	dir := t.TempDir()
	f := &fixture{
		t:     t,
		out:   filepath.Join(dir, "out"),
		clock: &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		rej:   &rejects{},
		cfg: window.Config{
			Size: "1m", TimeField: "ts", GroupBy: []string{"country"}, Field: "v", Distinct: "user",
			AllowedLateness: "10s", IdleTimeout: "5m", StateDir: filepath.Join(dir, "state"),
		},
	}
	f.cfg.Output.Dir = f.out
	if mutate != nil {
		mutate(&f.cfg)
	}
	f.open()
	return f
}

// open builds a processor on the fixture's state (a restart).
func (f *fixture) open() {
	f.t.Helper()
	sink, err := window.NewDirSink(f.out)
	require.NoError(f.t, err)
	f.p, err = window.New(f.cfg, window.Env{Output: sink, Reject: f.rej.reject, Now: f.clock.Now})
	require.NoError(f.t, err)
}

func (f *fixture) invoke(e *lambda.KinesisEvent) {
	f.t.Helper()
	resp, err := f.p.Invoke(context.Background(), e)
	require.NoError(f.t, err)
	require.Nil(f.t, resp)
}

// results reads every output file: window start → group → fields.
func (f *fixture) results() map[string]map[string]map[string]any {
	f.t.Helper()
	out := map[string]map[string]map[string]any{}
	files, _ := filepath.Glob(filepath.Join(f.out, "*.jsonl"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(f.t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			require.NoError(f.t, json.Unmarshal([]byte(line), &m), line)
			ws := m["windowStart"].(string)
			if out[ws] == nil {
				out[ws] = map[string]map[string]any{}
			}
			g, _ := m["country"].(string)
			require.NotContains(f.t, out[ws], g, "result repeated")
			out[ws][g] = m
		}
	}
	return out
}

func TestTumblingWindowsByCountry(t *testing.T) {
	f := newFixture(t, nil)
	a := &shardFeed{shard: "shardId-000000000000"}
	f.invoke(a.batch(
		ev("DE", "2024-05-01T10:00:05Z", 3, "u1"),
		ev("DE", "2024-05-01T10:00:40Z", 7, "u2"),
		ev("FR", "2024-05-01T10:00:59.999Z", 1, "u1"),
		ev("DE", "2024-05-01T10:00:50Z", 5, "u1"),
		ev("DE", "2024-05-01T10:01:03Z", 10, "u3"),
	))
	require.Empty(t, f.results(), "watermark 10:00:53 has not passed 10:01")
	// 10:01:12 moves the watermark to 10:01:02: the first minute closes.
	f.invoke(a.batch(ev("FR", "2024-05-01T10:01:12Z", 2, "u9")))
	got := f.results()
	require.Len(t, got, 1)
	de := got["2024-05-01T10:00:00Z"]["DE"]
	require.Equal(t, map[string]any{
		"windowStart": "2024-05-01T10:00:00Z", "windowEnd": "2024-05-01T10:01:00Z", "country": "DE",
		"count": 3.0, "sum": 15.0, "min": 3.0, "max": 7.0, "avg": 5.0, "distinct": 2.0,
	}, de)
	fr := got["2024-05-01T10:00:00Z"]["FR"]
	require.Equal(t, 1.0, fr["count"])
	require.Equal(t, 1.0, fr["distinct"])

	// The file keeps its field order.
	b, err := os.ReadFile(filepath.Join(f.out, "20240501T100000Z_20240501T100100Z.jsonl"))
	require.NoError(t, err)
	require.Equal(t, `{"windowStart":"2024-05-01T10:00:00Z","windowEnd":"2024-05-01T10:01:00Z","country":"DE","count":3,"sum":15,"min":3,"max":7,"avg":5,"distinct":2}`,
		strings.Split(string(b), "\n")[0])

	// A late event: its minute is closed. It is rejected with ErrLate
	// and counted, not dropped silently.
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:30Z", 100, "u7")))
	require.Equal(t, 1, f.rej.count(window.ErrLate))
	require.EqualValues(t, 1, f.p.Stats().Late)
	require.Contains(t, f.rej.why[0].Error(), "behind the watermark")
	// Within the allowed lateness it still counts.
	f.invoke(a.batch(ev("DE", "2024-05-01T10:01:01Z", 1, "u1")))
	require.Equal(t, 1, f.rej.count(window.ErrLate))

	// Unusable records are rejected with the reason.
	f.invoke(a.batch(`{"country":"DE"}`, `{"ts":"2024-05-01T10:01:30Z","v":1,"user":"x"}`, `{"country":"DE","ts":"2024-05-01T10:01:30Z","v":"many","user":"x"}`, `nope`))
	require.Equal(t, 3, f.rej.count(window.ErrMissingField))
	require.Equal(t, 1, f.rej.count(processor.ErrDecode))

	f.invoke(a.batch(ev("DE", "2024-05-01T10:03:00Z", 0, "u1")))
	got = f.results()
	require.Equal(t, 2.0, got["2024-05-01T10:01:00Z"]["DE"]["count"])
	require.Equal(t, 11.0, got["2024-05-01T10:01:00Z"]["DE"]["sum"])
	require.Equal(t, 1.0, got["2024-05-01T10:01:00Z"]["FR"]["count"])
	require.NoError(t, f.p.Close(context.Background()))
}

func TestSlidingWindows(t *testing.T) {
	f := newFixture(t, func(c *window.Config) {
		c.Size, c.Slide, c.AllowedLateness, c.GroupBy, c.Field, c.Distinct = "1m", "20s", "0s", nil, "", ""
	})
	a := &shardFeed{shard: "shardId-000000000000"}
	// 10:00:25 is in the windows starting 09:59:40, 10:00:00, 10:00:20.
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:25Z", 1, "u"), ev("DE", "2024-05-01T10:00:45Z", 1, "u")))
	f.invoke(a.batch(ev("DE", "2024-05-01T10:02:00Z", 1, "u")))
	got := f.results()
	counts := map[string]float64{}
	for ws, g := range got {
		counts[ws] = g[""]["count"].(float64)
		_, hasSum := g[""]["sum"]
		require.False(t, hasSum, "no field, no sum")
	}
	require.Equal(t, 1.0, counts["2024-05-01T09:59:40Z"])
	require.Equal(t, 2.0, counts["2024-05-01T10:00:00Z"])
	require.Equal(t, 2.0, counts["2024-05-01T10:00:20Z"])
	require.Equal(t, 1.0, counts["2024-05-01T10:00:40Z"])
	require.Len(t, counts, 4, "windows ending by 10:02:00: %v", counts)
}

func TestWindowClosesWhenEveryShardHasPassedIt(t *testing.T) {
	f := newFixture(t, nil)
	a := &shardFeed{shard: "shardId-000000000000"}
	b := &shardFeed{shard: "shardId-000000000001"}
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:05Z", 1, "u1")))
	f.invoke(b.batch(ev("DE", "2024-05-01T10:00:06Z", 2, "u2")))
	f.invoke(a.batch(ev("DE", "2024-05-01T10:05:00Z", 1, "u1")))
	require.Empty(t, f.results(), "shard 1 is still in the first minute")
	f.invoke(b.batch(ev("FR", "2024-05-01T10:01:30Z", 2, "u2")))
	got := f.results()
	require.Len(t, got, 1)
	de := got["2024-05-01T10:00:00Z"]["DE"]
	require.Equal(t, 2.0, de["count"], "the shards' partial counts are merged")
	require.Equal(t, 2.0, de["distinct"])
	require.Equal(t, 3.0, de["sum"])
}

func TestIdleShardDoesNotHoldWindowsOpen(t *testing.T) {
	f := newFixture(t, nil)
	a := &shardFeed{shard: "shardId-000000000000"}
	b := &shardFeed{shard: "shardId-000000000001"}
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:05Z", 1, "u1")))
	f.invoke(b.batch(ev("DE", "2024-05-01T10:00:06Z", 2, "u2")))
	for range 10 {
		f.clock.Advance(time.Minute)
		f.invoke(a.batch(ev("DE", "2024-05-01T10:09:00Z", 1, "u1")))
	}
	// Shard 1 has been idle for 10 minutes (more than IdleTimeout 5m):
	// its watermark moved from 09:59:56 by 10 minutes, past 10:01.
	require.NoError(t, f.p.Tick(context.Background()))
	got := f.results()
	require.Equal(t, 2.0, got["2024-05-01T10:00:00Z"]["DE"]["count"])

	// Without batches at all, the clock alone closes windows.
	f.clock.Advance(time.Hour)
	require.NoError(t, f.p.Tick(context.Background()))
	require.Equal(t, 10.0, f.results()["2024-05-01T10:09:00Z"]["DE"]["count"])
}

func TestRestartDoesNotCountTwice(t *testing.T) {
	f := newFixture(t, nil)
	a := &shardFeed{shard: "shardId-000000000000"}
	first := a.batch(ev("DE", "2024-05-01T10:00:05Z", 1, "u1"), ev("DE", "2024-05-01T10:00:15Z", 1, "u2"))
	f.invoke(first)
	// A crash after the state was saved but before the checkpoint: the
	// runtime delivers the batch again, to a new process.
	f.open()
	f.invoke(first)
	// A redelivery that overlaps: the first record again plus new ones.
	second := a.batch(ev("DE", "2024-05-01T10:00:25Z", 1, "u3"))
	overlap := &lambda.KinesisEvent{Records: append(slices.Clone(first.Records[1:]), second.Records...)}
	f.invoke(overlap)
	f.open()
	f.invoke(overlap)
	f.invoke(a.batch(ev("DE", "2024-05-01T10:02:00Z", 1, "u1")))
	got := f.results()
	require.Equal(t, 3.0, got["2024-05-01T10:00:00Z"]["DE"]["count"])
	require.Equal(t, 3.0, got["2024-05-01T10:00:00Z"]["DE"]["distinct"], "the sketch survives the restart")

	// After emission, a restart does not emit the window again with
	// less (the emitted mark is durable) and a replayed late event for
	// it is late.
	f.open()
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:59Z", 1, "u1")))
	require.Equal(t, 1, f.rej.count(window.ErrLate))
	require.Equal(t, 3.0, f.results()["2024-05-01T10:00:00Z"]["DE"]["count"])
}

// failingSink fails its first n writes.
type failingSink struct {
	window.Sink
	mu   sync.Mutex
	fail int
}

func (s *failingSink) Write(ctx context.Context, r []window.Result) error {
	s.mu.Lock()
	if s.fail > 0 {
		s.fail--
		s.mu.Unlock()
		return errors.New("output down")
	}
	s.mu.Unlock()
	return s.Sink.Write(ctx, r)
}

// TestOutputDownHoldsTheBatch: an output that fails holds the batch that
// closed a window, retried within the invocation and reported as a wait;
// nothing is rejected. When the invocation ends first, the batch comes
// back unavailable (no retry used), and invoked again once the output is
// back, its records are skipped as applied and the window is emitted.
func TestOutputDownHoldsTheBatch(t *testing.T) {
	f := newFixture(t, nil)
	dir, err := window.NewDirSink(f.out)
	require.NoError(t, err)
	out := &failingSink{Sink: dir, fail: 2}
	f.p, err = window.New(f.cfg, window.Env{Output: out, Reject: f.rej.reject, Now: f.clock.Now})
	require.NoError(t, err)
	a := &shardFeed{shard: "shardId-000000000000"}
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:05Z", 1, "u1")))

	w := &sinktest.Recorder{}
	_, err = f.p.Invoke(sink.WithReporter(context.Background(), w), a.batch(ev("DE", "2024-05-01T10:02:00Z", 1, "u1")))
	require.NoError(t, err, "the output came back within the invocation")
	require.Equal(t, 1.0, f.results()["2024-05-01T10:00:00Z"]["DE"]["count"])
	blocked, unblocked := w.Waits()
	require.Len(t, blocked, 2)
	require.Equal(t, "directory "+f.out, blocked[0].Target)
	require.ErrorContains(t, blocked[0].Err, "output down")
	require.Equal(t, 1, unblocked)

	// Down for longer than the invocation lasts.
	out.mu.Lock()
	out.fail = 1 << 30
	out.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	third := a.batch(ev("DE", "2024-05-01T10:04:00Z", 1, "u1"))
	_, err = f.p.Invoke(sink.WithReporter(ctx, &sinktest.Recorder{OnBlocked: cancel}), third)
	require.ErrorIs(t, err, sink.ErrUnavailable)
	out.mu.Lock()
	out.fail = 0
	out.mu.Unlock()
	f.invoke(third) // the runtime invokes it again: records skipped, emission done
	require.Equal(t, 1.0, f.results()["2024-05-01T10:02:00Z"]["DE"]["count"])
	require.Empty(t, f.rej.recs, "nothing is rejected while the output is down")
}

func TestArrivalTimeAndNestedGroups(t *testing.T) {
	f := newFixture(t, func(c *window.Config) {
		c.TimeField, c.GroupBy, c.Field, c.Distinct, c.AllowedLateness = "", []string{"geo.country", "page"}, "", "", ""
	})
	a := &shardFeed{shard: "shardId-000000000000"}
	e := a.batch(`{"geo":{"country":"DE"},"page":"/a"}`, `{"geo":{"country":"DE"},"page":"/a"}`, `{"geo":{"country":"DE"},"page":"/b"}`)
	e.Records[0].Kinesis.ApproximateArrivalTimestamp = 1714557600.5 // 2024-05-01T10:00:00.5Z
	e.Records[1].Kinesis.ApproximateArrivalTimestamp = 1714557601
	e.Records[2].Kinesis.ApproximateArrivalTimestamp = 1714557720 // 10:02
	f.invoke(e)
	files, _ := filepath.Glob(filepath.Join(f.out, "*.jsonl"))
	require.Len(t, files, 1)
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.Equal(t, `{"windowStart":"2024-05-01T10:00:00Z","windowEnd":"2024-05-01T10:01:00Z","geo.country":"DE","page":"/a","count":2}`+"\n", string(b))
}

func TestCheckNamesEveryProblem(t *testing.T) {
	err := window.Builtin.Check(map[string]any{
		"size": "90ms", "slide": "7s", "groupBy": []any{"country", "count", "country"},
		"timeLayout": "2006", "allowedLateness": "-1s", "idleTimeout": "soon",
		"output": map[string]any{"dir": "x", "stream": "y", "table": map[string]any{"table": "t", "createTable": map[string]any{}}},
		"decode": map[string]any{"format": "raw"},
	})
	require.Error(t, err)
	for _, want := range []string{
		"size: must be a positive whole number of seconds",
		"slide: 7s must divide size",
		"groupBy[1]: \"count\" is the name of a result field",
		"groupBy[2]: \"country\" is named twice",
		"timeLayout: given without a timeField",
		"allowedLateness: must not be negative",
		"idleTimeout: \"soon\" is not a duration",
		"output: name exactly one of",
		"output.table.createTable.partitionKey: is required",
		"decode.format: raw records",
	} {
		require.ErrorContains(t, err, want)
	}
	require.ErrorContains(t, window.Builtin.Check(map[string]any{"size": "1m", "output": map[string]any{"dir": "x"}, "groupby": []any{"a"}}), "groupby: unknown option")
	require.ErrorContains(t, window.Builtin.Check(map[string]any{"output": map[string]any{"dir": "x"}}), "size: is required")
	require.NoError(t, window.Builtin.Check(map[string]any{
		"size": "1m", "timeField": "ts", "groupBy": []any{"country"}, "allowedLateness": "30s",
		"output": map[string]any{"dir": "minutes"}, "decode": map[string]any{"format": "csv", "columns": []any{"ts", "country"}, "delimiter": "\t"},
	}))
}

func TestResultFieldsAndID(t *testing.T) {
	r := window.Result{
		WindowStart: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), WindowEnd: time.Date(2024, 5, 1, 10, 1, 0, 0, time.UTC),
		GroupBy: []string{"country"}, Group: []string{"DE"},
		Values: []window.Value{{"count", 3}, {"sum", 1.5}, {"min", 0.5}, {"max", 1}, {"avg", 0.5}},
	}
	require.Equal(t, "2024-05-01T10:00:00Z/DE", r.ID())
	f := r.Fields()
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	require.Equal(t, []string{"avg", "count", "country", "max", "min", "sum", "windowEnd", "windowStart"}, keys)
	require.Equal(t, json.Number("1.5"), f["sum"])
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.AppendJSON(nil), &m))
	require.Equal(t, "DE", m["country"])
}

// A shard of the stream that has not delivered yet (its lease is still
// elsewhere) holds windows open until it does, or until IdleTimeout.
func TestWindowWaitsForShardsNotSeenYet(t *testing.T) {
	f := newFixture(t, nil)
	sink, err := window.NewDirSink(f.out)
	require.NoError(t, err)
	listed := 0
	f.p, err = window.New(f.cfg, window.Env{Output: sink, Reject: f.rej.reject, Now: f.clock.Now,
		Shards: func(context.Context) ([]string, error) {
			listed++
			return []string{"shardId-000000000000", "shardId-000000000001"}, nil
		}})
	require.NoError(t, err)
	a := &shardFeed{shard: "shardId-000000000000"}
	b := &shardFeed{shard: "shardId-000000000001"}
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:05Z", 1, "u1")))
	f.invoke(a.batch(ev("DE", "2024-05-01T10:05:00Z", 1, "u1")))
	require.Empty(t, f.results(), "shard 1 has not delivered anything yet")
	f.invoke(b.batch(ev("FR", "2024-05-01T10:00:30Z", 2, "u2"), ev("FR", "2024-05-01T10:02:00Z", 2, "u2")))
	got := f.results()
	require.Equal(t, 1.0, got["2024-05-01T10:00:00Z"]["DE"]["count"])
	require.Equal(t, 1.0, got["2024-05-01T10:00:00Z"]["FR"]["count"], "shard 1's part is in the window")
	require.Equal(t, 1, listed, "the shards are listed once")

	// A listed shard that never delivers stops holding windows after
	// IdleTimeout.
	g := newFixture(t, nil)
	g.p, err = window.New(g.cfg, window.Env{Output: mustSink(t, g.out), Reject: g.rej.reject, Now: g.clock.Now,
		Shards: func(context.Context) ([]string, error) {
			return []string{"shardId-000000000000", "shardId-000000000009"}, nil
		}})
	require.NoError(t, err)
	c := &shardFeed{shard: "shardId-000000000000"}
	g.invoke(c.batch(ev("DE", "2024-05-01T10:00:05Z", 1, "u1"), ev("DE", "2024-05-01T10:05:00Z", 1, "u1")))
	require.Empty(t, g.results())
	g.clock.Advance(6 * time.Minute)
	require.NoError(t, g.p.Tick(context.Background()))
	require.Equal(t, 1.0, g.results()["2024-05-01T10:00:00Z"]["DE"]["count"])
}

func mustSink(t *testing.T, dir string) window.Sink {
	s, err := window.NewDirSink(dir)
	require.NoError(t, err)
	return s
}

// The idle clock emits nothing before the stream's shards are known: a
// restarted worker that holds one shard's state and has not yet heard
// from the other must not close windows on the first alone.
func TestTickWaitsForTheShardList(t *testing.T) {
	f := newFixture(t, nil)
	list := func(context.Context) ([]string, error) {
		return []string{"shardId-000000000000", "shardId-000000000001"}, nil
	}
	open := func() {
		var err error
		f.p, err = window.New(f.cfg, window.Env{Output: mustSink(t, f.out), Reject: f.rej.reject, Now: f.clock.Now, Shards: list})
		require.NoError(t, err)
	}
	open()
	a := &shardFeed{shard: "shardId-000000000000"}
	f.invoke(a.batch(ev("DE", "2024-05-01T10:00:05Z", 1, "u1"), ev("DE", "2024-05-01T10:05:00Z", 1, "u1")))
	require.Empty(t, f.results(), "shard 1 is listed and has not delivered")

	// A restart: shard 0's saved watermark is past the window, and the
	// idle clock ticks before any batch arrives.
	open()
	require.NoError(t, f.p.Tick(context.Background()))
	require.Empty(t, f.results(), "the tick learned the shard list before emitting")
}
