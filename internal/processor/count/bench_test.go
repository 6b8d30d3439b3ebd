package count

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/testserver"
)

const benchKey = "{ts:2006-01-02}:{page}:{section}:{element}:{eventType}_{campaignId}"

// benchBatches returns clickstream events as batches of size records of
// one shard, sequence numbers continuing from first.
func benchBatches(events []string, size, first int) []*lambda.KinesisEvent {
	var out []*lambda.KinesisEvent
	for i := 0; i+size <= len(events); i += size {
		out = append(out, batch("shardId-000000000000", first+i, events[i:i+size]...))
	}
	return out
}

// BenchmarkCount measures events/s through the count processor's Invoke
// into a real redis-server, in batches of 100, 500 and 1000 clickstream
// events.
func BenchmarkCount(b *testing.B) {
	srv := testserver.Redis(b)
	events := clickstreamEvents(20000)
	for _, size := range []int{100, 500, 1000} {
		b.Run(fmtSize(size), func(b *testing.B) {
			c, rej := newCounter(b, srv.Addr, map[string]any{"key": benchKey, "timeField": "timestamp"})
			batches := benchBatches(events, size, 1)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			n := 0
			for round := 0; n < b.N; round++ {
				// Each round counts for a pipeline of its own, so that no
				// batch is skipped as already counted.
				c.pipeline = "bench" + strconv.Itoa(round)
				for _, ev := range batches {
					if _, err := c.Invoke(ctx, ev); err != nil {
						b.Fatal(err)
					}
					n += size
					if n >= b.N {
						break
					}
				}
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
			if len(rej.list()) > 0 {
				b.Fatalf("rejected: %v", rej.list()[0])
			}
		})
	}
}

// BenchmarkCountShards measures events/s with four shards' batches of 500
// counted concurrently, as the runtime runs them.
func BenchmarkCountShards(b *testing.B) {
	srv := testserver.Redis(b)
	events := clickstreamEvents(20000)
	c, _ := newCounter(b, srv.Addr, map[string]any{"key": benchKey, "timeField": "timestamp"})
	const shards, size = 4, 500
	perShard := make([][]*lambda.KinesisEvent, shards)
	for s := range shards {
		for i := 0; i+size <= len(events); i += size {
			ev := batch("shardId-00000000000"+strconv.Itoa(s), 1+i, events[i:i+size]...)
			perShard[s] = append(perShard[s], ev)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	// Each shard counts its share of b.N; rounds go to pipelines of their
	// own so that no batch is skipped as already counted.
	errs := make(chan error, shards)
	per := (b.N + shards - 1) / shards
	for s := range shards {
		go func() {
			n := 0
			for round := 0; n < per; round++ {
				for _, ev := range perShard[s] {
					for i := range ev.Records {
						// A marker per round: the round is in the shard id.
						ev.Records[i].EventID = "r" + strconv.Itoa(round) + "-shard" + strconv.Itoa(s) + ":" + ev.Records[i].Kinesis.SequenceNumber
					}
					if _, err := c.Invoke(ctx, ev); err != nil {
						errs <- err
						return
					}
					if n += size; n >= per {
						break
					}
				}
			}
			errs <- nil
		}()
	}
	for range shards {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(per*shards)/time.Since(start).Seconds(), "events/s")
}

func fmtSize(n int) string {
	switch n {
	case 100:
		return "batch=100"
	case 500:
		return "batch=500"
	}
	return "batch=1000"
}

// BenchmarkNaiveIncr measures the hand-written Lambda this replaces: decode
// each event, build its key the same way, and send one INCR per event.
func BenchmarkNaiveIncr(b *testing.B) {
	srv := testserver.Redis(b)
	events := clickstreamEvents(20000)
	c, _ := newCounter(b, srv.Addr, map[string]any{"key": benchKey, "timeField": "timestamp"})
	recs := batch("shardId-000000000000", 1, events...).Records
	ctx := context.Background()
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var it item
		var err error
		if buf, err = c.keyOf(buf[:0], &recs[i%len(recs)], &it); err != nil {
			b.Fatal(err)
		}
		if err := c.client.Incr(ctx, it.key).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkKeyOf measures decoding one clickstream event and building its
// key: the processor's work per event besides Redis.
func BenchmarkKeyOf(b *testing.B) {
	events := clickstreamEvents(1000)
	c, _ := newCounter(b, "127.0.0.1:1", map[string]any{"key": benchKey, "timeField": "timestamp"})
	recs := batch("shardId-000000000000", 1, events...).Records
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var it item
		var err error
		if buf, err = c.keyOf(buf[:0], &recs[i%len(recs)], &it); err != nil {
			b.Fatal(err)
		}
	}
}
