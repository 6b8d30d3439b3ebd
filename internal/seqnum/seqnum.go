// Package seqnum writes and reads runnel's sequence numbers.
//
// A record's sequence number is stored as a 128-bit integer, the last 16
// bytes of its storage key (hi is bits 127..64, lo bits 63..0):
//
//	bit 127        always 1
//	bits 126..80   arrival time in Unix milliseconds (47 bits)
//	bits 79..56    shard index (24 bits)
//	bits 55..0     per-shard counter, never reset (56 bits)
//
// Clients see it as a 56-digit decimal with the layout of AWS's (version
// 2) numbers, a 188-bit integer whose fields are, from the top:
//
//	bits 187..184  2, so every number has exactly 56 digits
//	bits 183..148  arrival time in whole Unix seconds (36 bits; AWS has
//	               the shard's creation time here)
//	bits 147..144  low 4 bits of the shard index
//	bits 143..138  0
//	bits 137..128  milliseconds of the arrival time within its second
//	bits 127..72   per-shard counter (56 bits; with the field above, where
//	               AWS has its per-shard record index)
//	bits 71..36    arrival time in whole Unix seconds again (36 bits, as
//	               AWS)
//	bits 35..4     shard index (32 bits, as AWS)
//	bits 3..0      2 (the layout version)
//
// so (n >> 36) & 0xfffffffff is the arrival second, and adding
// (n >> 128) & 0x3ff milliseconds gives ApproximateArrivalTimestamp
// exactly. The two forms map one to one, and within a shard both order
// numbers by (arrival millisecond, counter): the stored keys and the
// 56-digit numbers sort alike, and two 56-digit numbers compare as strings.
// Numbers issued before the 56-digit form (the 128-bit value in decimal,
// 39 digits) are read as well.
package seqnum

import "math/bits"

// Digits is the length of every sequence number runnel hands out.
const Digits = 56

const (
	topBit      = uint64(1) << 63
	counterBits = 56
	counterMask = uint64(1)<<counterBits - 1
	// MaxShard is the largest shard index a number can carry.
	MaxShard = 1<<24 - 1
	secBits  = 36
	secMask  = uint64(1)<<secBits - 1
	// MaxMillis is the largest arrival time (Unix milliseconds) a number
	// can carry: the 56-digit form holds whole seconds in 36 bits (until
	// the year 4147).
	MaxMillis = (secMask+1)*1000 - 1
	// MaxCounter is the largest per-shard counter.
	MaxCounter = counterMask
	awsMark    = 2 // the top hexadecimal digit and the version digit
)

// Make returns the stored form of the number of a record of shard that
// arrived at Unix millisecond ms and is the shard's counter-th.
func Make(ms uint64, shard uint32, counter uint64) (hi, lo uint64) {
	return topBit | (ms&(1<<47-1))<<16 | uint64(shard)>>8,
		uint64(shard&0xff)<<counterBits | counter&counterMask
}

// Millis is the arrival time (Unix milliseconds) in a stored number.
func Millis(hi uint64) uint64 { return (hi &^ topBit) >> 16 }

// Shard is the shard index in a stored number.
func Shard(hi, lo uint64) uint32 { return uint32(hi&0xffff)<<8 | uint32(lo>>counterBits) }

// Counter is the per-shard counter in a stored number.
func Counter(lo uint64) uint64 { return lo & counterMask }

// Valid reports whether hi, lo is a stored number with a 56-digit form.
func Valid(hi, lo uint64) bool { return hi&topBit != 0 && Millis(hi) <= MaxMillis }

// toAWS returns the 188-bit form of a valid stored number, as three words
// from the most significant.
func toAWS(hi, lo uint64) (w2, w1, w0 uint64) {
	ms, shard := Millis(hi), uint64(Shard(hi, lo))
	sec, milli := ms/1000, ms%1000
	w2 = awsMark<<56 | sec<<20 | (shard&0xf)<<16 | milli
	w1 = Counter(lo)<<8 | sec>>28
	w0 = (sec&(1<<28-1))<<36 | shard<<4 | awsMark
	return w2, w1, w0
}

// fromAWS returns the stored number of a 188-bit form, ok false when the
// form's fields are not those of a number toAWS makes.
func fromAWS(w2, w1, w0 uint64) (hi, lo uint64, ok bool) {
	sec, milli := w2>>20&secMask, w2&0x3ff
	shard := w0 >> 4 & 0xffffffff
	ok = w2>>56 == awsMark && w0&0xf == awsMark &&
		w2>>10&0x3f == 0 && milli < 1000 &&
		(w1&0xff)<<28|w0>>36 == sec &&
		shard <= MaxShard && shard&0xf == w2>>16&0xf
	if !ok {
		return 0, 0, false
	}
	hi, lo = Make(sec*1000+milli, uint32(shard), w1>>8)
	return hi, lo, true
}

// Append appends the 56-digit form of the valid stored number hi, lo to
// dst. It does not allocate when dst has room for Digits more bytes.
func Append(dst []byte, hi, lo uint64) []byte {
	w2, w1, w0 := toAWS(hi, lo)
	// Divide by 10^19 twice: the form is below 3·2^184 < 10^56, so the
	// quotient left fits one word.
	q2, r := bits.Div64(0, w2, pow10_19)
	q1, r := bits.Div64(r, w1, pow10_19)
	q0, r0 := bits.Div64(r, w0, pow10_19)
	_, r = bits.Div64(0, q2, pow10_19)
	_, r = bits.Div64(r, q1, pow10_19)
	top, r1 := bits.Div64(r, q0, pow10_19)
	dst = appendUint(dst, top, 0)
	dst = appendUint(dst, r1, 19)
	return appendUint(dst, r0, 19)
}

// String is the 56-digit form of the valid stored number hi, lo.
func String(hi, lo uint64) string {
	var buf [Digits]byte
	return string(Append(buf[:0], hi, lo))
}

// Parse returns the stored number of s, a sequence number in the 56-digit
// form or in the 39-digit one runnel issued before it. ok is false for
// anything else, including numbers of other layouts.
func Parse(s string) (hi, lo uint64, ok bool) {
	switch len(s) {
	case Digits:
		top, ok1 := digits(s[:Digits-38])
		mid, ok2 := digits(s[Digits-38 : Digits-19])
		low, ok3 := digits(s[Digits-19:])
		if !ok1 || !ok2 || !ok3 {
			return 0, 0, false
		}
		// top·10^38 + mid·10^19 + low, in three words.
		h, l := bits.Mul64(top, pow10_19)
		l, c := bits.Add64(l, mid, 0)
		h += c
		h1, w0 := bits.Mul64(l, pow10_19)
		h2, l2 := bits.Mul64(h, pow10_19)
		w1, c := bits.Add64(h1, l2, 0)
		w2 := h2 + c
		w0, c = bits.Add64(w0, low, 0)
		w1, c = bits.Add64(w1, 0, c)
		w2 += c
		return fromAWS(w2, w1, w0)
	case maxUint128Digits:
		hi, lo, ok = ParseUint128(s)
		if ok && Valid(hi, lo) {
			return hi, lo, true
		}
	}
	return 0, 0, false
}

// digits parses s, 1 to 19 decimal digits.
func digits(s string) (uint64, bool) {
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + uint64(c)
	}
	return v, true
}

// Compare compares two sequence numbers of one shard: -1 when a comes
// before b, 0 when they are the same, 1 when a comes after. Numbers in
// runnel's forms compare by position whichever forms they are in; any
// other decimals (AWS's own, say) compare as integers.
func Compare(a, b string) int {
	if len(a) != len(b) {
		ahi, alo, aok := Parse(a)
		bhi, blo, bok := Parse(b)
		if aok && bok {
			return cmp128(ahi, alo, bhi, blo)
		}
		a, b = trimZeros(a), trimZeros(b)
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func cmp128(ahi, alo, bhi, blo uint64) int {
	switch {
	case ahi < bhi:
		return -1
	case ahi > bhi:
		return 1
	case alo < blo:
		return -1
	case alo > blo:
		return 1
	}
	return 0
}

// Runs formats the numbers of runs of records, as a put's answer and a
// read's records are: a shard's records of one commit arrive in the same
// millisecond with consecutive counters, and the 56-digit form of the
// next counter is the previous form plus 2^72, a decimal addition of 22
// digits instead of a conversion from binary. The zero Runs is ready to
// use; it is not safe for concurrent use.
type Runs struct {
	hi, lo uint64
	digits [Digits]byte
	ok     bool
}

// pow2_72 is 2^72 in decimal: what the next counter adds to the 56-digit
// form (the counter is bits 127..72 of it).
const pow2_72 = "4722366482869645213696"

// Append appends the 56-digit form of the valid stored number hi, lo to
// dst, as Append does.
func (r *Runs) Append(dst []byte, hi, lo uint64) []byte {
	if r.ok && hi == r.hi && lo == r.lo+1 && lo&counterMask != 0 {
		// Same millisecond and shard, the next counter (lo == r.lo+1
		// with no carry out of the counter bits).
		// Digit by digit without branches (a digit sum is at most 19,
		// and (v+6)>>4 is 1 exactly from 10 on): carries are random,
		// and mispredicted branches cost more than the arithmetic.
		d := &r.digits
		carry := byte(0)
		i := Digits - 1
		for j := len(pow2_72) - 1; j >= 0; j, i = j-1, i-1 {
			v := d[i] - '0' + pow2_72[j] - '0' + carry
			carry = (v + 6) >> 4
			d[i] = '0' + v - 10*carry
		}
		for ; carry != 0; i-- {
			// The form stays below 10^56, so the carry stops.
			v := d[i] - '0' + carry
			carry = (v + 6) >> 4
			d[i] = '0' + v - 10*carry
		}
	} else {
		Append(r.digits[:0], hi, lo)
	}
	r.hi, r.lo, r.ok = hi, lo, true
	return append(dst, r.digits[:]...)
}
