package stream

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkRetentionChurn measures reads and a retention pass on a stream
// whose retention (24 hours) has been trimming for a simulated day, against
// the same stream before anything expired. A stream of `shards` shards gets
// one record on every shard every `every` minutes for 24 hours (fresh),
// then for -churn-hours more (default 24) while a retention pass runs
// every minute (churned), so
// both states hold the same records in retention and the churned one has
// one range deletion per shard for every put it let expire. The clock is
// the engine's injected one; the store is on disk. Sub-benchmarks:
//
//	trim_horizon  GetShardIterator TRIM_HORIZON and GetRecords of 100
//	latest        GetShardIterator LATEST and an empty GetRecords
//	trim_pass     one retention pass over every shard, nothing expiring
//
// A read or pass that costs more churned than fresh grows with the
// deletions retention has made, not with the data.
func BenchmarkRetentionChurn(b *testing.B) {
	for _, v := range []struct{ shards, every int }{{100, 1}, {1000, 10}} {
		b.Run(fmt.Sprintf("shards=%d", v.shards), func(b *testing.B) {
			ctx := context.Background()
			c := newClock()
			start := c.Now()
			s := open(b, b.TempDir(), c)
			defer s.Close()
			require.NoError(b, s.CreateStream(ctx, "s", v.shards, CreateOptions{}))
			d, err := s.Describe("s")
			require.NoError(b, err)
			in := make([]PutInput, len(d.Shards))
			for i, sh := range d.Shards {
				in[i] = PutInput{ExplicitHashKey: sh.StartingHashKey, PartitionKey: "k", Data: make([]byte, 100)}
			}
			run := func(hours int) {
				for m := range hours * 60 {
					c.Advance(time.Minute)
					s.trim()
					if m%v.every != 0 {
						continue
					}
					for chunk := range len(in)/500 + 1 {
						part := in[chunk*500 : min(len(in), (chunk+1)*500)]
						if len(part) == 0 {
							continue
						}
						if _, err := s.Put(ctx, "s", part); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			run(24)
			measureReads(b, s, "fresh", 0)
			before := s.eng.RangeDeletions()
			run(*churnHours)
			// The oldest record left is from the churned hours.
			it, err := s.ShardIterator("s", "shardId-000000000000", IteratorSpec{Type: TrimHorizon})
			require.NoError(b, err)
			res, err := s.Records(ctx, it, 1)
			require.NoError(b, err)
			require.Len(b, res.Records, 1)
			require.Greater(b, res.Records[0].ArrivalTime.Sub(start), time.Duration(*churnHours)*time.Hour-time.Duration(v.every)*time.Minute)
			measureReads(b, s, "churned", s.eng.RangeDeletions()-before)
		})
	}
}

func measureReads(b *testing.B, s *Service, state string, rangeDels int64) {
	ctx := context.Background()
	shard := "shardId-000000000000"
	b.Run(state+"/trim_horizon", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			it, err := s.ShardIterator("s", shard, IteratorSpec{Type: TrimHorizon})
			if err != nil {
				b.Fatal(err)
			}
			res, err := s.Records(ctx, it, 100)
			if err != nil || len(res.Records) == 0 {
				b.Fatal(err, len(res.Records))
			}
		}
		b.ReportMetric(float64(rangeDels), "range-deletions")
	})
	b.Run(state+"/latest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			it, err := s.ShardIterator("s", shard, IteratorSpec{Type: Latest})
			if err != nil {
				b.Fatal(err)
			}
			res, err := s.Records(ctx, it, 100)
			if err != nil || len(res.Records) != 0 {
				b.Fatal(err, len(res.Records))
			}
		}
	})
	b.Run(state+"/trim_pass", func(b *testing.B) {
		b.ReportAllocs()
		before := s.eng.RangeDeletions()
		for b.Loop() {
			s.trim()
		}
		if s.eng.RangeDeletions() != before {
			b.Fatal("a pass with nothing expiring deleted records")
		}
	})
}

var churnHours = flag.Int("churn-hours", 24, "hours BenchmarkRetentionChurn lets retention trim")
