package stream

import (
	"time"

	"github.com/runnel-dev/runnel/internal/seqnum"
)

// Sequence numbers are stored as 128-bit integers and shown to clients in
// AWS's 56-digit layout; package seqnum has both layouts. Within a shard
// the arrival time never decreases and the counter always increases, so
// numbers are strictly increasing, ordered by time (which makes
// AT_TIMESTAMP a seek), and a number names the shard it belongs to.

const (
	seqCounterMask = seqnum.MaxCounter
	maxShardIndex  = seqnum.MaxShard
	maxSeqMillis   = seqnum.MaxMillis
)

func makeSeq(ms uint64, shard uint32, counter uint64) u128 {
	hi, lo := seqnum.Make(ms, shard, counter)
	return u128{hi, lo}
}

// seqFloor is the smallest sequence number of shard at time ms.
func seqFloor(ms uint64, shard uint32) u128 { return makeSeq(ms, shard, 0) }

func seqMillis(s u128) uint64 { return seqnum.Millis(s.hi) }

func seqShard(s u128) uint32 { return seqnum.Shard(s.hi, s.lo) }

func seqCounter(s u128) uint64 { return seqnum.Counter(s.lo) }

// validSeq reports whether s has the stored layout.
func validSeq(s u128) bool { return seqnum.Valid(s.hi, s.lo) }

// appendSeq appends the 56-digit form of s, a valid sequence number: the
// form clients get.
func (s u128) appendSeq(dst []byte) []byte { return seqnum.Append(dst, s.hi, s.lo) }

// seqString is the 56-digit form of s, a valid sequence number.
func seqString(s u128) string { return seqnum.String(s.hi, s.lo) }

// parseSeq reads a sequence number a client gave, in the 56-digit form or
// the 39-digit one runnel issued before it.
func parseSeq(s string) (u128, bool) {
	hi, lo, ok := seqnum.Parse(s)
	return u128{hi, lo}, ok
}

// ValidSequenceNumber reports whether s is a sequence number runnel
// issues, in either form, that was issued by now: what PutRecord's
// SequenceNumberForOrdering must be.
func ValidSequenceNumber(s string, now time.Time) bool {
	seq, ok := parseSeq(s)
	return ok && seqMillis(seq) <= uint64(max(now.UnixMilli(), 0))
}
