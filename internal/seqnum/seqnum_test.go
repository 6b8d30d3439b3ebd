package seqnum

import (
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func bigOf(hi, lo uint64) *big.Int {
	b := new(big.Int).SetUint64(hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(lo))
}

// field returns bits [from, from+n) of x.
func field(x *big.Int, from, n uint) uint64 {
	mask := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), n), big.NewInt(1))
	return new(big.Int).And(new(big.Int).Rsh(x, from), mask).Uint64()
}

// The 56-digit form read with big integers, field by field, as a tool
// decoding AWS's numbers would.
func TestFiftySixDigitLayout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ms      uint64
		shard   uint32
		counter uint64
	}{
		{0, 0, 0},
		{1_765_000_000_123, 0, 1},
		{1_765_000_000_999, 6, 1734642199},
		{1_700_000_000_000, 4242, 99},
		{MaxMillis, MaxShard, MaxCounter},
		{999, 0xf, MaxCounter},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			hi, lo := Make(c.ms, c.shard, c.counter)
			require.True(t, Valid(hi, lo))
			s := String(hi, lo)
			require.Len(t, s, Digits)
			n, ok := new(big.Int).SetString(s, 10)
			require.True(t, ok)
			// The KCL reads a number of 186 bits with 2 in bits 184..187
			// as version 2, and the shard index from bits 4..35.
			require.Equal(t, 186, n.BitLen())
			require.Equal(t, uint64(2), field(n, 184, 4), "top hexadecimal digit")
			require.Equal(t, uint64(2), field(n, 0, 4), "version digit")
			require.Equal(t, c.ms/1000, field(n, 36, 36), "arrival second")
			require.Equal(t, c.ms/1000, field(n, 148, 36), "arrival second, high field")
			require.Equal(t, c.ms%1000, field(n, 128, 10), "millisecond")
			require.Equal(t, uint64(c.shard), field(n, 4, 32), "shard index")
			require.Equal(t, uint64(c.shard&0xf), field(n, 144, 4), "shard index, low digit")
			require.Equal(t, c.counter, field(n, 72, 56), "counter")
			require.Zero(t, field(n, 138, 6))
			require.Less(t, field(n, 140, 4), uint64(8), "AWS's record index field is below 2^63")

			gotHi, gotLo, ok := Parse(s)
			require.True(t, ok)
			require.Equal(t, [2]uint64{hi, lo}, [2]uint64{gotHi, gotLo})
			old := string(AppendUint128(nil, hi, lo))
			require.Len(t, old, 39)
			require.Equal(t, bigOf(hi, lo).String(), old)
			gotHi, gotLo, ok = Parse(old)
			require.True(t, ok)
			require.Equal(t, [2]uint64{hi, lo}, [2]uint64{gotHi, gotLo})
		})
	}
}

// A number as tools decode AWS's: 2018-12-08 12:35:08 UTC, shard 0, from a
// GetRecords answer whose ApproximateArrivalTimestamp was 1544272509.374
// (the AWS number is not runnel's: its high field is the shard's creation).
func TestArrivalSecondWhereAWSHasIt(t *testing.T) {
	t.Parallel()
	aws, _ := new(big.Int).SetString("49590869158258093356086549590436069091686336058884096002", 10)
	require.Equal(t, uint64(1544272508), field(aws, 36, 32))
	_, _, ok := Parse(aws.String())
	require.False(t, ok, "not a runnel number")

	hi, lo := Make(1544272509374, 0, 48635)
	n, _ := new(big.Int).SetString(String(hi, lo), 10)
	require.Equal(t, uint64(1544272509), field(n, 36, 32))
	require.Equal(t, "4959", String(hi, lo)[:4], "AWS's numbers of these years start so too")
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	hi, lo := Make(1_765_000_000_123, 7, 42)
	good := String(hi, lo)
	goodOld := string(AppendUint128(nil, hi, lo))
	n, _ := new(big.Int).SetString(good, 10)
	flip := func(bit uint) string { return new(big.Int).Xor(n, new(big.Int).Lsh(big.NewInt(1), bit)).String() }
	bad := []string{
		"", "0", "1", "-" + good[1:], "+" + good[1:], good[:55], good + "0", " " + good[1:], good[:20] + "a" + good[21:],
		"0" + good[1:], strings.Repeat("9", 56), strings.Repeat("0", 56),
		flip(0),   // version digit
		flip(187), // top digit
		flip(36),  // arrival second differs from the high field
		flip(148), // and the other way
		flip(140), // reserved bits
		flip(144), // shard's low digit differs from the shard index
		flip(30),  // shard index above 2^24
		"49590338271490256608559692538361571095921575989136588898", // AWS's
		"0" + goodOld[1:], "170141183460469231731687303715884105727", // 39 digits, top bit clear
		"340282366920938463463374607431768211455", // 39 digits, time past the 56-digit form's
		"340282366920938463463374607431768211456", // 2^128
	}
	// A millisecond field of 1000 or more.
	w2, w1, w0 := toAWS(hi, lo)
	over := new(big.Int).SetUint64(w2&^0x3ff | 1000)
	over.Lsh(over, 64).Or(over, new(big.Int).SetUint64(w1))
	over.Lsh(over, 64).Or(over, new(big.Int).SetUint64(w0))
	bad = append(bad, over.String())
	for _, s := range bad {
		_, _, ok := Parse(s)
		require.False(t, ok, s)
	}
	for _, s := range []string{good, goodOld} {
		_, _, ok := Parse(s)
		require.True(t, ok, s)
	}
}

func TestCompareAcrossForms(t *testing.T) {
	t.Parallel()
	a1, a0 := Make(1_765_000_000_123, 3, 10)
	b1, b0 := Make(1_765_000_000_123, 3, 11)
	c1, c0 := Make(1_765_000_000_124, 3, 0)
	seqs := []string{String(a1, a0), String(b1, b0), String(c1, c0)}
	olds := []string{string(AppendUint128(nil, a1, a0)), string(AppendUint128(nil, b1, b0)), string(AppendUint128(nil, c1, c0))}
	for i := range seqs {
		for j := range seqs {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			for _, x := range []string{seqs[i], olds[i]} {
				for _, y := range []string{seqs[j], olds[j]} {
					require.Equal(t, want, Compare(x, y), "%s vs %s", x, y)
				}
			}
		}
	}
	// Other decimals compare as integers.
	require.Equal(t, -1, Compare("99", "100"))
	require.Equal(t, 1, Compare("0100", "99"))
	require.Equal(t, 0, Compare("007", "7"))
	require.Equal(t, -1, Compare("49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899"))
}

func TestAppendDoesNotAllocate(t *testing.T) {
	hi, lo := Make(1_765_000_000_123, 3, 10)
	buf := make([]byte, 0, Digits)
	require.Zero(t, testing.AllocsPerRun(100, func() { buf = Append(buf[:0], hi, lo) }))
}

func BenchmarkAppend(b *testing.B) {
	hi, lo := Make(1_765_000_000_123, 3, 10)
	buf := make([]byte, 0, Digits)
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], hi, lo)
	}
}

func BenchmarkParse(b *testing.B) {
	hi, lo := Make(1_765_000_000_123, 3, 10)
	s := String(hi, lo)
	b.ReportAllocs()
	for b.Loop() {
		Parse(s)
	}
}

// FuzzParse: whatever Parse accepts is a valid stored number that formats
// back to the same text, and the two forms of it parse alike.
func FuzzParse(f *testing.F) {
	hi, lo := Make(1_765_000_000_123, 3, 10)
	for _, s := range []string{String(hi, lo), string(AppendUint128(nil, hi, lo)), "49590338271490256608559692538361571095921575989136588898", "0", "1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hi, lo, ok := Parse(s)
		if !ok {
			return
		}
		if !Valid(hi, lo) {
			t.Fatalf("Parse(%q) = an invalid number", s)
		}
		var back string
		switch len(s) {
		case Digits:
			back = String(hi, lo)
		default:
			back = string(AppendUint128(nil, hi, lo))
		}
		if back != s {
			t.Fatalf("round trip %q → %q", s, back)
		}
		hi2, lo2, ok := Parse(String(hi, lo))
		if !ok || hi2 != hi || lo2 != lo {
			t.Fatalf("56-digit form of %q does not parse back", s)
		}
	})
}

// FuzzOrder: within a shard, the 56-digit forms order as the stored
// numbers do, as strings and through Compare, against either form.
func FuzzOrder(f *testing.F) {
	f.Add(uint64(1_765_000_000_123), uint64(5), uint64(1_765_000_000_123), uint64(6), uint32(3))
	f.Add(uint64(1_765_000_000_999), uint64(MaxCounter), uint64(1_765_000_001_000), uint64(0), uint32(MaxShard))
	f.Fuzz(func(t *testing.T, ms1, c1, ms2, c2 uint64, shard uint32) {
		ms1, ms2, shard = ms1%(MaxMillis+1), ms2%(MaxMillis+1), shard%(MaxShard+1)
		c1, c2 = c1&MaxCounter, c2&MaxCounter
		ahi, alo := Make(ms1, shard, c1)
		bhi, blo := Make(ms2, shard, c2)
		want := cmp128(ahi, alo, bhi, blo)
		as, bs := String(ahi, alo), String(bhi, blo)
		if len(as) != Digits || len(bs) != Digits {
			t.Fatalf("lengths %d, %d", len(as), len(bs))
		}
		if got := strings.Compare(as, bs); got != want {
			t.Fatalf("strings %s, %s compare %d, stored numbers %d", as, bs, got, want)
		}
		if got := Compare(as, string(AppendUint128(nil, bhi, blo))); got != want {
			t.Fatalf("Compare(new, old) = %d, want %d", got, want)
		}
		if bigOf(ahi, alo).Cmp(bigOf(bhi, blo)) != want {
			t.Fatal("stored numbers compare differently as big integers")
		}
	})
}

// FuzzRuns: a Runs formats every number as Append does, whether it
// follows the last one or not.
func FuzzRuns(f *testing.F) {
	f.Add(uint64(1_765_000_000_123), uint32(3), uint64(99), uint8(5), uint8(2))
	f.Add(uint64(MaxMillis), uint32(MaxShard), uint64(MaxCounter-3), uint8(9), uint8(0))
	f.Add(uint64(999), uint32(0), uint64(1<<56-10), uint8(20), uint8(7))
	f.Fuzz(func(t *testing.T, ms uint64, shard uint32, counter uint64, n, jump uint8) {
		ms %= MaxMillis + 1
		shard &= MaxShard
		var r Runs
		for i := range uint64(n) {
			c := (counter + i) & counterMask
			if jump != 0 && i%uint64(jump) == 0 {
				// Another millisecond, as the next commit's records.
				ms = (ms + 1) % (MaxMillis + 1)
			}
			hi, lo := Make(ms, shard, c)
			got := string(r.Append(nil, hi, lo))
			if want := String(hi, lo); got != want {
				t.Fatalf("record %d (ms %d, shard %d, counter %d): %s, want %s", i, ms, shard, c, got, want)
			}
		}
	})
}

func BenchmarkRunsAppend(b *testing.B) {
	var r Runs
	buf := make([]byte, 0, Digits)
	hi, lo := Make(1_765_000_000_123, 7, 1_734_642_199)
	for b.Loop() {
		lo++
		buf = r.Append(buf[:0], hi, lo)
	}
}
