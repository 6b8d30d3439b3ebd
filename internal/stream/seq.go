package stream

import "time"

// Sequence numbers are 128-bit integers shown in decimal:
//
//	bit 127        always 1, so every number has exactly 39 digits and
//	               string order equals numeric order
//	bits 126..80   arrival time in Unix milliseconds (47 bits)
//	bits 79..56    shard index (24 bits)
//	bits 55..0     per-shard counter, never reset (56 bits)
//
// Within a shard the arrival time never decreases and the counter always
// increases, so numbers are strictly increasing, ordered by time (which makes
// AT_TIMESTAMP a seek), and a number names the shard it belongs to.

const (
	seqTopBit      = uint64(1) << 63
	seqCounterBits = 56
	seqCounterMask = uint64(1)<<seqCounterBits - 1
	maxShardIndex  = 1<<24 - 1
	maxSeqMillis   = uint64(1)<<47 - 1
)

func makeSeq(ms uint64, shard uint32, counter uint64) u128 {
	return u128{
		hi: seqTopBit | (ms&maxSeqMillis)<<16 | uint64(shard)>>8,
		lo: uint64(shard&0xff)<<seqCounterBits | counter&seqCounterMask,
	}
}

// seqFloor is the smallest sequence number of shard at time ms.
func seqFloor(ms uint64, shard uint32) u128 { return makeSeq(ms, shard, 0) }

func seqMillis(s u128) uint64 { return (s.hi &^ seqTopBit) >> 16 }

func seqShard(s u128) uint32 { return uint32(s.hi&0xffff)<<8 | uint32(s.lo>>seqCounterBits) }

func seqCounter(s u128) uint64 { return s.lo & seqCounterMask }

// validSeq reports whether s has the layout above.
func validSeq(s u128) bool { return s.hi&seqTopBit != 0 }

// ValidSequenceNumber reports whether s is a sequence number of this
// layout that was issued by now: what PutRecord's SequenceNumberForOrdering
// must be.
func ValidSequenceNumber(s string, now time.Time) bool {
	seq, err := parseU128(s)
	return err == nil && validSeq(seq) && seqMillis(seq) <= uint64(max(now.UnixMilli(), 0))
}
