// Package stream is the Kinesis stream sink: records put into one stream
// through the producer library (internal/producer, the one PutRecords
// batcher), keeping the order of each partition key. The forward and
// window processors write through it.
//
// A Put returns only once every record is acknowledged by the stream. A
// record Kinesis would refuse whatever the retries (a partition key or
// size over the limits) is poison, reported with its index; a stream that
// throttles, fails or cannot be reached is retried until ctx ends, the
// wait reported to ctx's sink.Reporter and logged, and then the Put
// returns an error wrapping sink.ErrUnavailable. A stream appends: a
// batch put again after such an error may put a record twice, never a
// later record of a key before an earlier one within one Put.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/internal/producer"
	"github.com/runnel-dev/runnel/internal/sink"
)

// watchEvery is how often a Put in progress is checked for retries to
// report as a wait.
const watchEvery = 250 * time.Millisecond

// Writer puts records into one stream. It is safe for concurrent use:
// each Put has a producer of its own, drained before Put returns.
type Writer struct {
	// API is the Kinesis client. Required.
	API producer.PutRecordsAPI
	// Stream is the target stream's name or ARN. Required.
	Stream string
	// Endpoint is passed to the producer (it names the target in its
	// messages).
	Endpoint string
	// Logger gets a WARN line when a Put starts waiting. Nil discards.
	Logger *slog.Logger
	// Producer adjusts the producer configuration (tests).
	Producer func(*producer.Config)
}

var _ sink.Writer[producer.Record] = (*Writer)(nil)

// Target names the stream in waits and logs: "stream NAME".
func (w *Writer) Target() string { return "stream " + w.Stream }

func (w *Writer) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

// Write puts recs; a poison record makes the whole write poison (with
// the first such record's reason), though every other record is put.
func (w *Writer) Write(ctx context.Context, recs []producer.Record) error {
	poison, _, err := w.Put(ctx, recs)
	if err != nil {
		return err
	}
	for i := range recs {
		if reason, ok := poison[i]; ok {
			return sink.Poison(fmt.Errorf("%s: record %d of %d: %w", w.Target(), i+1, len(recs), reason))
		}
	}
	return nil
}

// Put delivers recs and returns the records Kinesis would refuse whatever
// the retries (by index in recs, with the reason) once every other record
// is acknowledged, with the producer's counts; or an error wrapping
// sink.ErrUnavailable when ctx ended before the stream took them all.
func (w *Writer) Put(ctx context.Context, recs []producer.Record) (map[int]error, producer.Stats, error) {
	var (
		failMsg atomic.Value
		cur     int // the record being written
		poison  = map[int]error{}
	)
	pcfg := producer.Config{
		Stream:       w.Stream,
		Endpoint:     w.Endpoint,
		OrderedByKey: true,
		// Retry until ctx ends rather than give up on a record and let a
		// later one of its key through first.
		MaxAttempts:  1 << 30,
		MaxRetryTime: 24 * time.Hour,
		Logger:       w.Logger,
		OnFailure: func(r producer.Record, err error) {
			if errors.Is(err, producer.ErrInvalidRecord) {
				// Write reports an invalid record itself, before
				// it returns: it is recs[cur].
				poison[cur] = err
				return
			}
			failMsg.CompareAndSwap(nil, fmt.Sprintf("key %q: %v", r.PartitionKey, err))
		},
	}
	if w.Producer != nil {
		w.Producer(&pcfg)
	}
	p, err := producer.New(w.API, pcfg)
	if err != nil {
		return nil, producer.Stats{}, fmt.Errorf("%s: %w", w.Target(), err)
	}
	stopWatch := w.watch(ctx, p)
	var werr error
	for i, r := range recs {
		cur = i
		if werr = p.Write(ctx, r); werr != nil {
			break
		}
	}
	st, cerr := p.Close(ctx)
	since := stopWatch()
	var undelivered error
	switch {
	case werr != nil:
		undelivered = werr
	case cerr != nil:
		undelivered = cerr
	case st.Failed > int64(len(poison)):
		msg, _ := failMsg.Load().(string)
		undelivered = fmt.Errorf("%d of %d records not delivered: %s", st.Failed-int64(len(poison)), len(recs), msg)
	}
	if undelivered != nil {
		if since.IsZero() {
			since = time.Now()
		}
		return nil, st, sink.Unavailable(w.Target(), since, undelivered)
	}
	return poison, st, nil
}

// watch reports the delivery by p as a wait on the stream while the
// producer retries, through the Reporter in ctx, and logs its start. The
// func it returns ends the watch, reports the end of a wait, and returns
// when the wait began (zero when there was none).
func (w *Writer) watch(ctx context.Context, p *producer.Producer) func() time.Time {
	rep := sink.ReporterFrom(ctx)
	done, finished := make(chan struct{}), make(chan struct{})
	var since time.Time
	go func() {
		defer close(finished)
		tick := time.NewTicker(watchEvery)
		defer tick.Stop()
		var retried int64
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			st := p.Stats()
			if st.Retried > retried && st.LastError != "" {
				if since.IsZero() {
					since = time.Now()
					w.logger().Warn("target stream unavailable or throttling; holding the batch and retrying",
						"target", w.Target(), "err", st.LastError)
				}
				rep.Blocked(sink.Wait{Target: w.Target(), Since: since, Err: errors.New(st.LastError)})
			}
			retried = st.Retried
		}
	}()
	return func() time.Time {
		close(done)
		<-finished
		if !since.IsZero() && ctx.Err() == nil {
			rep.Unblocked()
		}
		return since
	}
}
