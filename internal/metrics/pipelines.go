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

// Report is the last report of a `runnel run` process that reports its
// pipelines to the server, and when it came.
type Report struct {
	pipeline.ProcessReport
	Received time.Time
}

// ReportSource gives the reports of the processes that report their
// pipelines to the server (the dashboard keeps them).
type ReportSource interface {
	Reports() []Report
}

// InServer is the process label of the pipelines running inside the
// server; those of `runnel run` processes carry the process's id, which
// may therefore not be InServer.
const InServer = "server"

// Pipelines holds the metrics of the pipelines running inside the server:
// per-shard figures read from the workers' status at scrape time, and
// batch sizes, handler durations and retries observed as they happen (it is
// the runner's pipeline.Observer). The runner starts after the server, so
// its source is set later with SetSource; until then there are no series.
type Pipelines struct {
	src     atomic.Pointer[PipelineSource]
	reports atomic.Pointer[ReportSource]

	batchSize *prometheus.HistogramVec
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	failed    *prometheus.CounterVec

	invocations, errors, records, toDestination *prometheus.Desc
	iteratorAge, recordsBehind, held, stalled   *prometheus.Desc
	blocked, leasesLost, reportAge              *prometheus.Desc
}

var (
	_ prometheus.Collector = (*Pipelines)(nil)
	_ pipeline.Observer    = (*Pipelines)(nil)
)

// NewPipelines registers the pipeline metrics with reg.
func NewPipelines(reg prometheus.Registerer) *Pipelines {
	shard := []string{"pipeline", "shard", "process"}
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
		held:          desc("leases_held", "Shard leases the pipeline's worker holds.", "pipeline", "process"),
		leasesLost:    desc("leases_lost_total", "Leases the pipeline's worker lost while processing their shards (taken by another worker or not renewed in time); each time the batch in flight was abandoned without a checkpoint.", "pipeline", "process"),
		reportAge:     desc("report_age_seconds", "Time since a `runnel run` process last reported its pipelines to the server; its pipelines' figures are as of then.", "process"),
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

// SetReports sets (or with nil, clears) where the reports of `runnel run`
// processes are read: their pipelines' figures are served beside the
// server's own, labelled with the process's id.
func (p *Pipelines) SetReports(src ReportSource) {
	if src == nil {
		p.reports.Store(nil)
		return
	}
	p.reports.Store(&src)
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
	for _, d := range []*prometheus.Desc{p.invocations, p.errors, p.records, p.toDestination, p.iteratorAge, p.recordsBehind, p.held, p.stalled, p.blocked, p.leasesLost, p.reportAge} {
		ch <- d
	}
}

// Collect implements prometheus.Collector for the status-derived metrics:
// the shards this server's worker processes, and those of the processes
// that report to the server, as of their last report.
func (p *Pipelines) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if src := p.src.Load(); src != nil {
		p.collect(ch, InServer, (*src).Status(), now)
	}
	if src := p.reports.Load(); src != nil {
		for _, r := range (*src).Reports() {
			ch <- prometheus.MustNewConstMetric(p.reportAge, prometheus.GaugeValue, max(now.Sub(r.Received).Seconds(), 0), r.Process)
			p.collect(ch, r.Process, r.Pipelines, r.Received)
		}
	}
}

// collect sends the figures of one process's pipelines, whose status was
// taken at asOf.
func (p *Pipelines) collect(ch chan<- prometheus.Metric, process string, status []pipeline.PipelineStatus, asOf time.Time) {
	for _, ps := range status {
		ch <- prometheus.MustNewConstMetric(p.held, prometheus.GaugeValue, float64(ps.Worker.Held), ps.Name, process)
		ch <- prometheus.MustNewConstMetric(p.leasesLost, prometheus.CounterValue, float64(ps.Worker.LeasesLost), ps.Name, process)
		for _, sh := range ps.Worker.Shards {
			if sh.State != "running" && sh.Invocations == 0 {
				continue
			}
			counter := func(d *prometheus.Desc, v int64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), ps.Name, sh.ShardID, process)
			}
			gauge := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, ps.Name, sh.ShardID, process)
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
				blocked = max(asOf.Sub(sh.BlockedSince).Seconds(), 0)
			}
			gauge(p.blocked, blocked)
		}
	}
}
