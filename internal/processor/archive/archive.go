// Package archive is the archive processor: what Kinesis Data Firehose does
// for a data lake. It buffers records by size and interval and writes them
// as newline-delimited objects, optionally gzipped, to S3 (or any
// S3-compatible server) or to a local directory, under a time prefix
// (YYYY/MM/DD/HH/, or Hive style dt=YYYY-MM-DD/hour=HH/) and optionally a
// partition segment (<field>=<value>/). Each object holds the records of
// one shard and one partition path, and is named after the shard and the
// sequence range it holds (<shardId>-<firstSeq>-<lastSeq>.jsonl[.gz]).
//
// # Acknowledging only what is durable
//
// The runtime checkpoints a batch once the handler returns success, and
// buffering across batches means records wait while later batches are
// acknowledged. So before Invoke returns, the batch is appended to a spool
// on local disk (one segment file per shard and partition path, fsynced),
// and then the position of its last record to the shard's commit log
// (fsynced); objects are cut from sealed segments. After a crash the spool
// is read back: open segments are cut back to the last committed batch and
// keep collecting, sealed ones are written again under the same name with
// the same content (an overwrite, not a duplicate). A batch delivered again
// after a crash (its checkpoint was not written) is recognised by sequence
// number: records at or below the last committed position are skipped.
//
// This needs the runtime's in-order delivery per shard: a pipeline that
// archives must keep parallelization at 1 (the default). Two batches of
// one shard at once fail with an error saying so.
package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor"
	objectsink "github.com/runnel-dev/runnel/internal/sink/object"
)

// Builtin is the archive processor as pipelines.yaml names it.
var Builtin = pipeline.Builtin{
	Doc:     "buffers records and writes them as newline-delimited objects (gzip optional) to S3 or a directory, under time and partition prefixes, as Kinesis Data Firehose does",
	Options: Spec,
	New: func(ctx context.Context, env pipeline.BuiltinEnv) (lambda.Handler, error) {
		cfg, err := ParseConfig(env.Options, env.Pipeline)
		if err != nil {
			return nil, err
		}
		return New(ctx, cfg, Options{Logger: env.Logger, Pipeline: env.Pipeline})
	},
}

// maxSealedBacklog is how many sealed segments of one shard may wait to be
// written before Invoke refuses more (the store is down or slow); the
// runtime retries the batch later.
const maxSealedBacklog = 64

// uploadWorkers is how many objects are written at once.
const uploadWorkers = 4

// Options are what an Archive is built with besides its Config.
type Options struct {
	// Logger; default discard.
	Logger *slog.Logger
	// Pipeline names the table of a Parquet archive; default "archive".
	Pipeline string
	// Now is the clock for buffer intervals; default time.Now.
	Now func() time.Time
	// Store replaces the S3 client (tests). Optional.
	Store PutObjectAPI
}

// Stats counts what an Archive has written.
type Stats struct {
	Objects int64 // objects written
	Records int64 // records in them
	Bytes   int64 // object bytes (after gzip)
	Spooled int64 // records appended to the spool
	Skipped int64 // records delivered again and already spooled
	// WriteErrors counts failed rounds of writing objects (each is
	// logged and retried).
	WriteErrors int64
	// Pending is the number of sealed segments waiting to be written.
	Pending int64
	// ErrorRecords counts records sent to the error prefix (each batch
	// with any is logged).
	ErrorRecords int64
}

// Archive is the archive handler of one pipeline. It is safe for
// concurrent use by batches of different shards. Close it to write out
// what is buffered.
type Archive struct {
	cfg    Config
	opts   Options
	store  store
	logger *slog.Logger
	now    func() time.Time
	unlock func()
	schema *schema // of parquet objects

	// decode is whether records are decoded: to convert them, or for
	// their time or partition keys. Otherwise they are archived as they
	// are, whatever they hold.
	decode    bool
	prefix    prefix         // of objects
	errPrefix prefix         // of error records
	keys      []partitionKey // partition keys of prefix

	tableMu      sync.Mutex
	tableWritten string // the columns of the table definition last written

	mu     sync.Mutex
	shards map[string]*shardSpool

	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	closing atomic.Bool

	stats struct {
		objects, records, bytes, spooled, skipped, writeErrors, errorRecords atomic.Int64
	}
	recentMu sync.Mutex
	recent   []written // newest last, at most recentObjects
}

// written is one object written, for Report.
type written struct {
	key   string
	bytes int64
	at    time.Time
}

// recentObjects is how many of the latest objects Report lists.
const recentObjects = 8

var _ lambda.Handler = (*Archive)(nil)

// shardSpool is the spool of one shard.
type shardSpool struct {
	id  string
	dir string

	invoking sync.Mutex // held by the one batch of the shard in Invoke

	mu          sync.Mutex
	open        map[string]*segment // by partition path
	sealed      []string            // sealed segment files waiting to be written
	hwm         position            // highest position committed; seq "" for none
	commit      *os.File            // the commit log, open for appending
	commitBytes int64
	nextID      uint64
	broken      bool // a write failed; reload from disk before the next batch
}

// New returns an Archive writing as cfg says (cfg is expected to have
// been through ParseConfig). It recovers the spool left by an earlier run
// and starts writing what is due.
func New(ctx context.Context, cfg Config, opts Options) (*Archive, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults("archive")
	a := &Archive{
		cfg:    cfg,
		opts:   opts,
		logger: opts.Logger,
		now:    opts.Now,
		shards: make(map[string]*shardSpool),
		schema: newSchema(cfg.Schema),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.opts.Pipeline == "" {
		a.opts.Pipeline = "archive"
	}
	if err := a.compilePrefixes(); err != nil {
		return nil, err
	}
	if a.now == nil {
		a.now = time.Now
	}
	switch {
	case cfg.Dir != "":
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("archive directory: %w", err)
		}
		a.store = store{objectsink.Dir{Dir: cfg.Dir}}
	case opts.Store != nil:
		a.store = store{&objectsink.S3{API: opts.Store, Bucket: cfg.S3.Bucket, Prefix: cfg.S3.Prefix, ExpectedBucketOwner: cfg.S3.ExpectedBucketOwner}}
	default:
		s, err := objectsink.NewS3(ctx, *cfg.S3)
		if err != nil {
			return nil, err
		}
		a.store = store{s}
	}
	if cfg.Format == FormatParquet {
		if err := a.loadSchema(ctx); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o755); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	unlock, err := lockDir(cfg.SpoolDir)
	if err != nil {
		return nil, err
	}
	a.unlock = unlock
	if err := a.recover(); err != nil {
		unlock()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(runCtx)
	a.kick()
	return a, nil
}

// compilePrefixes builds the object and error prefixes and the partition
// keys from the configuration (PrefixStyle and PartitionBy are a prefix
// too).
func (a *Archive) compilePrefixes() error {
	c := a.cfg
	text := c.Prefix
	if text == "" {
		if c.PrefixStyle == StyleHive {
			text = "dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/"
		} else {
			text = "!{timestamp:yyyy/MM/dd/HH}/"
		}
		if c.PartitionBy != "" {
			text += c.PartitionBy + "=!{partitionKeyFromQuery:" + c.PartitionBy + "}/"
			a.keys = []partitionKey{{name: c.PartitionBy, field: c.PartitionBy}}
		}
	}
	var err error
	if a.prefix, err = parsePrefix(text, false); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	if a.errPrefix, err = parsePrefix(c.ErrorPrefix, true); err != nil {
		return fmt.Errorf("errorPrefix: %w", err)
	}
	if len(c.PartitionKeys) > 0 {
		if a.keys, err = compileKeys(c.PartitionKeys); err != nil {
			return err
		}
	}
	a.decode = c.Decode.Format != processor.FormatRaw &&
		(c.Format == FormatParquet || c.TimeField != "" || len(a.keys) > 0)
	return nil
}

// Stats returns what has been written so far.
func (a *Archive) Stats() Stats {
	return Stats{
		Objects: a.stats.objects.Load(), Records: a.stats.records.Load(), Bytes: a.stats.bytes.Load(),
		Spooled: a.stats.spooled.Load(), Skipped: a.stats.skipped.Load(),
		WriteErrors: a.stats.writeErrors.Load(), Pending: a.pending(), ErrorRecords: a.stats.errorRecords.Load(),
	}
}

func (a *Archive) pending() int64 {
	var n int64
	for _, s := range a.shardList() {
		s.mu.Lock()
		n += int64(len(s.sealed))
		s.mu.Unlock()
	}
	return n
}

var _ pipeline.Reporter = (*Archive)(nil)

// Report shows what the archive has written: objects, records and bytes,
// and the latest objects.
func (a *Archive) Report() pipeline.Report {
	st := a.Stats()
	where := a.cfg.Dir
	if s3 := a.cfg.S3; s3 != nil {
		where = "s3://" + s3.Bucket + "/" + s3.Prefix
	}
	rep := pipeline.Report{
		Title: "archive: " + where,
		Figures: []pipeline.Figure{
			{Label: "files", Value: float64(st.Objects)},
			{Label: "records", Value: float64(st.Records)},
			{Label: "written", Value: float64(st.Bytes), Unit: "bytes"},
			{Label: "waiting to be written", Value: float64(st.Pending)},
		},
	}
	if st.ErrorRecords > 0 {
		rep.Figures = append(rep.Figures, pipeline.Figure{Label: "records under the error prefix", Value: float64(st.ErrorRecords)})
	}
	if st.WriteErrors > 0 {
		rep.Figures = append(rep.Figures, pipeline.Figure{Label: "failed writes", Value: float64(st.WriteErrors)})
	}
	a.recentMu.Lock()
	for i := len(a.recent) - 1; i >= 0; i-- {
		w := a.recent[i]
		rep.Recent = append(rep.Recent, pipeline.Output{Name: w.key, Bytes: w.bytes, Time: w.at})
	}
	a.recentMu.Unlock()
	return rep
}

// Invoke spools the batch durably and acknowledges it.
func (a *Archive) Invoke(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	if a.closing.Load() {
		return nil, errors.New("archive: closed")
	}
	// A batch holds the records of one shard; group in case it does not.
	var order []string
	byShard := make(map[string][]*lambda.KinesisEventRecord)
	for i := range ev.Records {
		r := &ev.Records[i]
		shard, _, _ := strings.Cut(r.EventID, ":")
		if _, ok := byShard[shard]; !ok {
			order = append(order, shard)
		}
		byShard[shard] = append(byShard[shard], r)
	}
	for _, shard := range order {
		if err := a.spoolShard(ctx, shard, byShard[shard]); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func (a *Archive) shard(id string) (*shardSpool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.shards[id]; ok {
		return s, nil
	}
	dir := filepath.Join(a.cfg.SpoolDir, shardDirName(id))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: spool directory: %w", err)
	}
	if err := objectsink.SyncDir(a.cfg.SpoolDir); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	s := &shardSpool{id: id, dir: dir, open: make(map[string]*segment)}
	a.shards[id] = s
	return s, nil
}

func (a *Archive) spoolShard(ctx context.Context, shardID string, recs []*lambda.KinesisEventRecord) error {
	s, err := a.shard(shardID)
	if err != nil {
		return err
	}
	if !s.invoking.TryLock() {
		return fmt.Errorf("archive: two batches of shard %s at once: the archive needs the pipeline's parallelization to be 1", shardID)
	}
	defer s.invoking.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		if err := a.reloadLocked(s); err != nil {
			return err
		}
	}
	if len(s.sealed) >= maxSealedBacklog {
		a.kick()
		return fmt.Errorf("archive: %d objects of shard %s are waiting to be written; not taking more until they are", len(s.sealed), shardID)
	}
	touched := make(map[*segment]bool)
	errored := 0
	var firstErr error
	created := false
	added := 0
	last := s.hwm
	for _, rec := range recs {
		pos := position{seq: rec.Kinesis.SequenceNumber, sub: -1}
		if rec.Kinesis.SubSequenceNumber != nil {
			pos.sub = *rec.Kinesis.SubSequenceNumber
		}
		if last.seq != "" && !last.less(pos) {
			a.stats.skipped.Add(1)
			continue
		}
		path, data, failure := a.route(rec)
		if failure != nil {
			errored++
			if firstErr == nil {
				firstErr = failure
			}
		}
		seg := s.open[path]
		if seg == nil {
			s.nextID++
			seg, err = createSegment(s.dir, path, a.now(), s.nextID)
			if err != nil {
				s.broken = true
				return fmt.Errorf("archive: creating spool segment: %w", err)
			}
			s.open[path] = seg
			created = true
		}
		seg.add(spoolRecord{pos: pos, data: data})
		touched[seg] = true
		added++
		last = pos
	}
	for seg := range touched {
		if err := seg.flush(); err != nil {
			s.broken = true
			return fmt.Errorf("archive: %w", err)
		}
	}
	if created {
		if err := objectsink.SyncDir(s.dir); err != nil {
			s.broken = true
			return fmt.Errorf("archive: %w", err)
		}
	}
	if last != s.hwm {
		if err := a.commitLocked(s, last); err != nil {
			s.broken = true
			return fmt.Errorf("archive: %w", err)
		}
	}
	a.stats.spooled.Add(int64(added))
	if errored > 0 {
		a.stats.errorRecords.Add(int64(errored))
		a.logger.Warn("archive: records go to the error prefix", "shard", shardID, "records", errored, "first", firstErr)
	}
	a.logger.Debug("archive: batch spooled", "shard", shardID, "first", recs[0].Kinesis.SequenceNumber,
		"last", recs[len(recs)-1].Kinesis.SequenceNumber, "records", len(recs), "spooled", added, "committed", last.String())
	s.hwm = last
	var due []string
	for path, seg := range s.open {
		if seg.bytes >= int64(a.cfg.BufferSize) {
			due = append(due, path)
		}
	}
	if len(due) > 0 {
		if err := a.sealLocked(s, due); err != nil {
			return err
		}
		a.kick()
	}
	return nil
}

// route returns the spool path and data of a record: its object prefix
// and its data, or, when it cannot be partitioned or converted, the error
// prefix (marked errorMark) and its error line, with the reason.
func (a *Archive) route(rec *lambda.KinesisEventRecord) (string, []byte, error) {
	if !a.decode {
		t := arrival(rec.Kinesis.ApproximateArrivalTimestamp)
		return a.prefix.eval(t, nil, ""), rec.Kinesis.Data, nil
	}
	fail := func(code string, err error) (string, []byte, error) {
		t := arrival(rec.Kinesis.ApproximateArrivalTimestamp)
		return errorMark + a.errPrefix.eval(t, nil, code), errorLine(rec, code, err), err
	}
	ev, err := a.cfg.Decode.Decode(rec)
	if err != nil {
		if a.cfg.Format == FormatParquet {
			return fail(ErrorConversion, err)
		}
		return fail(ErrorPartitioning, err)
	}
	t, err := ev.Time(a.cfg.TimeField, a.cfg.TimeLayout)
	if err != nil {
		return fail(ErrorPartitioning, err)
	}
	var keys map[string]string
	if len(a.keys) > 0 {
		keys = make(map[string]string, len(a.keys))
		var env map[string]any
		for _, k := range a.keys {
			if k.prog != nil && env == nil {
				env = processor.ExprEnv(ev.Fields)
			}
			v, err := k.value(ev, env)
			if err != nil {
				return fail(ErrorPartitioning, err)
			}
			keys[k.name] = v
		}
	}
	if a.cfg.Format == FormatParquet {
		if err := a.schema.check(ev.Fields); err != nil {
			return fail(ErrorConversion, err)
		}
	}
	return a.prefix.eval(t, keys, ""), rec.Kinesis.Data, nil
}

func arrival(ts float64) time.Time {
	return time.UnixMilli(int64(ts*1000 + 0.5)).UTC()
}

// hiveDefault is the partition value of a record without one, as Hive
// names it.
const hiveDefault = "__HIVE_DEFAULT_PARTITION__"

// escapePartition makes a field value one safe path segment: letters,
// digits and -_. stay, everything else is %XX as in Hive.
func escapePartition(v string) string {
	if v == "" {
		return hiveDefault
	}
	safe := v != "." && v != ".."
	for i := 0; safe && i < len(v); i++ {
		safe = isSafe(v[i])
	}
	if safe {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; isSafe(c) && c != '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func isSafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

var plainShardID = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*$`)

// shardDirName is the spool subdirectory of a shard.
func shardDirName(id string) string {
	if plainShardID.MatchString(id) {
		return id
	}
	return "x-" + fmt.Sprintf("%x", id)
}

// sealLocked seals the open segments of the given paths and queues them
// for writing.
func (a *Archive) sealLocked(s *shardSpool, paths []string) error {
	var sealed []string
	for _, p := range paths {
		seg := s.open[p]
		delete(s.open, p)
		name, err := seg.seal()
		if err != nil {
			s.broken = true
			return fmt.Errorf("archive: %w", err)
		}
		sealed = append(sealed, name)
	}
	if err := objectsink.SyncDir(s.dir); err != nil {
		s.broken = true
		return fmt.Errorf("archive: %w", err)
	}
	s.sealed = append(s.sealed, sealed...)
	return nil
}

// commitLogLimit is the size past which the commit log is rewritten with
// its last entry only.
const commitLogLimit = 1 << 20

// commitLocked appends pos to the shard's commit log and syncs it: the
// batch ending at pos is spooled in full.
func (a *Archive) commitLocked(s *shardSpool, pos position) error {
	name := filepath.Join(s.dir, "commit")
	frame := appendFrame(nil, spoolRecord{pos: pos})
	if s.commit == nil || s.commitBytes > commitLogLimit {
		if s.commit != nil {
			_ = s.commit.Close()
			s.commit = nil
		}
		// A new log holds this entry only; it replaces the old one
		// atomically.
		content := append(segmentHeader("", a.now()), frame...)
		if err := objectsink.WriteFile(name, func(w io.Writer) error { _, err := w.Write(content); return err }); err != nil {
			return fmt.Errorf("writing commit log: %w", err)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("opening commit log: %w", err)
		}
		s.commit, s.commitBytes = f, int64(len(content))
		return nil
	}
	if _, err := s.commit.Write(frame); err != nil {
		return fmt.Errorf("writing commit log: %w", err)
	}
	if err := s.commit.Sync(); err != nil {
		return fmt.Errorf("syncing commit log: %w", err)
	}
	s.commitBytes += int64(len(frame))
	return nil
}

// kick wakes the writer.
func (a *Archive) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run seals segments that reached the buffer interval and writes sealed
// segments as objects, until ctx ends.
func (a *Archive) run(ctx context.Context) {
	defer close(a.done)
	tick := min(time.Duration(a.cfg.BufferInterval)/4, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.wake:
		}
		a.sealDue(false)
		if err := a.writeSealed(ctx); err != nil && ctx.Err() == nil {
			a.stats.writeErrors.Add(1)
			a.logger.Warn("archive: writing objects", "err", err)
		}
	}
}

// sealDue seals open segments older than the buffer interval, or all of
// them.
func (a *Archive) sealDue(all bool) error {
	now := a.now()
	var errs []error
	for _, s := range a.shardList() {
		s.mu.Lock()
		var due []string
		for path, seg := range s.open {
			if seg.n > 0 && (all || now.Sub(seg.created) >= time.Duration(a.cfg.BufferInterval)) {
				due = append(due, path)
			}
		}
		if len(due) > 0 && !s.broken {
			if err := a.sealLocked(s, due); err != nil {
				errs = append(errs, err)
			}
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (a *Archive) shardList() []*shardSpool {
	a.mu.Lock()
	defer a.mu.Unlock()
	list := make([]*shardSpool, 0, len(a.shards))
	for _, s := range a.shards {
		list = append(list, s)
	}
	return list
}

// writeSealed writes every queued sealed segment as an object and
// deletes it, uploadWorkers at a time.
func (a *Archive) writeSealed(ctx context.Context) error {
	type job struct {
		s    *shardSpool
		file string
	}
	var jobs []job
	for _, s := range a.shardList() {
		s.mu.Lock()
		for _, f := range s.sealed {
			jobs = append(jobs, job{s, f})
		}
		s.mu.Unlock()
	}
	if len(jobs) == 0 {
		return nil
	}
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, uploadWorkers)
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = a.writeSegment(ctx, j.s, j.file)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeSegment writes one sealed segment as its object and removes it.
func (a *Archive) writeSegment(ctx context.Context, s *shardSpool, file string) error {
	c, err := readSegment(file)
	if err != nil {
		return fmt.Errorf("reading sealed segment %s: %w", file, err)
	}
	if len(c.records) > 0 {
		key, body, err := a.object(s.id, c)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err = a.store.put(wctx, key, body)
		cancel()
		if err != nil {
			return err
		}
		if a.cfg.Format == FormatParquet && !strings.HasPrefix(c.path, errorMark) {
			if err := a.writeTable(ctx); err != nil {
				return err
			}
		}
		a.stats.objects.Add(1)
		a.stats.records.Add(int64(len(c.records)))
		a.stats.bytes.Add(int64(len(body)))
		a.recentMu.Lock()
		if len(a.recent) == recentObjects {
			a.recent = slices.Delete(a.recent, 0, 1)
		}
		a.recent = append(a.recent, written{key: key, bytes: int64(len(body)), at: time.Now()})
		a.recentMu.Unlock()
		a.logger.Debug("archive: object written", "key", key, "records", len(c.records), "bytes", len(body))
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing written segment: %w", err)
	}
	s.mu.Lock()
	s.sealed = slices.DeleteFunc(s.sealed, func(f string) bool { return f == file })
	s.mu.Unlock()
	return nil
}

// object returns the key and body of a segment's object.
func (a *Archive) object(shard string, c *segmentContent) (string, []byte, error) {
	first, last := c.records[0].pos, c.records[len(c.records)-1].pos
	key := fmt.Sprintf("%s%s-%s-%s.%s", c.path, shard, first, last, a.cfg.Extension)
	isErr := strings.HasPrefix(c.path, errorMark)
	if isErr {
		key = fmt.Sprintf("%s%s-%s-%s.jsonl", c.path[len(errorMark):], shard, first, last)
	}
	if a.cfg.Format == FormatParquet && !isErr {
		body, err := a.parquetBody(c.records)
		return key, body, err
	}
	size := 0
	for _, r := range c.records {
		size += len(r.data) + 1
	}
	var body bytes.Buffer
	body.Grow(size)
	for _, r := range c.records {
		body.Write(r.data)
		if len(r.data) == 0 || r.data[len(r.data)-1] != '\n' {
			body.WriteByte('\n')
		}
	}
	if a.cfg.Format != FormatParquet && a.cfg.Compression == CompressionZstd {
		return key + ".zst", zstdEncoder.EncodeAll(body.Bytes(), make([]byte, 0, size/4)), nil
	}
	if !a.cfg.Gzip {
		return key, body.Bytes(), nil
	}
	var zbuf bytes.Buffer
	zbuf.Grow(size / 4)
	zw := gzip.NewWriter(&zbuf)
	if _, err := zw.Write(body.Bytes()); err != nil {
		return "", nil, err
	}
	if err := zw.Close(); err != nil {
		return "", nil, err
	}
	return key + ".gz", zbuf.Bytes(), nil
}

// zstdEncoder compresses zstd jsonl objects; EncodeAll is safe for
// concurrent use.
var zstdEncoder, _ = zstd.NewWriter(nil)

// parquetBody converts records to a Parquet file.
func (a *Archive) parquetBody(recs []spoolRecord) ([]byte, error) {
	rows := make([]map[string]any, len(recs))
	sizes := make([]int, len(recs))
	for i, r := range recs {
		fields, err := decodeRow(a.cfg.Decode, r.data)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", r.pos, err)
		}
		rows[i], sizes[i] = fields, len(r.data)
	}
	cols := a.schema.extend(rows)
	return parquetObject(cols, rows, sizes, parquetCodec(a.cfg.Compression), int64(a.cfg.RowGroupSize))
}

// Flush seals every open segment and writes every sealed one now.
func (a *Archive) Flush(ctx context.Context) error {
	if err := a.sealDue(true); err != nil {
		return err
	}
	return a.writeSealed(ctx)
}

// Close stops the background writer, then seals and writes everything
// spooled, giving up when ctx ends (what is left stays in the spool for
// the next start).
func (a *Archive) Close(ctx context.Context) error {
	if a.closing.Swap(true) {
		return nil
	}
	a.cancel()
	<-a.done
	err := a.Flush(ctx)
	for _, s := range a.shardList() {
		s.mu.Lock()
		for _, seg := range s.open {
			_ = seg.f.Close()
		}
		s.open = nil
		if s.commit != nil {
			_ = s.commit.Close()
			s.commit = nil
		}
		s.mu.Unlock()
	}
	a.unlock()
	if err != nil {
		return fmt.Errorf("archive: writing out the spool at close (kept for the next start): %w", err)
	}
	return nil
}

// recover loads every shard's spool left by an earlier run.
func (a *Archive) recover() error {
	entries, err := os.ReadDir(a.cfg.SpoolDir)
	if err != nil {
		return fmt.Errorf("archive: reading spool: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		if strings.HasPrefix(id, "x-") {
			var raw []byte
			if _, err := fmt.Sscanf(id[2:], "%x", &raw); err == nil {
				id = string(raw)
			}
		}
		s := &shardSpool{id: id, dir: filepath.Join(a.cfg.SpoolDir, e.Name()), open: make(map[string]*segment)}
		if err := a.reloadLocked(s); err != nil {
			return err
		}
		a.shards[id] = s
	}
	return nil
}

// reloadLocked (re)reads a shard's spool from disk: the high-water mark,
// open segments cut to their intact prefix, sealed segments queued.
func (a *Archive) reloadLocked(s *shardSpool) error {
	for _, seg := range s.open {
		_ = seg.f.Close()
	}
	s.open = make(map[string]*segment)
	s.sealed = nil
	if s.commit != nil {
		_ = s.commit.Close()
		s.commit = nil
	}
	s.hwm = position{sub: -1}
	committed := false
	if c, err := readSegment(filepath.Join(s.dir, "commit")); err == nil && len(c.records) > 0 {
		s.hwm, committed = c.records[len(c.records)-1].pos, true
	} else if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errBadHeader) {
		return fmt.Errorf("archive: reading commit log of shard %s: %w", s.id, err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("archive: reading spool of shard %s: %w", s.id, err)
	}
	var stale []string
	for _, e := range entries {
		name := e.Name()
		file := filepath.Join(s.dir, name)
		isOpen, isSealed := strings.HasPrefix(name, "open-"), strings.HasPrefix(name, "sealed-")
		if !strings.HasSuffix(name, ".seg") || !isOpen && !isSealed {
			if strings.HasPrefix(name, ".commit.tmp-") {
				_ = os.Remove(file)
			}
			continue
		}
		c, err := readSegment(file)
		if err == nil && isOpen {
			// Records beyond the last commit are of a batch that was
			// not acknowledged; it will be delivered again.
			c.cutAfter(s.hwm, committed)
		}
		if errors.Is(err, errBadHeader) || err == nil && len(c.records) == 0 && isOpen {
			// Created at a crash, holding nothing acknowledged.
			_ = os.Remove(file)
			continue
		}
		if err != nil {
			return fmt.Errorf("archive: reading spool segment: %w", err)
		}
		if isSealed {
			s.sealed = append(s.sealed, file)
			continue
		}
		if prev, ok := s.open[c.path]; ok {
			// Cannot happen in normal operation; keep both by
			// sealing the older.
			stale = append(stale, prev.file)
			_ = prev.f.Close()
		}
		seg, err := reopenSegment(file, c)
		if err != nil {
			return fmt.Errorf("archive: reopening spool segment: %w", err)
		}
		s.open[c.path] = seg
	}
	for _, f := range stale {
		sealed := filepath.Join(s.dir, "sealed-"+strings.TrimPrefix(filepath.Base(f), "open-"))
		if err := os.Rename(f, sealed); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		s.sealed = append(s.sealed, sealed)
	}
	for _, seg := range s.open {
		var id uint64
		if _, err := fmt.Sscanf(filepath.Base(seg.file), "open-%d-%d.seg", new(int64), &id); err == nil && id > s.nextID {
			s.nextID = id
		}
	}
	if err := objectsink.SyncDir(s.dir); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	s.broken = false
	return nil
}
