// Package consumer is runnel's stream-processing runtime: it reads every
// shard of a Kinesis stream, hands batches of records to a lambda.Handler
// under the contract of an AWS Lambda event-source mapping for Kinesis, and
// shares the shards among workers with KCL-style leases and checkpoints.
//
// A Worker is one member of a consumer application. Workers of the same
// application share a LeaseStore (in-process, a JSON file, or a DynamoDB
// table with the KCL lease-table layout) and spread the stream's shards
// evenly among themselves; each shard is processed by one worker at a time,
// in order, at least once, and its checkpoint only moves past records whose
// handling succeeded or that were sent to the on-failure destination.
package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/runnel-dev/runnel/internal/lambda"
)

// KinesisAPI is the part of the Kinesis API the runtime calls. The
// aws-sdk-go-v2 *kinesis.Client satisfies it, so a Worker runs against
// runnel serve or AWS alike.
type KinesisAPI interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// StartingPosition is where a shard without a checkpoint is first read.
type StartingPosition string

// The starting positions of a Lambda event-source mapping.
const (
	// TrimHorizon starts at the oldest record the shard retains.
	TrimHorizon StartingPosition = "TRIM_HORIZON"
	// Latest starts after the newest record at the time the shard is first
	// read. Shards already closed when the application first starts are
	// skipped (nothing will ever be appended to them).
	Latest StartingPosition = "LATEST"
	// AtTimestamp starts at the first record that arrived at or after
	// Config.StartingTimestamp.
	AtTimestamp StartingPosition = "AT_TIMESTAMP"
)

// Limits of the Lambda event-source mapping for Kinesis, which Validate
// enforces.
const (
	MaxBatchSize             = 10000
	MaxBatchingWindow        = 300 * time.Second
	MaxRetryAttempts         = 10000
	MinRecordAge             = 60 * time.Second
	MaxRecordAge             = 604800 * time.Second
	MaxParallelizationFactor = 10
	MaxTumblingWindow        = 900 * time.Second
	// MaxEventBytes bounds the JSON size of one event, as Lambda's 6 MB
	// synchronous invocation payload limit does; a batch is cut short
	// before it would exceed it.
	MaxEventBytes = 6 << 20
)

// Defaults applied to zero Config fields.
const (
	DefaultBatchSize = 100
	// DefaultRetryAttempts is Lambda's: retry until the records expire.
	DefaultRetryAttempts     = -1
	DefaultInvocationTimeout = 60 * time.Second
	DefaultLeaseDuration     = 10 * time.Second
	DefaultTakeInterval      = 2 * time.Second
	DefaultPollInterval      = 250 * time.Millisecond
	DefaultShardSyncInterval = 10 * time.Second
	DefaultStallAfter        = 30 * time.Second
	DefaultRegion            = "us-east-1"
)

// Config configures a Worker. Zero values select the default stated on each
// field. The batching and failure fields follow the parameters of Lambda's
// CreateEventSourceMapping for Kinesis, with Lambda's defaults: a failed
// batch is retried until its records expire (MaximumRetryAttempts and
// MaximumRecordAge unbounded) unless configured. One deliberate difference:
// the on-failure destination receives the failed records' payloads as well
// as Lambda's metadata.
type Config struct {
	// Application names the consumer application: the workers sharing a
	// lease store, and the function name in ARNs of failure documents.
	// Required.
	Application string
	// Stream is the stream's name or ARN. Required.
	Stream string
	// Kinesis reads the stream: a *kinesis.Client for any endpoint, or
	// kinesislocal's client for the engine of the same process. Required.
	Kinesis KinesisAPI
	// Leases holds the application's leases. Required.
	Leases LeaseStore
	// FanOut names a stream consumer (enhanced fan-out) to read the shards
	// with SubscribeToShard instead of polling GetRecords; the worker
	// registers it if missing. Kinesis must then also satisfy FanOutAPI.
	// Default "": GetRecords polling.
	FanOut string
	// Handler handles batches. Required. It is called concurrently for
	// different shards, and for the same shard when
	// ParallelizationFactor > 1.
	Handler lambda.Handler

	// WorkerID identifies this worker in leases; unique among the workers
	// of the application. Default: "<hostname>-<pid>-<random>".
	WorkerID string

	// BatchSize is the most records per invocation, 1–10,000. Default 100.
	BatchSize int
	// MaximumBatchingWindow is how long records are gathered before an
	// invocation with fewer than BatchSize records, 0–300 s. Default 0:
	// invoke as soon as records are read.
	MaximumBatchingWindow time.Duration
	// StartingPosition applies to shards without a checkpoint. Default
	// TrimHorizon. Child shards of a shard the application processed are
	// always read from their start.
	StartingPosition StartingPosition
	// StartingTimestamp is required with AtTimestamp.
	StartingTimestamp time.Time

	// MaximumRetryAttempts is how many times a failed batch is retried
	// before its records go to OnFailure and the shard moves on: -1 means
	// until the records expire, 0–10,000 a bound. Default (nil) -1, as in
	// Lambda: a batch that keeps failing holds its shard until its records
	// leave the stream's retention. Splitting a batch
	// (BisectBatchOnFunctionError) does not count as a retry.
	MaximumRetryAttempts *int
	// MaximumRecordAge discards records older than this (by approximate
	// arrival time) to OnFailure instead of invoking the handler with
	// them: 60 s – 7 days; 0 (the default) or negative means no limit
	// (Lambda's -1).
	MaximumRecordAge time.Duration
	// BisectBatchOnFunctionError splits a failed batch in two and retries
	// each half separately, so one poison record is isolated. Default
	// false.
	BisectBatchOnFunctionError bool
	// ReportBatchItemFailures makes the runtime honour batchItemFailures
	// in handler responses (Lambda's FunctionResponseTypes
	// ["ReportBatchItemFailures"]); without it they are ignored and a
	// response is success. Default false.
	ReportBatchItemFailures bool
	// OnFailure receives the batches given up on. Default nil: they are
	// logged and skipped, as Lambda does without a destination.
	OnFailure Destination
	// ParallelizationFactor is how many batches of one shard are handled
	// at once, 1–10; records with the same partition key stay in order.
	// Default 1.
	ParallelizationFactor int
	// TumblingWindow, 0–900 s, groups records into windows of this length
	// by arrival time and carries the handler's state between the
	// invocations of a window, ending each window with an invocation
	// where isFinalInvokeForWindow is true. The checkpoint moves past a
	// window only when its final invocation succeeded, so after a restart
	// a window is handled again from its start with fresh state. Requires
	// ParallelizationFactor 1. Default 0: no windows.
	TumblingWindow time.Duration
	// InvocationTimeout bounds one invocation; one that runs longer is
	// cancelled and counts as a function error. Lease renewals go on
	// during an invocation and do not shorten it: only a lease really
	// lost (taken by another worker, or not renewed within LeaseDuration)
	// cancels it, and then the batch is abandoned without a checkpoint for
	// the shard's next owner. Default 60 s.
	InvocationTimeout time.Duration

	// LeaseDuration is how long a lease stays valid without renewal; a
	// worker that cannot renew stops processing the shard before that.
	// Default 10 s.
	LeaseDuration time.Duration
	// RenewInterval is how often held leases are renewed. Default
	// LeaseDuration/3.
	RenewInterval time.Duration
	// TakeInterval is how often the worker looks for leases to take to
	// reach its fair share. Default 2 s.
	TakeInterval time.Duration
	// PollInterval is the least time between two GetRecords calls of a
	// shard reader when the first returned nothing (a long-polling client
	// such as kinesislocal's, whose empty answers take longer, is called
	// again at once). Default 250 ms.
	PollInterval time.Duration
	// ShardSyncInterval is how often the shard list is read to create
	// leases for new shards (children of a finished shard are created at
	// once, without waiting for this). Default 10 s.
	ShardSyncInterval time.Duration

	// StallAfter is how long a shard's checkpoint may stand still while
	// records wait before Status flags it as stalled. Default 30 s.
	StallAfter time.Duration

	// Region is the awsRegion of events. Default "us-east-1".
	Region string
	// InvokeIdentityARN is the invokeIdentityArn of events. Default
	// "arn:aws:iam::000000000000:role/runnel".
	InvokeIdentityARN string
	// FunctionARN names the handler in failure documents. Default
	// "arn:aws:lambda:<region>:000000000000:function:<application>".
	FunctionARN string

	// Logger receives the worker's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock used for lease expiry, batching windows and record
	// age. Default time.Now.
	Now func() time.Time
}

// FieldError is one invalid Config field; Validate joins them.
type FieldError struct {
	// Field is the Config field name, e.g. "BatchSize".
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Validate reports every invalid field at once (errors.Join of
// *FieldError). Zero values are valid where a default exists.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Application == "" {
		bad("Application", "required")
	}
	if c.Stream == "" {
		bad("Stream", "required")
	}
	if c.Kinesis == nil {
		bad("Kinesis", "required")
	}
	if c.FanOut != "" && c.Kinesis != nil {
		if _, ok := c.Kinesis.(FanOutAPI); !ok {
			bad("FanOut", "Kinesis (%T) does not support enhanced fan-out (FanOutAPI)", c.Kinesis)
		}
	}
	if c.Leases == nil {
		bad("Leases", "required")
	}
	if c.Handler == nil {
		bad("Handler", "required")
	}
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		bad("BatchSize", "%d is outside 1–%d", c.BatchSize, MaxBatchSize)
	}
	if c.MaximumBatchingWindow < 0 || c.MaximumBatchingWindow > MaxBatchingWindow {
		bad("MaximumBatchingWindow", "%s is outside 0–%s", c.MaximumBatchingWindow, MaxBatchingWindow)
	}
	switch c.StartingPosition {
	case "", TrimHorizon, Latest:
	case AtTimestamp:
		if c.StartingTimestamp.IsZero() {
			bad("StartingTimestamp", "required with AT_TIMESTAMP")
		}
	default:
		bad("StartingPosition", "%q is not TRIM_HORIZON, LATEST or AT_TIMESTAMP", c.StartingPosition)
	}
	if r := c.MaximumRetryAttempts; r != nil && (*r < -1 || *r > MaxRetryAttempts) {
		bad("MaximumRetryAttempts", "%d is outside -1–%d", *r, MaxRetryAttempts)
	}
	if a := c.MaximumRecordAge; a > 0 && (a < MinRecordAge || a > MaxRecordAge) {
		bad("MaximumRecordAge", "%s is outside %s–%s (or negative for no limit)", a, MinRecordAge, MaxRecordAge)
	}
	if p := c.ParallelizationFactor; p < 0 || p > MaxParallelizationFactor {
		bad("ParallelizationFactor", "%d is outside 1–%d", p, MaxParallelizationFactor)
	}
	if w := c.TumblingWindow; w < 0 || w > MaxTumblingWindow {
		bad("TumblingWindow", "%s is outside 0–%s", w, MaxTumblingWindow)
	} else if w > 0 && c.ParallelizationFactor > 1 {
		bad("TumblingWindow", "requires ParallelizationFactor 1")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"InvocationTimeout", c.InvocationTimeout},
		{"LeaseDuration", c.LeaseDuration},
		{"RenewInterval", c.RenewInterval},
		{"TakeInterval", c.TakeInterval},
		{"PollInterval", c.PollInterval},
		{"ShardSyncInterval", c.ShardSyncInterval},
		{"StallAfter", c.StallAfter},
	} {
		if d.v < 0 {
			bad(d.name, "%s is negative", d.v)
		}
	}
	if ld := cmp.Or(c.LeaseDuration, DefaultLeaseDuration); c.RenewInterval > 0 && c.RenewInterval*2 > ld {
		bad("RenewInterval", "%s must be at most half of LeaseDuration (%s)", c.RenewInterval, ld)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with defaults applied; c must be valid.
func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.StartingPosition == "" {
		c.StartingPosition = TrimHorizon
	}
	if c.MaximumRetryAttempts == nil {
		n := DefaultRetryAttempts
		c.MaximumRetryAttempts = &n
	}
	if c.MaximumRecordAge < 0 {
		c.MaximumRecordAge = 0
	}
	if c.ParallelizationFactor == 0 {
		c.ParallelizationFactor = 1
	}
	if c.InvocationTimeout == 0 {
		c.InvocationTimeout = DefaultInvocationTimeout
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.LeaseDuration / 3
	}
	if c.TakeInterval == 0 {
		c.TakeInterval = DefaultTakeInterval
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ShardSyncInterval == 0 {
		c.ShardSyncInterval = DefaultShardSyncInterval
	}
	if c.StallAfter == 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.InvokeIdentityARN == "" {
		c.InvokeIdentityARN = "arn:aws:iam::000000000000:role/runnel"
	}
	if c.FunctionARN == "" {
		c.FunctionARN = "arn:aws:lambda:" + c.Region + ":000000000000:function:" + c.Application
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
