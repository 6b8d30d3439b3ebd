// Command handler-go is a Kinesis handler written the way one writes it for
// AWS Lambda: it receives the Kinesis event, decodes each record's base64
// JSON payload, and reports the records it could not process as
// batchItemFailures (enable ReportBatchItemFailures / reportBatchItemFailures).
//
// A record whose JSON has "fail": true is reported as failed; so is one
// that is not JSON. Every other record is "processed": appended, as one
// JSON line, to the file named by $HANDLED_LOG (when set), which stands in
// for whatever a real handler would write to.
//
// Under runnel it runs as a command handler: main reads one event per line
// on stdin and writes one response per line on stdout. Under Lambda, main
// would be lambda.Start(handler) instead; handler itself is unchanged.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
)

// KinesisEvent is the part of Lambda's Kinesis event this handler reads
// (github.com/aws/aws-lambda-go/events.KinesisEvent has the same shape).
type KinesisEvent struct {
	Records []struct {
		EventID string `json:"eventID"`
		Kinesis struct {
			PartitionKey   string `json:"partitionKey"`
			SequenceNumber string `json:"sequenceNumber"`
			Data           []byte `json:"data"` // base64 in the event
		} `json:"kinesis"`
	} `json:"Records"`
}

// BatchResponse is the partial batch response
// (events.KinesisEventResponse).
type BatchResponse struct {
	BatchItemFailures []BatchItemFailure `json:"batchItemFailures"`
}

// BatchItemFailure names a failed record by its sequence number.
type BatchItemFailure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

// handled is where processed records go.
var handled io.Writer = io.Discard

func handler(ctx context.Context, event KinesisEvent) (BatchResponse, error) {
	var resp BatchResponse
	for _, r := range event.Records {
		var payload map[string]any
		if err := json.Unmarshal(r.Kinesis.Data, &payload); err != nil {
			log.Printf("record %s: payload is not JSON: %v", r.EventID, err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, BatchItemFailure{r.Kinesis.SequenceNumber})
			continue
		}
		if fail, _ := payload["fail"].(bool); fail {
			log.Printf("record %s: asked to fail", r.EventID)
			resp.BatchItemFailures = append(resp.BatchItemFailures, BatchItemFailure{r.Kinesis.SequenceNumber})
			continue
		}
		shard, _, _ := strings.Cut(r.EventID, ":")
		line, err := json.Marshal(map[string]any{
			"shardId":        shard,
			"sequenceNumber": r.Kinesis.SequenceNumber,
			"partitionKey":   r.Kinesis.PartitionKey,
			"data":           payload,
		})
		if err != nil {
			return resp, err
		}
		if _, err := fmt.Fprintf(handled, "%s\n", line); err != nil {
			return resp, err // a function error: the whole batch is retried
		}
	}
	return resp, nil
}

func main() {
	log.SetOutput(os.Stderr) // stdout carries responses
	if path := os.Getenv("HANDLED_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		handled = f
	}
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriter(os.Stdout)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if werr := respond(out, line); werr != nil {
				log.Fatal(werr)
			}
		}
		if err != nil {
			if err != io.EOF {
				log.Fatal(err)
			}
			return
		}
	}
}

// respond runs handler on one event line and writes its response line: the
// BatchResponse, or Lambda's error shape when the handler fails.
func respond(out *bufio.Writer, line []byte) error {
	var event KinesisEvent
	var body any
	if err := json.Unmarshal(line, &event); err != nil {
		body = map[string]string{"errorType": "InvalidEvent", "errorMessage": err.Error()}
	} else if resp, err := handler(context.Background(), event); err != nil {
		body = map[string]string{"errorType": fmt.Sprintf("%T", err), "errorMessage": err.Error()}
	} else {
		body = resp
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if _, err := out.Write(append(b, '\n')); err != nil {
		return err
	}
	return out.Flush()
}
