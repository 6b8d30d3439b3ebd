package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/storage"
)

// Stream CRUD: create, delete, describe and list streams.

// CreateStream creates a stream with shardCount shards, evenly splitting the
// 128-bit hash-key space. ErrInUse when the name exists, ErrLimitExceeded
// past ShardLimit.
func (s *Service) CreateStream(ctx context.Context, name string, shardCount int, opts CreateOptions) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if shardCount < 1 || shardCount > maxShardIndex {
		return newError(ErrInvalidArgument, "ShardCount %d is out of range.", shardCount)
	}
	if len(opts.Tags) > MaxTagsPerStream {
		return newError(ErrInvalidArgument, "Failed to create stream %s because a stream cannot have more than %d tags.", s.InAccount(name), MaxTagsPerStream)
	}
	mode := opts.Mode
	if mode == "" {
		mode = ModeProvisioned
	}
	maxKiB := opts.MaxRecordSizeKiB
	if maxKiB == 0 {
		maxKiB = DefaultMaxRecordSizeKiB
	}
	if err := s.checkDistribution(name, mode, opts.RecordDistribution); err != nil {
		return err
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()

	s.mu.RLock()
	_, exists := s.byName[name]
	limitErr := s.checkShardLimit(name, shardCount)
	id := s.nextID
	s.mu.RUnlock()
	if exists {
		return newError(ErrInUse, "Stream %s already exists.", s.InAccount(name))
	}
	s.mu.RLock()
	beingDeleted := s.deletingLocked(name) != nil
	s.mu.RUnlock()
	if beingDeleted {
		return newError(ErrInUse, "Stream %s is being deleted; create it again once it is gone.", s.InAccount(name))
	}
	if limitErr != nil {
		return limitErr
	}

	created := s.now()
	m := streamMeta{
		ID: id, Name: name, Created: created.UTC().Truncate(time.Millisecond),
		RetentionHours: DefaultRetentionHours, Mode: mode, MaxRecordSizeKiB: maxKiB,
		Tags: maps.Clone(opts.Tags),
	}
	if opts.RecordDistribution == DistributionAuto {
		m.RecordDistribution = DistributionAuto
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
	s.log.Info("stream created", "stream", s.LogName(name), "shards", shardCount)
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
// and then publishes it. fn may return an error to abort. Nothing is
// changed when ctx is done before the write begins.
func (s *Service) updateMeta(ctx context.Context, name string, fn func(m *streamMeta) error) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
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
	s.policies.Add(policyCount(&m) - policyCount(&st.meta))
	st.meta = m
	s.mu.Unlock()
	return nil
}

// DeleteStream deletes a stream and its records. A stream with registered
// consumers is deleted only with enforceConsumerDeletion, as on Kinesis;
// one with channels is not deleted until they are.
func (s *Service) DeleteStream(ctx context.Context, name string, enforceConsumerDeletion bool) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	st, err := s.lookup(name)
	if err == nil && !enforceConsumerDeletion && len(st.meta.Consumers) > 0 {
		err = newError(ErrInUse, "Stream %s has registered consumers. Deregister them, or delete the stream with EnforceConsumerDeletion.", s.InAccount(name))
	}
	if err == nil && len(st.meta.Channels) > 0 {
		err = newError(ErrInUse, "Stream %s has channels (%s). Delete them first (DeleteChannel).", s.InAccount(name), st.meta.Channels[0].Name)
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
		s.policies.Add(-policyCount(&st.meta))
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
	s.log.Info("stream deleted", "stream", s.LogName(name))
	return nil
}

func (s *Service) describe(st *streamState) *Description {
	_, _, plain := s.SplitName(st.name)
	d := &Description{
		Name: plain, ARN: s.ARN(st.name), Status: s.statusLocked(st), Mode: st.meta.Mode,
		RetentionHours: st.meta.RetentionHours, Created: st.meta.Created,
		OpenShardCount: len(st.open), EncryptionType: EncryptionNone,
		MaxRecordSizeKiB: st.meta.MaxRecordSizeKiB, ConsumerCount: len(st.meta.Consumers),
		KeyID: st.meta.KeyID, ShardLevelMetrics: slices.Clone(st.meta.ShardLevelMetrics),
		WarmThroughputMiBps: st.meta.WarmThroughputMiBps,
		RecordDistribution:  DistributionUserPartitionKey,
	}
	if st.meta.RecordDistribution != "" {
		d.RecordDistribution = st.meta.RecordDistribution
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
			out = append(out, Summary{Name: name, ARN: d.ARN, Status: d.Status, Mode: d.Mode, Created: d.Created})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(a.Name, b.Name) })
	return out
}
