package stream

import (
	"log/slog"
	"time"

	"github.com/runnel-dev/runnel/internal/storage"
)

// Config configures a Service.
type Config struct {
	// Dir is the data directory. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (tests only).
	InMemory bool
	// FS, when set, is the filesystem storage uses instead of the
	// operating system's (tests: crash-simulating and error-injecting
	// filesystems; see storage.Options.FS).
	FS storage.FS
	// NoSync acknowledges a put once its batch is written to the operating
	// system instead of after the write-ahead log is fsynced. That survives a
	// crash of the process but not of the machine. The default (false)
	// fsyncs, with concurrent puts sharing one fsync (group commit).
	NoSync bool
	// MemTableSize is storage's memtable size (storage.Options); the
	// default is storage.DefaultMemTableSize.
	MemTableSize int64
	// CacheSize is storage's block cache size (storage.Options); the
	// default is storage.DefaultCacheSize.
	CacheSize int64
	// Region and AccountID appear in stream ARNs. Defaults: us-east-1 and
	// 000000000000.
	Region    string
	AccountID string
	// MultiRegion lets streams live in other accounts and regions than
	// Region and AccountID, addressed by ARNs that carry them (see
	// scope.go). Off by default: every ARN must carry the engine's own.
	MultiRegion bool
	// ShardLimit is the most shards all streams together may have. The
	// default is 1000.
	ShardLimit int
	// ShardWriteLimits enforces the write limits of a provisioned Kinesis
	// shard (ShardWriteRecordsPerSecond and ShardWriteBytesPerSecond) and
	// an on-demand stream's write capacity (see capacity.go): a record
	// past them fails alone with ProvisionedThroughputExceededException,
	// so producers' retry paths can be exercised. Off by default.
	ShardWriteLimits bool
	// ShardReadLimits enforces the read limits of a Kinesis shard: 5
	// GetRecords calls per second (ShardReadCallsPerSecond) and 2 MiB/s
	// (ShardReadBytesPerSecond), a call over either failing with
	// ErrThroughputExceeded. Off by default.
	ShardReadLimits bool
	// TransitionDelay is how long a stream reports CREATING, UPDATING or
	// DELETING after it is created, resharded, updated or deleted (and
	// refuses further changes with ResourceInUseException). Settings take
	// effect at once; a shard layout change when the stream is ACTIVE
	// again, as on Kinesis (see layout.go). The default, 0, reports ACTIVE
	// throughout, as runnel needs no time; a delay exercises clients'
	// waiters as AWS would.
	TransitionDelay time.Duration
	// RetentionInterval is how often expired records are deleted. The
	// default is one minute.
	RetentionInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.ShardLimit == 0 {
		c.ShardLimit = 1000
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
