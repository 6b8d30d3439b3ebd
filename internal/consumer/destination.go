package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/producer"
)

// Conditions of a Failure, as Lambda names them.
const (
	ConditionRetryAttemptsExhausted = "RetryAttemptsExhausted"
	ConditionRecordAgeExceeded      = "RecordAgeExceeded"
)

// Failure is the document sent to an on-failure destination for a batch
// given up on: Lambda's invocation record for Kinesis event sources
// (requestContext, responseContext, version, timestamp, KinesisBatchInfo)
// plus, as runnel's addition, Payload: the event with the batch's records,
// their data included.
type Failure struct {
	RequestContext   FailureRequestContext  `json:"requestContext"`
	ResponseContext  FailureResponseContext `json:"responseContext"`
	Version          string                 `json:"version"`   // "1.0"
	Timestamp        string                 `json:"timestamp"` // RFC 3339, milliseconds, UTC
	KinesisBatchInfo KinesisBatchInfo       `json:"KinesisBatchInfo"`
	Payload          *lambda.KinesisEvent   `json:"payload,omitempty"`
}

// FailureRequestContext describes the last invocation of the batch.
type FailureRequestContext struct {
	RequestID              string `json:"requestId"`
	FunctionARN            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// FailureResponseContext describes the handler's last answer.
// FunctionError is "Unhandled" for an error or timeout and "" when the
// handler was not invoked (record age exceeded); runnel adds ErrorMessage.
type FailureResponseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
	ErrorMessage    string `json:"errorMessage,omitempty"`
}

// KinesisBatchInfo locates the failed batch in its shard.
type KinesisBatchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamARN                       string `json:"streamArn"`
}

// Destination receives the batches the runtime gives up on. Send returns
// only when the failure is stored (or queued by a writer that accounts for
// it); while it returns an error the shard does not move past the batch.
// Implementations must be safe for concurrent use.
type Destination interface {
	Send(ctx context.Context, f *Failure) error
}

// FileDestination appends each Failure as one JSON line to a file, synced
// before Send returns.
type FileDestination struct {
	mu sync.Mutex
	f  *os.File
}

var _ Destination = (*FileDestination)(nil)

// NewFileDestination opens (creating if needed) the file at path for
// appending.
func NewFileDestination(path string) (*FileDestination, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening on-failure file: %w", err)
	}
	return &FileDestination{f: f}, nil
}

// Send implements Destination.
func (d *FileDestination) Send(ctx context.Context, f *Failure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", d.f.Name(), err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", d.f.Name(), err)
	}
	return nil
}

// Close closes the file.
func (d *FileDestination) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.f.Close()
}

// StreamDestination puts each Failure as a record into a stream through a
// producer.Writer (typically a *producer.Producer), with the shard id as
// partition key. A document larger than MaxStreamRecordBytes is sent as
// one document per record of the batch, and one whose single record is
// still too large without its payload (metadata only, as Lambda does for
// destinations with a size limit). Delivery is the writer's: its Stats
// and OnFailure account for documents it could not put.
type StreamDestination struct {
	W producer.Writer
}

var _ Destination = (*StreamDestination)(nil)

// MaxStreamRecordBytes bounds the documents StreamDestination writes
// (Kinesis's 1 MiB record limit, less room for the partition key).
const MaxStreamRecordBytes = 1<<20 - 512

// Send implements Destination.
func (d *StreamDestination) Send(ctx context.Context, f *Failure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	key := f.KinesisBatchInfo.ShardID
	if key == "" {
		key = "runnel"
	}
	if len(b) <= MaxStreamRecordBytes {
		return d.W.Write(ctx, producer.Record{PartitionKey: key, Data: b})
	}
	var recs []lambda.KinesisEventRecord
	if f.Payload != nil {
		recs = f.Payload.Records
	}
	if len(recs) <= 1 {
		g := *f
		g.Payload = nil
		if b, err = json.Marshal(&g); err != nil {
			return err
		}
		return d.W.Write(ctx, producer.Record{PartitionKey: key, Data: b})
	}
	for i := range recs {
		g := *f
		g.Payload = &lambda.KinesisEvent{Records: recs[i : i+1]}
		if err := d.Send(ctx, &g); err != nil {
			return err
		}
	}
	return nil
}
