// Package bench is the engine of `runnel bench` (its command is in
// internal/cli): it drives any Kinesis endpoint with PutRecords and
// GetRecords and reports throughput and latency.
//
// A run creates fresh streams (one by default), waits for them to become
// ACTIVE, raises their MaxRecordSizeInKiB (UpdateMaxRecordSize) when the
// records are larger than the default 1 MiB, writes records through one
// producer.Producer a stream with concurrent calls (retrying only the
// records a PutRecords call reports as failed), reads every shard back
// from TRIM_HORIZON until it is caught up, checks that each shard returned
// as many records as were acknowledged on it, and deletes the streams.
package bench

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/producer"
)

// API is the part of the Kinesis client a run uses. *kinesis.Client
// satisfies it.
type API interface {
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	DeleteStream(ctx context.Context, in *kinesis.DeleteStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.DeleteStreamOutput, error)
	UpdateMaxRecordSize(ctx context.Context, in *kinesis.UpdateMaxRecordSizeInput, optFns ...func(*kinesis.Options)) (*kinesis.UpdateMaxRecordSizeOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ API = (*kinesis.Client)(nil)

// Limits of the Kinesis API that bound the options.
const (
	maxRecordsPerCall = producer.DefaultMaxBatchRecords
	maxRecordSize     = producer.LimitRecordBytes - keyChars
	maxStreams        = 10000
	getRecordsLimit   = 10000
	// keyChars is the length of the random hex partition keys, which
	// count against the record size limit.
	keyChars = 16
)

// Options describe one run. Zero values take the defaults named on each
// field; Total and Duration are exclusive.
type Options struct {
	// Stream is the name of the stream to create. The default is a unique
	// name starting with "runnel-bench-". The stream must not exist.
	Stream string
	// Streams is the number of streams to spread the work over; when more
	// than one, they are named Stream-0, Stream-1, ... The default is 1.
	Streams int
	// Shards is the shard count of each stream. The default is 4.
	Shards int
	// Clients is the number of goroutines making records and the number
	// of PutRecords calls in flight at once on each stream. The default
	// is 4.
	Clients int
	// RecordsPerCall is the number of records per PutRecords call, 1..500.
	// The default is 500.
	RecordsPerCall int
	// RecordSize is the size of each record's random data in bytes, up to
	// 10 MiB less the 16-character partition key; a stream is raised to
	// the record's size in whole KiB when a record is over 1 MiB. The
	// default is 100.
	RecordSize int
	// Total is the number of records to put. The default is 100,000 unless
	// Duration is set.
	Total int64
	// Duration, when set, puts for this long instead of a fixed Total.
	Duration time.Duration
	// Readers is the number of shards read concurrently. The default is one
	// per shard of every stream.
	Readers int
	// Keep leaves the stream in place after the run.
	Keep bool
	// JSON prints the result as one JSON object instead of text.
	JSON bool
	// Timeout bounds the whole run, stream creation and deletion included.
	// The default is 30 minutes.
	Timeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Stream == "" {
		var b [4]byte
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		o.Stream = "runnel-bench-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
	}
	if o.Streams == 0 {
		o.Streams = 1
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	if o.Clients == 0 {
		o.Clients = 4
	}
	if o.RecordsPerCall == 0 {
		o.RecordsPerCall = maxRecordsPerCall
	}
	if o.RecordSize == 0 {
		o.RecordSize = 100
	}
	if o.Total == 0 && o.Duration == 0 {
		o.Total = 100000
	}
	if o.Readers == 0 {
		o.Readers = o.Shards * o.Streams
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Streams < 1 || o.Streams > maxStreams {
		errs = append(errs, fmt.Errorf("streams must be 1..%d, got %d", maxStreams, o.Streams))
	}
	if o.Shards < 1 {
		errs = append(errs, fmt.Errorf("shards must be at least 1, got %d", o.Shards))
	}
	if o.Clients < 1 {
		errs = append(errs, fmt.Errorf("clients must be at least 1, got %d", o.Clients))
	}
	if o.RecordsPerCall < 1 || o.RecordsPerCall > maxRecordsPerCall {
		errs = append(errs, fmt.Errorf("records per call must be 1..%d, got %d", maxRecordsPerCall, o.RecordsPerCall))
	}
	if o.RecordSize < 1 || o.RecordSize > maxRecordSize {
		errs = append(errs, fmt.Errorf("record size must be 1..%d bytes, got %d", maxRecordSize, o.RecordSize))
	}
	if o.Total < 0 {
		errs = append(errs, fmt.Errorf("total must not be negative, got %d", o.Total))
	}
	if o.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration must not be negative, got %s", o.Duration))
	}
	if o.Total > 0 && o.Duration > 0 {
		errs = append(errs, errors.New("total and duration are exclusive; set one"))
	}
	if o.Readers < 1 {
		errs = append(errs, fmt.Errorf("readers must be at least 1, got %d", o.Readers))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must not be negative, got %s", o.Timeout))
	}
	return errors.Join(errs...)
}

// Result is what a run measured.
type Result struct {
	Stream         string  `json:"stream"`
	Streams        int     `json:"streams"`
	Shards         int     `json:"shards"`
	Clients        int     `json:"clients"`
	Readers        int     `json:"readers"`
	RecordsPerCall int     `json:"records_per_call"`
	RecordSize     int     `json:"record_size"`
	Put            Phase   `json:"put"`
	Get            Phase   `json:"get"`
	Verified       bool    `json:"verified"`
	CreateSeconds  float64 `json:"create_seconds"`
}

// Phase is the measurement of the put or the read phase. Bytes count record
// data only, not partition keys or protocol overhead; MB is 10^6 bytes.
type Phase struct {
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	Calls         int64   `json:"calls"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	Latency       Latency `json:"latency_ms"`
	// RetriedRecords counts records a PutRecords call reported as failed and
	// that were sent again (put phase only).
	RetriedRecords int64 `json:"retried_records"`
	// CallErrors counts calls that failed as a whole and were retried.
	CallErrors int64 `json:"call_errors"`
	// AmbiguousRecords counts records sent again after a PutRecords call
	// failed without an error response from the server (a transport or
	// response decoding error), so the first attempt may have been stored:
	// each may be read back twice (put phase only).
	AmbiguousRecords int64 `json:"ambiguous_records"`
}

func (p *Phase) finish(elapsed time.Duration, lat []time.Duration) {
	p.Seconds = elapsed.Seconds()
	if p.Seconds > 0 {
		p.RecordsPerSec = float64(p.Records) / p.Seconds
		p.MBPerSec = float64(p.Bytes) / 1e6 / p.Seconds
	}
	p.Latency = summarize(lat)
}

// ErrMismatch means the records read back differ in number from the records
// acknowledged.
var ErrMismatch = errors.New("read count differs from acknowledged count")

// Run creates the stream, runs the put and read phases, verifies the count
// and writes the report to w. It deletes the stream unless o.Keep, even when
// a phase fails. The returned Result is filled as far as the run got.
func Run(ctx context.Context, api API, o Options, w io.Writer) (*Result, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	res := &Result{
		Stream:         o.Stream,
		Streams:        o.Streams,
		Shards:         o.Shards,
		Clients:        o.Clients,
		Readers:        o.Readers,
		RecordsPerCall: o.RecordsPerCall,
		RecordSize:     o.RecordSize,
	}
	names := o.streamNames()
	start := time.Now()
	created, err := createStreams(ctx, api, names, o.Shards, o.maxRecordKiB())
	if !o.Keep {
		defer func() {
			// Delete even when ctx is cancelled, within its own bound.
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer dcancel()
			for _, name := range created {
				_, _ = api.DeleteStream(dctx, &kinesis.DeleteStreamInput{
					StreamName:              aws.String(name),
					EnforceConsumerDeletion: aws.Bool(true),
				})
			}
		}()
	}
	if err != nil {
		return res, err
	}
	res.CreateSeconds = time.Since(start).Seconds()

	perShard, err := putPhase(ctx, api, o, names, &res.Put)
	if err != nil {
		return res, fmt.Errorf("put phase: %w", err)
	}
	readShards, err := getPhase(ctx, api, o, names, &res.Get)
	if err != nil {
		return res, fmt.Errorf("read phase: %w", err)
	}
	verr := verify(perShard, readShards, res.Put.AmbiguousRecords)
	res.Verified = verr == nil
	if err := report(w, res, o.JSON); err != nil {
		return res, err
	}
	return res, verr
}

// verify checks the count read from each shard against the count
// acknowledged on it. Records resent after an ambiguous failure may have
// been stored twice, so up to ambiguous extra records in total are allowed;
// without ambiguous failures the counts must be equal.
func verify(put, read map[string]int64, ambiguous int64) error {
	var errs []error
	var extra int64
	for shard, n := range read {
		switch d := n - put[shard]; {
		case d < 0:
			errs = append(errs, fmt.Errorf("%w: shard %s: put %d, read %d", ErrMismatch, shard, put[shard], n))
		case d > 0:
			extra += d
			if ambiguous == 0 {
				errs = append(errs, fmt.Errorf("%w: shard %s: put %d, read %d", ErrMismatch, shard, put[shard], n))
			}
		}
	}
	for shard, n := range put {
		if _, ok := read[shard]; !ok && n > 0 {
			errs = append(errs, fmt.Errorf("%w: shard %s: put %d, not read", ErrMismatch, shard, n))
		}
	}
	if ambiguous > 0 && extra > ambiguous {
		errs = append(errs, fmt.Errorf("%w: %d records read beyond those acknowledged, only %d were resent after ambiguous failures", ErrMismatch, extra, ambiguous))
	}
	return errors.Join(errs...)
}

// streamNames returns the names of the streams of a run.
func (o *Options) streamNames() []string {
	if o.Streams == 1 {
		return []string{o.Stream}
	}
	names := make([]string, o.Streams)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", o.Stream, i)
	}
	return names
}

// recordBytes is the size of one record as its limit counts it: data
// plus partition key.
func (o *Options) recordBytes() int { return o.RecordSize + keyChars }

// maxRecordKiB is the MaxRecordSizeInKiB the streams need, 0 when the
// default 1 MiB holds the records.
func (o *Options) maxRecordKiB() int {
	if o.recordBytes() <= producer.DefaultMaxRecordBytes {
		return 0
	}
	return (o.recordBytes() + 1023) / 1024
}

// createStreams creates the streams, a few at a time, each ACTIVE and
// raised to maxKiB (when not 0) before it counts as created. It returns
// the names of the streams it created, also when it fails part way.
func createStreams(ctx context.Context, api API, names []string, shards, maxKiB int) ([]string, error) {
	var (
		mu      sync.Mutex
		created []string
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, name := range names {
		g.Go(func() error {
			arn, err := createStream(gctx, api, name, shards, func() {
				mu.Lock()
				defer mu.Unlock()
				created = append(created, name)
			})
			if err != nil || maxKiB == 0 {
				return err
			}
			if _, err := api.UpdateMaxRecordSize(gctx, &kinesis.UpdateMaxRecordSizeInput{
				StreamARN:          arn,
				MaxRecordSizeInKiB: aws.Int32(int32(maxKiB)),
			}); err != nil {
				return fmt.Errorf("raising the record size limit of %s to %d KiB: %w", name, maxKiB, err)
			}
			// The stream may be UPDATING for a while.
			_, err = waitActive(gctx, api, name)
			return err
		})
	}
	err := g.Wait()
	return created, err
}

// createStream creates the stream, calls made once it was created, and
// polls until it is ACTIVE. It returns the stream's ARN.
func createStream(ctx context.Context, api API, name string, shards int, made func()) (*string, error) {
	if _, err := api.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(int32(shards)),
	}); err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", name, err)
	}
	made()
	return waitActive(ctx, api, name)
}

// waitActive polls until the stream is ACTIVE and returns its ARN.
func waitActive(ctx context.Context, api API, name string) (*string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("waiting for stream %s: %w", name, err)
		}
		if sum := out.StreamDescriptionSummary; sum.StreamStatus == types.StreamStatusActive {
			return sum.StreamARN, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for stream %s to become ACTIVE: %w", name, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// worker holds what one reader measured, merged once it is done.
type worker struct {
	records, bytes, calls, callErrors int64
	perShard                          map[string]int64
	lat                               []time.Duration
}

func (p *Phase) merge(ws []*worker, perShard map[string]int64) ([]time.Duration, map[string]int64) {
	var lat []time.Duration
	for _, w := range ws {
		p.Records += w.records
		p.Bytes += w.bytes
		p.Calls += w.calls
		p.CallErrors += w.callErrors
		lat = append(lat, w.lat...)
		for s, n := range w.perShard {
			perShard[s] += n
		}
	}
	return lat, perShard
}

// Bounds on retrying: a record or call that fails this many times in a row
// ends the run (throttled records: after the producer's MaxRetryTime).
const (
	maxAttempts = 50
	maxBackoff  = time.Second
)

// wait sleeps before retry attempt (n ≥ 0): 2^n ms, jittered, capped at
// maxBackoff.
func wait(ctx context.Context, attempt int) error {
	if !backoff.Sleep(ctx, backoff.Delay(attempt, 2*time.Millisecond, maxBackoff)) {
		return context.Cause(ctx)
	}
	return nil
}

// putPhase writes the records through the one PutRecords batcher,
// producer.Producer, one a stream: o.Clients goroutines make the records,
// o.RecordsPerCall at a time for the streams in turn, and up to o.Clients
// calls of o.RecordsPerCall records are in flight at once on each stream.
// It returns the acknowledged count per shard, keyed by stream/shard.
func putPhase(ctx context.Context, api API, o Options, names []string, ph *Phase) (map[string]int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		perShard = make(map[string]int64)
		gaveUp   error
	)
	prods := make([]*producer.Producer, len(names))
	for i, name := range names {
		prod, err := newProducer(api, o, name, func(c producer.Call) {
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, c.Latency)
			for shard, n := range c.Acked {
				perShard[name+"/"+shard] += int64(n)
			}
			ph.RetriedRecords += int64(c.Failed)
			if c.Resent > 0 {
				// The SDK sent the call again after losing a connection
				// without an answer: the earlier send may have stored it.
				ph.AmbiguousRecords += int64(c.Entries)
			}
			if c.Err != nil && !errors.Is(c.Err, context.Canceled) {
				ph.CallErrors++
				// Without an error response the records may have been
				// stored before the failure; the producer resends them.
				if _, rejected := errors.AsType[smithy.APIError](c.Err); !rejected {
					ph.AmbiguousRecords += int64(c.Entries)
				}
			}
		}, func(_ producer.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if gaveUp == nil {
				gaveUp = err
				cancel(err)
			}
		})
		if err != nil {
			for _, p := range prods[:i] {
				_, _ = p.Close(ctx)
			}
			return nil, err
		}
		prods[i] = prod
	}

	var claimed atomic.Int64
	per := int64(o.RecordsPerCall)
	start := time.Now()
	deadline := start.Add(o.Duration)
	// claim returns how many records to make next and for which stream, 0
	// records when the phase is done.
	claim := func() (int, *producer.Producer) {
		end := claimed.Add(per)
		first := end - per
		p := prods[(first/per)%int64(len(prods))]
		if o.Duration > 0 {
			if time.Now().After(deadline) {
				return 0, nil
			}
			return int(per), p
		}
		if first >= o.Total {
			return 0, nil
		}
		return int(min(per, o.Total-first)), p
	}
	g, gctx := errgroup.WithContext(ctx)
	for range o.Clients {
		var seed [32]byte
		for j := range seed {
			seed[j] = byte(rand.Uint32())
		}
		rng := rand.NewChaCha8(seed)
		g.Go(func() error { return makeRecords(gctx, o.RecordSize, rng, claim) })
	}
	werr := g.Wait()
	var (
		st   producer.Stats
		cerr error
	)
	for _, p := range prods {
		s, err := p.Close(ctx)
		st.Delivered += s.Delivered
		st.Bytes += s.Bytes
		st.Calls += s.Calls
		st.Failed += s.Failed
		cerr = cmp.Or(cerr, err)
	}
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	ph.Records, ph.Bytes, ph.Calls = st.Delivered, st.Bytes, st.Calls
	ph.finish(elapsed, lat)
	switch {
	case gaveUp != nil:
		return perShard, fmt.Errorf("%d records given up on: %w", st.Failed, gaveUp)
	case werr != nil:
		return perShard, werr
	}
	return perShard, cerr
}

// newProducer makes the producer of one stream.
func newProducer(api API, o Options, stream string, onCall func(producer.Call), onFailure func(producer.Record, error)) (*producer.Producer, error) {
	return producer.New(api, producer.Config{
		Stream:          stream,
		MaxBatchRecords: o.RecordsPerCall,
		MaxRecordBytes:  max(producer.DefaultMaxRecordBytes, o.recordBytes()),
		MaxInFlight:     o.Clients,
		BufferRecords:   2 * o.Clients * o.RecordsPerCall,
		// Every call is full but the last: a partial batch waits for
		// more records until Close sends it.
		Linger: time.Hour,
		// A benchmark sends as fast as the stream takes; throttled
		// records are retried with backoff.
		Unpaced:     true,
		MaxAttempts: maxAttempts,
		BaseBackoff: 2 * time.Millisecond,
		MaxBackoff:  maxBackoff,
		OnCall:      onCall,
		OnFailure:   onFailure,
	})
}

// makeRecords writes records of size random bytes under random 16-digit
// hex partition keys, as many as claim hands out to the writer it names.
func makeRecords[W producer.Writer](ctx context.Context, size int, rng *rand.ChaCha8, claim func() (int, W)) error {
	const keyChars = 16
	for {
		n, w := claim()
		if n == 0 {
			return nil
		}
		// One allocation per claim for the data and one for the keys:
		// the records stay buffered until they are acknowledged.
		data := make([]byte, n*size)
		_, _ = rng.Read(data)
		raw := make([]byte, n*keyChars/2)
		_, _ = rng.Read(raw)
		keys := hex.EncodeToString(raw)
		for i := range n {
			r := producer.Record{Data: data[i*size : (i+1)*size : (i+1)*size], PartitionKey: keys[i*keyChars : (i+1)*keyChars]}
			if err := w.Write(ctx, r); err != nil {
				return err
			}
		}
	}
}

// getPhase reads every shard of every stream from TRIM_HORIZON until
// caught up, o.Readers shards at a time, and returns the count read per
// shard, keyed by stream/shard.
func getPhase(ctx context.Context, api API, o Options, names []string, ph *Phase) (map[string]int64, error) {
	type task struct{ stream, shard string }
	var tasks []task
	for _, name := range names {
		shards, err := listShards(ctx, api, name)
		if err != nil {
			return nil, err
		}
		for _, id := range shards {
			tasks = append(tasks, task{name, id})
		}
	}
	ws := make([]*worker, len(tasks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Readers)
	start := time.Now()
	for i, t := range tasks {
		w := &worker{perShard: make(map[string]int64)}
		ws[i] = w
		g.Go(func() error { return w.read(gctx, api, t.stream, t.shard) })
	}
	err := g.Wait()
	elapsed := time.Since(start)
	lat, perShard := ph.merge(ws, make(map[string]int64))
	ph.finish(elapsed, lat)
	return perShard, err
}

func listShards(ctx context.Context, api API, stream string) ([]string, error) {
	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for range 10000 {
		out, err := api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing shards of %s: %w", stream, err)
		}
		for _, s := range out.Shards {
			ids = append(ids, aws.ToString(s.ShardId))
		}
		if out.NextToken == nil {
			return ids, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	return nil, fmt.Errorf("listing shards of %s: too many pages", stream)
}

// maxReadCalls bounds the GetRecords calls on one shard.
const maxReadCalls = 1 << 20

// read reads one shard until a call returns no records and reports the
// shard caught up (or closed).
func (w *worker) read(ctx context.Context, api API, stream, shard string) error {
	var it *string
	for attempt := 0; it == nil; attempt++ {
		out, err := api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(stream),
			ShardId:           aws.String(shard),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			if ctx.Err() != nil || attempt+1 >= maxAttempts {
				return fmt.Errorf("GetShardIterator %s: %w", shard, err)
			}
			w.callErrors++
			if err := wait(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		it = out.ShardIterator
	}
	key := stream + "/" + shard
	w.perShard[key] = 0
	failures := 0
	for range maxReadCalls {
		t0 := time.Now()
		out, err := api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(getRecordsLimit)})
		w.lat = append(w.lat, time.Since(t0))
		w.calls++
		if err != nil {
			// The iterator is still valid: a failed call consumed nothing.
			failures++
			if ctx.Err() != nil || failures >= maxAttempts {
				return fmt.Errorf("GetRecords %s: %w", shard, err)
			}
			w.callErrors++
			if err := wait(ctx, failures); err != nil {
				return err
			}
			continue
		}
		failures = 0
		for _, r := range out.Records {
			w.bytes += int64(len(r.Data))
		}
		n := int64(len(out.Records))
		w.records += n
		w.perShard[key] += n
		if out.NextShardIterator == nil {
			return nil
		}
		if n == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			return nil
		}
		it = out.NextShardIterator
	}
	return fmt.Errorf("shard %s not caught up after %d GetRecords calls", shard, maxReadCalls)
}

func report(w io.Writer, r *Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	verified := "verified: every shard returned as many records as were acknowledged on it"
	if r.Put.AmbiguousRecords > 0 {
		verified = fmt.Sprintf("verified: every shard returned at least the records acknowledged on it, and at most %d more (resent after ambiguous failures)", r.Put.AmbiguousRecords)
	}
	if !r.Verified {
		verified = "NOT verified: records read differ from records acknowledged"
	}
	streams := "stream " + r.Stream
	if r.Streams > 1 {
		streams = fmt.Sprintf("%d streams %s-*", r.Streams, r.Stream)
	}
	_, err := fmt.Fprintf(w, "%s: %d shards, %d clients, %d readers, %d records/call, %d bytes/record (created in %.2fs)\n%s\n%s\n%s\n",
		streams, r.Shards, r.Clients, r.Readers, r.RecordsPerCall, r.RecordSize, r.CreateSeconds,
		phaseLine("put", &r.Put), phaseLine("get", &r.Get), verified)
	return err
}

func phaseLine(name string, p *Phase) string {
	s := fmt.Sprintf("%-4s %10d records in %7.2fs  %10.0f records/s  %7.2f MB/s  %6d calls  latency p50 %s p99 %s max %s",
		name, p.Records, p.Seconds, p.RecordsPerSec, p.MBPerSec, p.Calls,
		ms(p.Latency.P50), ms(p.Latency.P99), ms(p.Latency.Max))
	if p.RetriedRecords > 0 {
		s += fmt.Sprintf("  retried records %d", p.RetriedRecords)
	}
	if p.CallErrors > 0 {
		s += fmt.Sprintf("  failed calls %d", p.CallErrors)
	}
	if p.AmbiguousRecords > 0 {
		s += fmt.Sprintf("  resent after ambiguous failures %d", p.AmbiguousRecords)
	}
	return s
}

func ms(v float64) string { return fmt.Sprintf("%.1fms", v) }
