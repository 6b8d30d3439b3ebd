package stream

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Recovery: Open rebuilds the in-memory state of every stream and shard
// from the metadata and tips stored in the engine.

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
		s.policies.Add(policyCount(&m))
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
