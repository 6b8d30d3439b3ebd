package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel/internal/backoff"
	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/handler"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/sink/dynamo"
)

// Client is the part of the Kinesis API the runner calls; the
// aws-sdk-go-v2 *kinesis.Client satisfies it.
type Client interface {
	consumer.KinesisAPI
	producer.PutRecordsAPI
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	IncreaseStreamRetentionPeriod(ctx context.Context, in *kinesis.IncreaseStreamRetentionPeriodInput, optFns ...func(*kinesis.Options)) (*kinesis.IncreaseStreamRetentionPeriodOutput, error)
}

var _ Client = (*kinesis.Client)(nil)

// Options are what a Runner is built with besides the configuration.
type Options struct {
	// Kinesis reads and writes the streams. Required.
	Kinesis Client
	// Builtins are the built-in processors; the configuration was
	// validated against them.
	Builtins Builtins
	// StateDir holds the pipelines' leases and checkpoints in the
	// embedded lease store <StateDir>/leases (pipelines with a DynamoDB
	// lease table keep them there instead). Required.
	StateDir string
	// StateDirLocked says the caller holds StateDir exclusively (runnel
	// run's lock), so no other process uses its lease store: a lease it
	// shows owned belongs to a run that has exited, perhaps killed, and is
	// released at start, so its shards resume at once instead of after a
	// lease duration.
	StateDirLocked bool
	// Region is the awsRegion of events. Default us-east-1.
	Region string
	// Logger receives the runner's and pipelines' logs. Default: discard.
	Logger *slog.Logger
	// Stdout is where built-in processors such as log print. Default:
	// discard.
	Stdout io.Writer
	// Tune, when set, adjusts each pipeline's consumer configuration
	// before its worker is built (tests shorten intervals with it).
	Tune func(*consumer.Config)
	// Observer, when set, is told about every handler invocation (the
	// metrics of runnel serve).
	Observer Observer
	// FunctionEnv is added to the environment of command and lambda
	// handlers ("KEY=value"), before each handler's own env, which wins:
	// runnel run passes the Kinesis endpoint and the credentials its own
	// client uses, so a function's SDK calls reach the same server.
	FunctionEnv []string
}

// Runner runs the pipelines of one configuration.
type Runner struct {
	cfg       *Config
	opts      Options
	log       *slog.Logger
	pipelines []*running
	leaseDB   *consumer.LeaseDB // opened by the first pipeline that needs it
}

type running struct {
	p       *Pipeline
	worker  *consumer.Worker
	closers []func(context.Context) error
	// handler is the pipeline's handler as built (see Reports).
	handler lambda.Handler
}

// New builds every pipeline's handler and worker. It starts no process and
// does no network I/O; files (lease stores, failure files) are opened.
// Close releases what New opened when Run is not called.
func New(ctx context.Context, cfg *Config, opts Options) (*Runner, error) {
	if opts.Kinesis == nil || opts.StateDir == "" {
		return nil, errors.New("pipeline runner: Kinesis and StateDir are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	r := &Runner{cfg: cfg, opts: opts, log: opts.Logger}
	for i := range cfg.Pipelines {
		rp, err := r.build(ctx, &cfg.Pipelines[i])
		if err != nil {
			r.closeAll(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("pipeline %s: %w", cfg.Pipelines[i].Name, err)
		}
		r.pipelines = append(r.pipelines, rp)
	}
	return r, nil
}

func (r *Runner) build(ctx context.Context, p *Pipeline) (*running, error) {
	rp := &running{p: p}
	logger := r.log.With("pipeline", p.Name)
	leases, err := r.leaseStore(ctx, p)
	if err != nil {
		return rp, err
	}
	cc := consumer.Config{
		Application:                p.Name,
		Stream:                     p.Source,
		Kinesis:                    r.opts.Kinesis,
		FanOut:                     p.FanOut,
		Leases:                     leases,
		BatchSize:                  p.BatchSize,
		MaximumBatchingWindow:      p.BatchingWindow.D,
		StartingPosition:           consumer.StartingPosition(p.StartingPosition),
		MaximumRetryAttempts:       p.MaxRetries,
		MaximumRecordAge:           p.MaxRecordAge.D,
		BisectBatchOnFunctionError: p.BisectOnError,
		ReportBatchItemFailures:    p.ReportBatchItemFailures,
		ParallelizationFactor:      p.Parallelization,
		TumblingWindow:             p.TumblingWindow.D,
		InvocationTimeout:          p.Timeout.D,
		Region:                     r.opts.Region,
		Logger:                     logger,
	}
	if p.StartingTimestamp != "" {
		cc.StartingTimestamp, _ = time.Parse(time.RFC3339, p.StartingTimestamp)
	}
	if d := p.OnFailure; d != nil {
		switch {
		case d.File != "":
			fd, err := consumer.NewFileDestination(r.cfg.Resolve(d.File))
			if err != nil {
				return rp, err
			}
			rp.closers = append(rp.closers, func(context.Context) error { return fd.Close() })
			cc.OnFailure = fd
		case d.Stream != "":
			prod, err := producer.New(r.opts.Kinesis, producer.Config{
				Stream: d.Stream,
				Linger: -1,
				Logger: logger,
				OnFailure: func(rec producer.Record, err error) {
					logger.Error("on-failure record not delivered", "stream", d.Stream, "err", err)
				},
			})
			if err != nil {
				return rp, err
			}
			rp.closers = append(rp.closers, func(ctx context.Context) error { _, err := prod.Close(ctx); return err })
			cc.OnFailure = &consumer.StreamDestination{W: prod}
		}
	}
	h, closeHandler, err := r.handler(ctx, p, logger, rejecter(p, cc.OnFailure, logger))
	if err != nil {
		return nil, err
	}
	if closeHandler != nil {
		rp.closers = append(rp.closers, closeHandler)
	}
	rp.handler = h
	cc.Handler = h
	if r.opts.Observer != nil {
		cc.Handler = observe(p.Name, h, r.opts.Observer)
	}
	if r.opts.Tune != nil {
		r.opts.Tune(&cc)
	}
	w, err := consumer.NewWorker(cc)
	if err != nil {
		return rp, err
	}
	rp.worker = w
	return rp, nil
}

// handler builds the pipeline's handler and what closes it.
func (r *Runner) handler(ctx context.Context, p *Pipeline, logger *slog.Logger, reject func(context.Context, *lambda.KinesisEventRecord, error) error) (lambda.Handler, func(context.Context) error, error) {
	h := p.Handler
	env := slices.Clone(r.opts.FunctionEnv)
	for _, k := range slices.Sorted(maps.Keys(h.Env)) {
		env = append(env, k+"="+h.Env[k])
	}
	dir := r.cfg.Dir()
	if h.Dir != "" {
		dir = r.cfg.Resolve(h.Dir)
	}
	switch h.Type {
	case TypeLambda:
		c, err := handler.NewLambda(handler.LambdaConfig{
			Runtime:      h.Runtime,
			Handler:      h.Function,
			Dir:          dir,
			FunctionName: p.Name,
			Region:       r.opts.Region,
			RunnerDir:    r.runnerDir(),
			Command: handler.CommandConfig{
				Env:       env,
				Processes: h.Processes,
				Timeout:   p.Timeout.D,
				Logger:    logger.With("handler", "lambda"),
			},
		})
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case TypeCommand:
		env = append([]string{"AWS_LAMBDA_FUNCTION_NAME=" + p.Name}, env...)
		argv := slices.Clone([]string(h.Command))
		// A program named by a relative path is found from the
		// pipelines file's directory, like every other path in it.
		if filepath.Base(argv[0]) != argv[0] && !filepath.IsAbs(argv[0]) {
			argv[0] = r.cfg.Resolve(argv[0])
		}
		c, err := handler.NewCommand(handler.CommandConfig{
			Argv:      argv,
			Env:       env,
			Dir:       dir,
			Processes: h.Processes,
			Timeout:   p.Timeout.D,
			Logger:    logger.With("handler", "command"),
		})
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case TypeHTTP:
		hh, err := handler.NewHTTP(handler.HTTPConfig{URL: h.URL, Headers: h.Headers, Timeout: p.Timeout.D})
		return hh, nil, err
	case TypeBuiltin:
		b, ok := r.opts.Builtins[h.Name]
		if !ok {
			return nil, nil, fmt.Errorf("unknown built-in processor %q", h.Name)
		}
		bh, err := b.New(ctx, BuiltinEnv{Pipeline: p.Name, Options: h.Options, Logger: logger, Stdout: r.opts.Stdout, Reject: reject, StateDir: r.opts.StateDir, Shards: r.openShards(p.Source)})
		if err != nil {
			return nil, nil, fmt.Errorf("built-in processor %s: %w", h.Name, err)
		}
		if c, ok := bh.(interface{ Close(context.Context) error }); ok {
			return bh, c.Close, nil
		}
		return bh, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown handler type %q", h.Type)
}

// FunctionEnv is what command and lambda handlers get besides runnel's
// own environment (Options.FunctionEnv), given the options of the
// runner's Kinesis client and runnel's getenv, so that a function's own
// AWS SDK calls reach what runnel's do: against a runnel server (any endpoint but aws), its URL as
// AWS_ENDPOINT_URL_KINESIS and, when the environment names no access key,
// the credentials runnel's client uses (its local fallback included), as
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. What the
// environment already sets is left alone.
func FunctionEnv(ctx context.Context, o kinesis.Options, getenv func(string) string, logger *slog.Logger) []string {
	if o.BaseEndpoint == nil {
		return nil
	}
	var out []string
	if getenv("AWS_ENDPOINT_URL_KINESIS") == "" {
		out = append(out, "AWS_ENDPOINT_URL_KINESIS="+*o.BaseEndpoint)
	}
	if getenv("AWS_ACCESS_KEY_ID") == "" && o.Credentials != nil {
		creds, err := o.Credentials.Retrieve(ctx)
		if err != nil {
			logger.Warn("handlers get no credentials: runnel's own could not be retrieved", "err", err)
			return out
		}
		out = append(out, "AWS_ACCESS_KEY_ID="+creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey)
		if creds.SessionToken != "" {
			out = append(out, "AWS_SESSION_TOKEN="+creds.SessionToken)
		}
	}
	return out
}

// EnsureStreams creates every declared stream that does not exist and
// waits until it is ACTIVE. Existing streams are left as they are (a
// different shard count is logged).
func (r *Runner) EnsureStreams(ctx context.Context) error {
	for _, s := range r.cfg.Streams {
		if err := r.ensureStream(ctx, s); err != nil {
			return fmt.Errorf("stream %s: %w", s.Name, err)
		}
	}
	return nil
}

func (r *Runner) ensureStream(ctx context.Context, s Stream) error {
	k := r.opts.Kinesis
	created := false
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		out, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.Name)})
		var nf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &nf) && !created:
			_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(s.Name), ShardCount: aws.Int32(int32(s.Shards))})
			var inUse *types.ResourceInUseException
			if err != nil && !errors.As(err, &inUse) {
				return fmt.Errorf("creating: %w", err)
			}
			created = true
			r.log.Info("stream created", "stream", s.Name, "shards", s.Shards)
		case err != nil && !errors.As(err, &nf):
			return fmt.Errorf("describing: %w", err)
		case err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive:
			sum := out.StreamDescriptionSummary
			if !created && int(aws.ToInt32(sum.OpenShardCount)) != s.Shards {
				r.log.Warn("stream exists with a different shard count; left as it is", "stream", s.Name, "declared", s.Shards, "open", aws.ToInt32(sum.OpenShardCount))
			}
			want := int32(s.Retention.D / time.Hour)
			if have := aws.ToInt32(sum.RetentionPeriodHours); want > have {
				if _, err := k.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{
					StreamName: aws.String(s.Name), RetentionPeriodHours: aws.Int32(want),
				}); err != nil {
					return fmt.Errorf("setting retention: %w", err)
				}
				r.log.Info("stream retention increased", "stream", s.Name, "hours", want)
			} else if want < have && created {
				r.log.Warn("stream retention is longer than declared", "stream", s.Name, "declared_hours", want, "hours", have)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not ACTIVE after 2 minutes")
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt+1, 100*time.Millisecond, 2*time.Second)) {
			return context.Cause(ctx)
		}
	}
}

// Run runs every pipeline until ctx is done, then stops them gracefully
// (batches in flight finish and are checkpointed) and closes handlers and
// destinations. It returns early with an error when a pipeline cannot
// start (its stream cannot be described), after stopping the others.
func (r *Runner) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, rp := range r.pipelines {
		g.Go(func() error {
			r.log.Info("pipeline starting", "pipeline", rp.p.Name, "source", rp.p.Source, "handler", rp.p.Handler.Type)
			if err := rp.worker.Run(gctx); err != nil {
				return fmt.Errorf("pipeline %s: %w", rp.p.Name, err)
			}
			return nil
		})
	}
	err := g.Wait()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if cerr := r.closeAll(closeCtx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// Close releases what New opened; for a Runner whose Run was not called.
func (r *Runner) Close(ctx context.Context) error { return r.closeAll(ctx) }

func (r *Runner) closeAll(ctx context.Context) error {
	var errs []error
	for _, rp := range r.pipelines {
		for i := len(rp.closers) - 1; i >= 0; i-- {
			if err := rp.closers[i](ctx); err != nil {
				errs = append(errs, fmt.Errorf("pipeline %s: %w", rp.p.Name, err))
			}
		}
		rp.closers = nil
	}
	if r.leaseDB != nil {
		if err := r.leaseDB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the lease store: %w", err))
		}
		r.leaseDB = nil
	}
	return errors.Join(errs...)
}

// PipelineStatus is one pipeline's status: its configuration in brief and
// its worker's snapshot (per-shard checkpoint, lag, invocations, errors
// and last error).
type PipelineStatus struct {
	Name    string          `json:"name"`
	Source  string          `json:"source"`
	Handler string          `json:"handler"`
	Worker  consumer.Status `json:"worker"`
}

// Status returns every pipeline's status, in configuration order. It is
// safe to call at any time.
func (r *Runner) Status() []PipelineStatus {
	out := make([]PipelineStatus, 0, len(r.pipelines))
	for _, rp := range r.pipelines {
		out = append(out, PipelineStatus{
			Name:    rp.p.Name,
			Source:  rp.p.Source,
			Handler: handlerSummary(rp.p.Handler),
			Worker:  rp.worker.Status(),
		})
	}
	return out
}

func handlerSummary(h Handler) string {
	switch h.Type {
	case TypeCommand:
		return "command " + fmt.Sprint([]string(h.Command))
	case TypeLambda:
		return "lambda " + h.Runtime + " " + h.Function
	case TypeHTTP:
		return "http " + h.URL
	case TypeBuiltin:
		return "builtin " + h.Name
	}
	return h.Type
}

// ServeHTTP serves the status as JSON: GET / (or /status) returns
// {"pipelines": [...]}.
func (r *Runner) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if req.URL.Path != "/" && req.URL.Path != "/status" {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct {
		Pipelines []PipelineStatus `json:"pipelines"`
	}{r.Status()})
}

// WriteStatus prints a human-readable status table to w.
func (r *Runner) WriteStatus(w io.Writer) {
	for _, ps := range r.Status() {
		st := ps.Worker
		fmt.Fprintf(w, "pipeline %s  source %s  handler %s  shards held %d  behind %d records / %d ms",
			ps.Name, ps.Source, ps.Handler, st.Held, st.RecordsBehind, st.MillisBehindLatest)
		if st.LeasesLost > 0 {
			fmt.Fprintf(w, "  leases lost %d", st.LeasesLost)
		}
		fmt.Fprintln(w)
		if st.LastError != "" {
			fmt.Fprintf(w, "  last worker error: %s\n", st.LastError)
		}
		shards := slices.Clone(st.Shards)
		sort.Slice(shards, func(i, j int) bool { return shards[i].ShardID < shards[j].ShardID })
		for _, s := range shards {
			fmt.Fprintf(w, "  %-22s %-15s checkpoint %s  records %d  invocations %d  errors %d  to-destination %d  behind %d / %d ms",
				s.ShardID, s.State, s.Checkpoint, s.Records, s.Invocations, s.Errors, s.ToDestination, s.RecordsBehind, s.MillisBehindLatest)
			if s.Stalled {
				fmt.Fprint(w, "  STALLED: "+s.StallReason)
			}
			fmt.Fprintln(w)
			if s.Blocked != "" {
				fmt.Fprintf(w, "    %s\n", s.Blocked)
			}
			if s.LeaseLost != "" {
				fmt.Fprintf(w, "    lease lost: %s\n", s.LeaseLost)
			}
			if s.LastError != "" {
				fmt.Fprintf(w, "    last error: %s\n", s.LastError)
			}
		}
	}
}

// rejecter returns the BuiltinEnv.Reject of a pipeline: one record, with
// the reason, to the on-failure destination (or the error log without one).
func rejecter(p *Pipeline, dest consumer.Destination, logger *slog.Logger) func(context.Context, *lambda.KinesisEventRecord, error) error {
	return func(ctx context.Context, rec *lambda.KinesisEventRecord, reason error) error {
		if dest == nil {
			logger.Error("record rejected", "eventID", rec.EventID, "reason", reason, "data", string(rec.Kinesis.Data))
			return nil
		}
		logger.Warn("record rejected; sent to the on-failure destination", "eventID", rec.EventID, "reason", reason)
		shard, seq, _ := strings.Cut(rec.EventID, ":")
		arrival := time.UnixMilli(int64(rec.Kinesis.ApproximateArrivalTimestamp * 1000)).UTC().Format("2006-01-02T15:04:05.000Z")
		return dest.Send(ctx, &consumer.Failure{
			RequestContext: consumer.FailureRequestContext{
				RequestID: rec.EventID, FunctionARN: "runnel:pipeline:" + p.Name,
				Condition: "RecordRejected", ApproximateInvokeCount: 1,
			},
			ResponseContext: consumer.FailureResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST", ErrorMessage: reason.Error()},
			Version:         "1.0",
			Timestamp:       time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
			KinesisBatchInfo: consumer.KinesisBatchInfo{
				ShardID: shard, StartSequenceNumber: seq, EndSequenceNumber: seq,
				ApproximateArrivalOfFirstRecord: arrival, ApproximateArrivalOfLastRecord: arrival,
				BatchSize: 1, StreamARN: rec.EventSourceARN,
			},
			Payload: &lambda.KinesisEvent{Records: []lambda.KinesisEventRecord{*rec}},
		})
	}
}

// leaseStore opens the pipeline's lease store: its DynamoDB table when
// configured, else the embedded store in the state directory (which
// imports the JSON lease file of earlier versions once).
func (r *Runner) leaseStore(ctx context.Context, p *Pipeline) (consumer.LeaseStore, error) {
	l := p.Leases
	if l == nil {
		if r.leaseDB == nil {
			db, err := consumer.OpenLeaseDB(ctx, filepath.Join(r.opts.StateDir, "leases"), r.log.With("component", "leases"))
			if err != nil {
				return nil, err
			}
			r.leaseDB = db
		}
		old := filepath.Join(r.opts.StateDir, p.Name+".leases.json")
		if n, err := r.leaseDB.ImportJSON(ctx, p.Name, old); err != nil {
			return nil, fmt.Errorf("importing %s: %w", old, err)
		} else if n > 0 {
			r.log.Info("leases imported into the embedded lease store", "pipeline", p.Name, "file", old, "leases", n)
		}
		store, err := r.leaseDB.Store(ctx, p.Name)
		if err != nil || !r.opts.StateDirLocked {
			return store, err
		}
		if err := releaseLeases(ctx, store, r.log.With("pipeline", p.Name)); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
		}
		return store, nil
	}
	client, err := dynamo.NewClient(ctx, l.Endpoint, l.Region)
	if err != nil {
		return nil, fmt.Errorf("lease table %s: %w", l.DynamoDBTable, err)
	}
	store, err := consumer.NewDynamoDBStore(ctx, client, l.DynamoDBTable)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
	}
	return store, nil
}

// releaseLeases clears the owner of every owned lease in store, whose
// owners are known to have exited.
func releaseLeases(ctx context.Context, store consumer.LeaseStore, log *slog.Logger) error {
	leases, err := store.ListLeases(ctx)
	if err != nil {
		return fmt.Errorf("listing leases: %w", err)
	}
	var released []string
	for _, l := range leases {
		if l.Owner == "" {
			continue
		}
		if _, err := store.EvictLease(ctx, l); err != nil {
			return fmt.Errorf("releasing the lease of %s held by %s, a run that has exited: %w", l.Key, l.Owner, err)
		}
		released = append(released, l.Key)
	}
	if len(released) > 0 {
		log.Info("released the leases of a previous run that did not stop cleanly", "shards", released)
	}
	return nil
}

// openShards returns a function listing the open shards of a stream.
func (r *Runner) openShards(source string) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		in := &kinesis.ListShardsInput{StreamName: aws.String(source)}
		if strings.HasPrefix(source, "arn:") {
			in = &kinesis.ListShardsInput{StreamARN: aws.String(source)}
		}
		var ids []string
		for range 1000 {
			out, err := r.opts.Kinesis.ListShards(ctx, in)
			if err != nil {
				return nil, err
			}
			for _, sh := range out.Shards {
				if sh.SequenceNumberRange == nil || sh.SequenceNumberRange.EndingSequenceNumber == nil {
					ids = append(ids, aws.ToString(sh.ShardId))
				}
			}
			if out.NextToken == nil {
				return ids, nil
			}
			in = &kinesis.ListShardsInput{NextToken: out.NextToken}
		}
		return ids, nil
	}
}

// runnerDir is where a lambda handler writes its runner: <StateDir>/runtime,
// or, with no StateDir (runnel invoke), a private directory of the
// handler's own.
func (r *Runner) runnerDir() string {
	if r.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(r.opts.StateDir, "runtime")
}
