package lambda

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestParseResponse(t *testing.T) {
	success := &Response{}
	tests := []struct {
		name string
		raw  string
		want *Response // nil: malformed
	}{
		{"empty", "", success},
		{"blank", " \n", success},
		{"null", "null", success},
		{"empty object", "{}", success},
		{"null list", `{"batchItemFailures":null}`, success},
		{"empty list", `{"batchItemFailures":[]}`, success},
		{"other fields ignored", `{"statusCode":200,"body":"ok"}`, success},
		{"failures", `{"batchItemFailures":[{"itemIdentifier":"49590"},{"itemIdentifier":"49591"}]}`,
			&Response{BatchItemFailures: []BatchItemFailure{{"49590"}, {"49591"}}}},
		{"state", `{"state":{"sum":"12"},"batchItemFailures":[]}`, &Response{State: map[string]string{"sum": "12"}}},
		{"not json", "hello", nil},
		{"truncated", `{"batchItemFailures":[`, nil},
		{"string", `"ok"`, nil},
		{"number", `200`, nil},
		{"list", `[]`, nil},
		{"failures not a list", `{"batchItemFailures":{"itemIdentifier":"1"}}`, nil},
		{"failure not an object", `{"batchItemFailures":["1"]}`, nil},
		{"empty identifier", `{"batchItemFailures":[{"itemIdentifier":""}]}`, nil},
		{"null identifier", `{"batchItemFailures":[{"itemIdentifier":null}]}`, nil},
		{"numeric identifier", `{"batchItemFailures":[{"itemIdentifier":1}]}`, nil},
		{"bad key name", `{"batchItemFailures":[{"itemIdentifer":"1"}]}`, nil},
		{"state not strings", `{"state":{"n":1}}`, nil},
		{"trailing garbage", `{} x`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseResponse([]byte(tc.raw))
			if tc.want == nil {
				if !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("ParseResponse(%q) = %+v, %v; want ErrMalformedResponse", tc.raw, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponse(%q): %v", tc.raw, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseResponse(%q) = %+v, want %+v", tc.raw, got, tc.want)
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	ev := &KinesisEvent{Records: []KinesisEventRecord{
		{Kinesis: KinesisRecord{SequenceNumber: "1"}},
		{Kinesis: KinesisRecord{SequenceNumber: "2"}},
	}}
	if err := CheckResponse(ev, nil); err != nil {
		t.Fatalf("nil response: %v", err)
	}
	if err := CheckResponse(ev, &Response{BatchItemFailures: []BatchItemFailure{{"2"}}}); err != nil {
		t.Fatalf("known identifier: %v", err)
	}
	if err := CheckResponse(ev, &Response{BatchItemFailures: []BatchItemFailure{{"3"}}}); !errors.Is(err, ErrMalformedResponse) {
		t.Fatalf("unknown identifier: got %v, want ErrMalformedResponse", err)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"", "null", "{}", `{"batchItemFailures":[]}`,
		`{"batchItemFailures":[{"itemIdentifier":"1"}]}`,
		`{"batchItemFailures":[{"itemIdentifier":""}]}`,
		`{"state":{"a":"b"}}`, `[1]`, `"x"`, "{", `{"batchItemFailures":[null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp, err := ParseResponse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("error does not wrap ErrMalformedResponse: %v", err)
			}
			return
		}
		if resp == nil {
			t.Fatal("nil Response without error")
		}
		for _, f := range resp.BatchItemFailures {
			if f.ItemIdentifier == "" {
				t.Fatal("accepted an empty itemIdentifier")
			}
		}
		// An accepted response survives a round trip unchanged.
		out, err := json.Marshal(resp)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := ParseResponse(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if len(again.BatchItemFailures) != len(resp.BatchItemFailures) || len(again.State) != len(resp.State) {
			t.Fatalf("round trip changed %+v into %+v", resp, again)
		}
	})
}
