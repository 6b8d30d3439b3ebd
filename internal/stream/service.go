package stream

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/internal/seqnum"
	"github.com/runnel-dev/runnel/internal/storage"
)

// Service is the stream engine: streams, shards, records and iterators over
// durable storage. All methods are safe for concurrent use.
type Service struct {
	cfg    Config
	eng    *storage.Engine
	secret []byte
	log    *slog.Logger

	mu     sync.RWMutex // guards the maps, nextID and every streamMeta
	byName map[string]*streamState
	byID   map[uint64]*streamState
	nextID uint64
	// deleting holds deleted streams still reported as DELETING.
	deleting map[string]deletingStream
	metaMu   sync.Mutex // serialises metadata writes so they commit in order
	// commit caches the account's commitment (see commitment); commitMu
	// guards it and is taken after metaMu, never before.
	commitMu sync.Mutex
	commit   *Commitment
	putMu    sync.RWMutex
	closed   bool
	putCh    chan *putReq
	syncCh   chan *pendingGroup
	stopRet  chan struct{} // closed by Close: ends background work and waits for appends
	// settleKick wakes settleLoop when a layout change is made pending.
	settleKick chan struct{}
	wg         sync.WaitGroup
	// chanChanged is closed at the next change to a channel (see
	// ChannelChanges); chanMu guards it.
	chanMu      sync.Mutex
	chanChanged chan struct{}
	// policies counts the resource policies stored on live streams and
	// their consumers (see HasResourcePolicies); it changes with s.mu held.
	policies atomic.Int64
	// trimMu serialises retention passes and guards trimmed: for each
	// shard, the bound below which a pass has deleted everything since
	// the engine opened (see trim).
	trimMu  sync.Mutex
	trimmed map[trimShard]storage.Seq
}

// streamMeta is what is persisted for a stream.
type streamMeta struct {
	ID               uint64            `json:"id"`
	Name             string            `json:"name"`
	Created          time.Time         `json:"created"`
	RetentionHours   int               `json:"retentionHours"`
	Mode             string            `json:"mode"`
	MaxRecordSizeKiB int               `json:"maxRecordSizeKiB"`
	Tags             map[string]string `json:"tags,omitempty"`
	Shards           []shardMeta       `json:"shards"`
	NextShardIndex   uint32            `json:"nextShardIndex"`
	// EncryptionType, KeyID and ShardLevelMetrics are accepted settings
	// reported back as set; runnel does not encrypt with KMS or publish
	// CloudWatch metrics.
	EncryptionType    string   `json:"encryptionType,omitempty"`
	KeyID             string   `json:"keyId,omitempty"`
	ShardLevelMetrics []string `json:"shardLevelMetrics,omitempty"`
	// Consumers are the registered enhanced fan-out consumers.
	Consumers []ConsumerMeta `json:"consumers,omitempty"`
	// Channels are the channels delivering the stream (see channels.go).
	Channels []ChannelMeta `json:"channels,omitempty"`
	// WarmThroughputMiBps is an on-demand stream's warm throughput (see
	// SetWarmThroughput); 0 when none was set.
	WarmThroughputMiBps int `json:"warmThroughputMiBps,omitempty"`
	// PendingLayout is a shard layout change accepted and not yet made
	// (see layout.go); the stream is UPDATING while it is set.
	PendingLayout *layoutChange `json:"pendingLayout,omitempty"`
	// RecordDistribution is DistributionAuto when set; "" is the default,
	// USER_PARTITION_KEY (see distribution.go).
	RecordDistribution string `json:"recordDistribution,omitempty"`
	// Policy is the stream's resource policy document (see policy.go).
	Policy string `json:"policy,omitempty"`
}

// ConsumerMeta is a registered enhanced fan-out consumer as persisted.
type ConsumerMeta struct {
	Name    string    `json:"name"`
	ARN     string    `json:"arn"`
	Created time.Time `json:"created"`
	// Policy is the consumer's resource policy document (see policy.go).
	Policy string `json:"policy,omitempty"`
}

type shardMeta struct {
	Index           uint32     `json:"index"`
	StartingHashKey string     `json:"startingHashKey"`
	EndingHashKey   string     `json:"endingHashKey"`
	StartingSeq     string     `json:"startingSequenceNumber"`
	Parent          string     `json:"parent,omitempty"`
	AdjacentParent  string     `json:"adjacentParent,omitempty"`
	Created         time.Time  `json:"created"`
	EndingSeq       string     `json:"endingSequenceNumber,omitempty"`
	Closed          *time.Time `json:"closed,omitempty"`
}

type streamState struct {
	id   uint64 // immutable copies of meta.ID and meta.Name
	name string
	meta streamMeta // guarded by Service.mu
	// shards holds every shard not yet aged out, in index order; open the
	// open ones in hash-key order. Both are replaced, never modified, by
	// resharding (under Service.mu, on the commit goroutine).
	shards  []*shardState
	open    []*shardState
	deleted atomic.Bool
	// autoNext counts the records put under the AUTO record distribution,
	// to spread them evenly.
	autoNext atomic.Uint64
	// capacity is an on-demand stream's write capacity under
	// ShardWriteLimits.
	capacity writeCapacity
	// transition is the state reported instead of ACTIVE until its moment
	// (see TransitionDelay); guarded by Service.mu.
	transition transition
}

type shardState struct {
	index          uint32
	id             string
	start, end     u128
	startSeq       u128
	parent         string
	adjacentParent string
	created        time.Time

	// ending is the shard's last sequence number once it is closed.
	ending atomic.Pointer[u128]
	closed time.Time // guarded by Service.mu

	// Owned by the commit goroutine.
	lastMS  uint64
	counter uint64
	// runs formats the sequence numbers of the shard's puts.
	runs seqnum.Runs

	// tip is the highest durable sequence number, nil while none.
	tip atomic.Pointer[u128]

	limits *writeLimiter
	reads  readLimiter

	// Traffic counters since the engine opened.
	recordsIn, bytesIn, recordsOut, bytesOut, throttled atomic.Int64

	// appended is closed (and replaced) whenever the tip moves.
	notifyMu sync.Mutex
	appended chan struct{}
}

// describe returns the public view of a shard. The caller holds Service.mu.
func (sh *shardState) describe() Shard {
	d := Shard{
		ID: sh.id, ParentShardID: sh.parent, AdjacentParentShardID: sh.adjacentParent,
		StartingHashKey: sh.start.String(), EndingHashKey: sh.end.String(),
		StartingSequenceNumber: seqString(sh.startSeq), Created: sh.created, Closed: sh.closed,
	}
	if e := sh.ending.Load(); e != nil {
		d.EndingSequenceNumber = seqString(*e)
	}
	return d
}

// publish makes records up to tip readable and wakes waiting readers.
func (sh *shardState) publish(tip u128) {
	sh.tip.Store(&tip)
	sh.wake()
}

// wake wakes the readers waiting on the shard.
func (sh *shardState) wake() {
	sh.notifyMu.Lock()
	if sh.appended != nil {
		close(sh.appended)
		sh.appended = nil
	}
	sh.notifyMu.Unlock()
}

// waitChan returns a channel closed at the next publish.
func (sh *shardState) waitChan() <-chan struct{} {
	sh.notifyMu.Lock()
	defer sh.notifyMu.Unlock()
	if sh.appended == nil {
		sh.appended = make(chan struct{})
	}
	return sh.appended
}

const (
	metaStreamPrefix = "stream/"
	metaSecret       = "secret"
	metaNextID       = "next-stream-id"
)

// Open opens (or creates) the engine described by cfg and starts its
// background work. Close releases it. Open returns early, with an error,
// when ctx is done.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	cfg.setDefaults()
	eng, err := storage.Open(ctx, storage.Options{
		Dir: cfg.Dir, InMemory: cfg.InMemory, FS: cfg.FS, NoSync: cfg.NoSync,
		MemTableSize: cfg.MemTableSize, CacheSize: cfg.CacheSize, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:      cfg,
		eng:      eng,
		log:      cfg.Logger,
		byName:   map[string]*streamState{},
		byID:     map[uint64]*streamState{},
		deleting: map[string]deletingStream{},
		nextID:   1,
		putCh:    make(chan *putReq, 1024),
		syncCh:   make(chan *pendingGroup, 256),
		stopRet:  make(chan struct{}),

		settleKick: make(chan struct{}, 1),
	}
	if err := s.load(); err != nil {
		eng.Close()
		return nil, err
	}
	s.wg.Add(4)
	go s.commitLoop()
	go s.syncLoop()
	go s.retentionLoop()
	go s.settleLoop()
	return s, nil
}

// Health returns nil while the engine accepts writes, else why it refuses
// them (an error wrapping ErrUnavailable that names the cause and what
// clears it). Reads go on either way.
func (s *Service) Health() error { return s.eng.Health() }

// Close stops background work and closes storage. Puts in flight finish
// first; later calls, reads included, fail with an error wrapping
// ErrUnavailable, and readers waiting for appends (WaitIterator) return.
func (s *Service) Close() error {
	s.putMu.Lock()
	if s.closed {
		s.putMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.putCh)
	s.putMu.Unlock()
	close(s.stopRet)
	s.wg.Wait()
	return s.eng.Close()
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// ARN returns the ARN of the stream an engine name names (see scope.go).
func (s *Service) ARN(name string) string {
	region, account, plain := s.SplitName(name)
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:%s%s", region, account, streamARNResource, plain)
}

// NameFromARN returns the engine name of the stream an ARN addresses. It
// returns an ErrInvalidArgument error when arn is not a Kinesis stream ARN
// and an ErrNotFound error when it names another account or region while
// Config.MultiRegion is off.
func (s *Service) NameFromARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !strings.HasPrefix(parts[1], "aws") || parts[2] != "kinesis" ||
		!strings.HasPrefix(parts[5], streamARNResource) || len(parts[5]) == len(streamARNResource) {
		return "", newError(ErrInvalidArgument, "%s is not a valid Kinesis stream ARN.", arn)
	}
	name := parts[5][len(streamARNResource):]
	if strings.Contains(name, "/") || !s.cfg.MultiRegion && (parts[3] != s.cfg.Region || parts[4] != s.cfg.AccountID) {
		return "", newError(ErrNotFound, "Stream %s under account %s not found.", name, parts[4])
	}
	return s.Qualify(parts[3], parts[4], name), nil
}

// notFound is ResourceNotFoundException for the stream named name, worded
// with its plain name and account.
func (s *Service) notFound(name string) error {
	return newError(ErrNotFound, "Stream %s not found.", s.InAccount(name))
}

// lookup returns the live stream named name. The caller holds s.mu.
func (s *Service) lookup(name string) (*streamState, error) {
	st, ok := s.byName[name]
	if !ok {
		return nil, s.notFound(name)
	}
	return st, nil
}
