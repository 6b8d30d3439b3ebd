package processor

import (
	"testing"

	"github.com/runnel-dev/runnel/internal/lambda"
)

var clickEvent = []byte(`{"timestamp":"2026-11-21T23:57:41.123Z","eventId":"0f8e2b9a-3c1d-4e5f-8a7b-6c5d4e3f2a1b","eventType":"impression","sessionId":"s-102938","userId":"u-4711","seq":7,"page":"cart","section":"banner","element":"checkoutnow","productGroup":"footwear","product":"trail-runner-2","campaignId":"2276","price":89.5}`)

func BenchmarkDecodeJSON(b *testing.B) {
	rec := &lambda.KinesisEventRecord{EventID: "shardId-000000000000:1", Kinesis: lambda.KinesisRecord{Data: clickEvent}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (DecodeConfig{}).Decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSONPaths(b *testing.B) {
	rec := &lambda.KinesisEventRecord{EventID: "shardId-000000000000:1", Kinesis: lambda.KinesisRecord{Data: clickEvent}}
	c := DecodeConfig{Paths: []string{"timestamp", "page", "section", "element", "eventType", "campaignId"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}
