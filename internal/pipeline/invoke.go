package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/lambda"
)

// Pipeline returns the pipeline called name, or an error naming the
// pipelines there are.
func (c *Config) Pipeline(name string) (*Pipeline, error) {
	names := make([]string, 0, len(c.Pipelines))
	for i := range c.Pipelines {
		if c.Pipelines[i].Name == name {
			return &c.Pipelines[i], nil
		}
		names = append(names, c.Pipelines[i].Name)
	}
	return nil, fmt.Errorf("%s declares no pipeline %q; its pipelines: %v", c.file, name, names)
}

// NewHandler builds the handler of the named pipeline alone, as Run
// builds it but without a worker, leases or on-failure destination (a
// record a built-in processor rejects is logged), for one-off invocations
// such as runnel invoke. opts.Kinesis may be nil when the handler does not
// need the stream (built-in processors that ask for its shards get an
// error). The returned function releases the handler (for a command or
// lambda handler, it stops the processes and waits for their output to be
// logged).
func NewHandler(ctx context.Context, cfg *Config, name string, opts Options) (lambda.Handler, func(context.Context) error, error) {
	p, err := cfg.Pipeline(name)
	if err != nil {
		return nil, nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	r := &Runner{cfg: cfg, opts: opts, log: opts.Logger}
	logger := r.log.With("pipeline", p.Name)
	h, closeHandler, err := r.handler(ctx, p, logger, rejecter(p, nil, logger))
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
	}
	if closeHandler == nil {
		closeHandler = func(context.Context) error { return nil }
	}
	return h, closeHandler, nil
}

// SampleEvent returns the event Lambda's console offers as its Kinesis
// test event, for a record of stream in region: one record with partition
// key partitionKey-03 and each of data (or "Hello, this is a test 123."
// when there is none) as one record, with sequence numbers and event ids
// of shardId-000000000000.
func SampleEvent(stream, region string, data ...[]byte) *lambda.KinesisEvent {
	if len(data) == 0 {
		data = [][]byte{[]byte("Hello, this is a test 123.")}
	}
	if region == "" {
		region = "us-east-1"
	}
	arrival := float64(time.Now().Unix())
	ev := &lambda.KinesisEvent{}
	for i, d := range data {
		seq := fmt.Sprintf("4954511524349098501828006771497314458218006259324420%04d", 961+i)
		ev.Records = append(ev.Records, lambda.KinesisEventRecord{
			Kinesis: lambda.KinesisRecord{
				KinesisSchemaVersion: "1.0", PartitionKey: "partitionKey-03", SequenceNumber: seq,
				Data: slices.Clone(d), ApproximateArrivalTimestamp: arrival,
			},
			EventSource:       "aws:kinesis",
			EventVersion:      "1.0",
			EventID:           "shardId-000000000000:" + seq,
			EventName:         "aws:kinesis:record",
			InvokeIdentityArn: "arn:aws:iam::000000000000:role/runnel",
			AwsRegion:         region,
			EventSourceARN:    "arn:aws:kinesis:" + region + ":000000000000:stream/" + stream,
		})
	}
	return ev
}

// ParseEvent decodes a Kinesis event given as JSON (a test event file):
// an object with a Records list whose kinesis.data are base64.
func ParseEvent(raw []byte) (*lambda.KinesisEvent, error) {
	var ev lambda.KinesisEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("not a Kinesis event (an object with Records, each kinesis.data base64): %w", err)
	}
	if len(ev.Records) == 0 {
		return nil, errors.New("not a Kinesis event: no Records")
	}
	for i, r := range ev.Records {
		if r.Kinesis.SequenceNumber == "" {
			return nil, fmt.Errorf("Records[%d].kinesis.sequenceNumber is missing", i)
		}
	}
	return &ev, nil
}
