package stream

import (
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func bigOf(a u128) *big.Int {
	b := new(big.Int).SetUint64(a.hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(a.lo))
}

func TestU128DecimalMatchesBigInt(t *testing.T) {
	cases := []u128{{}, {0, 1}, {0, 9}, {0, 10}, {0, ^uint64(0)}, {1, 0}, {1, 1},
		{0x8000000000000000, 0}, maxU128, {12345, 67890}, {^uint64(0), 0}}
	for _, c := range cases {
		want := bigOf(c).String()
		require.Equal(t, want, c.String())
		back, err := parseU128(want)
		require.NoError(t, err)
		require.Equal(t, c, back)
	}
}

func TestParseU128Rejects(t *testing.T) {
	for _, s := range []string{"", "-1", "01", "1a", " 1", "340282366920938463463374607431768211456",
		"1000000000000000000000000000000000000000", strings.Repeat("9", 40)} {
		_, err := parseU128(s)
		require.Error(t, err, s)
	}
	v, err := parseU128("340282366920938463463374607431768211455")
	require.NoError(t, err)
	require.Equal(t, maxU128, v)
}

// The hash-key ranges Kinesis gives a new stream of n shards.
func TestSplitHashRangeMatchesKinesis(t *testing.T) {
	starts := splitHashRange(1)
	require.Equal(t, []u128{{}}, starts)

	starts = splitHashRange(2)
	require.Equal(t, "170141183460469231731687303715884105728", starts[1].String())

	starts = splitHashRange(3)
	require.Equal(t, "113427455640312821154458202477256070485", starts[1].String())
	require.Equal(t, "226854911280625642308916404954512140970", starts[2].String())

	starts = splitHashRange(4)
	require.Equal(t, "85070591730234615865843651857942052864", starts[1].String())

	pow128 := new(big.Int).Lsh(big.NewInt(1), 128)
	for _, n := range []int{5, 7, 10, 64, 100, 1000} {
		step := new(big.Int).Div(pow128, big.NewInt(int64(n)))
		for i, s := range splitHashRange(n) {
			require.Equal(t, new(big.Int).Mul(step, big.NewInt(int64(i))).String(), s.String())
		}
	}
}

func TestHashKeyIsMD5(t *testing.T) {
	// md5("a") = 0cc175b9c0f1b6a831c399e269772661
	want, _ := new(big.Int).SetString("0cc175b9c0f1b6a831c399e269772661", 16)
	require.Equal(t, want.String(), hashKey("a").String())
}

func TestSeqLayout(t *testing.T) {
	s := makeSeq(1_700_000_000_123, 4242, 99)
	require.True(t, validSeq(s))
	require.Equal(t, uint64(1_700_000_000_123), seqMillis(s))
	require.Equal(t, uint32(4242), seqShard(s))
	require.Equal(t, uint64(99), seqCounter(s))
	require.Len(t, seqString(s), 56)
	require.Len(t, seqString(seqFloor(0, 0)), 56)
	require.Len(t, seqString(makeSeq(maxSeqMillis, maxShardIndex, seqCounterMask)), 56)
	// Later time or later counter always compares greater, as decimal too.
	a, b := makeSeq(5, 1, 100), makeSeq(6, 1, 101)
	require.Negative(t, a.cmp(b))
	require.Negative(t, strings.Compare(seqString(a), seqString(b)))
	for _, form := range []string{seqString(s), s.String()} {
		back, ok := parseSeq(form)
		require.True(t, ok, form)
		require.Equal(t, s, back)
	}
}

func FuzzParseU128(f *testing.F) {
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseU128(s)
		b, ok := new(big.Int).SetString(s, 10)
		valid := ok && b.Sign() >= 0 && b.BitLen() <= 128 && b.String() == s
		if valid != (err == nil) {
			t.Fatalf("parseU128(%q) err=%v, want valid=%v", s, err, valid)
		}
		if err == nil && v.String() != s {
			t.Fatalf("round trip %q → %q", s, v.String())
		}
	})
}
