package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/kpl"
)

// PutRecords limits that hold on every Kinesis deployment.
const (
	DefaultMaxBatchRecords = 500
	DefaultMaxBatchBytes   = 5 << 20 // data plus partition keys of one call
	DefaultMaxRecordBytes  = 1 << 20 // data plus partition key of one record
	MaxPartitionKeyChars   = 256     // Unicode characters
)

// Upper bounds of MaxBatchBytes and MaxRecordBytes: a stream whose
// MaxRecordSizeInKiB was raised (UpdateMaxRecordSize) takes records of up
// to 10 MiB, in PutRecords calls of up to 10 MiB.
const (
	LimitBatchBytes  = 10 << 20
	LimitRecordBytes = 10 << 20
)

// Per-record and call error codes the producer treats specially.
const (
	codeThroughputExceeded = "ProvisionedThroughputExceededException"
	codeInternalFailure    = "InternalFailure"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("producer: closed")

// ErrInvalidRecord is reported (through OnFailure and Stats.Failed) for a
// record Kinesis would reject whatever the retries: too large, or with a
// missing or over-long partition key.
var ErrInvalidRecord = errors.New("invalid record")

// PutRecordsAPI is the part of the Kinesis client the Producer calls. The
// aws-sdk-go-v2 *kinesis.Client satisfies it.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Config configures a Producer. Zero values select the defaults stated on
// each field.
type Config struct {
	// Stream is the stream name, or its ARN (arn:...). Required.
	Stream string
	// Endpoint names where the stream lives in error messages, e.g.
	// "http://127.0.0.1:4567". Default: "the configured endpoint".
	Endpoint string

	// MaxBatchRecords is the most records per PutRecords call. Default 500.
	MaxBatchRecords int
	// MaxBatchBytes bounds the data plus partition keys of one call, up to
	// LimitBatchBytes. Default 5 MiB, or MaxRecordBytes when that is
	// larger.
	MaxBatchBytes int
	// MaxRecordBytes bounds the data plus partition key of one record;
	// larger records fail at Write. Default 1 MiB, the stream's limit
	// unless its MaxRecordSizeInKiB was raised; up to LimitRecordBytes.
	MaxRecordBytes int
	// Linger is how long a partial batch waits for more records before it
	// is sent. Default 100 ms; negative means send at once.
	Linger time.Duration
	// MaxInFlight is the most PutRecords calls in flight at once. Default 4.
	MaxInFlight int
	// BufferRecords and BufferBytes bound the records waiting to be sent;
	// Write blocks while either is reached. Defaults: 10000 records, and
	// twice MaxInFlight full batches of bytes.
	BufferRecords int
	BufferBytes   int

	// MaxAttempts is how many times one record may fail for a reason other
	// than throttling before it is given up on. Default 10. Throttling
	// (ProvisionedThroughputExceededException) is the stream telling the
	// producer to slow down, not a fault of the record: a throttled record
	// is retried, with backoff, until MaxRetryTime, as the KPL retries
	// until its RecordTtl.
	MaxAttempts int
	// MaxRetryTime is how long after its first attempt a record may still
	// be retried. Default 1 minute.
	MaxRetryTime time.Duration
	// BaseBackoff and MaxBackoff shape the wait before a retry (see
	// backoff.Delay): a random duration in the upper half of
	// min(MaxBackoff, BaseBackoff·2^(attempt-1)). Defaults: 100 ms and 5 s.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration

	// OrderedByKey keeps the records of each partition key in the order
	// they were written: a key is never in two calls in flight at once, a
	// retried record is re-sent before any later record of its key, and
	// one call carries at most one entry per key (PutRecords does not
	// order the entries of one call: a later entry may succeed where an
	// earlier one failed). Without aggregation that sends one record per
	// key per round trip.
	OrderedByKey bool
	// OrderedByShard keeps the records of each shard in the order they
	// were written, at full speed across shards: a shard never has two
	// calls in flight, and a retried record is re-sent before any later
	// record of its shard. One call may carry many records of a shard.
	// Records are mapped to shards with Shards; without it the whole
	// stream counts as one shard (one call in flight). It implies the
	// order of each partition key while the shard map holds, and cannot
	// be combined with OrderedByKey. PutRecords does not order the
	// entries of one call when one fails and a later one of its shard
	// succeeds; the pacing below makes that rare, and each occurrence is
	// counted in Stats.Reordered and logged.
	OrderedByShard bool
	// Unpaced turns off the per-shard send rate (see pace.go): calls go
	// as fast as MaxInFlight allows and a throttled shard is only
	// retried, with backoff (`runnel produce --pace=false`).
	Unpaced bool
	// Aggregate packs user records into KPL aggregated records (see
	// Aggregate). Records are grouped by the shard their key maps to when
	// Shards is set, else by partition key, so every user record is stored
	// on the shard its own key maps to.
	Aggregate bool
	// Shards is the stream's hash-key map used to group records for
	// aggregation (see LoadShards). Optional.
	Shards []ShardRange

	// OnFailure, when set, is called with every record the producer gives
	// up on and why. Calls are serialized; it must not call Write.
	OnFailure func(Record, error)
	// OnCall, when set, is called after every PutRecords call with what
	// the call did (for measurements such as per-call latency). Calls of
	// it may be concurrent, up to MaxInFlight; each returns before Close
	// does. It must not call Write.
	OnCall func(Call)
	// Logger receives debug and warning logs. Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Endpoint == "" {
		c.Endpoint = "the configured endpoint"
	}
	if c.MaxBatchRecords <= 0 {
		c.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = max(DefaultMaxBatchBytes, c.MaxRecordBytes)
	}
	if c.Linger == 0 {
		c.Linger = 100 * time.Millisecond
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4
	}
	if c.BufferRecords <= 0 {
		c.BufferRecords = 10000
	}
	if c.BufferBytes <= 0 {
		c.BufferBytes = 2 * c.MaxInFlight * c.MaxBatchBytes
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.MaxRetryTime <= 0 {
		c.MaxRetryTime = time.Minute
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Stream == "" {
		errs = append(errs, errors.New("stream name is required"))
	}
	if c.MaxBatchRecords > DefaultMaxBatchRecords {
		errs = append(errs, fmt.Errorf("max batch records %d is over the PutRecords limit of %d", c.MaxBatchRecords, DefaultMaxBatchRecords))
	}
	if c.MaxBatchBytes > LimitBatchBytes {
		errs = append(errs, fmt.Errorf("max batch bytes %d is over the PutRecords limit of %d", c.MaxBatchBytes, LimitBatchBytes))
	}
	if c.MaxRecordBytes > LimitRecordBytes {
		errs = append(errs, fmt.Errorf("max record bytes %d is over the Kinesis limit of %d", c.MaxRecordBytes, LimitRecordBytes))
	}
	if c.OrderedByKey && c.OrderedByShard {
		errs = append(errs, errors.New("ordered by key and ordered by shard are exclusive (order by shard keeps each key's order too)"))
	}
	if c.MaxRecordBytes > 0 && c.MaxBatchBytes > 0 && c.MaxRecordBytes > c.MaxBatchBytes {
		errs = append(errs, fmt.Errorf("max record bytes %d exceeds max batch bytes %d", c.MaxRecordBytes, c.MaxBatchBytes))
	}
	return errors.Join(errs...)
}

// entryChunk is how many entries Write makes at once: one allocation for
// many records. A chunk is freed once none of its entries is referenced;
// the record of an entry that is done is dropped at once, so that a chunk
// kept by one entry still pending does not keep its neighbours' data.
const entryChunk = 64

// entry is one user record on its way.
type entry struct {
	done      bool // delivered or given up on
	rec       Record
	seq       uint64
	size      int // data plus partition key
	enqueued  time.Time
	attempts  int // sends so far
	failures  int // failed sends other than throttling
	firstTry  time.Time
	notBefore time.Time
	route     string // aggregation group
	shard     string // shard ID, "" when the shard map is unknown
}

// putItem is one PutRecords request entry: a user record, or an aggregate
// of several.
type putItem struct {
	entries []*entry
	agg     kpl.Aggregator
	size    int    // data plus partition key as sent
	key     string // the partition key as sent, which the request points to
}

// request returns the request entry for the item.
func (it *putItem) request() types.PutRecordsRequestEntry {
	var r Record
	if len(it.entries) == 1 {
		r = it.entries[0].rec
	} else {
		r = it.agg.Record()
	}
	e := types.PutRecordsRequestEntry{Data: r.Data}
	it.key = r.PartitionKey
	e.PartitionKey = &it.key
	if r.ExplicitHashKey != "" {
		e.ExplicitHashKey = aws.String(r.ExplicitHashKey)
	}
	return e
}

// Call is what one PutRecords call did, for Config.OnCall.
type Call struct {
	// Latency is how long the call took.
	Latency time.Duration
	// Entries is the request entries sent (an aggregate counts once).
	Entries int
	// Acked counts the user records the call stored, by shard ID.
	Acked map[string]int
	// Failed is the entries the response reported failed, Throttled
	// those of them failed with ProvisionedThroughputExceededException.
	Failed, Throttled int
	// Err is why the call failed as a whole; nil when it was answered.
	Err error
	// Resent is how many times the SDK sent the call again after a send
	// that got no answer (a connection lost): each such send may have
	// stored the records, so they may be stored more than once. Only a
	// call that was answered in the end says so; a call that failed
	// (Err) is as uncertain whatever its sends were.
	Resent int
}

// observe reports a call to OnCall.
func (p *Producer) observe(items []*putItem, latency time.Duration, out *kinesis.PutRecordsOutput, err error) {
	if p.cfg.OnCall == nil {
		return
	}
	c := Call{Latency: latency, Entries: len(items), Err: err}
	if err == nil {
		if attempts, ok := retry.GetAttemptResults(out.ResultMetadata); ok {
			for _, a := range attempts.Results[:max(len(attempts.Results)-1, 0)] {
				// A throttle or a server error came with an answer that
				// nothing was stored.
				if _, answered := errors.AsType[smithy.APIError](a.Err); a.Err != nil && !answered {
					c.Resent++
				}
			}
		}
	}
	if err == nil && len(out.Records) == len(items) {
		c.Acked = make(map[string]int)
		for i, r := range out.Records {
			switch {
			case r.ErrorCode == nil:
				c.Acked[aws.ToString(r.ShardId)] += len(items[i].entries)
			case aws.ToString(r.ErrorCode) == codeThroughputExceeded:
				c.Throttled++
				c.Failed++
			default:
				c.Failed++
			}
		}
	}
	p.cfg.OnCall(c)
}

// failure is a record given up on, reported after the lock is released.
type failure struct {
	rec Record
	err error
}

// Producer is a Writer that delivers records to a Kinesis stream with
// batched PutRecords calls. It is safe for concurrent use.
//
// Retries: a record whose PutRecords result carries an ErrorCode is
// retried after a backoff (ProvisionedThroughputExceededException counts as
// throttled); a call that fails as a whole is retried when the failure is
// transient (no response, a 5xx status, or throttling) and otherwise fails
// its records with an error naming the stream and endpoint. The SDK's own
// retryer is limited to connection errors for these calls (see
// kinesisclient.ConnectionRetryer), so that every API error is retried,
// counted and paced here, once.
type Producer struct {
	api    PutRecordsAPI
	sdk    func(*kinesis.Options) // the SDK's retry policy for PutRecords
	cfg    Config
	byARN  bool
	shards shardMap
	start  time.Time

	ctx    context.Context // ends when Close gives up; aborts calls
	cancel context.CancelCauseFunc
	wake   chan struct{}
	done   chan struct{}
	cbMu   sync.Mutex

	mu           sync.Mutex
	pending      []*entry // by seq
	entries      []entry  // made in chunks of entryChunk, handed out by Write
	pendingBytes int
	sinceScan    int // records added since the dispatcher last looked
	sinceScanB   int
	space        chan struct{} // closed when buffer space frees up
	inflight     int
	inflightKeys map[string]int
	paces        map[string]*pace // by shard ID (see pace.go)
	seq          uint64
	closing      bool
	closed       bool
	stats        Stats
}

var _ Writer = (*Producer)(nil)

// New returns a Producer sending through api. Close must be called to
// deliver what is buffered and release the producer's goroutine.
func New(api PutRecordsAPI, cfg Config) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancelCause(context.Background())
	p := &Producer{
		api:          api,
		sdk:          connectionRetries(kinesisclient.ConnectionRetryer()),
		cfg:          cfg,
		byARN:        strings.HasPrefix(cfg.Stream, "arn:"),
		shards:       newShardMap(cfg.Shards),
		start:        time.Now(),
		ctx:          ctx,
		cancel:       cancel,
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		space:        make(chan struct{}),
		inflightKeys: make(map[string]int),
		paces:        make(map[string]*pace),
	}
	go p.run()
	return p, nil
}

// Write queues r for delivery. It blocks while the buffer is full. A record
// Kinesis would reject (over MaxRecordBytes, or a partition key that is
// empty or longer than 256 characters) is not queued: it is counted as
// failed and passed to OnFailure with an error wrapping ErrInvalidRecord,
// and Write returns nil. Write returns an error only after Close or when
// ctx ends while it waits.
func (p *Producer) Write(ctx context.Context, r Record) error {
	size := len(r.Data) + len(r.PartitionKey)
	invalid := check(r, p.cfg.MaxRecordBytes)
	for {
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			return ErrClosed
		}
		if invalid != nil {
			p.stats.Queued++
			p.stats.Failed++
			p.stats.LastError = invalid.Error()
			p.mu.Unlock()
			p.report([]failure{{r, invalid}})
			return nil
		}
		if len(p.pending) < p.cfg.BufferRecords && p.pendingBytes+size <= p.cfg.BufferBytes || len(p.pending) == 0 {
			p.seq++
			shard, _ := p.shards.lookup(r)
			if len(p.entries) == 0 {
				p.entries = make([]entry, entryChunk)
			}
			e := &p.entries[0]
			p.entries = p.entries[1:]
			*e = entry{rec: r, seq: p.seq, size: size, enqueued: time.Now(), route: p.route(r, shard), shard: shard}
			p.pending = append(p.pending, e)
			p.pendingBytes += size
			p.stats.Queued++
			p.sinceScan++
			p.sinceScanB += size
			notify := len(p.pending) == 1 || p.sinceScan >= p.cfg.MaxBatchRecords || p.sinceScanB >= p.cfg.MaxBatchBytes
			p.mu.Unlock()
			if notify {
				p.notify()
			}
			return nil
		}
		space := p.space
		p.mu.Unlock()
		p.notify() // the buffer is full: send without waiting for the linger
		select {
		case <-space:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Check returns an error wrapping ErrInvalidRecord when Kinesis would
// reject r whatever the retries: a partition key that is empty or longer
// than MaxPartitionKeyChars, or more than DefaultMaxRecordBytes of data
// plus partition key. Write makes the same check.
func Check(r Record) error { return check(r, DefaultMaxRecordBytes) }

func check(r Record, maxRecordBytes int) error {
	size := len(r.Data) + len(r.PartitionKey)
	switch n := utf8.RuneCountInString(r.PartitionKey); {
	case n == 0:
		return fmt.Errorf("%w: partition key is empty", ErrInvalidRecord)
	case n > MaxPartitionKeyChars:
		return fmt.Errorf("%w: partition key is %d characters, over the limit of %d", ErrInvalidRecord, n, MaxPartitionKeyChars)
	case size > maxRecordBytes:
		return fmt.Errorf("%w: record is %d bytes (data plus partition key), over the limit of %d", ErrInvalidRecord, size, maxRecordBytes)
	}
	return nil
}

// Stats returns the accounting so far.
func (p *Producer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statsLocked()
}

func (p *Producer) statsLocked() Stats {
	s := p.stats
	if !p.closed {
		s.Elapsed = time.Since(p.start)
	}
	return s
}

// Close sends everything buffered, waits for the calls in flight and
// returns the final accounting. When ctx ends first, calls in flight are
// abandoned and every record not yet delivered is failed with ctx's cause
// (reported through OnFailure), and Close returns an error saying so.
// Calling Close again returns the same accounting.
func (p *Producer) Close(ctx context.Context) (Stats, error) {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	p.notify()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		cause := context.Cause(ctx)
		p.cancel(fmt.Errorf("closing before delivery finished: %w", cause))
		<-p.done
		err = fmt.Errorf("stream %q at %s: closing before every record was delivered: %w", p.cfg.Stream, p.cfg.Endpoint, cause)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.stats.Elapsed = time.Since(p.start)
		p.closed = true
	}
	return p.statsLocked(), err
}

func (p *Producer) notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// report passes failures to OnFailure, one call at a time.
func (p *Producer) report(fs []failure) {
	if p.cfg.OnFailure == nil || len(fs) == 0 {
		return
	}
	p.cbMu.Lock()
	defer p.cbMu.Unlock()
	for _, f := range fs {
		p.cfg.OnFailure(f.rec, f.err)
	}
}

// run is the dispatcher: it forms batches from the pending records and
// starts calls while fewer than MaxInFlight are in flight.
func (p *Producer) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		var wakeAt time.Time
		if p.ctx.Err() != nil && len(p.pending) > 0 {
			fs := p.failPendingLocked(context.Cause(p.ctx))
			p.mu.Unlock()
			p.report(fs)
			continue
		}
		if p.closing && len(p.pending) == 0 && p.inflight == 0 {
			p.mu.Unlock()
			return
		}
		for p.ctx.Err() == nil && p.inflight < p.cfg.MaxInFlight {
			items, next := p.takeBatchLocked(time.Now())
			if items == nil {
				wakeAt = next
				break
			}
			p.inflight++
			go p.send(items)
		}
		p.mu.Unlock()

		var timerC <-chan time.Time
		if !wakeAt.IsZero() {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(max(time.Until(wakeAt), time.Millisecond))
			timerC = timer.C
		}
		// Once aborted, pending records are failed at the top of the loop
		// and the calls in flight, which end now, wake the loop.
		ctxDone := p.ctx.Done()
		if p.ctx.Err() != nil {
			ctxDone = nil
		}
		select {
		case <-p.wake:
		case <-timerC:
		case <-ctxDone:
		}
	}
}

// failPendingLocked gives up on every pending record.
func (p *Producer) failPendingLocked(cause error) []failure {
	fs := make([]failure, 0, len(p.pending))
	for _, e := range p.pending {
		fs = append(fs, p.failLocked(e, fmt.Errorf("stream %q at %s: not delivered: %w", p.cfg.Stream, p.cfg.Endpoint, cause)))
		e.rec = Record{} // the failure holds it
	}
	p.pending = nil
	p.pendingBytes = 0
	p.freeSpaceLocked()
	return fs
}

func (p *Producer) failLocked(e *entry, err error) failure {
	e.done = true
	p.stats.Failed++
	p.stats.LastError = err.Error()
	return failure{e.rec, err}
}

func (p *Producer) freeSpaceLocked() {
	close(p.space)
	p.space = make(chan struct{})
}

// ordered reports whether the producer keeps an order (by key or shard).
func (p *Producer) ordered() bool { return p.cfg.OrderedByKey || p.cfg.OrderedByShard }

// orderKey is the key whose order OrderedByKey or OrderedByShard preserves.
func (p *Producer) orderKey(e *entry) string {
	if p.cfg.OrderedByShard {
		return e.shard
	}
	return e.rec.PartitionKey
}

// takeBatchLocked picks the records for the next call and removes them
// from pending. It returns nil when no call should be made now, with the
// time to look again (zero: when something changes).
func (p *Producer) takeBatchLocked(now time.Time) ([]*putItem, time.Time) {
	p.sinceScan, p.sinceScanB = 0, 0
	if len(p.pending) == 0 {
		return nil, time.Time{}
	}
	var (
		items       []*putItem
		batchBytes  int
		taken       = make([]bool, len(p.pending))
		nTaken      int
		full        bool
		moreReady   bool // a ready record had to wait for the next call
		oldest      time.Time
		nextRetry   time.Time
		blocked     map[string]bool
		inBatch     map[string]*putItem
		openAgg     map[string]*putItem
		budgets     map[string]*budget // of paced shards, as this call spends it
		ordered     = p.ordered()
		perKey      = p.cfg.OrderedByKey // at most one entry per key per call
		aggregate   = p.cfg.Aggregate
		slab        []putItem
		slabEntries []*entry
	)
	if ordered {
		blocked = make(map[string]bool)
		inBatch = make(map[string]*putItem)
	}
	if aggregate {
		openAgg = make(map[string]*putItem)
	}
	for i, e := range p.pending {
		key := p.orderKey(e)
		if ordered && (p.inflightKeys[key] > 0 || blocked[key]) {
			continue
		}
		if e.notBefore.After(now) {
			if nextRetry.IsZero() || e.notBefore.Before(nextRetry) {
				nextRetry = e.notBefore
			}
			if ordered {
				blocked[key] = true
			}
			continue
		}
		b := budgets[e.shard]
		if b == nil && !p.cfg.Unpaced {
			if pc := p.paceLocked(e.shard); pc.limited() {
				nb := pc.budget(now)
				// A shard held back by its rate waits for a tenth of a
				// second of sends rather than sending a few records a
				// call. Aggregated records are paced by their bytes: one
				// Kinesis record carries many of them.
				if aggregate {
					nb.records = math.Inf(1)
				} else if half := float64(pc.records.Burst()) / 2; nb.records < half {
					nb.records -= half - 1
				}
				b = &nb
				if budgets == nil {
					budgets = make(map[string]*budget)
				}
				budgets[e.shard] = b
			}
		}
		if b != nil && (b.records < 1 || b.bytes < float64(e.size)) {
			p.paces[e.shard].bound = true
			if at := now.Add(p.paces[e.shard].wait(*b, e.size)); nextRetry.IsZero() || at.Before(nextRetry) {
				nextRetry = at
			}
			if ordered {
				blocked[key] = true
			}
			continue
		}
		var carrier *putItem // the item a record of this key must join
		if perKey {
			carrier = inBatch[key]
		}
		placed := false
		if aggregate {
			open := openAgg[e.route]
			if carrier != nil && carrier != open {
				blocked[key], moreReady = true, true
				continue
			}
			if open != nil {
				newSize := p.aggSizeWith(open, e.rec)
				if newSize <= p.cfg.MaxRecordBytes && batchBytes-open.size+newSize <= p.cfg.MaxBatchBytes {
					if len(open.entries) == 1 {
						open.agg.Add(open.entries[0].rec)
					}
					open.agg.Add(e.rec)
					open.entries = append(open.entries, e)
					batchBytes += newSize - open.size
					open.size = newSize
					placed = true
				} else if carrier != nil {
					blocked[key], moreReady = true, true
					continue
				}
			}
		} else if carrier != nil {
			blocked[key], moreReady = true, true
			continue
		}
		if !placed {
			if len(items) == p.cfg.MaxBatchRecords || batchBytes+e.size > p.cfg.MaxBatchBytes {
				full = true
				break
			}
			if slab == nil {
				// Every item of a call is carved from one allocation: the
				// call has at most MaxBatchRecords of them, and no more
				// than there are pending records.
				n := min(len(p.pending)-i, p.cfg.MaxBatchRecords)
				slab, slabEntries, items = make([]putItem, 0, n), make([]*entry, n), make([]*putItem, 0, n)
			}
			k := len(slab)
			slabEntries[k] = e
			slab = append(slab, putItem{entries: slabEntries[k : k+1 : k+1], size: e.size})
			it := &slab[k]
			items = append(items, it)
			batchBytes += e.size
			if aggregate {
				openAgg[e.route] = it
			}
			if perKey {
				inBatch[key] = it
			}
		}
		taken[i] = true
		nTaken++
		if b != nil {
			b.records--
			b.bytes -= float64(e.size)
		}
		if oldest.IsZero() || e.enqueued.Before(oldest) {
			oldest = e.enqueued
		}
	}
	if nTaken == 0 {
		return nil, nextRetry
	}
	bufferFull := len(p.pending) >= p.cfg.BufferRecords || p.pendingBytes >= p.cfg.BufferBytes
	if !full && !moreReady && !p.closing && !bufferFull && p.cfg.Linger > 0 {
		if due := oldest.Add(p.cfg.Linger); due.After(now) {
			if !nextRetry.IsZero() && nextRetry.Before(due) {
				due = nextRetry
			}
			return nil, due
		}
	}
	rest := p.pending[:0]
	inflight := make(map[string]bool) // keys counted in flight for this call
	for i, e := range p.pending {
		if taken[i] {
			p.pendingBytes -= e.size
			e.attempts++
			if e.attempts == 1 {
				e.firstTry = now
			}
			if pc := p.paces[e.shard]; pc != nil && !p.cfg.Unpaced && pc.limited() {
				pc.spend(now, e.size, !p.cfg.Aggregate)
			}
			if ordered && !inflight[p.orderKey(e)] {
				inflight[p.orderKey(e)] = true
				p.inflightKeys[p.orderKey(e)]++
			}
			continue
		}
		rest = append(rest, e)
	}
	clear(p.pending[len(rest):])
	p.pending = rest
	p.freeSpaceLocked()
	return items, time.Time{}
}

// aggSizeWith is the size the item would have, as sent, with r added to
// its aggregate.
func (p *Producer) aggSizeWith(it *putItem, r Record) int {
	if len(it.entries) == 1 {
		var a kpl.Aggregator
		a.Add(it.entries[0].rec)
		return a.SizeWith(r) + len(it.entries[0].rec.PartitionKey)
	}
	return it.agg.SizeWith(r) + len(it.entries[0].rec.PartitionKey)
}

// route groups records for aggregation: by shard when the shard map is
// known, else by partition key.
func (p *Producer) route(r Record, shard string) string {
	if !p.cfg.Aggregate {
		return ""
	}
	if shard != "" {
		return shard
	}
	return "k:" + r.PartitionKey
}

// connectionRetries makes the SDK retry a call only when it failed to
// connect: the producer retries API errors, record by record.
func connectionRetries(r aws.Retryer) func(*kinesis.Options) {
	return func(o *kinesis.Options) { o.Retryer = r }
}

// send makes one PutRecords call and settles its records.
func (p *Producer) send(items []*putItem) {
	reqs := make([]types.PutRecordsRequestEntry, len(items))
	for i, it := range items {
		reqs[i] = it.request()
	}
	in := &kinesis.PutRecordsInput{Records: reqs}
	if p.byARN {
		in.StreamARN = aws.String(p.cfg.Stream)
	} else {
		in.StreamName = aws.String(p.cfg.Stream)
	}
	t0 := time.Now()
	out, err := p.api.PutRecords(p.ctx, in, p.sdk)
	now := time.Now()
	p.observe(items, now.Sub(t0), out, err)

	var fs []failure
	p.mu.Lock()
	p.stats.Calls++
	var retry, throttled []*entry
	switch {
	case err != nil && p.ctx.Err() != nil:
		for _, it := range items {
			for _, e := range it.entries {
				fs = append(fs, p.failLocked(e, fmt.Errorf("stream %q at %s: not delivered: %w", p.cfg.Stream, p.cfg.Endpoint, context.Cause(p.ctx))))
			}
		}
	case err != nil && !retryable(err):
		err = fmt.Errorf("stream %q at %s: PutRecords: %s", p.cfg.Stream, p.cfg.Endpoint, describe(err))
		for _, it := range items {
			for _, e := range it.entries {
				fs = append(fs, p.failLocked(e, err))
			}
		}
	case err != nil:
		p.stats.LastError = describe(err)
		p.cfg.Logger.Debug("PutRecords failed; retrying its records", "stream", p.cfg.Stream, "records", len(items), "err", err)
		if isThrottle(err) {
			p.stats.Throttled += int64(len(items))
			for _, it := range items {
				throttled = append(throttled, it.entries...)
				p.paceLocked(it.entries[0].shard).throttled(now)
			}
			break
		}
		for _, it := range items {
			retry = append(retry, it.entries...)
		}
	case len(out.Records) != len(items):
		err = fmt.Errorf("stream %q at %s: PutRecords answered %d results for %d records", p.cfg.Stream, p.cfg.Endpoint, len(out.Records), len(items))
		for _, it := range items {
			for _, e := range it.entries {
				fs = append(fs, p.failLocked(e, err))
			}
		}
	default:
		failedShard := make(map[string]bool)
		throttledShard := make(map[string]bool)
		reordered := 0
		for i, r := range out.Records {
			it := items[i]
			shard := it.entries[0].shard
			if r.ErrorCode == nil {
				if p.cfg.OrderedByShard && failedShard[shard] {
					reordered += len(it.entries)
				}
				p.stats.Delivered += int64(len(it.entries))
				for _, e := range it.entries {
					p.stats.Bytes += int64(len(e.rec.Data))
					e.done = true
				}
				continue
			}
			failedShard[shard] = true
			code := aws.ToString(r.ErrorCode)
			p.stats.LastError = code + ": " + aws.ToString(r.ErrorMessage)
			if code == codeThroughputExceeded {
				throttledShard[shard] = true
				p.stats.Throttled++
				throttled = append(throttled, it.entries...)
				continue
			}
			retry = append(retry, it.entries...)
		}
		for _, it := range items {
			shard := it.entries[0].shard
			if throttledShard[shard] {
				p.paceLocked(shard).throttled(now)
			} else if pc := p.paces[shard]; pc != nil {
				pc.succeeded(now)
			}
		}
		if reordered > 0 {
			p.stats.Reordered += int64(reordered)
			p.cfg.Logger.Warn("records stored ahead of an earlier record of their shard that failed and will be retried",
				"stream", p.cfg.Stream, "records", reordered, "lastError", p.stats.LastError)
		}
	}
	for _, e := range throttled {
		if f, gaveUp := p.retryLocked(e, now, true); gaveUp {
			fs = append(fs, f)
		}
	}
	for _, e := range retry {
		if f, gaveUp := p.retryLocked(e, now, false); gaveUp {
			fs = append(fs, f)
		}
	}
	p.mu.Unlock()
	// Report before the call counts as finished, so that Close returns
	// only after every failure was reported.
	p.report(fs)
	p.mu.Lock()
	p.inflight--
	if p.ordered() {
		done := make(map[string]bool)
		for _, it := range items {
			for _, e := range it.entries {
				k := p.orderKey(e)
				if done[k] {
					continue
				}
				done[k] = true
				if p.inflightKeys[k]--; p.inflightKeys[k] == 0 {
					delete(p.inflightKeys, k)
				}
			}
		}
	}
	for _, it := range items {
		for _, e := range it.entries {
			if e.done {
				e.rec = Record{}
			}
		}
	}
	p.mu.Unlock()
	p.notify()
}

// paceLocked returns the shard's pace, making it on first use.
func (p *Producer) paceLocked(shard string) *pace {
	pc := p.paces[shard]
	if pc == nil {
		pc = newPace(time.Now(), p.cfg.MaxRecordBytes)
		p.paces[shard] = pc
	}
	return pc
}

// retryLocked puts e back into pending after a backoff, or gives up on it.
// A throttled send does not count against MaxAttempts (see Config).
func (p *Producer) retryLocked(e *entry, now time.Time, throttled bool) (failure, bool) {
	if p.ctx.Err() != nil {
		return p.failLocked(e, fmt.Errorf("stream %q at %s: not delivered (last error: %s): %w", p.cfg.Stream, p.cfg.Endpoint, p.stats.LastError, context.Cause(p.ctx))), true
	}
	if !throttled {
		e.failures++
	}
	wait := backoff.Delay(e.attempts, p.cfg.BaseBackoff, p.cfg.MaxBackoff)
	if e.failures >= p.cfg.MaxAttempts || now.Add(wait).Sub(e.firstTry) > p.cfg.MaxRetryTime {
		return p.failLocked(e, fmt.Errorf("stream %q at %s: giving up after %d attempts over %s: %s",
			p.cfg.Stream, p.cfg.Endpoint, e.attempts, now.Sub(e.firstTry).Round(time.Millisecond), p.stats.LastError)), true
	}
	e.notBefore = now.Add(wait)
	p.stats.Retried++
	// Insert by seq so that a retried record goes before later records.
	i := len(p.pending)
	for i > 0 && p.pending[i-1].seq > e.seq {
		i--
	}
	p.pending = append(p.pending, nil)
	copy(p.pending[i+1:], p.pending[i:])
	p.pending[i] = e
	p.pendingBytes += e.size
	return failure{}, false
}

// retryable reports whether a failed call may succeed when repeated: no
// (complete) response, a server error, or throttling.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true // a timeout of this call, not the producer's end
	}
	if isThrottle(err) {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		// A 2xx whose body could not be read was cut short in transit.
		// Retrying it may store its records twice, as any retry after a
		// lost response may: delivery is at least once.
		status := re.HTTPStatusCode()
		return status >= 500 || status == 429 || status < 400
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorFault() == smithy.FaultServer
	}
	return true // transport: connection refused, reset, timeout
}

func isThrottle(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case codeThroughputExceeded, "LimitExceededException", "ThrottlingException", "KMSThrottlingException", "RequestLimitExceeded", "TooManyRequestsException":
		return true
	}
	return false
}

// describe renders an AWS API error as "<Type>: <message>".
func describe(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if msg := apiErr.ErrorMessage(); msg != "" {
			return apiErr.ErrorCode() + ": " + msg
		}
		return apiErr.ErrorCode()
	}
	return err.Error()
}

// ShardRange is one open shard's hash-key range.
type ShardRange struct {
	ShardID                        string
	StartingHashKey, EndingHashKey *big.Int
}

// ListShardsAPI is the part of the Kinesis client LoadShards calls.
type ListShardsAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// LoadShards returns the hash-key ranges of the stream's open shards, for
// Config.Shards.
func LoadShards(ctx context.Context, api ListShardsAPI, stream string) ([]ShardRange, error) {
	in := &kinesis.ListShardsInput{}
	if strings.HasPrefix(stream, "arn:") {
		in.StreamARN = aws.String(stream)
	} else {
		in.StreamName = aws.String(stream)
	}
	var out []ShardRange
	for range 1000 {
		page, err := api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing shards of %q: %w", stream, err)
		}
		for _, s := range page.Shards {
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed
			}
			if s.HashKeyRange == nil {
				continue
			}
			lo, ok1 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
			hi, ok2 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("listing shards of %q: shard %s has a malformed hash-key range", stream, aws.ToString(s.ShardId))
			}
			out = append(out, ShardRange{ShardID: aws.ToString(s.ShardId), StartingHashKey: lo, EndingHashKey: hi})
		}
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
	return nil, fmt.Errorf("listing shards of %q: too many pages", stream)
}

// shardMap finds the shard a record maps to.
type shardMap []ShardRange

func newShardMap(rs []ShardRange) shardMap { return shardMap(rs) }

func (m shardMap) lookup(r Record) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	var h *big.Int
	if r.ExplicitHashKey != "" {
		var ok bool
		if h, ok = new(big.Int).SetString(r.ExplicitHashKey, 10); !ok {
			return "", false
		}
	} else {
		h = kpl.HashKey(r.PartitionKey)
	}
	for _, s := range m {
		if h.Cmp(s.StartingHashKey) >= 0 && h.Cmp(s.EndingHashKey) <= 0 {
			return s.ShardID, true
		}
	}
	return "", false
}
