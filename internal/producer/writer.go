// Package producer puts events into a Kinesis stream the way a careful
// producer does: batched PutRecords within the API limits, retrying only the
// records that failed, and accounting for every record it could not deliver.
package producer

import (
	"context"
	"time"

	"github.com/runnel-dev/runnel/internal/kpl"
)

// Record is one event to deliver. It is the KPL's user record, so that
// records aggregate (Config.Aggregate) without a copy.
type Record = kpl.Record

// Writer is where a producer command sends its events: a stream (Producer)
// or the console (Console).
type Writer interface {
	// Write queues one record. It blocks while the writer is full and
	// returns an error only when the writer cannot accept records anymore
	// (closed, or ctx done).
	Write(ctx context.Context, r Record) error
	// Close delivers what is buffered (giving up when ctx is done) and
	// returns the final accounting.
	Close(ctx context.Context) (Stats, error)
	// Stats returns the accounting so far; safe to call concurrently.
	Stats() Stats
}

// Stats accounts for every record handed to a Writer.
type Stats struct {
	Queued    int64 `json:"queued"`    // records accepted by Write
	Delivered int64 `json:"delivered"` // acknowledged by the stream
	Failed    int64 `json:"failed"`    // given up on, after retries
	Retried   int64 `json:"retried"`   // record re-sends
	Throttled int64 `json:"throttled"` // ProvisionedThroughputExceeded answers
	Calls     int64 `json:"calls"`     // PutRecords calls made
	// Reordered counts records stored ahead of an earlier record of their
	// shard that failed in the same call (OrderedByShard only).
	Reordered int64         `json:"reordered,omitempty"`
	Bytes     int64         `json:"bytes"` // data bytes delivered
	Elapsed   time.Duration `json:"elapsedNanos"`
	// LastError describes the most recent failure, "" when none.
	LastError string `json:"lastError,omitempty"`
}
