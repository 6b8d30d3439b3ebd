package kinesisapi

import (
	"regexp"
	"testing"
)

var paddedShardID = regexp.MustCompile(`^shardId-\d{12}$`)

// FuzzNormalizeShardID: a shard id from a request is either kept as it is
// or read as the padded id of the same number, and reading it again
// changes nothing.
func FuzzNormalizeShardID(f *testing.F) {
	for _, s := range []string{"0", "shardId-0", "shardId-000000000007", "2147483647", "2147483648", "shardId-", "", "-1", "shardId-00x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got := *normalizeShardID(&id)
		if got != id && !paddedShardID.MatchString(got) {
			t.Fatalf("%q read as %q", id, got)
		}
		if again := *normalizeShardID(&got); again != got {
			t.Fatalf("%q read as %q, then as %q", id, got, again)
		}
	})
}
