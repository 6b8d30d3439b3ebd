package kinesisapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
)

// BenchmarkDecodePutRecords measures decoding and validating a full
// PutRecords request: 500 records of 1 KiB.
func BenchmarkDecodePutRecords(b *testing.B) {
	data := base64.StdEncoding.EncodeToString(make([]byte, 1024))
	recs := make([]map[string]string, 500)
	for i := range recs {
		recs[i] = map[string]string{"PartitionKey": fmt.Sprintf("key-%d", i), "Data": data}
	}
	body, err := json.Marshal(map[string]any{"StreamName": "bench", "Records": recs})
	if err != nil {
		b.Fatal(err)
	}
	decode := actions()["PutRecords"].decode
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
