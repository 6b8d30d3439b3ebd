package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/producer/source"
)

func newProduceCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Send generated or replayed events to a stream",
		Long: `Send events to a stream (or print them with --to stdout): the lines of a
TSV, CSV or JSON-lines file (produce file), random events (produce random),
or unicorn sensor readings (produce sensor).

Records go out in PutRecords batches of at most 500 records and 5 MiB; records
the stream rejects are retried with backoff, and records given up on are
written as JSON lines to standard error or --failed-file. A progress line is
shown on a terminal; a summary is printed at the end (--json for JSON, on
standard output unless --to stdout). Interrupting flushes what is buffered.
The exit code is 1 if any record could not be delivered.`,
	}
	cmd.AddCommand(newProduceFileCommand(e), newProduceRandomCommand(e), newProduceSensorCommand(e))
	return cmd
}

// produceOpts are the flags every produce command shares.
type produceOpts struct {
	stream       string
	to           string
	rate         float64
	jsonSummary  bool
	quiet        bool
	failedFile   string
	aggregate    bool
	ordered      bool
	order        string // shard, key or none; the command sets the default
	inFlight     int
	linger       time.Duration
	maxAttempts  int
	maxRetryTime time.Duration
	pace         bool
	flushTimeout time.Duration
}

func (o *produceOpts) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.stream, "stream", "", "stream name or ARN (or give it as the last argument)")
	f.StringVar(&o.to, "to", "stream", "where records go: stream, or stdout (one JSON line per record)")
	f.Float64Var(&o.rate, "rate", 0, "at most this many records per second (0: as fast as possible)")
	f.BoolVar(&o.jsonSummary, "json", false, "print the summary as JSON")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress line and no text summary")
	f.StringVar(&o.failedFile, "failed-file", "", "write records that could not be delivered to this file as JSON lines (default: standard error)")
	f.BoolVar(&o.aggregate, "aggregate", false, "pack records into KPL aggregated records (consumers must deaggregate)")
	if o.order == "" {
		o.order = "none"
	}
	f.StringVar(&o.order, "order", o.order, "keep records in input order: shard (each shard's, calls in flight across shards), key (each partition key's, one record per key per call) or none")
	f.BoolVar(&o.ordered, "ordered", false, "the same as --order key")
	f.IntVar(&o.inFlight, "in-flight", 4, "PutRecords calls in flight at once")
	f.DurationVar(&o.linger, "linger", 100*time.Millisecond, "how long a partial batch waits for more records")
	f.IntVar(&o.maxAttempts, "max-attempts", 10, "failed sends of one record before giving up on it (throttled sends do not count: they are retried until --max-retry-time)")
	f.DurationVar(&o.maxRetryTime, "max-retry-time", time.Minute, "how long after its first send a record may still be retried (the KPL's RecordTtl)")
	f.BoolVar(&o.pace, "pace", true, "pace each shard's sends to the rate it takes (a slow start, backing off when throttled, probing back up); --pace=false sends as fast as --in-flight allows and leaves throttling to retries")
	f.DurationVar(&o.flushTimeout, "flush-timeout", 30*time.Second, "how long to keep delivering buffered records at the end or after an interrupt")
}

// streamArg resolves the stream from --stream or an optional positional
// argument.
func (o *produceOpts) streamArg(args []string) error {
	if len(args) == 1 {
		if o.stream != "" && o.stream != args[0] {
			return usagef("stream given twice: --stream %s and %s", o.stream, args[0])
		}
		o.stream = args[0]
	}
	switch o.to {
	case "stream":
		if o.stream == "" {
			return usagef("no stream: give --stream NAME (or --to stdout)")
		}
	case "stdout":
	default:
		return usagef("--to %q: want stream or stdout", o.to)
	}
	if o.ordered {
		o.order = "key"
	}
	switch o.order {
	case "shard", "key", "none":
	default:
		return usagef("--order %q: want shard, key or none", o.order)
	}
	if o.rate < 0 {
		return usagef("--rate %v: must not be negative", o.rate)
	}
	if o.inFlight < 1 {
		return usagef("--in-flight %d: must be at least 1", o.inFlight)
	}
	if o.maxAttempts < 1 {
		return usagef("--max-attempts %d: must be at least 1", o.maxAttempts)
	}
	if o.maxRetryTime <= 0 {
		return usagef("--max-retry-time %s: must be positive", o.maxRetryTime)
	}
	return nil
}

// endpointName describes where a client sends requests.
func endpointName(c *kinesis.Client) string {
	o := c.Options()
	if o.BaseEndpoint != nil {
		return *o.BaseEndpoint
	}
	return "AWS Kinesis in " + o.Region
}

// produceRun is one produce command at work.
type produceRun struct {
	e        *env
	opts     *produceOpts
	endpoint string

	failMu  sync.Mutex
	failOut io.Writer
	failErr error
}

// open builds the Writer the flags select, checking that the stream exists.
func (r *produceRun) open(ctx context.Context) (producer.Writer, func() error, error) {
	closeFn := func() error { return nil }
	r.failOut = r.e.stderr
	if r.opts.failedFile != "" {
		f, err := os.Create(r.opts.failedFile)
		if err != nil {
			return nil, nil, err
		}
		r.failOut, closeFn = f, f.Close
	}
	if r.opts.to == "stdout" {
		r.endpoint = "standard output"
		return producer.NewConsole(r.e.stdout), closeFn, nil
	}
	client, err := r.e.client(ctx)
	if err != nil {
		_ = closeFn()
		return nil, nil, err
	}
	r.endpoint = endpointName(client)
	if err := checkProduceStream(ctx, client, r.opts.stream, r.endpoint); err != nil {
		_ = closeFn()
		return nil, nil, err
	}
	cfg := producer.Config{
		Stream:         r.opts.stream,
		Endpoint:       r.endpoint,
		Linger:         r.opts.linger,
		MaxInFlight:    r.opts.inFlight,
		MaxAttempts:    r.opts.maxAttempts,
		MaxRetryTime:   r.opts.maxRetryTime,
		OrderedByKey:   r.opts.order == "key",
		OrderedByShard: r.opts.order == "shard",
		Aggregate:      r.opts.aggregate,
		Unpaced:        !r.opts.pace,
		OnFailure:      r.reportFailure,
		Logger:         r.e.logger,
	}
	if r.opts.linger == 0 {
		cfg.Linger = -1
	}
	if r.opts.aggregate || cfg.OrderedByShard {
		cfg.Shards, err = producer.LoadShards(ctx, client, r.opts.stream)
		if isAccessDenied(err) {
			// A put-only key: without the shard map, records are grouped
			// by partition key and the stream keeps one order.
			r.e.logger.Warn("cannot list the stream's shards; without the shard map, --order shard sends one call at a time and --aggregate groups records by partition key",
				"stream", r.opts.stream, "err", describeError(err))
			err = nil
		}
		if err != nil {
			_ = closeFn()
			return nil, nil, err
		}
	}
	p, err := producer.New(client, cfg)
	if err != nil {
		_ = closeFn()
		return nil, nil, err
	}
	return p, closeFn, nil
}

// checkProduceStream fails with a clear message when the stream does not exist.
func checkProduceStream(ctx context.Context, c *kinesis.Client, stream, endpoint string) error {
	in := &kinesis.DescribeStreamSummaryInput{}
	if len(stream) > 4 && stream[:4] == "arn:" {
		in.StreamARN = aws.String(stream)
	} else {
		in.StreamName = aws.String(stream)
	}
	_, err := c.DescribeStreamSummary(ctx, in)
	if isAccessDenied(err) {
		return nil // a put-only key: PutRecords says whether the stream exists
	}
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("stream %q does not exist at %s (create it with: runnel stream create %s)", stream, endpoint, stream)
	}
	if err != nil {
		return fmt.Errorf("checking stream %q at %s: %s", stream, endpoint, describeError(err))
	}
	return nil
}

// isAccessDenied reports whether err is the server refusing the key the
// action (AccessDeniedException), as it does to a put-only key.
func isAccessDenied(err error) bool {
	var ad *types.AccessDeniedException
	return errors.As(err, &ad)
}

// failedLine is how a record given up on is written out.
type failedLine struct {
	PartitionKey string `json:"partitionKey"`
	Data         any    `json:"data"`
	DataEncoding string `json:"dataEncoding,omitempty"`
	Error        string `json:"error"`
}

func (r *produceRun) reportFailure(rec producer.Record, err error) {
	l := failedLine{PartitionKey: rec.PartitionKey, Error: err.Error()}
	switch {
	case json.Valid(rec.Data):
		l.Data = json.RawMessage(rec.Data)
	case utf8.Valid(rec.Data):
		l.Data = string(rec.Data)
	default:
		l.Data, l.DataEncoding = rec.Data, "base64"
	}
	b, _ := json.Marshal(l)
	r.failMu.Lock()
	defer r.failMu.Unlock()
	if _, werr := r.failOut.Write(append(b, '\n')); werr != nil && r.failErr == nil {
		r.failErr = fmt.Errorf("writing failed records: %w", werr)
	}
}

// produceSummary is the --json summary.
type produceSummary struct {
	Stream      string  `json:"stream,omitempty"`
	Endpoint    string  `json:"endpoint"`
	Interrupted bool    `json:"interrupted"`
	Skipped     int64   `json:"skipped"`
	PerSecond   float64 `json:"recordsPerSecond"`
	producer.Stats
}

// run reads src until it ends or ctx is cancelled, sends every record,
// flushes and prints the summary. skipped reports malformed input skipped.
func (r *produceRun) run(ctx context.Context, src source.Source, skipped func() int64) error {
	w, closeFailOut, err := r.open(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = closeFailOut() }()

	var limiter *rate.Limiter
	if r.opts.rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(r.opts.rate), max(1, int(r.opts.rate/100)))
	}
	stopProgress := r.startProgress(w)

	var srcErr error
	interrupted := false
	for {
		rec, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		if err != nil {
			srcErr = err
			break
		}
		if limiter != nil {
			if err := limiter.Wait(ctx); err != nil {
				interrupted = true
				break
			}
		}
		if err := w.Write(ctx, rec); err != nil {
			if ctx.Err() != nil {
				interrupted = true
			} else {
				srcErr = err
			}
			break
		}
	}
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.flushTimeout)
	defer cancel()
	st, closeErr := w.Close(flushCtx)
	stopProgress()

	sum := produceSummary{Endpoint: r.endpoint, Interrupted: interrupted, Stats: st}
	if r.opts.to == "stream" {
		sum.Stream = r.opts.stream
	}
	if skipped != nil {
		sum.Skipped = skipped()
	}
	if st.Elapsed > 0 {
		sum.PerSecond = float64(st.Delivered) / st.Elapsed.Seconds()
	}
	if err := r.printSummary(sum); err != nil {
		return err
	}
	r.failMu.Lock()
	failErr := r.failErr
	r.failMu.Unlock()
	switch {
	case srcErr != nil:
		return srcErr
	case closeErr != nil:
		return closeErr
	case st.Failed > 0:
		return fmt.Errorf("%d of %d records could not be delivered (last error: %s)", st.Failed, st.Queued, st.LastError)
	case failErr != nil:
		return failErr
	}
	return nil
}

func (r *produceRun) printSummary(s produceSummary) error {
	if r.opts.jsonSummary {
		out := r.e.stdout
		if r.opts.to == "stdout" {
			out = r.e.stderr
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	if r.opts.quiet {
		return nil
	}
	target := "standard output"
	if r.opts.to == "stream" {
		target = fmt.Sprintf("stream %s at %s", s.Stream, s.Endpoint)
	}
	how := "done"
	if s.Interrupted {
		how = "interrupted"
	}
	line := fmt.Sprintf("runnel: %s: %d records to %s in %s (%.0f records/s): %d delivered, %d failed",
		how, s.Queued, target, s.Elapsed.Round(time.Millisecond), s.PerSecond, s.Delivered, s.Failed)
	if r.opts.to == "stream" {
		line += fmt.Sprintf(", %d retried, %d throttled, %d calls", s.Retried, s.Throttled, s.Calls)
	}
	if s.Skipped > 0 {
		line += fmt.Sprintf(", %d malformed lines skipped", s.Skipped)
	}
	_, err := fmt.Fprintln(r.e.stderr, line)
	return err
}

// startProgress refreshes a progress line on standard error about once a
// second when it is a terminal. The returned function stops it and clears
// the line.
func (r *produceRun) startProgress(w producer.Writer) func() {
	if r.opts.quiet || !isTerminal(r.e.stderr) {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastDelivered int64
		last := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(r.e.stderr, "\r\033[K")
				return
			case now := <-t.C:
				st := w.Stats()
				perSec := float64(st.Delivered-lastDelivered) / now.Sub(last).Seconds()
				lastDelivered, last = st.Delivered, now
				fmt.Fprintf(r.e.stderr, "\r\033[K%d sent, %.0f records/s, %d failed, %d retried", st.Delivered, perSec, st.Failed, st.Retried)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
