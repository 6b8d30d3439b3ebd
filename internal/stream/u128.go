package stream

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/runnel-dev/runnel/internal/seqnum"
)

// u128 is an unsigned 128-bit integer: hash keys and sequence numbers.
type u128 struct{ hi, lo uint64 }

var maxU128 = u128{^uint64(0), ^uint64(0)}

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) add1() u128 {
	lo, carry := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + carry, lo}
}

func (a u128) bytes() [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return b
}

func u128FromBytes(b [16]byte) u128 {
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// hashKey returns the 128-bit MD5 of a partition key, the way Kinesis maps
// partition keys onto shards.
func hashKey(partitionKey string) u128 {
	sum := md5.Sum([]byte(partitionKey))
	return u128FromBytes(sum)
}

// String formats a in decimal without leading zeros.
func (a u128) String() string {
	var buf [40]byte
	return string(a.appendDecimal(buf[:0]))
}

func (a u128) appendDecimal(dst []byte) []byte { return seqnum.AppendUint128(dst, a.hi, a.lo) }

var errNotU128 = errors.New("not a decimal 128-bit unsigned integer")

// parseU128 parses a decimal string of at most 2^128-1 with no sign, no
// leading zeros (other than "0") and nothing but digits.
func parseU128(s string) (u128, error) {
	hi, lo, ok := seqnum.ParseUint128(s)
	if !ok {
		return u128{}, errNotU128
	}
	return u128{hi, lo}, nil
}

// splitHashRange returns the starting hash key of each of n shards that
// evenly split [0, 2^128): shard i starts at i·⌊2^128/n⌋, as Kinesis does;
// the last shard ends at 2^128-1.
func splitHashRange(n int) []u128 {
	// ⌊2^128/n⌋ = ⌊(2^128-1)/n⌋ unless n divides 2^128 exactly.
	step := divU128(maxU128, uint64(n))
	if n&(n-1) == 0 { // power of two: 2^128/n exactly
		step = step.add1()
		if n == 1 {
			step = u128{}
		}
	}
	starts := make([]u128, n)
	for i := range starts {
		starts[i] = mulU128(step, uint64(i))
	}
	return starts
}

func divU128(a u128, d uint64) u128 {
	qhi, r := bits.Div64(0, a.hi, d)
	qlo, _ := bits.Div64(r, a.lo, d)
	return u128{qhi, qlo}
}

func mulU128(a u128, m uint64) u128 {
	hi, lo := bits.Mul64(a.lo, m)
	return u128{a.hi*m + hi, lo}
}

func (a u128) sub1() u128 {
	lo, borrow := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - borrow, lo}
}
