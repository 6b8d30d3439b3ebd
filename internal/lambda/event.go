// Package lambda defines the event a Kinesis-triggered AWS Lambda function
// receives and the response it may return, byte-compatible with AWS, and the
// Handler contract every runnel handler kind implements.
package lambda

import (
	"context"
)

// KinesisEvent is the event Lambda sends for a batch of Kinesis records.
// Window, State, ShardID, EventSourceARN, IsFinalInvokeForWindow and
// IsWindowTerminatedEarly are set only for tumbling-window invocations.
type KinesisEvent struct {
	Records []KinesisEventRecord `json:"Records"`

	Window                  *TimeWindow       `json:"window,omitempty"`
	State                   map[string]string `json:"state,omitempty"`
	ShardID                 string            `json:"shardId,omitempty"`
	EventSourceARN          string            `json:"eventSourceARN,omitempty"`
	IsFinalInvokeForWindow  *bool             `json:"isFinalInvokeForWindow,omitempty"`
	IsWindowTerminatedEarly *bool             `json:"isWindowTerminatedEarly,omitempty"`
}

// TimeWindow bounds a tumbling window (RFC 3339 timestamps).
type TimeWindow struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// KinesisEventRecord is one record of a KinesisEvent.
type KinesisEventRecord struct {
	Kinesis           KinesisRecord `json:"kinesis"`
	EventSource       string        `json:"eventSource"`       // "aws:kinesis"
	EventVersion      string        `json:"eventVersion"`      // "1.0"
	EventID           string        `json:"eventID"`           // "<shardId>:<sequenceNumber>"
	EventName         string        `json:"eventName"`         // "aws:kinesis:record"
	InvokeIdentityArn string        `json:"invokeIdentityArn"` // the role ARN
	AwsRegion         string        `json:"awsRegion"`
	EventSourceARN    string        `json:"eventSourceARN"` // the stream ARN
}

// KinesisRecord is the Kinesis part of a record. Data is base64 on the wire
// (encoding/json does that for []byte).
type KinesisRecord struct {
	KinesisSchemaVersion        string  `json:"kinesisSchemaVersion"` // "1.0"
	PartitionKey                string  `json:"partitionKey"`
	SequenceNumber              string  `json:"sequenceNumber"`
	Data                        []byte  `json:"data"`
	ApproximateArrivalTimestamp float64 `json:"approximateArrivalTimestamp"` // epoch seconds
	// SubSequenceNumber is not part of Lambda's event; runnel fills it for
	// records de-aggregated from a KPL aggregate (omitted otherwise).
	SubSequenceNumber *int64 `json:"subSequenceNumber,omitempty"`
}

// Response is what a handler may return: partial batch failures (the
// ReportBatchItemFailures function response type) and, for tumbling
// windows, the state carried to the next invocation. A nil Response, an
// empty object, or an empty BatchItemFailures list means the whole batch
// succeeded.
type Response struct {
	BatchItemFailures []BatchItemFailure `json:"batchItemFailures,omitempty"`
	State             map[string]string  `json:"state,omitempty"`
}

// BatchItemFailure names a failed record by its sequence number.
type BatchItemFailure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

// Handler processes one batch. An error means the whole batch failed (a
// function error in Lambda's terms); a Response with failures means those
// records and everything after the lowest of them failed.
// Implementations must be safe for concurrent use when the runtime invokes
// several batches at once (parallelization factor > 1).
type Handler interface {
	Invoke(ctx context.Context, event *KinesisEvent) (*Response, error)
}
