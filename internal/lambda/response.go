package lambda

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMalformedResponse is returned (wrapped) by ParseResponse and
// CheckResponse for a response Lambda would treat as a failure of the
// whole batch.
var ErrMalformedResponse = errors.New("malformed handler response")

// ParseResponse decodes a handler's raw response by Lambda's rules for
// Kinesis event sources:
//
//   - an empty body, JSON null, an object without batchItemFailures, or an
//     empty or null batchItemFailures list means the whole batch succeeded;
//   - batchItemFailures is a list of objects each carrying a non-empty
//     itemIdentifier string (a sequence number of the batch);
//   - anything else (text that is not JSON, a value that is not an object, a
//     failure without itemIdentifier, with an empty or non-string one) is
//     malformed: the error wraps ErrMalformedResponse and the runtime treats
//     the whole batch as failed.
//
// Other fields of the object are ignored, as Lambda ignores them, except
// state (tumbling windows), which must be an object of strings when
// present. The returned Response is never nil when err is nil.
func ParseResponse(raw []byte) (*Response, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return &Response{}, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%w: want a JSON object or null, got %s", ErrMalformedResponse, excerpt(raw))
	}
	var top struct {
		BatchItemFailures json.RawMessage `json:"batchItemFailures"`
		State             json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("%w: %v in %s", ErrMalformedResponse, err, excerpt(raw))
	}
	resp := &Response{}
	if f := top.BatchItemFailures; len(f) > 0 && !bytes.Equal(f, []byte("null")) {
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(f, &items); err != nil {
			return nil, fmt.Errorf("%w: batchItemFailures must be a list of objects: got %s", ErrMalformedResponse, excerpt(f))
		}
		for i, item := range items {
			id, ok := item["itemIdentifier"]
			if !ok {
				return nil, fmt.Errorf("%w: batchItemFailures[%d] has no itemIdentifier", ErrMalformedResponse, i)
			}
			var s string
			if err := json.Unmarshal(id, &s); err != nil {
				return nil, fmt.Errorf("%w: batchItemFailures[%d].itemIdentifier must be a string, got %s", ErrMalformedResponse, i, excerpt(id))
			}
			if s == "" {
				return nil, fmt.Errorf("%w: batchItemFailures[%d].itemIdentifier is empty", ErrMalformedResponse, i)
			}
			resp.BatchItemFailures = append(resp.BatchItemFailures, BatchItemFailure{ItemIdentifier: s})
		}
	}
	if st := top.State; len(st) > 0 && !bytes.Equal(st, []byte("null")) {
		if err := json.Unmarshal(st, &resp.State); err != nil {
			return nil, fmt.Errorf("%w: state must be an object of strings, got %s", ErrMalformedResponse, excerpt(st))
		}
	}
	return resp, nil
}

// CheckResponse reports, wrapping ErrMalformedResponse, a batch item
// failure whose itemIdentifier is not the sequence number of a record in
// event; Lambda fails the whole batch for such a response. A nil resp is
// success and passes.
func CheckResponse(event *KinesisEvent, resp *Response) error {
	if resp == nil || len(resp.BatchItemFailures) == 0 {
		return nil
	}
	seqs := make(map[string]struct{}, len(event.Records))
	for i := range event.Records {
		seqs[event.Records[i].Kinesis.SequenceNumber] = struct{}{}
	}
	for i, f := range resp.BatchItemFailures {
		if _, ok := seqs[f.ItemIdentifier]; !ok {
			return fmt.Errorf("%w: batchItemFailures[%d].itemIdentifier %q is not a sequence number of this batch", ErrMalformedResponse, i, f.ItemIdentifier)
		}
	}
	return nil
}

// excerpt quotes at most the first 80 bytes of b for an error message.
func excerpt(b []byte) string {
	const limit = 80
	if len(b) > limit {
		return fmt.Sprintf("%q...", b[:limit])
	}
	return fmt.Sprintf("%q", b)
}
