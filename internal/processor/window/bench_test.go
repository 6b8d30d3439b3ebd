package window_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/processor/window"
)

// BenchmarkWindow measures events/s through the window handler: JSON
// events of 50 countries, one minute tumbling windows by country with
// count, sum, min, max, avg and distinct users, batches of 500, state
// saved (fsync) after every batch and results written to a directory.
func BenchmarkWindow(b *testing.B) {
	for _, distinct := range []bool{false, true} {
		b.Run(fmt.Sprintf("distinct=%v", distinct), func(b *testing.B) {
			dir := b.TempDir()
			cfg := window.Config{
				Size: "1m", TimeField: "ts", GroupBy: []string{"country"}, Field: "v",
				AllowedLateness: "5s", StateDir: filepath.Join(dir, "state"),
			}
			cfg.Output.Dir = filepath.Join(dir, "out")
			if distinct {
				cfg.Distinct = "user"
			}
			sink, err := window.NewDirSink(filepath.Join(dir, "out"))
			if err != nil {
				b.Fatal(err)
			}
			p, err := window.New(cfg, window.Env{Output: sink, Reject: func(context.Context, *lambda.KinesisEventRecord, error) error { return nil }})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			const batch = 500
			base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
			feed := &shardFeed{shard: "shardId-000000000000"}
			events := make([]*lambda.KinesisEvent, 64)
			n := 0
			for i := range events {
				datas := make([]string, batch)
				for j := range datas {
					// 100 events per second of event time.
					at := base.Add(time.Duration(n) * 10 * time.Millisecond)
					datas[j] = fmt.Sprintf(`{"country":"C%02d","ts":%q,"v":%d,"user":"u%d"}`, n%50, at.Format(time.RFC3339Nano), n%1000, n%5000)
					n++
				}
				events[i] = feed.batch(datas...)
			}
			b.ReportAllocs()
			b.ResetTimer()
			applied := 0
			for i := 0; i < b.N; i++ {
				e := events[i%len(events)]
				if i > 0 && i%len(events) == 0 {
					// Replays would be skipped; re-sequence and shift
					// the events forward in time instead.
					b.StopTimer()
					for k := range events {
						for r := range events[k].Records {
							feed.seq++
							seq := fmt.Sprintf("49600000000000000000000000000000000000000000%08d", feed.seq)
							events[k].Records[r].EventID = feed.shard + ":" + seq
							events[k].Records[r].Kinesis.SequenceNumber = seq
						}
					}
					// Event times repeat: a fresh processor.
					cfg.StateDir = filepath.Join(dir, fmt.Sprintf("state-%d", i))
					p.Close(context.Background())
					if p, err = window.New(cfg, window.Env{Output: sink, Reject: func(context.Context, *lambda.KinesisEventRecord, error) error { return nil }}); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if _, err := p.Invoke(context.Background(), e); err != nil {
					b.Fatal(err)
				}
				applied += len(e.Records)
			}
			b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
