package stream

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"math/bits"
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

const pow10_19 = 10_000_000_000_000_000_000

// maxSeqDigits is the most decimal digits a u128 takes (2^128-1 has 39).
const maxSeqDigits = 39

// String formats a in decimal without leading zeros.
func (a u128) String() string {
	var buf [40]byte
	return string(a.appendDecimal(buf[:0]))
}

func (a u128) appendDecimal(dst []byte) []byte {
	if a.hi == 0 {
		return appendUint(dst, a.lo, 0)
	}
	// Split a into q*10^19 + r with q < 2^64·(2^64/10^19), then q again.
	q1, r1 := bits.Div64(0, a.hi, pow10_19)
	q0, r0 := bits.Div64(r1, a.lo, pow10_19)
	q := u128{q1, q0}
	if q.hi == 0 {
		dst = appendUint(dst, q.lo, 0)
	} else {
		qq1, rr1 := bits.Div64(0, q.hi, pow10_19)
		qq0, rr0 := bits.Div64(rr1, q.lo, pow10_19)
		_ = qq1 // 2^128 < 10^57, so the top part fits in qq0
		dst = appendUint(dst, qq0, 0)
		dst = appendUint(dst, rr0, 19)
	}
	return appendUint(dst, r0, 19)
}

// appendUint appends v in decimal, left-padded with zeros to width digits.
func appendUint(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	buf[i] = byte('0' + v)
	for len(buf)-i < width {
		i--
		buf[i] = '0'
	}
	return append(dst, buf[i:]...)
}

var errNotU128 = errors.New("not a decimal 128-bit unsigned integer")

// parseU128 parses a decimal string of at most 2^128-1 with no sign, no
// leading zeros (other than "0") and nothing but digits.
func parseU128(s string) (u128, error) {
	if s == "" || len(s) > 39 || (s[0] == '0' && len(s) > 1) {
		return u128{}, errNotU128
	}
	var v u128
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return u128{}, errNotU128
		}
		// v = v*10 + d, checking overflow.
		hiHi, hiLo := bits.Mul64(v.hi, 10)
		loHi, loLo := bits.Mul64(v.lo, 10)
		if hiHi != 0 {
			return u128{}, errNotU128
		}
		hi, carry := bits.Add64(hiLo, loHi, 0)
		if carry != 0 {
			return u128{}, errNotU128
		}
		lo, carry := bits.Add64(loLo, uint64(c-'0'), 0)
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			return u128{}, errNotU128
		}
		v = u128{hi, lo}
	}
	return v, nil
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
