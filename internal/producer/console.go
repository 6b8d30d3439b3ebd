package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// Console is a Writer that prints each record as one JSON line:
//
//	{"partitionKey":"FR","data":{"eventType":"click",...}}
//
// data is the record's data itself when it is a JSON value, else a JSON
// string when it is UTF-8 text, else base64 with "dataEncoding":"base64"
// added. Lines can be piped into `runnel put STREAM` (jq -c .data) or read
// by a person. It is safe for concurrent use.
type Console struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	stats Stats
	err   error
	done  bool
}

var _ Writer = (*Console)(nil)

// NewConsole returns a Console writing to w.
func NewConsole(w io.Writer) *Console {
	return &Console{w: w, start: time.Now()}
}

type consoleLine struct {
	PartitionKey    string `json:"partitionKey"`
	ExplicitHashKey string `json:"explicitHashKey,omitempty"`
	Data            any    `json:"data"`
	DataEncoding    string `json:"dataEncoding,omitempty"`
}

// Write prints r. It returns an error when writing fails (and every later
// Write returns it too) or after Close.
func (c *Console) Write(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	line := consoleLine{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey}
	switch {
	case json.Valid(r.Data):
		line.Data = json.RawMessage(r.Data)
	case utf8.Valid(r.Data):
		line.Data = string(r.Data)
	default:
		line.Data, line.DataEncoding = r.Data, "base64"
	}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encoding record: %w", err)
	}
	b = append(b, '\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return ErrClosed
	}
	if c.err != nil {
		return c.err
	}
	c.stats.Queued++
	c.stats.Calls++
	if _, err := c.w.Write(b); err != nil {
		c.err = fmt.Errorf("writing record: %w", err)
		c.stats.Failed++
		c.stats.LastError = c.err.Error()
		return c.err
	}
	c.stats.Delivered++
	c.stats.Bytes += int64(len(r.Data))
	return nil
}

// Close ends the Console and returns its accounting.
func (c *Console) Close(context.Context) (Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.done = true
		c.stats.Elapsed = time.Since(c.start)
	}
	return c.stats, nil
}

// Stats returns the accounting so far.
func (c *Console) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	if !c.done {
		s.Elapsed = time.Since(c.start)
	}
	return s
}
