package seqnum

import "math/bits"

const pow10_19 = 10_000_000_000_000_000_000

// maxUint128Digits is the most decimal digits a 128-bit integer takes
// (2^128-1 has 39), and the length of every stored number in decimal.
const maxUint128Digits = 39

// AppendUint128 appends the 128-bit integer hi·2^64+lo in decimal, without
// leading zeros, to dst: the decimal form of hash keys and of stored
// sequence numbers.
func AppendUint128(dst []byte, hi, lo uint64) []byte {
	if hi == 0 {
		return appendUint(dst, lo, 0)
	}
	// Split into q·10^19 + r with q < 2^64·(2^64/10^19), then q again.
	q1, r1 := bits.Div64(0, hi, pow10_19)
	q0, r0 := bits.Div64(r1, lo, pow10_19)
	if q1 == 0 {
		dst = appendUint(dst, q0, 0)
	} else {
		_, rr1 := bits.Div64(0, q1, pow10_19)
		qq0, rr0 := bits.Div64(rr1, q0, pow10_19)
		// 2^128 < 10^57, so the top part fits in qq0.
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

// ParseUint128 parses a decimal string of at most 2^128-1 with no sign, no
// leading zeros (other than "0") and nothing but digits.
func ParseUint128(s string) (hi, lo uint64, ok bool) {
	if s == "" || len(s) > maxUint128Digits || (s[0] == '0' && len(s) > 1) {
		return 0, 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		// v = v*10 + d, checking overflow.
		hiHi, hiLo := bits.Mul64(hi, 10)
		loHi, loLo := bits.Mul64(lo, 10)
		if hiHi != 0 {
			return 0, 0, false
		}
		h, carry := bits.Add64(hiLo, loHi, 0)
		if carry != 0 {
			return 0, 0, false
		}
		l, carry := bits.Add64(loLo, uint64(c-'0'), 0)
		h, carry = bits.Add64(h, 0, carry)
		if carry != 0 {
			return 0, 0, false
		}
		hi, lo = h, l
	}
	return hi, lo, true
}
