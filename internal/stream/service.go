package stream

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	// Region and AccountID appear in stream ARNs. Defaults: us-east-1 and
	// 000000000000.
	Region    string
	AccountID string
	// ShardLimit is the most shards all streams together may have. The
	// default is 1000.
	ShardLimit int
	// ShardWriteLimits enforces the write limits of a provisioned Kinesis
	// shard (ShardWriteRecordsPerSecond and ShardWriteBytesPerSecond): a
	// record past them fails alone with ProvisionedThroughputExceededException,
	// so producers' retry paths can be exercised. Off by default.
	ShardWriteLimits bool
	// ShardReadLimits enforces the read limits of a Kinesis shard: 5
	// GetRecords calls per second (ShardReadCallsPerSecond) and 2 MiB/s
	// (ShardReadBytesPerSecond), a call over either failing with
	// ErrThroughputExceeded. Off by default.
	ShardReadLimits bool
	// TransitionDelay is how long a stream reports CREATING, UPDATING or
	// DELETING after it is created, resharded, updated or deleted (and
	// refuses further changes with ResourceInUseException). The changes
	// themselves take effect at once. The default, 0, reports ACTIVE
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
	putMu    sync.RWMutex
	closed   bool
	putCh    chan *putReq
	syncCh   chan *pendingGroup
	stopRet  chan struct{} // closed by Close: ends background work and waits for appends
	wg       sync.WaitGroup
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
	// WarmThroughputMiBps is an on-demand stream's warm throughput (see
	// SetWarmThroughput); 0 when none was set.
	WarmThroughputMiBps int `json:"warmThroughputMiBps,omitempty"`
}

// ConsumerMeta is a registered enhanced fan-out consumer as persisted.
type ConsumerMeta struct {
	Name    string    `json:"name"`
	ARN     string    `json:"arn"`
	Created time.Time `json:"created"`
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
		StartingSequenceNumber: sh.startSeq.String(), Created: sh.created, Closed: sh.closed,
	}
	if e := sh.ending.Load(); e != nil {
		d.EndingSequenceNumber = e.String()
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
		MemTableSize: cfg.MemTableSize, Logger: cfg.Logger,
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
	}
	if err := s.load(); err != nil {
		eng.Close()
		return nil, err
	}
	s.wg.Add(3)
	go s.commitLoop()
	go s.syncLoop()
	go s.retentionLoop()
	return s, nil
}

func (s *Service) load() error {
	secret, err := s.eng.GetMeta(metaSecret)
	if err != nil {
		return err
	}
	if secret == nil {
		secret = make([]byte, 32)
		rand.Read(secret)
		b := s.eng.NewBatch()
		b.SetMeta(metaSecret, secret)
		if err := s.eng.Commit(b); err != nil {
			return err
		}
	}
	s.secret = secret
	if v, err := s.eng.GetMeta(metaNextID); err != nil {
		return err
	} else if v != nil {
		if err := json.Unmarshal(v, &s.nextID); err != nil {
			return fmt.Errorf("reading stream id counter: %w", err)
		}
	}
	return s.eng.ScanMeta(metaStreamPrefix, func(name string, v []byte) error {
		var m streamMeta
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("reading metadata of %s: %w", name, err)
		}
		if m.NextShardIndex == 0 {
			m.NextShardIndex = uint32(len(m.Shards))
		}
		st, err := newStreamState(m)
		if err != nil {
			return fmt.Errorf("loading stream %s: %w", m.Name, err)
		}
		for _, sh := range st.shards {
			last, ok, err := s.eng.LastRecord(m.ID, sh.index)
			if err != nil {
				return fmt.Errorf("recovering shard %s of %s: %w", sh.id, m.Name, err)
			}
			if ending := sh.ending.Load(); ending != nil {
				// Closed: nothing more will be written; whatever is
				// missing below the end was trimmed or never acknowledged.
				sh.tip.Store(ending)
			} else if ok {
				tip := u128FromBytes(last)
				sh.tip.Store(&tip)
				sh.lastMS = seqMillis(tip)
				sh.counter = seqCounter(tip) + 1
			}
		}
		s.byName[m.Name] = st
		s.byID[m.ID] = st
		s.nextID = max(s.nextID, m.ID+1)
		return nil
	})
}

func newStreamState(m streamMeta) (*streamState, error) {
	st := &streamState{id: m.ID, name: m.Name, meta: m}
	for _, sm := range m.Shards {
		sh, err := newShardState(sm)
		if err != nil {
			return nil, err
		}
		st.shards = append(st.shards, sh)
	}
	st.open = openShards(st.shards)
	return st, nil
}

func newShardState(sm shardMeta) (*shardState, error) {
	start, err1 := parseU128(sm.StartingHashKey)
	end, err2 := parseU128(sm.EndingHashKey)
	seq, err3 := parseU128(sm.StartingSeq)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	sh := &shardState{
		index: sm.Index, id: shardID(sm.Index), start: start, end: end, startSeq: seq,
		parent: sm.Parent, adjacentParent: sm.AdjacentParent, created: sm.Created,
		limits: newWriteLimiter(),
	}
	if sm.EndingSeq != "" {
		ending, err := parseU128(sm.EndingSeq)
		if err != nil {
			return nil, err
		}
		sh.ending.Store(&ending)
		if sm.Closed != nil {
			sh.closed = *sm.Closed
		}
	}
	return sh, nil
}

// openShards returns the open shards of all in hash-key order.
func openShards(all []*shardState) []*shardState {
	var open []*shardState
	for _, sh := range all {
		if sh.ending.Load() == nil {
			open = append(open, sh)
		}
	}
	slices.SortFunc(open, func(a, b *shardState) int { return a.start.cmp(b.start) })
	return open
}

func shardID(index uint32) string {
	return fmt.Sprintf("%s%0*d", shardIDPrefix, shardIDDigits, index)
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

// ARN returns the ARN of the stream named name.
func (s *Service) ARN(name string) string {
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:%s%s", s.cfg.Region, s.cfg.AccountID, streamARNResource, name)
}

// NameFromARN returns the stream name an ARN addresses. It returns an
// ErrInvalidArgument error when arn is not a Kinesis stream ARN and an
// ErrNotFound error when it names another account or region.
func (s *Service) NameFromARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !strings.HasPrefix(parts[1], "aws") || parts[2] != "kinesis" ||
		!strings.HasPrefix(parts[5], streamARNResource) || len(parts[5]) == len(streamARNResource) {
		return "", newError(ErrInvalidArgument, "%s is not a valid Kinesis stream ARN.", arn)
	}
	name := parts[5][len(streamARNResource):]
	if parts[3] != s.cfg.Region || parts[4] != s.cfg.AccountID {
		return "", newError(ErrNotFound, "Stream %s under account %s not found.", name, parts[4])
	}
	return name, nil
}

func (s *Service) notFound(name string) error {
	return newError(ErrNotFound, "Stream %s under account %s not found.", name, s.cfg.AccountID)
}

// lookup returns the live stream named name. The caller holds s.mu.
func (s *Service) lookup(name string) (*streamState, error) {
	st, ok := s.byName[name]
	if !ok {
		return nil, s.notFound(name)
	}
	return st, nil
}

// CreateStream creates a stream with shardCount shards, evenly splitting the
// 128-bit hash-key space. ErrInUse when the name exists, ErrLimitExceeded
// past ShardLimit.
func (s *Service) CreateStream(ctx context.Context, name string, shardCount int, opts CreateOptions) error {
	if shardCount < 1 || shardCount > maxShardIndex {
		return newError(ErrInvalidArgument, "ShardCount %d is out of range.", shardCount)
	}
	if len(opts.Tags) > MaxTagsPerStream {
		return newError(ErrInvalidArgument, "Failed to create stream %s under account %s because a stream cannot have more than %d tags.", name, s.cfg.AccountID, MaxTagsPerStream)
	}
	mode := opts.Mode
	if mode == "" {
		mode = ModeProvisioned
	}
	maxKiB := opts.MaxRecordSizeKiB
	if maxKiB == 0 {
		maxKiB = DefaultMaxRecordSizeKiB
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()

	s.mu.RLock()
	_, exists := s.byName[name]
	total := 0
	for _, st := range s.byName {
		total += len(st.open)
	}
	id := s.nextID
	s.mu.RUnlock()
	if exists {
		return newError(ErrInUse, "Stream %s under account %s already exists.", name, s.cfg.AccountID)
	}
	s.mu.RLock()
	beingDeleted := s.deletingLocked(name) != nil
	s.mu.RUnlock()
	if beingDeleted {
		return newError(ErrInUse, "Stream %s under account %s is being deleted; create it again once it is gone.", name, s.cfg.AccountID)
	}
	if total+shardCount > s.cfg.ShardLimit {
		return newError(ErrLimitExceeded,
			"This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d.",
			s.cfg.AccountID, s.cfg.Region, total, s.cfg.ShardLimit, shardCount)
	}

	created := s.now()
	m := streamMeta{
		ID: id, Name: name, Created: created.UTC().Truncate(time.Millisecond),
		RetentionHours: DefaultRetentionHours, Mode: mode, MaxRecordSizeKiB: maxKiB,
		Tags: maps.Clone(opts.Tags),
	}
	starts := splitHashRange(shardCount)
	for i, start := range starts {
		end := maxU128
		if i+1 < len(starts) {
			end = starts[i+1].sub1()
		}
		m.Shards = append(m.Shards, shardMeta{
			Index: uint32(i), StartingHashKey: start.String(), EndingHashKey: end.String(),
			StartingSeq: seqFloor(uint64(created.UnixMilli()), uint32(i)).String(),
			Created:     m.Created,
		})
	}
	m.NextShardIndex = uint32(shardCount)
	st, err := newStreamState(m)
	if err != nil {
		return err
	}
	if err := s.writeMeta(&m, id+1); err != nil {
		return err
	}
	s.mu.Lock()
	s.byName[name] = st
	s.byID[id] = st
	s.nextID = id + 1
	s.beginTransition(st, StatusCreating)
	s.mu.Unlock()
	s.log.Info("stream created", "stream", name, "shards", shardCount)
	return nil
}

// writeMeta persists a stream's metadata (and the id counter when nextID is
// non-zero), with whatever extra adds to the same batch. The caller holds
// metaMu.
func (s *Service) writeMeta(m *streamMeta, nextID uint64, extra ...func(*storage.Batch)) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b := s.eng.NewBatch()
	b.SetMeta(metaStreamPrefix+m.Name, v)
	if nextID != 0 {
		id, _ := json.Marshal(nextID)
		b.SetMeta(metaNextID, id)
	}
	for _, f := range extra {
		f(b)
	}
	if err := s.eng.Commit(b); err != nil {
		return fmt.Errorf("saving stream %s: %w", m.Name, err)
	}
	return nil
}

// updateMeta applies fn to a copy of a stream's metadata, persists the copy
// and then publishes it. fn may return an error to abort.
func (s *Service) updateMeta(name string, fn func(m *streamMeta) error) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.RLock()
	st, err := s.lookup(name)
	var m streamMeta
	if err == nil {
		m = st.meta
		m.Tags = maps.Clone(m.Tags)
	}
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := fn(&m); err != nil {
		return err
	}
	if err := s.writeMeta(&m, 0); err != nil {
		return err
	}
	s.mu.Lock()
	st.meta = m
	s.mu.Unlock()
	return nil
}

// DeleteStream deletes a stream and its records. A stream with registered
// consumers is deleted only with enforceConsumerDeletion, as on Kinesis.
func (s *Service) DeleteStream(ctx context.Context, name string, enforceConsumerDeletion bool) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	st, err := s.lookup(name)
	if err == nil && !enforceConsumerDeletion && len(st.meta.Consumers) > 0 {
		err = newError(ErrInUse, "Stream %s under account %s has registered consumers. Deregister them, or delete the stream with EnforceConsumerDeletion.", name, s.cfg.AccountID)
	}
	if err == nil {
		if s.cfg.TransitionDelay > 0 {
			for n, d := range s.deleting {
				if !s.now().Before(d.until) {
					delete(s.deleting, n)
				}
			}
			s.deleting[name] = deletingStream{desc: s.describe(st), until: s.now().Add(s.cfg.TransitionDelay)}
		}
		st.deleted.Store(true)
		delete(s.byName, name)
		delete(s.byID, st.id)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Wait until every put that could still write to this stream has, so
	// the range deletion below covers its records.
	if err := s.barrier(ctx); err != nil {
		return err
	}
	b := s.eng.NewBatch()
	b.DeleteMeta(metaStreamPrefix + name)
	b.DeleteStreamRecords(st.id)
	if err := s.eng.Commit(b); err != nil {
		return fmt.Errorf("deleting stream %s: %w", name, err)
	}
	s.log.Info("stream deleted", "stream", name)
	return nil
}

func (s *Service) describe(st *streamState) *Description {
	d := &Description{
		Name: st.name, ARN: s.ARN(st.name), Status: s.statusLocked(st), Mode: st.meta.Mode,
		RetentionHours: st.meta.RetentionHours, Created: st.meta.Created,
		OpenShardCount: len(st.open), EncryptionType: EncryptionNone,
		MaxRecordSizeKiB: st.meta.MaxRecordSizeKiB, ConsumerCount: len(st.meta.Consumers),
		KeyID: st.meta.KeyID, ShardLevelMetrics: slices.Clone(st.meta.ShardLevelMetrics),
		WarmThroughputMiBps: st.meta.WarmThroughputMiBps,
	}
	if st.meta.EncryptionType != "" {
		d.EncryptionType = st.meta.EncryptionType
	}
	for _, sh := range st.shards {
		d.Shards = append(d.Shards, sh.describe())
	}
	return d
}

// Describe returns the full description of a stream, every shard included.
func (s *Service) Describe(name string) (*Description, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(name)
	if err != nil {
		if d := s.deletingLocked(name); d != nil {
			return d, nil
		}
		return nil, err
	}
	return s.describe(st), nil
}

// List returns every stream, sorted by name.
func (s *Service) List() []Summary {
	s.mu.RLock()
	out := make([]Summary, 0, len(s.byName))
	for _, st := range s.byName {
		out = append(out, Summary{
			Name: st.name, ARN: s.ARN(st.name), Status: s.statusLocked(st),
			Mode: st.meta.Mode, Created: st.meta.Created,
		})
	}
	for name := range s.deleting {
		if d := s.deletingLocked(name); d != nil {
			out = append(out, Summary{Name: d.Name, ARN: d.ARN, Status: d.Status, Mode: d.Mode, Created: d.Created})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SetRetention changes a stream's retention period. increase selects the
// IncreaseStreamRetentionPeriod rules (hours may not be below the current
// value), otherwise the Decrease rules apply.
func (s *Service) SetRetention(ctx context.Context, name string, hours int, increase bool) error {
	if hours < MinRetentionHours {
		return newError(ErrInvalidArgument, "Minimum allowed retention period is %d hours. Requested retention period (%d hours) is too short.", MinRetentionHours, hours)
	}
	if hours > MaxRetentionHours {
		return newError(ErrInvalidArgument, "Maximum allowed retention period is %d hours. Requested retention period (%d hours) is too long.", MaxRetentionHours, hours)
	}
	if err := s.requireActive(name); err != nil {
		return err
	}
	changed := false
	err := s.updateMeta(name, func(m *streamMeta) error {
		if increase && hours < m.RetentionHours {
			return newError(ErrInvalidArgument, "Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", hours, name, m.RetentionHours)
		}
		if !increase && hours > m.RetentionHours {
			return newError(ErrInvalidArgument, "Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", hours, name, m.RetentionHours)
		}
		changed = hours != m.RetentionHours
		m.RetentionHours = hours
		return nil
	})
	if err == nil && changed {
		// As on Kinesis, a period equal to the current one changes
		// nothing, and the stream stays ACTIVE.
		s.markUpdating(name)
	}
	return err
}

// SetEncryption records StartStreamEncryption (EncryptionKMS with a key id)
// or StopStreamEncryption (EncryptionNone). Data is not encrypted with KMS;
// the setting is stored and reported so clients that manage it work.
func (s *Service) SetEncryption(ctx context.Context, name, encryptionType, keyID string) error {
	if err := s.requireActive(name); err != nil {
		return err
	}
	err := s.updateMeta(name, func(m *streamMeta) error {
		m.EncryptionType, m.KeyID = encryptionType, keyID
		if encryptionType == EncryptionNone {
			m.KeyID = ""
		}
		return nil
	})
	if err == nil {
		s.markUpdating(name)
	}
	return err
}

// SetMode records UpdateStreamMode. The shard layout stays as it is (an
// ON_DEMAND stream keeps its shards; runnel does not autoscale).
func (s *Service) SetMode(ctx context.Context, name, mode string) error {
	if err := s.requireActive(name); err != nil {
		return err
	}
	err := s.updateMeta(name, func(m *streamMeta) error {
		m.Mode = mode
		return nil
	})
	if err == nil {
		s.markUpdating(name)
	}
	return err
}

// SetMaxRecordSize records UpdateMaxRecordSize (1024–10240 KiB, checked by
// the caller); Put enforces it from then on.
func (s *Service) SetMaxRecordSize(ctx context.Context, name string, kib int) error {
	return s.updateMeta(name, func(m *streamMeta) error {
		m.MaxRecordSizeKiB = kib
		return nil
	})
}

// SetShardLevelMetrics enables (or disables) enhanced-monitoring metrics
// and returns the metrics enabled before and after. "ALL" stands for every
// metric in all.
func (s *Service) SetShardLevelMetrics(ctx context.Context, name string, metrics, all []string, enable bool) (before, after []string, err error) {
	err = s.updateMeta(name, func(m *streamMeta) error {
		before = slices.Clone(m.ShardLevelMetrics)
		want := metrics
		if slices.Contains(metrics, "ALL") {
			want = all
		}
		cur := slices.Clone(m.ShardLevelMetrics)
		for _, x := range want {
			i := slices.Index(cur, x)
			if enable && i < 0 {
				cur = append(cur, x)
			} else if !enable && i >= 0 {
				cur = slices.Delete(cur, i, i+1)
			}
		}
		slices.Sort(cur)
		m.ShardLevelMetrics = cur
		after = slices.Clone(cur)
		return nil
	})
	return before, after, err
}

// AddTags adds or overwrites tags; ErrInvalidArgument past MaxTagsPerStream.
func (s *Service) AddTags(ctx context.Context, name string, tags map[string]string) error {
	return s.updateMeta(name, func(m *streamMeta) error {
		merged := maps.Clone(m.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTagsPerStream {
			return newError(ErrInvalidArgument, "Failed to add tags to stream %s under account %s because a given stream cannot have more than %d tags associated with it.", name, s.cfg.AccountID, MaxTagsPerStream)
		}
		m.Tags = merged
		return nil
	})
}

// RemoveTags removes the tags with the given keys; absent keys are ignored.
func (s *Service) RemoveTags(ctx context.Context, name string, keys []string) error {
	return s.updateMeta(name, func(m *streamMeta) error {
		for _, k := range keys {
			delete(m.Tags, k)
		}
		return nil
	})
}

// Tags returns a copy of a stream's tags.
func (s *Service) Tags(name string) (map[string]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	t := maps.Clone(st.meta.Tags)
	if t == nil {
		t = map[string]string{}
	}
	return t, nil
}
