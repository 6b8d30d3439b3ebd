// Package count is the built-in count processor: it builds a key per
// event from a template over the event's fields and time and increments
// that key in Redis, exactly once per record.
//
// # Keys
//
// The key template mixes literal text with placeholders: {field} or
// {a.b} (a dotted path into a JSON object) renders the field as text;
// {ts:LAYOUT} renders the event time, in UTC, with a Go layout, so
// "{ts:2006-01-02}:{page}:{event}_{campaign}" may yield
// "2015-12-17:cart:impression_2276". "{{" and "}}" are literal braces. The
// event time is the field timeField (parsed with timeLayout, or RFC 3339,
// "2006-01-02 15:04:05" or epoch seconds) or, by default, the record's
// arrival time. A missing or null field renders as "" (missing: empty, the
// default) or rejects the record (missing: reject).
//
// # Rejected records
//
// A record is rejected, that is handed to the pipeline's on-failure
// destination with the reason and not counted, when its data does not
// decode, when missing is reject and a key field is missing, when the
// template uses {ts:...} and timeField is missing or not a time, or when
// increment is set and its field is missing or not an integer. Rejection
// is at least once: a batch retried after a failure may reject a record
// again.
//
// # Exactly once
//
// Each batch is applied by one Lua script (sink/redis.Counters),
// atomically: it reads the shard's marker, the position (sequence number and, within a KPL
// aggregate, sub-sequence number) of the last record already counted,
// kept at "<keyPrefix>__applied:<pipeline>:<shardId>". A batch wholly at
// or before the marker is skipped; a batch wholly after it is counted
// (equal keys summed, one INCRBY or HINCRBY per key) and moves the marker
// to its last record; a batch that straddles the marker (a retry after a
// bisection, or a shard that moved between workers) is counted from its
// first record after the marker only. The script checks every key before
// it writes one, so a key of the wrong type fails the batch with nothing
// applied. Counts therefore survive a crash at any moment, retries and
// redeliveries without double counting, provided batches of one shard run
// one at a time: the pipeline's parallelization must be 1. Two batches of
// one shard at once fail, rather than risk skipping records.
//
// # The local store
//
// With store: local the counters are kept in runnel's own store (package
// counts) in <state dir>/counts instead of Redis, with the same contract:
// the increments of a batch and the shard's marker are committed together,
// and batches are skipped or cut at the marker as above. `runnel counts`
// shows them, asking the server that holds the store.
package count

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor"
	"github.com/runnel-dev/runnel/internal/seqnum"
	"github.com/runnel-dev/runnel/internal/sink"
	redissink "github.com/runnel-dev/runnel/internal/sink/redis"
)

// Builtin is the count processor for pipelines.yaml (handler type builtin,
// name count). With store: local each pipeline opens <state dir>/counts
// itself; NewBuiltin shares one open store between pipelines.
var Builtin = NewBuiltin(nil)

// NewBuiltin is the count processor for pipelines.yaml whose pipelines
// with store: local use the store of <state dir>/counts opened through
// shared (one per directory and process); nil opens one per pipeline.
func NewBuiltin(shared *counterstore.Shared) pipeline.Builtin {
	return pipeline.Builtin{
		Doc:     "counts events in Redis (or runnel's own store) by a key built from their fields and time, exactly once per record",
		Options: checked{Spec},
		New: func(_ context.Context, env pipeline.BuiltinEnv) (lambda.Handler, error) {
			cfg, err := ParseOptions(env.Options)
			if err != nil {
				return nil, err
			}
			if cfg.Store != StoreLocal {
				return New(cfg, env.Pipeline, env.Reject, env.Logger)
			}
			if env.StateDir == "" {
				return nil, errors.New("store: local needs a state directory")
			}
			dir := filepath.Join(env.StateDir, "counts")
			var release func() error
			if shared != nil {
				cfg.Counts, release, err = shared.Open(dir, env.Logger)
			} else {
				cfg.Counts, err = counterstore.Open(dir, env.Logger)
				if err == nil {
					release = cfg.Counts.Close
				}
			}
			if err != nil {
				return nil, err
			}
			c, err := New(cfg, env.Pipeline, env.Reject, env.Logger)
			if err != nil {
				_ = release()
				return nil, err
			}
			c.release = release
			return c, nil
		},
	}
}

// Counter is the count processor of one pipeline. It is safe for
// concurrent use by batches of different shards.
type Counter struct {
	cfg      Config
	tmpl     *template
	client   *redis.Client       // nil with the local store
	local    *counterstore.Store // nil with Redis
	release  func() error        // releases local, when set
	pipeline string
	reject   func(context.Context, *lambda.KinesisEventRecord, error) error
	logger   *slog.Logger
	counters *redissink.Counters // writes to Redis

	mu       sync.Mutex
	inFlight map[string]bool // shards with a batch being counted

	report reportCache
	stats  struct{ records, rejected, batches, skipped atomic.Int64 }
}

// Stats counts what a Counter has done since it was built.
type Stats struct {
	Records  int64 // records counted
	Rejected int64 // records handed to the on-failure destination
	Batches  int64 // batches (or their parts after the marker) applied
	Skipped  int64 // batches skipped whole: already counted
}

// Stats returns what the Counter has done so far.
func (c *Counter) Stats() Stats {
	return Stats{Records: c.stats.records.Load(), Rejected: c.stats.rejected.Load(),
		Batches: c.stats.batches.Load(), Skipped: c.stats.skipped.Load()}
}

var _ lambda.Handler = (*Counter)(nil)

// New returns the count processor of the named pipeline. reject receives
// the records that cannot be counted; cfg must have passed Validate
// (ParseOptions does both). No connection is made until the first batch.
func New(cfg Config, pipelineName string, reject func(context.Context, *lambda.KinesisEventRecord, error) error, logger *slog.Logger) (*Counter, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tmpl, err := parseTemplate(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if cfg.Decode.Format == processor.FormatJSON {
		// Decode only the fields the key, time and increment read.
		paths := slices.Clone(tmpl.fields)
		for _, f := range []string{cfg.TimeField, cfg.Increment} {
			if f != "" {
				paths = append(paths, f)
			}
		}
		if len(paths) > 0 {
			cfg.Decode.Paths = paths
		}
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if reject == nil {
		return nil, errors.New("count: no reject function")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Store == StoreLocal {
		if cfg.Counts == nil {
			return nil, errors.New("count: store: local without an open store")
		}
		return &Counter{
			cfg: cfg, tmpl: tmpl, local: cfg.Counts, pipeline: pipelineName,
			reject: reject, logger: logger.With("processor", "count", "store", cfg.Counts.Dir()),
			inFlight: map[string]bool{},
		}, nil
	}
	client := redis.NewClient(&redis.Options{
		Addr:      cfg.Redis.Addr,
		Username:  cfg.Redis.Username,
		Password:  cfg.Redis.Password,
		DB:        cfg.Redis.DB,
		TLSConfig: tlsCfg,
		// One script per batch may carry thousands of keys.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
	})
	logger = logger.With("processor", "count", "redis", cfg.Redis.String())
	return &Counter{
		cfg: cfg, tmpl: tmpl, client: client, pipeline: pipelineName,
		reject: reject, logger: logger,
		counters: &redissink.Counters{Client: client, Hash: hashKey(cfg), Expire: cfg.Expire,
			Retry: &sink.Retry{Target: "redis " + cfg.Redis.Addr, Logger: logger}},
		inFlight: map[string]bool{},
	}, nil
}

// hashKey is the hash holding the counters in hash mode, "" in keys mode.
func hashKey(cfg Config) string {
	if cfg.Hash == "" {
		return ""
	}
	return cfg.Redis.KeyPrefix + cfg.Hash
}

// Close closes the connections to Redis, or releases the local store.
func (c *Counter) Close(context.Context) error {
	if c.client != nil {
		return c.client.Close()
	}
	if c.release != nil {
		return c.release()
	}
	return nil
}

// MarkerKey is the Redis key holding the position of the last record of
// a shard counted by a pipeline.
func (c *Counter) MarkerKey(shardID string) string {
	return c.cfg.Redis.KeyPrefix + markerInfix + c.pipeline + ":" + shardID
}

// markerInfix follows the key prefix in the names of the per-shard markers.
const markerInfix = "__applied:"

// position is a record's place in its shard.
type position struct {
	seq string
	sub int64
}

// String is the marker's form: "seq", or "seq/sub" within an aggregate
// past its first user record.
func (p position) String() string {
	if p.sub == 0 {
		return p.seq
	}
	return p.seq + "/" + strconv.FormatInt(p.sub, 10)
}

func parsePosition(s string) position {
	seq, sub, ok := strings.Cut(s, "/")
	p := position{seq: seq}
	if ok {
		p.sub, _ = strconv.ParseInt(sub, 10, 64)
	}
	return p
}

func (p position) compare(q position) int {
	if c := seqnum.Compare(p.seq, q.seq); c != 0 {
		return c
	}
	switch {
	case p.sub < q.sub:
		return -1
	case p.sub > q.sub:
		return 1
	}
	return 0
}

// item is one record of a batch: where it is and what it adds to which
// key (or hash field).
type item struct {
	pos     position
	counted bool // false for a rejected record
	key     string
	incr    int64
}

// Invoke counts one batch. It fails when Redis cannot be written or a
// rejected record cannot be handed on; the retry does not count twice.
func (c *Counter) Invoke(ctx context.Context, event *lambda.KinesisEvent) (*lambda.Response, error) {
	if len(event.Records) == 0 {
		return nil, nil
	}
	items := make([]item, len(event.Records))
	var shard string
	for i := range event.Records {
		rec := &event.Records[i]
		s, seq, _ := strings.Cut(rec.EventID, ":")
		if seq == "" {
			seq = rec.Kinesis.SequenceNumber
		}
		if i == 0 {
			shard = s
		} else if s != shard {
			return nil, fmt.Errorf("count: a batch holds records of shards %s and %s", shard, s)
		}
		it := &items[i]
		it.pos = position{seq: seq}
		if rec.Kinesis.SubSequenceNumber != nil {
			it.pos.sub = *rec.Kinesis.SubSequenceNumber
		}
		if i > 0 && items[i-1].pos.compare(it.pos) >= 0 {
			return nil, fmt.Errorf("count: shard %s: record %s follows %s in a batch", shard, it.pos, items[i-1].pos)
		}
	}
	reasons := c.keys(event.Records, items)
	for i, reason := range reasons {
		if reason == nil {
			continue
		}
		rec := &event.Records[i]
		if err := c.reject(ctx, rec, reason); err != nil {
			return nil, fmt.Errorf("count: rejecting record %s: %w", rec.EventID, err)
		}
		c.stats.rejected.Add(1)
	}
	if !c.enter(shard) {
		return nil, fmt.Errorf("count: shard %s: another batch of this shard is being counted; "+
			"exactly-once counting needs the pipeline's parallelization to be 1", shard)
	}
	defer c.leave(shard)
	return nil, c.apply(ctx, shard, items)
}

func (c *Counter) enter(shard string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight[shard] {
		return false
	}
	c.inFlight[shard] = true
	return true
}

func (c *Counter) leave(shard string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, shard)
}

// minPerWorker is the fewest records worth a goroutine of their own when
// decoding a batch.
const minPerWorker = 64

// keys decodes the records and fills in their items' keys and increments,
// spreading a large batch over the processors. It returns the reason to
// reject each record that cannot be counted (nil for the others), or nil
// when every record can be.
func (c *Counter) keys(recs []lambda.KinesisEventRecord, items []item) []error {
	var reasons []error
	var mu sync.Mutex
	work := func(from, to int) {
		var buf []byte
		for i := from; i < to; i++ {
			var err error
			if buf, err = c.keyOf(buf[:0], &recs[i], &items[i]); err != nil {
				mu.Lock()
				if reasons == nil {
					reasons = make([]error, len(recs))
				}
				reasons[i] = err
				mu.Unlock()
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(recs)/minPerWorker)
	if workers <= 1 {
		work(0, len(recs))
		return reasons
	}
	var wg sync.WaitGroup
	per := (len(recs) + workers - 1) / workers
	for from := 0; from < len(recs); from += per {
		wg.Go(func() { work(from, min(from+per, len(recs))) })
	}
	wg.Wait()
	return reasons
}

// keyOf decodes rec and sets it.key and it.incr; an error is the reason
// to reject it. buf is scratch space, returned for reuse.
func (c *Counter) keyOf(buf []byte, rec *lambda.KinesisEventRecord, it *item) ([]byte, error) {
	ev, err := c.cfg.Decode.Decode(rec)
	if err != nil {
		return buf, err
	}
	var ts time.Time
	if c.tmpl.usesTime {
		if ts, err = ev.Time(c.cfg.TimeField, c.cfg.TimeLayout); err != nil {
			return buf, err
		}
	}
	it.incr = 1
	if c.cfg.Increment != "" {
		if it.incr, err = integerField(ev, c.cfg.Increment); err != nil {
			return buf, err
		}
	}
	if c.cfg.Hash == "" {
		buf = append(buf, c.cfg.Redis.KeyPrefix...)
	}
	buf, err = c.tmpl.render(buf, ev, ts, c.cfg.Missing == MissingReject)
	if err != nil {
		return buf, err
	}
	it.key = string(buf)
	it.counted = true
	return buf, nil
}

// integerField reads an increment: a JSON integer or a string holding one.
func integerField(ev *processor.Event, path string) (int64, error) {
	v, ok := ev.Lookup(path)
	if !ok || v == nil {
		return 0, fmt.Errorf("increment field %q is missing", path)
	}
	s := ev.String(path)
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("increment field %q is not an integer: %s", path, s)
	}
	return n, nil
}
