package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/pipeline"
)

// PipelineSource is what the pipeline metrics read; *pipeline.Runner
// satisfies it.
type PipelineSource interface {
	Status() []pipeline.PipelineStatus
}

var _ PipelineSource = (*pipeline.Runner)(nil)

// Pipelines holds the metrics of the pipelines running inside the server:
// per-shard figures read from the workers' status at scrape time, and
// batch sizes, handler durations and retries observed as they happen (it is
// the runner's pipeline.Observer). The runner starts after the server, so
// its source is set later with SetSource; until then there are no series.
type Pipelines struct {
	src atomic.Pointer[PipelineSource]

	batchSize *prometheus.HistogramVec
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	failed    *prometheus.CounterVec

	invocations, errors, records, toDestination *prometheus.Desc
	iteratorAge, recordsBehind, held, stalled   *prometheus.Desc
	blocked, leasesLost                         *prometheus.Desc
}

var (
	_ prometheus.Collector = (*Pipelines)(nil)
	_ pipeline.Observer    = (*Pipelines)(nil)
)

// NewPipelines registers the pipeline metrics with reg.
func NewPipelines(reg prometheus.Registerer) *Pipelines {
	shard := []string{"pipeline", "shard"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "pipeline", name), help, labels, nil)
	}
	p := &Pipelines{
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "pipeline", Name: "batch_size_records",
			Help:    "Records per handler invocation.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000},
		}, []string{"pipeline"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "pipeline", Name: "handler_duration_seconds",
			Help:    "Time a handler invocation took, failed ones included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"pipeline"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "pipeline", Name: "retries_total",
			Help: "Handler invocations that re-delivered records of an earlier failed invocation (retries, bisected halves, the rest of a partially failed batch).",
		}, []string{"pipeline"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "pipeline", Name: "handler_failures_total",
			Help: "Handler invocations that returned an error or reported failed records.",
		}, []string{"pipeline"}),
		invocations:   desc("invocations_total", "Handler invocations of the shard's batches by this server's worker.", shard...),
		errors:        desc("errors_total", "Failed invocations and failed reads of the shard.", shard...),
		records:       desc("records_total", "Records of the shard handled (invoked successfully or sent to the on-failure destination).", shard...),
		toDestination: desc("on_failure_records_total", "Records of the shard sent to the on-failure destination (or skipped without one).", shard...),
		iteratorAge:   desc("iterator_age_seconds", "How far the pipeline's reading is behind the shard's newest record (MillisBehindLatest of the last read, in seconds).", shard...),
		recordsBehind: desc("records_behind", "Records read from the shard and not yet checkpointed.", shard...),
		held:          desc("leases_held", "Shard leases the pipeline's worker holds.", "pipeline"),
		leasesLost:    desc("leases_lost_total", "Leases the pipeline's worker lost while processing their shards (taken by another worker or not renewed in time); each time the batch in flight was abandoned without a checkpoint.", "pipeline"),
		stalled:       desc("shard_stalled", "1 when records wait on the shard and its checkpoint has not advanced for a while.", shard...),
		blocked:       desc("shard_blocked_seconds", "How long the shard's batch in flight has waited for an unavailable target (a sink down or throttling, a handler process restarting); 0 when it does not wait.", shard...),
	}
	reg.MustRegister(p, p.batchSize, p.duration, p.retries, p.failed)
	return p
}

// SetSource sets (or with nil, clears) the runner whose status is read.
func (p *Pipelines) SetSource(src PipelineSource) {
	if src == nil {
		p.src.Store(nil)
		return
	}
	p.src.Store(&src)
}

// Invoked implements pipeline.Observer.
func (p *Pipelines) Invoked(name string, inv pipeline.Invocation) {
	p.batchSize.WithLabelValues(name).Observe(float64(inv.Records))
	p.duration.WithLabelValues(name).Observe(inv.Duration.Seconds())
	if inv.Retry {
		p.retries.WithLabelValues(name).Inc()
	}
	if inv.Failed {
		p.failed.WithLabelValues(name).Inc()
	}
}

// Describe implements prometheus.Collector for the status-derived metrics.
func (p *Pipelines) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.invocations, p.errors, p.records, p.toDestination, p.iteratorAge, p.recordsBehind, p.held, p.stalled, p.blocked, p.leasesLost} {
		ch <- d
	}
}

// Collect implements prometheus.Collector for the status-derived metrics:
// only the shards this server's worker processes have figures.
func (p *Pipelines) Collect(ch chan<- prometheus.Metric) {
	src := p.src.Load()
	if src == nil {
		return
	}
	for _, ps := range (*src).Status() {
		ch <- prometheus.MustNewConstMetric(p.held, prometheus.GaugeValue, float64(ps.Worker.Held), ps.Name)
		ch <- prometheus.MustNewConstMetric(p.leasesLost, prometheus.CounterValue, float64(ps.Worker.LeasesLost), ps.Name)
		for _, sh := range ps.Worker.Shards {
			if sh.State != "running" && sh.Invocations == 0 {
				continue
			}
			counter := func(d *prometheus.Desc, v int64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), ps.Name, sh.ShardID)
			}
			gauge := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, ps.Name, sh.ShardID)
			}
			counter(p.invocations, sh.Invocations)
			counter(p.errors, sh.Errors)
			counter(p.records, sh.Records)
			counter(p.toDestination, sh.ToDestination)
			gauge(p.iteratorAge, float64(sh.MillisBehindLatest)/1000)
			gauge(p.recordsBehind, float64(sh.RecordsBehind))
			stalled := 0.0
			if sh.Stalled {
				stalled = 1
			}
			gauge(p.stalled, stalled)
			blocked := 0.0
			if !sh.BlockedSince.IsZero() {
				blocked = max(time.Since(sh.BlockedSince).Seconds(), 0)
			}
			gauge(p.blocked, blocked)
		}
	}
}
