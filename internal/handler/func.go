package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/runnel-dev/runnel/internal/lambda"
)

// Func adapts a Go function to lambda.Handler.
type Func func(ctx context.Context, event *lambda.KinesisEvent) (*lambda.Response, error)

// Invoke calls f.
func (f Func) Invoke(ctx context.Context, event *lambda.KinesisEvent) (*lambda.Response, error) {
	return f(ctx, event)
}

// Noop is a handler that accepts every batch and does nothing: a baseline
// for throughput and a way to move a pipeline's checkpoint to the tip.
var Noop lambda.Handler = Func(func(context.Context, *lambda.KinesisEvent) (*lambda.Response, error) {
	return nil, nil
})

// Log returns a handler that writes each record to w as one JSON line:
// shard/sequence identification, partition key, arrival time and the data,
// as text when it is UTF-8 and base64 otherwise. It is safe for concurrent
// use; lines of different batches do not interleave.
func Log(w io.Writer) lambda.Handler {
	var mu sync.Mutex
	return Func(func(_ context.Context, event *lambda.KinesisEvent) (*lambda.Response, error) {
		type line struct {
			EventID      string  `json:"eventID"`
			PartitionKey string  `json:"partitionKey"`
			Arrival      float64 `json:"approximateArrivalTimestamp"`
			Data         string  `json:"data,omitempty"`
			DataBase64   []byte  `json:"dataBase64,omitempty"`
		}
		var buf []byte
		for i := range event.Records {
			r := &event.Records[i]
			l := line{EventID: r.EventID, PartitionKey: r.Kinesis.PartitionKey, Arrival: r.Kinesis.ApproximateArrivalTimestamp}
			if utf8.Valid(r.Kinesis.Data) {
				l.Data = string(r.Kinesis.Data)
			} else {
				l.DataBase64 = r.Kinesis.Data
			}
			b, err := json.Marshal(l)
			if err != nil {
				return nil, fmt.Errorf("log handler: %w", err)
			}
			buf = append(append(buf, b...), '\n')
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := w.Write(buf); err != nil {
			return nil, fmt.Errorf("log handler: %w", err)
		}
		return nil, nil
	})
}
