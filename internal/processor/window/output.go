package window

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/processor/table"
	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/sink"
)

// newOutput builds the sink an Output names.
func newOutput(ctx context.Context, o Output) (Sink, error) {
	switch {
	case o.Dir != "":
		return NewDirSink(o.Dir)
	case o.Stream != "":
		client, err := kinesisclient.New(ctx, kinesisclient.Options{Endpoint: o.Endpoint, Region: o.Region})
		if err != nil {
			return nil, err
		}
		return &StreamSink{API: client, Stream: o.Stream}, nil
	case o.RedisHash != nil:
		r := o.RedisHash
		return &RedisHashSink{Client: redis.NewClient(&redis.Options{Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB}), Key: r.Key}, nil
	case o.Table != nil:
		api, err := table.NewClient(ctx, o.Table.Endpoint, o.Table.Region)
		if err != nil {
			return nil, err
		}
		return &TableSink{W: table.NewWriter(api, o.Table.Table), Create: o.Table.CreateTable}, nil
	}
	return nil, errors.New("output: name one of dir, stream, redisHash, table")
}

// target names the output in waits and logs: "redis 127.0.0.1:6379 hash
// k", "stream s", "dynamodb table t", "directory d".
func (o Output) target() string {
	switch {
	case o.Dir != "":
		return "directory " + o.Dir
	case o.Stream != "":
		return "stream " + o.Stream
	case o.RedisHash != nil:
		return "redis " + o.RedisHash.Addr + " hash " + o.RedisHash.Key
	case o.Table != nil:
		return "dynamodb table " + o.Table.Table
	}
	return "output"
}

// DirSink writes the results of each window as a file of JSON lines,
// <dir>/<start>_<end>.jsonl with times as 20060102T150405Z, replacing the
// file atomically (a window's results are written again, whole, after a
// crash).
type DirSink struct {
	dir string
}

// NewDirSink creates dir when missing.
func NewDirSink(dir string) (*DirSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	return &DirSink{dir: dir}, nil
}

// FileName is the name of a window's file.
func FileName(start, end time.Time) string {
	const layout = "20060102T150405Z"
	return start.UTC().Format(layout) + "_" + end.UTC().Format(layout) + ".jsonl"
}

// Write writes results, which are sorted by window, one file per window.
func (d *DirSink) Write(_ context.Context, results []Result) error {
	var buf []byte
	for i, r := range results {
		buf = r.AppendJSON(buf)
		buf = append(buf, '\n')
		if i+1 < len(results) && results[i+1].WindowStart.Equal(r.WindowStart) {
			continue
		}
		if err := writeFileAtomic(filepath.Join(d.dir, FileName(r.WindowStart, r.WindowEnd)), buf); err != nil {
			return err
		}
		buf = buf[:0]
	}
	return nil
}

// Close does nothing.
func (d *DirSink) Close(context.Context) error { return nil }

// StreamSink puts each result as a record of a Kinesis stream through the
// producer library, partition key the group values (the window start
// when there are none). The record is the result's JSON with an "id"
// (window start and group) by which a consumer can drop the repeats a
// crash may cause.
type StreamSink struct {
	API    producer.PutRecordsAPI
	Stream string
}

// Write returns once every result is acknowledged by the stream.
func (s *StreamSink) Write(ctx context.Context, results []Result) error {
	p, err := producer.New(s.API, producer.Config{Stream: s.Stream, Linger: -1})
	if err != nil {
		return err
	}
	for _, r := range results {
		key := strings.Join(r.Group, "/")
		if key == "" {
			key = r.WindowStart.Format(time.RFC3339)
		}
		b := r.AppendJSON(nil)
		id := appendJSONString(nil, r.ID())
		data := append(append([]byte(`{"id":`), id...), ',')
		data = append(data, b[1:]...)
		if err := p.Write(ctx, producer.Record{PartitionKey: key, Data: data}); err != nil {
			_, _ = p.Close(ctx)
			return err
		}
	}
	st, err := p.Close(ctx)
	if err != nil {
		return err
	}
	if st.Failed > 0 {
		return fmt.Errorf("stream %s: %d of %d results not delivered: %s", s.Stream, st.Failed, len(results), st.LastError)
	}
	return nil
}

// Close does nothing.
func (s *StreamSink) Close(context.Context) error { return nil }

// RedisHashSink sets one field per result in a Redis hash: the field is
// the result's ID (window start and group values joined by "/"), the
// value its JSON. HSET overwrites, so a repeat is harmless.
type RedisHashSink struct {
	Client *redis.Client
	Key    string
}

// Write sets the results' fields in one pipelined round trip.
func (s *RedisHashSink) Write(ctx context.Context, results []Result) error {
	values := make([]any, 0, 2*len(results))
	for _, r := range results {
		values = append(values, r.ID(), string(r.AppendJSON(nil)))
	}
	if err := s.Client.HSet(ctx, s.Key, values...).Err(); err != nil {
		return fmt.Errorf("redis HSET %s: %w", s.Key, err)
	}
	return nil
}

// Close closes the client.
func (s *RedisHashSink) Close(context.Context) error { return s.Client.Close() }

// TableSink writes each result as a DynamoDB item (Result.Fields, numbers
// as N) through the table processor's writer. A put with the same key
// overwrites, so the table's key should be a group field and windowStart.
type TableSink struct {
	W      *table.Writer
	Create *table.CreateTable

	prepared bool
}

// Write puts the results; a result lacking a key attribute fails the
// write (the table's key does not fit the results).
func (s *TableSink) Write(ctx context.Context, results []Result) error {
	if !s.prepared {
		if err := s.W.Prepare(ctx, s.Create); err != nil {
			return err
		}
		s.prepared = true
	}
	items := make([]table.Item, 0, len(results))
	for _, r := range results {
		item, err := table.ItemFromFields(r.Fields())
		if err != nil {
			return sink.Poison(err)
		}
		if err := s.W.Check(item); err != nil {
			// The table's key does not fit the results: no retry helps.
			return sink.Poison(fmt.Errorf("window result %s: %w", r.ID(), err))
		}
		items = append(items, item)
	}
	_, err := s.W.Put(ctx, items)
	return err
}

// Close does nothing.
func (s *TableSink) Close(context.Context) error { return nil }
