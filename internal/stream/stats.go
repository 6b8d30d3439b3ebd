package stream

import "time"

// ShardStats is a snapshot of one shard's traffic since the engine opened.
type ShardStats struct {
	ShardID    string `json:"shardId"`
	Open       bool   `json:"open"`
	RecordsIn  int64  `json:"recordsIn"`
	BytesIn    int64  `json:"bytesIn"`
	RecordsOut int64  `json:"recordsOut"`
	BytesOut   int64  `json:"bytesOut"`
	// Throttled counts records refused by write limits and GetRecords
	// calls refused by read limits.
	Throttled int64 `json:"throttled"`
	// LastSequenceNumber is the newest durable record's, "" when none.
	LastSequenceNumber string `json:"lastSequenceNumber,omitempty"`
	// LastArrival is when the newest durable record arrived.
	LastArrival time.Time `json:"lastArrival,omitzero"`
}

// StreamStats is a snapshot of one stream's shards.
type StreamStats struct {
	Name   string       `json:"name"`
	Shards []ShardStats `json:"shards"`
}

// Stats returns a snapshot of every stream's traffic, by stream name. It
// is cheap enough to call on every metrics scrape.
func (s *Service) Stats() []StreamStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]StreamStats, 0, len(s.byName))
	for _, st := range s.byName {
		ss := StreamStats{Name: st.name}
		for _, sh := range st.shards {
			x := ShardStats{
				ShardID: sh.id, Open: sh.ending.Load() == nil,
				RecordsIn: sh.recordsIn.Load(), BytesIn: sh.bytesIn.Load(),
				RecordsOut: sh.recordsOut.Load(), BytesOut: sh.bytesOut.Load(),
				Throttled: sh.throttled.Load(),
			}
			if tip := sh.tip.Load(); tip != nil {
				x.LastSequenceNumber = seqString(*tip)
				x.LastArrival = time.UnixMilli(int64(seqMillis(*tip))).UTC()
			}
			ss.Shards = append(ss.Shards, x)
		}
		out = append(out, ss)
	}
	return out
}
