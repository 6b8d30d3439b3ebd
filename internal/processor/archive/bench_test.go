package archive

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/testserver"
)

// BenchmarkArchive measures events/s through the archive as a window or
// clickstream pipeline drives it: 4 shards invoked concurrently with
// batches of 500 JSON events (~150 bytes), Hive prefixes by event time,
// partitioned by country, spooled with an fsync per batch and cut into
// 5 MiB objects; the final flush is timed too. The dir-parquet cases write
// the same events as Parquet (schema inferred) instead of JSON lines.
func BenchmarkArchive(b *testing.B) {
	b.Run("dir", func(b *testing.B) {
		benchArchive(b, map[string]any{"dir": b.TempDir()})
	})
	b.Run("dir-gzip", func(b *testing.B) {
		benchArchive(b, map[string]any{"dir": b.TempDir(), "gzip": true})
	})
	for _, codec := range []string{"snappy", "zstd"} {
		b.Run("dir-parquet-"+codec, func(b *testing.B) {
			benchArchive(b, map[string]any{"dir": b.TempDir(), "format": "parquet", "compression": codec})
		})
	}
	b.Run("s3", func(b *testing.B) {
		srv := testserver.S3(b)
		srv.Env(b)
		srv.CreateBucket(b, "bench")
		benchArchive(b, map[string]any{
			"s3":       map[string]any{"bucket": "bench", "endpoint": srv.URL, "forcePathStyle": true},
			"spoolDir": filepath.Join(b.TempDir(), "spool"),
		})
	})
}

func benchArchive(b *testing.B, options map[string]any) {
	options["prefixStyle"] = "hive"
	options["partitionBy"] = "country"
	options["timeField"] = "ts"
	cfg, err := ParseConfig(options, "bench")
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(context.Background(), cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	const shards, batch = 4, 500
	countries := []string{"DE", "FR", "US", "GB", "JP"}
	gen := func(i int) string {
		return fmt.Sprintf(`{"ts":"2025-06-01T%02d:%02d:00Z","country":%q,"page":"/products/%d","event":"click","user":"u%08d","session":"s%06d"}`,
			(i/100000)%24, (i/1000)%60, countries[i%len(countries)], i%1000, i*7919%100000000, i%1000000)
	}
	// Batches are built before the timer starts.
	perShard := (b.N + shards - 1) / shards
	work := make([][]*lambda.KinesisEvent, shards)
	arrival := time.Now()
	for s := range shards {
		for from := 0; from < perShard; from += batch {
			work[s] = append(work[s], events(fmt.Sprintf("shardId-%012d", s), from, min(from+batch, perShard), arrival, gen))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, shards)
	for s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ev := range work[s] {
				if _, err := a.Invoke(context.Background(), ev); err != nil {
					errs[s] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := a.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	st := a.Stats()
	if st.Records != int64(perShard*shards) {
		b.Fatalf("%d records written, want %d", st.Records, perShard*shards)
	}
	b.ReportMetric(float64(st.Records)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(st.Objects), "objects")
	b.ReportMetric(float64(st.Bytes)/float64(st.Records), "bytes/event")
}
