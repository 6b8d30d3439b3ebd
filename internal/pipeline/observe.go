package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/lambda"
	"github.com/runnel-dev/runnel/internal/sink"
)

// Observer is told about every handler invocation of every pipeline, for
// metrics. Invoked is called from the pipelines' goroutines, concurrently,
// and must not block.
type Observer interface {
	Invoked(pipeline string, inv Invocation)
}

// Invocation is one call of a pipeline's handler.
type Invocation struct {
	// Shard is the shard the batch came from.
	Shard string
	// Records is the batch size.
	Records int
	// Duration is how long the handler took.
	Duration time.Duration
	// Failed is set when the handler returned an error (a function error)
	// or reported failed records (partial batch failure).
	Failed bool
	// Retry is set when the batch re-delivers a record that an earlier,
	// failed invocation delivered: a retry, a bisected half or the rest
	// of a partially failed batch.
	Retry bool
}

// Reporter is an optional interface of a built-in processor with results
// worth charting: the dashboard shows them live and serves them at
// /api/results. Report is called from the dashboard's goroutines while the
// processor runs, and must be safe for that.
type Reporter interface {
	Report() Report
}

// Report is a processor's results at one moment.
type Report struct {
	// Title says what is counted, e.g. "page views by product".
	Title string `json:"title,omitempty"`
	// TopKeys are the keys with the largest values, largest first.
	TopKeys []KeyValue `json:"topKeys,omitempty"`
	// Windows are the values of consecutive time windows (for example
	// events per minute), oldest first.
	Windows []WindowValue `json:"windows,omitempty"`
	// Figures are totals worth showing as numbers, e.g. files and bytes
	// written.
	Figures []Figure `json:"figures,omitempty"`
	// Recent lists the latest outputs, newest first, e.g. the files last
	// written.
	Recent []Output `json:"recent,omitempty"`
}

// Figure is one named total.
type Figure struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
	// Unit is "bytes" for sizes, "" for plain numbers.
	Unit string `json:"unit,omitempty"`
}

// Output is one thing a processor wrote, e.g. a file.
type Output struct {
	Name  string    `json:"name"`
	Bytes int64     `json:"bytes"`
	Time  time.Time `json:"time"`
}

// KeyValue is one key's value.
type KeyValue struct {
	Key   string  `json:"key"`
	Value float64 `json:"value"`
}

// WindowValue is the value of the time window [Start, End).
type WindowValue struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value float64   `json:"value"`
}

// PipelineReport is one pipeline's Report.
type PipelineReport struct {
	Pipeline string `json:"pipeline"`
	Report
}

// Reports returns the reports of the pipelines whose handler is a
// Reporter, in configuration order.
func (r *Runner) Reports() []PipelineReport {
	var out []PipelineReport
	for _, rp := range r.pipelines {
		if rep, ok := rp.handler.(Reporter); ok {
			out = append(out, PipelineReport{Pipeline: rp.p.Name, Report: rep.Report()})
		}
	}
	return out
}

// Processor is one pipeline's handler as built, before any wrapping: a
// built-in processor's own type (for its optional interfaces).
type Processor struct {
	Pipeline string
	Handler  lambda.Handler
}

// Processors returns every pipeline's handler, in configuration order.
func (r *Runner) Processors() []Processor {
	out := make([]Processor, 0, len(r.pipelines))
	for _, rp := range r.pipelines {
		out = append(out, Processor{Pipeline: rp.p.Name, Handler: rp.handler})
	}
	return out
}

// maxFailedRecords bounds the records an observed handler remembers from
// failed invocations (to recognise their retries); past it the memory is
// cleared, and a few retries go uncounted.
const maxFailedRecords = 100_000

// observed wraps a pipeline's handler to tell an Observer about each
// invocation.
type observed struct {
	lambda.Handler
	pipeline string
	obs      Observer

	mu     sync.Mutex
	failed map[string]struct{} // event ids of records in failed invocations
}

func observe(pipeline string, h lambda.Handler, obs Observer) *observed {
	return &observed{Handler: h, pipeline: pipeline, obs: obs, failed: make(map[string]struct{})}
}

// Invoke implements lambda.Handler.
func (o *observed) Invoke(ctx context.Context, ev *lambda.KinesisEvent) (*lambda.Response, error) {
	start := time.Now()
	resp, err := o.Handler.Invoke(ctx, ev)
	inv := Invocation{
		Shard:    ev.ShardID,
		Records:  len(ev.Records),
		Duration: time.Since(start),
		Failed:   err != nil || (resp != nil && len(resp.BatchItemFailures) > 0),
	}
	if errors.Is(err, sink.ErrUnavailable) {
		// Not an invocation: the handler waited for its target and gave
		// the batch back untouched; it is tried again, uncounted.
		return resp, err
	}
	if len(ev.Records) > 0 {
		if inv.Shard == "" {
			inv.Shard, _, _ = strings.Cut(ev.Records[0].EventID, ":")
		}
		o.mu.Lock()
		_, inv.Retry = o.failed[ev.Records[0].EventID]
		switch {
		case inv.Failed:
			if len(o.failed)+len(ev.Records) > maxFailedRecords {
				clear(o.failed)
			}
			for i := range ev.Records {
				o.failed[ev.Records[i].EventID] = struct{}{}
			}
		case len(o.failed) > 0:
			for i := range ev.Records {
				delete(o.failed, ev.Records[i].EventID)
			}
		}
		o.mu.Unlock()
	}
	o.obs.Invoked(o.pipeline, inv)
	return resp, err
}
