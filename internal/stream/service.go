package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Config configures a Service.
type Config struct {
	// Dir is the data directory. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (tests only).
	InMemory bool
	// Sync makes every put wait for its write-ahead-log fsync (group
	// committed). The default is true; false acknowledges once the batch is
	// written to the operating system, which survives a process crash but
	// not a machine crash.
	NoSync bool
	// Region and AccountID appear in stream ARNs. Defaults: us-east-1 and
	// 000000000000.
	Region    string
	AccountID string
	// ShardLimit is the most open shards all streams together may have.
	// The default is 1000.
	ShardLimit int
	// RetentionInterval is how often expired records are deleted. The
	// default is one minute.
	RetentionInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the stream engine: streams, shards, records and iterators over
// durable storage. All methods are safe for concurrent use.
type Service struct{}

var errTODO = errors.New("not implemented yet")

// Open opens (or creates) the engine described by cfg and starts its
// background retention loop. Close releases it.
func Open(cfg Config) (*Service, error) { return nil, errTODO }

// Close stops background work and closes storage. Calls in flight finish first.
func (s *Service) Close() error { return errTODO }

// ARN returns the ARN of the stream named name.
func (s *Service) ARN(name string) string { return "" }

// NameFromARN returns the stream name an ARN addresses, or ErrNotFound-kind
// errors when the ARN is for another account or region, or
// ErrInvalidArgument when it is not a Kinesis stream ARN.
func (s *Service) NameFromARN(arn string) (string, error) { return "", errTODO }

// CreateStream creates a stream with shardCount shards, evenly splitting the
// 128-bit hash-key space. ErrInUse when the name exists, ErrLimitExceeded
// past ShardLimit.
func (s *Service) CreateStream(ctx context.Context, name string, shardCount int, opts CreateOptions) error {
	return errTODO
}

// DeleteStream deletes a stream and, in the background, its records.
func (s *Service) DeleteStream(ctx context.Context, name string) error { return errTODO }

// Describe returns the full description of a stream, every shard included.
func (s *Service) Describe(name string) (*Description, error) { return nil, errTODO }

// List returns every stream, sorted by name.
func (s *Service) List() []Summary { return nil }

// SetRetention changes a stream's retention period. increase selects the
// IncreaseStreamRetentionPeriod rules (hours may not be below the current
// value), otherwise the Decrease rules apply. Bounds are checked here
// (ErrInvalidArgument with the Kinesis message).
func (s *Service) SetRetention(ctx context.Context, name string, hours int, increase bool) error {
	return errTODO
}

// AddTags adds or overwrites tags; ErrInvalidArgument past MaxTagsPerStream.
func (s *Service) AddTags(ctx context.Context, name string, tags map[string]string) error {
	return errTODO
}

// RemoveTags removes the tags with the given keys; absent keys are ignored.
func (s *Service) RemoveTags(ctx context.Context, name string, keys []string) error { return errTODO }

// Tags returns a copy of a stream's tags.
func (s *Service) Tags(name string) (map[string]string, error) { return nil, errTODO }

// Put appends records durably and returns one result per input, in order.
// It returns only after the records are committed (and, unless NoSync,
// fsynced). An error means nothing was stored. The caller has validated
// field syntax; Put checks record size against the stream's maximum and
// ExplicitHashKey range (ErrInvalidArgument).
func (s *Service) Put(ctx context.Context, name string, recs []PutInput) ([]PutResult, error) {
	return nil, errTODO
}

// ShardIterator returns a new opaque shard iterator.
func (s *Service) ShardIterator(name, shardID string, spec IteratorSpec) (string, error) {
	return "", errTODO
}

// Records reads up to limit records (1..MaxGetRecordsLimit) from iterator.
// ErrExpiredIterator after IteratorTTL, ErrInvalidArgument for a malformed or
// forged iterator, ErrNotFound when the stream is gone.
func (s *Service) Records(ctx context.Context, iterator string, limit int) (*GetResult, error) {
	return nil, errTODO
}
