package dashboard

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/runnel-dev/runnel/internal/stream"
)

const (
	// tailRate bounds the records per second one tail sends; the rest are
	// counted in "dropped" events, so a fast stream cannot flood a browser.
	tailRate = 50
	// tailPreview bounds the data bytes of a record a tail sends.
	tailPreview = 4096
	// tailWait bounds one wait for an append, so iterators are renewed
	// well within their five minutes.
	tailWait = time.Minute
	// tailPing is how often an idle tail sends a comment, so proxies keep
	// the connection.
	tailPing = 15 * time.Second
)

// TailRecord is one record as a tail sends it: the data as JSON when it
// parses as JSON, else as text when it is UTF-8, else as base64; data past
// tailPreview bytes is cut off (Truncated).
type TailRecord struct {
	ShardID        string          `json:"shardId"`
	SequenceNumber string          `json:"sequenceNumber"`
	PartitionKey   string          `json:"partitionKey"`
	Arrival        time.Time       `json:"arrival"`
	Size           int             `json:"size"`
	JSON           json.RawMessage `json:"json,omitempty"`
	Text           *string         `json:"text,omitempty"`
	Base64         string          `json:"base64,omitempty"`
	Truncated      bool            `json:"truncated,omitempty"`
}

func decodeRecord(shard string, rec stream.Record) TailRecord {
	t := TailRecord{ShardID: shard, SequenceNumber: rec.SequenceNumber, PartitionKey: rec.PartitionKey,
		Arrival: rec.ArrivalTime.UTC(), Size: len(rec.Data)}
	data := rec.Data
	if len(data) <= tailPreview && json.Valid(data) {
		t.JSON = data
		return t
	}
	if len(data) > tailPreview {
		data, t.Truncated = data[:tailPreview], true
		for n := 0; n < utf8.UTFMax && len(data) > 0 && !utf8.Valid(data); n++ {
			data = data[:len(data)-1] // do not cut a character in half
		}
	}
	if utf8.Valid(data) {
		s := string(data)
		t.Text = &s
		return t
	}
	t.Base64 = base64.StdEncoding.EncodeToString(data)
	return t
}

// handleTail streams a stream's new records (or, with ?from=trim_horizon,
// every retained record) as Server-Sent Events:
//
//	event: ready    {"shards": [...]}    iterators are in place
//	event: record   TailRecord
//	event: dropped  {"count": n}         records left out to keep to tailRate
//	event: error    {"error": "..."}
//
// Children of a shard that closes are followed.
func (d *Dashboard) handleTail(w http.ResponseWriter, r *http.Request) {
	desc := d.readableStream(w, r)
	if desc == nil {
		return
	}
	name := r.PathValue("name")
	spec := stream.IteratorSpec{Type: stream.Latest}
	switch r.URL.Query().Get("from") {
	case "", "latest":
	case "trim_horizon":
		spec.Type = stream.TrimHorizon
	default:
		writeError(w, http.StatusBadRequest, `from: want "latest" or "trim_horizon"`)
		return
	}
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	t := &tail{d: d, stream: name, out: make(chan TailRecord, tailRate), err: make(chan error, 1), started: map[string]bool{}}
	var shards []string
	for _, sh := range desc.Shards {
		if spec.Type == stream.Latest && sh.EndingSequenceNumber != "" {
			continue // closed: nothing new arrives there
		}
		it, err := d.cfg.Engine.ShardIterator(name, sh.ID, spec)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "opening shard "+sh.ID+": "+err.Error())
			return
		}
		t.started[sh.ID] = true
		shards = append(shards, sh.ID)
		t.wg.Add(1)
		go t.read(ctx, sh.ID, it)
	}
	defer t.wg.Wait()
	defer cancel()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send("ready", map[string]any{"stream": name, "shards": shards}); err != nil {
		return
	}

	ping := time.NewTicker(tailPing)
	defer ping.Stop()
	second := time.NewTicker(time.Second)
	defer second.Stop()
	budget, dropped := tailRate, 0
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-t.err:
			_ = send("error", map[string]string{"error": err.Error()})
			return
		case rec := <-t.out:
			if budget == 0 {
				dropped++
				continue
			}
			budget--
			if err := send("record", rec); err != nil {
				return
			}
		case <-second.C:
			budget = tailRate
			if n := dropped + t.takeOverflow(); n > 0 {
				dropped = 0
				if err := send("dropped", map[string]int{"count": n}); err != nil {
					return
				}
			}
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// tail is one tail's shard readers.
type tail struct {
	d      *Dashboard
	stream string
	out    chan TailRecord
	wg     sync.WaitGroup

	err chan error // the first reader error ends the tail

	mu       sync.Mutex
	started  map[string]bool
	overflow int
}

func (t *tail) fail(err error) {
	select {
	case t.err <- err:
	default:
	}
}

func (t *tail) takeOverflow() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.overflow
	t.overflow = 0
	return n
}

// read follows one shard until ctx is done or the shard is closed and read
// to its end; then it follows the shard's children.
func (t *tail) read(ctx context.Context, shard, it string) {
	defer t.wg.Done()
	eng := t.d.cfg.Engine
	for ctx.Err() == nil {
		res, err := eng.Records(ctx, it, 1000)
		if err != nil {
			if errors.Is(err, stream.ErrExpiredIterator) {
				// Renew from where we were is impossible without a
				// sequence number; continue from the newest record.
				if it, err = eng.ShardIterator(t.stream, shard, stream.IteratorSpec{Type: stream.Latest}); err == nil {
					continue
				}
			}
			if ctx.Err() == nil {
				t.fail(fmt.Errorf("reading shard %s: %w", shard, err))
			}
			return
		}
		for _, rec := range res.Records {
			select {
			case t.out <- decodeRecord(shard, rec):
			default:
				t.mu.Lock()
				t.overflow++
				t.mu.Unlock()
			}
		}
		if res.NextIterator == "" {
			t.children(ctx, res.ChildShards)
			return
		}
		it = res.NextIterator
		if len(res.Records) == 0 {
			wctx, cancel := context.WithTimeout(ctx, tailWait)
			err := eng.WaitIterator(wctx, it)
			cancel()
			if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				t.fail(fmt.Errorf("waiting on shard %s: %w", shard, err))
				return
			}
		}
	}
}

func (t *tail) children(ctx context.Context, children []stream.ChildShard) {
	for _, c := range children {
		t.mu.Lock()
		seen := t.started[c.ShardID]
		t.started[c.ShardID] = true
		t.mu.Unlock()
		if seen {
			continue
		}
		it, err := t.d.cfg.Engine.ShardIterator(t.stream, c.ShardID, stream.IteratorSpec{Type: stream.TrimHorizon})
		if err != nil {
			t.fail(fmt.Errorf("opening child shard %s: %w", c.ShardID, err))
			return
		}
		t.wg.Add(1)
		go t.read(ctx, c.ShardID, it)
	}
}
