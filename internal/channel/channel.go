// Package channel delivers Kinesis channels (CreateChannel) inside the
// server: each channel is an archive pipeline reading its stream in
// process and writing the records, as they were, one per line (gzip or
// zstd compressed if asked), to its bucket (or to a local folder standing
// for it).
//
// The engine keeps the channels and their status (stream/channels.go);
// Runner watches them and acts on the status:
//
//	CREATING, UPDATING  build the archive pipeline (again) and run it; ACTIVE
//	                    once it runs, FAILED with the reason if it cannot
//	ACTIVE              after a restart: run it again, from its checkpoint
//	DELETING            stop it (the spool is written out) and remove it
//
// A channel delivers the records put once it is made (no backfill, as on
// Kinesis): its first run starts AT_TIMESTAMP its creation time, and
// every later run from its checkpoints, kept in <StateDir>/<channel
// id> with its spool, so a restart delivers each record exactly once.
package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesislocal"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor/archive"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Config is how the server delivers channels.
type Config struct {
	// StateDir holds each channel's checkpoints and spool, in a folder
	// named by the channel's id. Required.
	StateDir string
	// Dir, when set, stands for S3: the bucket of arn:aws:s3:::B is the
	// folder Dir/B. Default: deliver to S3.
	Dir string
	// S3Endpoint is the S3-compatible endpoint buckets are written
	// through, addressed path-style. Default: AWS's (the SDK's sources,
	// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL honoured).
	S3Endpoint string
	// MaxFreshness, when set, writes a channel's objects at least this
	// often, even when its DataFreshnessInSeconds is longer. Default 0:
	// as the channel says.
	MaxFreshness time.Duration
	// Region is the awsRegion of the events. Default us-east-1.
	Region string
	// Logger; default discard.
	Logger *slog.Logger
	// Observer is told about every invocation (the server's metrics).
	Observer pipeline.Observer
}

// objectSize is the most record bytes an object collects before it is
// written, whatever the channel's freshness.
const objectSize = 16 << 20

// Runner runs the deliveries of every channel of an engine. Status,
// Reports and Processors are safe to call at any time.
type Runner struct {
	svc *stream.Service
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	running map[string]*delivery // by channel ARN
	// ended receives the ARN of a delivery whose run ended by itself.
	ended chan string
}

// delivery is one channel's running archive pipeline.
type delivery struct {
	ch     stream.Channel
	target string
	runner *pipeline.Runner
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why the run ended; set before done closes
}

// New returns the runner of svc's channels.
func New(svc *stream.Service, cfg Config) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{svc: svc, cfg: cfg, log: cfg.Logger, running: map[string]*delivery{}, ended: make(chan string, 16)}
}

// Check reports why a channel's configuration cannot be delivered (the
// API answers CreateChannel with it): its archive options must be valid.
func (r *Runner) Check(cfg stream.ChannelConfig) error {
	if cfg.S3.DLQBucketARN != cfg.S3.BucketARN {
		return errors.New("runnel writes records that cannot be delivered to the destination bucket, under the error prefix: DeadLetterQueueS3Configuration.BucketARN must name the destination bucket")
	}
	opts, err := r.archiveOptions(stream.Channel{ChannelMeta: stream.ChannelMeta{ID: "check", Config: cfg}})
	if err != nil {
		return err
	}
	_, err = archive.ParseConfig(opts, "channel")
	return err
}

// bucketName is the bucket an S3 bucket ARN names.
func bucketName(arn string) (string, error) {
	i := strings.Index(arn, ":s3:::")
	if i < 0 || strings.Contains(arn[i+6:], "/") || arn[i+6:] == "" {
		return "", fmt.Errorf("%s is not an S3 bucket ARN", arn)
	}
	return arn[i+6:], nil
}

// archiveOptions are the archive processor's options delivering c.
func (r *Runner) archiveOptions(c stream.Channel) (map[string]any, error) {
	s3 := c.Config.S3
	bucket, err := bucketName(s3.BucketARN)
	if err != nil {
		return nil, err
	}
	freshness := time.Duration(s3.FreshnessSeconds) * time.Second
	if r.cfg.MaxFreshness > 0 && (freshness == 0 || r.cfg.MaxFreshness < freshness) {
		freshness = r.cfg.MaxFreshness
	}
	opts := map[string]any{
		"spoolDir":       filepath.Join(r.cfg.StateDir, c.ID, "spool"),
		"bufferSize":     objectSize,
		"bufferInterval": freshness.String(),
		"format":         archive.FormatJSONL,
		// Records go as they were, one per line; none is refused for
		// not being JSON.
		"decode": map[string]any{"format": "raw"},
	}
	switch s3.Compression {
	case "GZIP":
		opts["compression"] = archive.CompressionGzip
	case "ZSTD":
		opts["compression"] = archive.CompressionZstd
	}
	if s3.OutputKeyTemplate != "" {
		opts["prefix"] = s3.OutputKeyTemplate
	}
	if p := s3.ErrorOutputPrefix; p != "" {
		if !strings.Contains(p, "!{") {
			p += "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
		}
		opts["errorPrefix"] = p
	}
	if r.cfg.Dir != "" {
		opts["dir"] = filepath.Join(r.cfg.Dir, bucket)
	} else {
		b := map[string]any{"bucket": bucket}
		if s3.ExpectedOwner != "" {
			b["expectedBucketOwner"] = s3.ExpectedOwner
		}
		if r.cfg.S3Endpoint != "" {
			b["endpoint"], b["forcePathStyle"] = r.cfg.S3Endpoint, true
		}
		opts["s3"] = b
	}
	return opts, nil
}

// credentials says whose credentials write the objects: a channel
// without --channel-dir writes with the server's own AWS credentials,
// to AWS S3 unless --channel-s3-endpoint names another.
func (r *Runner) credentials() string {
	switch {
	case r.cfg.Dir != "":
		return "none (a local folder)"
	case os.Getenv("AWS_ACCESS_KEY_ID") != "":
		return "the server's environment (AWS_ACCESS_KEY_ID)"
	case os.Getenv("AWS_PROFILE") != "":
		return "the server's profile " + os.Getenv("AWS_PROFILE")
	}
	return "the server's AWS SDK default chain (shared config, container or instance role)"
}

// target names where c's objects go.
func (r *Runner) target(c stream.Channel) string {
	bucket, _ := bucketName(c.Config.S3.BucketARN)
	if r.cfg.Dir != "" {
		return filepath.Join(r.cfg.Dir, bucket)
	}
	if r.cfg.S3Endpoint == "" {
		return "s3://" + bucket + "/ (AWS S3)"
	}
	return "s3://" + bucket + "/ at " + r.cfg.S3Endpoint
}

// Run delivers every channel until ctx is done, then stops the
// deliveries (each writes out its spool) and returns.
func (r *Runner) Run(ctx context.Context) error {
	for {
		changed := r.svc.ChannelChanges()
		r.reconcile(ctx)
		select {
		case <-ctx.Done():
			r.mu.Lock()
			all := make([]*delivery, 0, len(r.running))
			for _, d := range r.running {
				all = append(all, d)
			}
			r.mu.Unlock()
			for _, d := range all {
				r.stop(d)
			}
			return nil
		case <-changed:
		case arn := <-r.ended:
			r.mu.Lock()
			d := r.running[arn]
			if d != nil {
				delete(r.running, arn)
			}
			r.mu.Unlock()
			if d != nil && ctx.Err() == nil {
				reason := fmt.Sprintf("delivery stopped: %v", d.err)
				r.log.Warn("channel delivery failed", "channel", d.ch.Name, "err", d.err)
				r.setStatus(ctx, d.ch, stream.ChannelFailed, reason)
			}
		}
	}
}

// reconcile makes the running deliveries what the channels' statuses ask.
func (r *Runner) reconcile(ctx context.Context) {
	chans := r.svc.Channels()
	seen := map[string]bool{}
	for _, c := range chans {
		seen[c.ARN] = true
		r.mu.Lock()
		d := r.running[c.ARN]
		r.mu.Unlock()
		switch c.Status {
		case stream.ChannelDeleting:
			var err error
			if d != nil {
				r.stop(d)
				err = d.err
			} else {
				// A delivery whose spool could not be written out (or
				// one not running since a restart): write it out now.
				err = r.flush(ctx, c)
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// The spool is kept in the state folder; the channel
				// stays DELETING until it can be written out.
				r.log.Warn("channel delete: the spool could not be written out; retrying", "channel", c.Name, "err", err)
				r.retryLater()
				continue
			}
			if err := os.RemoveAll(filepath.Join(r.cfg.StateDir, c.ID)); err != nil {
				r.log.Warn("channel delete: removing its state", "channel", c.Name, "err", err)
			}
			if err := r.svc.RemoveChannel(ctx, c.ARN); err != nil && ctx.Err() == nil {
				r.log.Warn("channel delete", "channel", c.Name, "err", err)
			}
		case stream.ChannelCreating, stream.ChannelUpdating, stream.ChannelActive:
			if d != nil && d.ch.Generation == c.Generation {
				if c.Status != stream.ChannelActive {
					r.setStatus(ctx, c, stream.ChannelActive, "")
				}
				continue
			}
			if d != nil {
				r.stop(d)
			}
			if err := r.start(ctx, c); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Warn("channel delivery cannot start", "channel", c.Name, "err", err)
				r.setStatus(ctx, c, stream.ChannelFailed, err.Error())
				continue
			}
			if c.Status != stream.ChannelActive {
				r.setStatus(ctx, c, stream.ChannelActive, "")
			}
		}
	}
	r.mu.Lock()
	var gone []*delivery
	for arn, d := range r.running {
		if !seen[arn] {
			gone = append(gone, d)
		}
	}
	r.mu.Unlock()
	for _, d := range gone {
		r.stop(d)
	}
}

// retryLater wakes Run again after a second.
func (r *Runner) retryLater() {
	time.AfterFunc(time.Second, func() {
		select {
		case r.ended <- "":
		default:
		}
	})
}

func (r *Runner) setStatus(ctx context.Context, c stream.Channel, status, reason string) {
	if err := r.svc.SetChannelStatus(ctx, c.ARN, c.Generation, status, reason); err != nil && ctx.Err() == nil {
		r.log.Warn("channel status", "channel", c.Name, "status", status, "err", err)
	}
}

// pipelineName is the name c's pipeline runs (and is shown) under.
func pipelineName(c stream.Channel) string { return "channel-" + c.Name }

// flush writes out what c's spool holds, without reading its stream:
// its archive pipeline is built (recovering the spool) and closed
// (writing it out). Nothing to do when c has no state folder.
func (r *Runner) flush(ctx context.Context, c stream.Channel) error {
	if _, err := os.Stat(filepath.Join(r.cfg.StateDir, c.ID, "spool")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	runner, err := r.build(ctx, c)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	return runner.Close(cctx)
}

// closeTimeout bounds writing out a spool when a delivery is flushed.
const closeTimeout = 30 * time.Second

// start builds c's archive pipeline and runs it.
func (r *Runner) start(ctx context.Context, c stream.Channel) error {
	runner, err := r.build(ctx, c)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &delivery{ch: c, target: r.target(c), runner: runner, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.running[c.ARN] = d
	r.mu.Unlock()
	go func() {
		defer close(d.done)
		d.err = runner.Run(dctx)
		if dctx.Err() == nil {
			if d.err == nil {
				d.err = errors.New("the pipeline ended")
			}
			// Run may be stopping d (waiting on done) rather than
			// reading ended: give up once d is cancelled.
			select {
			case r.ended <- c.ARN:
			case <-dctx.Done():
			}
		}
	}()
	r.log.Info("channel delivering", "channel", c.Name, "stream", c.StreamName, "to", d.target, "credentials", r.credentials())
	return nil
}

// build builds c's archive pipeline.
func (r *Runner) build(ctx context.Context, c stream.Channel) (*pipeline.Runner, error) {
	opts, err := r.archiveOptions(c)
	if err != nil {
		return nil, err
	}
	p := map[string]any{
		"name":    pipelineName(c),
		"source":  c.StreamName,
		"handler": map[string]any{"type": pipeline.TypeBuiltin, "name": "archive", "options": opts},
	}
	// The first run reads from the channel's creation; every later one
	// from its checkpoints.
	p["startingPosition"] = "AT_TIMESTAMP"
	p["startingTimestamp"] = c.Created.UTC().Format(time.RFC3339Nano)
	stateDir := filepath.Join(r.cfg.StateDir, c.ID)
	doc, err := yaml.Marshal(map[string]any{"pipelines": []any{p}})
	if err != nil {
		return nil, err
	}
	builtins := pipeline.Builtins{"archive": archive.Builtin}
	pcfg, err := pipeline.Parse("channel "+c.Name, doc, builtins)
	if err != nil {
		return nil, err
	}
	return pipeline.New(ctx, pcfg, pipeline.Options{
		Kinesis:        kinesislocal.New(r.svc),
		Tune:           func(cc *consumer.Config) { cc.PollInterval = time.Millisecond },
		Builtins:       builtins,
		StateDir:       stateDir,
		StateDirLocked: true,
		Region:         r.cfg.Region,
		Logger:         r.log.With("channel", c.Name),
		Observer:       r.cfg.Observer,
	})
}

// stop stops d and waits for it (its spool written out).
func (r *Runner) stop(d *delivery) {
	d.cancel()
	<-d.done
	r.mu.Lock()
	if r.running[d.ch.ARN] == d {
		delete(r.running, d.ch.ARN)
	}
	r.mu.Unlock()
}

func (r *Runner) deliveries() []*delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*delivery, 0, len(r.running))
	for _, d := range r.running {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *delivery) int { return strings.Compare(a.ch.Name, b.ch.Name) })
	return out
}

// Status returns the status of every delivering channel's pipeline; its
// Handler says the channel, its status and where it writes.
func (r *Runner) Status() []pipeline.PipelineStatus {
	var out []pipeline.PipelineStatus
	for _, d := range r.deliveries() {
		status := d.ch.Status
		if c, err := r.svc.ChannelByARN(d.ch.ARN); err == nil {
			status = c.Status
		}
		for _, s := range d.runner.Status() {
			s.Handler = fmt.Sprintf("channel %s (%s) to %s", d.ch.Name, status, d.target)
			out = append(out, s)
		}
	}
	return out
}

// Reports returns the archive reports of the delivering channels.
func (r *Runner) Reports() []pipeline.PipelineReport {
	var out []pipeline.PipelineReport
	for _, d := range r.deliveries() {
		out = append(out, d.runner.Reports()...)
	}
	return out
}

// Processors returns the delivering channels' archive processors.
func (r *Runner) Processors() []pipeline.Processor {
	var out []pipeline.Processor
	for _, d := range r.deliveries() {
		out = append(out, d.runner.Processors()...)
	}
	return out
}
