package kinesisapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go/eventstream"
	"github.com/stretchr/testify/require"
)

// discardResponse is an http.ResponseWriter that keeps nothing.
type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(int)             {}
func (d *discardResponse) Flush()                      {}

// testEvent is an event of n records of size bytes, the first with no data
// and one with a key that needs escaping in JSON.
func testEvent(n, size int, cont bool) *subscribeToShardEvent {
	at := time.UnixMilli(1767323045123)
	ev := &subscribeToShardEvent{Records: make([]recordOut, n), MillisBehindLatest: 1234}
	for i := range ev.Records {
		data := bytes.Repeat([]byte{byte(i)}, size)
		if i == 0 {
			data = []byte{}
		}
		pk := fmt.Sprintf("key-%d", i)
		if i == 1 {
			pk = `"<ü>"`
		}
		ev.Records[i] = recordOut{SequenceNumber: fmt.Sprintf("4959%052d", i), ApproximateArrivalTimestamp: epochSeconds(at.Add(time.Duration(i) * time.Millisecond)), Data: data, PartitionKey: pk}
	}
	if cont {
		s := "49590338271490256608559692538361571095921575989136588898"
		ev.ContinuationSequenceNumber = &s
	} else {
		ev.ChildShards = []childShardOut{{ShardID: "shardId-000000000002", ParentShards: []string{"shardId-000000000000"}, HashKeyRange: hashKeyRange{"0", "1"}}}
	}
	return ev
}

// BenchmarkSubscribeEvent sends SubscribeToShard events of 1000 records
// of 100 bytes (the most one event carries) in JSON and in CBOR (the AWS
// SDK for Java, and so the KCL).
func BenchmarkSubscribeEvent(b *testing.B) {
	ev := testEvent(maxEventRecords, 100, true)
	for _, c := range []codec{jsonCodec{}, cborCodec{}} {
		b.Run(strings.TrimPrefix(c.contentType(), "application/x-amz-"), func(b *testing.B) {
			ew := newEventWriter(&discardResponse{h: http.Header{}}, c)
			b.ReportAllocs()
			for b.Loop() {
				if err := ew.event("SubscribeToShardEvent", ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(ev.Records))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// An event's payload, rendered by hand, is what the encoders make of the
// same event, in both formats, with a continuation or child shards, with
// no records, and with nil records.
func TestEventRenderMatchesEncoders(t *testing.T) {
	for _, ev := range []*subscribeToShardEvent{
		testEvent(maxEventRecords, 100, true), testEvent(300, 7, false), testEvent(24, 0, true), testEvent(0, 0, true),
		{MillisBehindLatest: 0}, {Records: []recordOut{}, MillisBehindLatest: -1},
	} {
		for _, c := range []codec{jsonCodec{}, cborCodec{}} {
			var want []byte
			var err error
			if _, ok := c.(jsonCodec); ok {
				want, err = json.Marshal(ev)
			} else {
				want, err = cborEnc.Marshal(ev)
			}
			require.NoError(t, err)
			var sent bytes.Buffer
			ew := newEventWriter(&writerResponse{w: &sent, h: http.Header{}}, c)
			require.NoError(t, ew.event("SubscribeToShardEvent", ev))
			msg, err := eventstream.NewDecoder().Decode(&sent, nil)
			require.NoError(t, err)
			require.Equal(t, want, msg.Payload, "%s, %d records", c.contentType(), len(ev.Records))
			_, err = eventstream.NewDecoder().Decode(&sent, nil)
			require.ErrorIs(t, err, io.EOF, "one message")
		}
	}
}

func FuzzSubscribeEvent(f *testing.F) {
	f.Add("key", []byte("data"), "seq", int64(3), "cont", int64(0))
	f.Fuzz(func(t *testing.T, pk string, data []byte, seq string, ms int64, cont string, behind int64) {
		ev := &subscribeToShardEvent{Records: []recordOut{{SequenceNumber: seq, ApproximateArrivalTimestamp: epochSeconds(time.UnixMilli(ms % 1e13)), Data: data, PartitionKey: pk}}, MillisBehindLatest: behind}
		if data == nil {
			ev.Records[0].Data = []byte{} // the encoders write nil as null, never sent (appendRecordJSON)
		}
		if cont != "" {
			ev.ContinuationSequenceNumber = &cont
		}
		matchesEncodingJSON(t, ev)
		matchesCBOREncoder(t, ev)
	})
}

// writerResponse is an http.ResponseWriter writing its body to w.
type writerResponse struct {
	w io.Writer
	h http.Header
}

func (d *writerResponse) Header() http.Header         { return d.h }
func (d *writerResponse) Write(p []byte) (int, error) { return d.w.Write(p) }
func (d *writerResponse) WriteHeader(int)             {}
func (d *writerResponse) Flush()                      {}
