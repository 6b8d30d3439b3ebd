package kinesisapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/stream"
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

// benchHandler is a handler over a fresh engine on disk (fsync on) with the
// stream "bench" of shards shards.
func benchHandler(b *testing.B, shards int) *Handler {
	svc, err := stream.Open(b.Context(), stream.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close() })
	if err := svc.CreateStream(b.Context(), "bench", shards, stream.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	return newHandler(svc, nil, time.Now)
}

// call serves one request and returns the answer's body, failing b on
// anything but 200.
func call(b *testing.B, h *Handler, action string, body []byte) []byte {
	return callIn(b, h, contentTypeJSON, action, body)
}

// callIn is call in the wire format contentType names.
func callIn(b *testing.B, h *Handler, contentType, action string, body []byte) []byte {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("X-Amz-Target", targetPrefix+action)
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		b.Fatalf("%s: %d %s", action, w.Code, w.Body)
	}
	return w.Body.Bytes()
}

// BenchmarkPutRecordsHandler serves PutRecords of 500 records of 100 bytes
// from 4 concurrent callers into 4 shards, from request to answer.
func BenchmarkPutRecordsHandler(b *testing.B) {
	h := benchHandler(b, 4)
	body := putRecordsBody(b, 500, 100)
	b.ReportAllocs()
	b.SetParallelism(2) // 4 callers on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			call(b, h, "PutRecords", body)
		}
	})
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGetRecordsHandler serves GetRecords of 10000 records of 100
// bytes, from request to answer, in JSON (the AWS SDKs but Java's) and in
// CBOR (the AWS SDK for Java, and so the KCL).
func BenchmarkGetRecordsHandler(b *testing.B) {
	for _, c := range []codec{jsonCodec{}, cborCodec{}} {
		b.Run(strings.TrimPrefix(c.contentType(), "application/x-amz-"), func(b *testing.B) { benchGetRecords(b, c) })
	}
}

func benchGetRecords(b *testing.B, c codec) {
	h := benchHandler(b, 1)
	body := putRecordsBody(b, 500, 100)
	for range 20 {
		call(b, h, "PutRecords", body)
	}
	it := call(b, h, "GetShardIterator", []byte(`{"StreamName":"bench","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`))
	var out struct{ ShardIterator string }
	if err := json.Unmarshal(it, &out); err != nil {
		b.Fatal(err)
	}
	get, err := c.encode(map[string]any{"ShardIterator": out.ShardIterator, "Limit": 10000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		callIn(b, h, c.contentType(), "GetRecords", get)
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPutRecordsOneHandler serves PutRecords of one record of 100
// bytes, one call at a time: the latency of a single record, fsync
// included.
func BenchmarkPutRecordsOneHandler(b *testing.B) {
	h := benchHandler(b, 1)
	body := putRecordsBody(b, 1, 100)
	b.ReportAllocs()
	for b.Loop() {
		call(b, h, "PutRecords", body)
	}
}
