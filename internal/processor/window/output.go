package window

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/sink"
	"github.com/runnel-dev/runnel/internal/sink/dynamo"
	"github.com/runnel-dev/runnel/internal/sink/object"
	redissink "github.com/runnel-dev/runnel/internal/sink/redis"
	"github.com/runnel-dev/runnel/internal/sink/stream"
)

// newOutput builds the sink an Output names.
func newOutput(ctx context.Context, o Output) (Sink, error) {
	switch {
	case o.Dir != "":
		return NewDirSink(o.Dir)
	case o.S3 != nil:
		store, err := object.NewS3(ctx, *o.S3)
		if err != nil {
			return nil, err
		}
		return &ObjectSink{W: object.NewWriter(store)}, nil
	case o.Stream != "":
		client, err := kinesisclient.New(ctx, kinesisclient.Options{Endpoint: o.Endpoint, Region: o.Region})
		if err != nil {
			return nil, err
		}
		return &StreamSink{W: &stream.Writer{API: client, Stream: o.Stream, Endpoint: o.Endpoint}}, nil
	case o.RedisHash != nil:
		r := o.RedisHash
		client := goredis.NewClient(&goredis.Options{Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB})
		return &RedisHashSink{W: redissink.NewHash(client, r.Key)}, nil
	case o.Table != nil:
		api, err := dynamo.NewClient(ctx, o.Table.Endpoint, o.Table.Region)
		if err != nil {
			return nil, err
		}
		return &TableSink{W: dynamo.NewWriter(api, o.Table.Table), Create: o.Table.CreateTable}, nil
	}
	return nil, errors.New("output: name one of dir, s3, stream, redisHash, table")
}

// target names the output in waits and logs: "redis 127.0.0.1:6379 hash
// k", "stream s", "dynamodb table t", "directory d", "s3://b/p".
func (o Output) target() string {
	switch {
	case o.Dir != "":
		return "directory " + o.Dir
	case o.S3 != nil:
		return "s3://" + o.S3.Bucket + "/" + o.S3.Prefix
	case o.Stream != "":
		return "stream " + o.Stream
	case o.RedisHash != nil:
		return "redis " + o.RedisHash.Addr + " hash " + o.RedisHash.Key
	case o.Table != nil:
		return "dynamodb table " + o.Table.Table
	}
	return "output"
}

// ObjectSink writes the results of each window as one object of JSON
// lines, named by FileName, through the object sink (a directory or an S3
// bucket). A window's object is written again, whole, when its results
// are emitted again (after a crash, or updated by late events).
type ObjectSink struct {
	W *object.Writer
}

// DirSink is the ObjectSink of a local directory.
type DirSink = ObjectSink

// NewDirSink creates dir when missing.
func NewDirSink(dir string) (*DirSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	return &ObjectSink{W: object.NewWriter(object.Dir{Dir: dir})}, nil
}

// FileName is the name of a window's file.
func FileName(start, end time.Time) string {
	const layout = "20060102T150405Z"
	return start.UTC().Format(layout) + "_" + end.UTC().Format(layout) + ".jsonl"
}

// Write writes results, which are sorted by window, one object per window.
func (s *ObjectSink) Write(ctx context.Context, results []Result) error {
	var objs []object.Object
	var buf []byte
	for i, r := range results {
		buf = r.AppendJSON(buf)
		buf = append(buf, '\n')
		if i+1 < len(results) && results[i+1].WindowStart.Equal(r.WindowStart) {
			continue
		}
		objs = append(objs, object.Object{Key: FileName(r.WindowStart, r.WindowEnd), Body: buf})
		buf = nil
	}
	return s.W.Write(ctx, objs)
}

// Close does nothing.
func (s *ObjectSink) Close(context.Context) error { return nil }

// StreamSink puts each result as a record of a Kinesis stream through the
// stream sink, partition key the group values (the window start when
// there are none). The record is the result's JSON with an "id" (window
// start and group) by which a consumer can drop the repeats a crash, or
// an update by late events, may cause.
type StreamSink struct {
	W *stream.Writer
}

// Write returns once every result is acknowledged by the stream.
func (s *StreamSink) Write(ctx context.Context, results []Result) error {
	recs := make([]producer.Record, 0, len(results))
	for _, r := range results {
		key := strings.Join(r.Group, "/")
		if key == "" {
			key = r.WindowStart.Format(time.RFC3339)
		}
		b := r.AppendJSON(nil)
		id := appendJSONString(nil, r.ID())
		data := append(append([]byte(`{"id":`), id...), ',')
		data = append(data, b[1:]...)
		recs = append(recs, producer.Record{PartitionKey: key, Data: data})
	}
	return s.W.Write(ctx, recs)
}

// Close does nothing.
func (s *StreamSink) Close(context.Context) error { return nil }

// RedisHashSink sets one field per result in a Redis hash through the
// Redis sink: the field is the result's ID (window start and group values
// joined by "/"), the value its JSON. HSET overwrites, so a repeat is
// harmless.
type RedisHashSink struct {
	W *redissink.Hash
}

// Write sets the results' fields in one round trip.
func (s *RedisHashSink) Write(ctx context.Context, results []Result) error {
	fields := make([]redissink.Field, 0, len(results))
	for _, r := range results {
		fields = append(fields, redissink.Field{Name: r.ID(), Value: string(r.AppendJSON(nil))})
	}
	return s.W.Write(ctx, fields)
}

// Close closes the client.
func (s *RedisHashSink) Close(context.Context) error { return s.W.Client.Close() }

// TableSink writes each result as a DynamoDB item (Result.Fields, numbers
// as N) through the DynamoDB sink. A put with the same key overwrites, so
// the table's key should be a group field and the window start.
type TableSink struct {
	W      *dynamo.Writer
	Create *dynamo.CreateTable

	prepared bool
}

// Write puts the results; a result lacking a key attribute fails the
// write as poison (the table's key does not fit the results).
func (s *TableSink) Write(ctx context.Context, results []Result) error {
	if !s.prepared {
		if err := s.W.Open(ctx, s.Create); err != nil {
			return err
		}
		s.prepared = true
	}
	items := make([]dynamo.Item, 0, len(results))
	for _, r := range results {
		item, err := dynamo.ItemFromFields(r.Fields())
		if err != nil {
			return sink.Poison(err)
		}
		if err := s.W.Check(item); err != nil {
			// The table's key does not fit the results: no retry helps.
			return sink.Poison(fmt.Errorf("window result %s: %w", r.ID(), err))
		}
		items = append(items, item)
	}
	return s.W.Write(ctx, items)
}

// Close does nothing.
func (s *TableSink) Close(context.Context) error { return nil }
