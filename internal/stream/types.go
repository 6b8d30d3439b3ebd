package stream

import (
	"errors"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/storage"
)

// Sentinel conditions. Every error returned by Service wraps exactly one of
// these (test with errors.Is); its Error() text is the message a client
// should see, already phrased the way Kinesis phrases it.
var (
	// ErrNotFound means the stream or shard does not exist
	// (ResourceNotFoundException).
	ErrNotFound = errors.New("not found")
	// ErrInUse means the stream exists already or is not in a state that
	// allows the operation (ResourceInUseException).
	ErrInUse = errors.New("in use")
	// ErrInvalidArgument means a well-formed argument is not acceptable in the
	// stream's current state (InvalidArgumentException).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrLimitExceeded means an account or stream limit would be exceeded
	// (LimitExceededException).
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrThroughputExceeded means a shard's read limit is used up
	// (ProvisionedThroughputExceededException); only with ShardReadLimits.
	ErrThroughputExceeded = errors.New("throughput exceeded")
	// ErrExpiredIterator means a shard iterator is older than IteratorTTL
	// (ExpiredIteratorException).
	ErrExpiredIterator = errors.New("expired iterator")
	// ErrUnavailable means storage refuses writes for now, or the engine
	// is closed (a retryable ServiceUnavailable); the message names the
	// cause and what clears it. See storage.ErrUnavailable.
	ErrUnavailable = storage.ErrUnavailable
)

// Error carries one of the sentinels above as Kind and a client-facing
// message as Msg.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// Limits and defaults that follow the Kinesis Data Streams documentation.
const (
	// IteratorTTL is how long a shard iterator stays valid.
	IteratorTTL = 5 * time.Minute
	// MinRetentionHours and MaxRetentionHours bound the retention period.
	MinRetentionHours = 24
	MaxRetentionHours = 8760
	// DefaultRetentionHours is the retention of a new stream.
	DefaultRetentionHours = 24
	// DefaultMaxRecordSizeKiB bounds partition key plus data of one record
	// unless the stream was created with another MaxRecordSizeInKiB.
	DefaultMaxRecordSizeKiB = 1024
	// MaxGetRecordsLimit is the largest Limit GetRecords accepts.
	MaxGetRecordsLimit = 10000
	// MaxGetRecordsBytes caps the data returned by one GetRecords call.
	MaxGetRecordsBytes = 10 << 20
	// MaxTagsPerStream is the most tags one stream may carry.
	MaxTagsPerStream = 50
)

// Stream statuses and modes as Kinesis names them.
const (
	StatusCreating    = "CREATING"
	StatusDeleting    = "DELETING"
	StatusActive      = "ACTIVE"
	StatusUpdating    = "UPDATING"
	ModeProvisioned   = "PROVISIONED"
	ModeOnDemand      = "ON_DEMAND"
	EncryptionNone    = "NONE"
	EncryptionKMS     = "KMS"
	DefaultRegion     = "us-east-1"
	DefaultAccountID  = "000000000000"
	shardIDPrefix     = "shardId-"
	shardIDDigits     = 12
	streamARNResource = "stream/"
)

// Shard describes one shard of a stream. Hash keys and sequence numbers are
// decimal strings, as on the wire.
type Shard struct {
	ID                     string
	ParentShardID          string // "" when none
	AdjacentParentShardID  string // "" when none
	StartingHashKey        string
	EndingHashKey          string
	StartingSequenceNumber string
	EndingSequenceNumber   string // "" while the shard is open
	// Created is when the shard opened; Closed when it closed (zero while
	// open). Kinesis does not report them; ListShards' timestamp filters
	// use them.
	Created time.Time
	Closed  time.Time
}

// ChildShard is a shard created by splitting or merging the shard being
// read, as GetRecords reports at the end of a closed shard.
type ChildShard struct {
	ShardID         string
	ParentShards    []string
	StartingHashKey string
	EndingHashKey   string
}

// Description is everything DescribeStream and DescribeStreamSummary report.
type Description struct {
	Name             string
	ARN              string
	Status           string
	Mode             string
	RetentionHours   int
	Created          time.Time
	Shards           []Shard // in shard-id order
	OpenShardCount   int
	ConsumerCount    int
	EncryptionType   string // EncryptionNone or EncryptionKMS
	KeyID            string // the KMS key id when EncryptionKMS
	MaxRecordSizeKiB int
	// ShardLevelMetrics are the enabled enhanced-monitoring metrics.
	ShardLevelMetrics []string
	// WarmThroughputMiBps is an on-demand stream's warm throughput; 0 when
	// none was set.
	WarmThroughputMiBps int
	// RecordDistribution is the stream's record distribution strategy:
	// DistributionAuto or DistributionUserPartitionKey.
	RecordDistribution string
}

// Summary is one entry of ListStreams.
type Summary struct {
	// Name is the engine name: the plain name in the engine's own account
	// and region, region/account/name in another (see scope.go).
	Name    string
	ARN     string
	Status  string
	Mode    string
	Created time.Time
}

// CreateOptions are the optional parts of CreateStream.
type CreateOptions struct {
	Tags             map[string]string
	Mode             string // ModeProvisioned when empty
	MaxRecordSizeKiB int    // DefaultMaxRecordSizeKiB when 0
	// RecordDistribution is DistributionAuto or DistributionUserPartitionKey
	// (the default when empty); AUTO only for an on-demand stream.
	RecordDistribution string
}

// PutInput is one record to append.
type PutInput struct {
	PartitionKey string
	// ExplicitHashKey is a decimal 128-bit hash key that overrides the MD5
	// of PartitionKey; "" when absent.
	ExplicitHashKey string
	Data            []byte
}

// PutResult is the outcome for one PutInput, in request order.
type PutResult struct {
	ShardID        string
	SequenceNumber string
	// ErrorCode and ErrorMessage are set when this record alone failed
	// (ProvisionedThroughputExceededException or InternalFailure); the other
	// fields are then empty.
	ErrorCode    string
	ErrorMessage string
}

// IteratorType names a starting position.
type IteratorType string

// Iterator types as Kinesis names them.
const (
	AtSequenceNumber    IteratorType = "AT_SEQUENCE_NUMBER"
	AfterSequenceNumber IteratorType = "AFTER_SEQUENCE_NUMBER"
	TrimHorizon         IteratorType = "TRIM_HORIZON"
	Latest              IteratorType = "LATEST"
	AtTimestamp         IteratorType = "AT_TIMESTAMP"
)

// IteratorSpec says where a new shard iterator starts.
type IteratorSpec struct {
	Type           IteratorType
	SequenceNumber string    // for AT_/AFTER_SEQUENCE_NUMBER
	Timestamp      time.Time // for AT_TIMESTAMP
}

// Record is one stored record as GetRecords returns it.
type Record struct {
	SequenceNumber string
	PartitionKey   string
	Data           []byte
	ArrivalTime    time.Time
}

// GetResult is the answer to one GetRecords call.
type GetResult struct {
	Records []Record
	// NextIterator is "" only when the shard is closed and fully read;
	// ChildShards are then its children.
	NextIterator       string
	MillisBehindLatest int64
	ChildShards        []ChildShard
}

func newError(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
