package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/kinesislocal"
	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/stream"
)

// noop counts the records it is given.
type noop struct{ n atomic.Int64 }

func (h *noop) Invoke(_ context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	h.n.Add(int64(len(ev.Records)))
	return nil, nil
}

// BenchmarkWorkerNoopHandler measures records/s from a 4-shard stream on
// a real server (GetRecords over HTTP) through the runtime to a handler
// that does nothing. The records are put before the timer starts.
func BenchmarkWorkerNoopHandler(b *testing.B) { benchNoopHandler(b, false) }

// benchNoopHandler runs the no-op benchmark reading over HTTP, or with
// local, straight from the engine through kinesislocal.
func benchNoopHandler(b *testing.B, local bool) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			e := start(b)
			e.createStream(b, "s", 4)
			data := make([]byte, 100)
			for i := 0; i < b.N; i += 500 {
				var recs []stream.PutInput
				for j := i; j < b.N && j < i+500; j++ {
					recs = append(recs, stream.PutInput{PartitionKey: fmt.Sprint(j % 1000), Data: data})
				}
				if _, err := e.srv.Service.Put(context.Background(), "s", recs); err != nil {
					b.Fatal(err)
				}
			}
			h := &noop{}
			cfg := baseConfig(e, "s", memStore(b), nil)
			cfg.Handler = h
			cfg.BatchSize = batch
			if local {
				cfg.Kinesis = kinesislocal.New(e.srv.Service)
			}
			b.ReportAllocs()
			b.ResetTimer()
			began := time.Now()
			startWorker(b, cfg)
			deadline := time.Now().Add(5 * time.Minute)
			for h.n.Load() < int64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("only %d of %d records handled in 5 minutes", h.n.Load(), b.N)
				}
				t := time.NewTimer(time.Millisecond)
				<-t.C
			}
			elapsed := time.Since(began)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		})
	}
}
