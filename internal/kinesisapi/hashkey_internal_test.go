package kinesisapi

import (
	"math/big"
	"testing"
)

// FuzzPlainHashKey: the quick hash-key check agrees with the pattern and
// the range check it stands in for.
func FuzzPlainHashKey(f *testing.F) {
	for _, k := range []string{"0", "00", "1", maxHashKeyText, "340282366920938463463374607431768211456", "999999999999999999999999999999999999999", "12a", "", "-1", "+1", " 1", "١"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		want := hashKeyPattern.MatchString(key)
		if want {
			n, ok := new(big.Int).SetString(key, 10)
			want = ok && n.Sign() >= 0 && n.Cmp(maxHashKey) <= 0
		}
		if got := plainHashKey(key); got != want {
			t.Fatalf("plainHashKey(%q) = %v, want %v", key, got, want)
		}
	})
}
