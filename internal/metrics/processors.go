package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor/archive"
	"github.com/runnel-dev/runnel/internal/processor/count"
)

// ProcessorSource lists the pipelines' handlers; *pipeline.Runner
// satisfies it.
type ProcessorSource interface {
	Processors() []pipeline.Processor
}

var _ ProcessorSource = (*pipeline.Runner)(nil)

// The processors whose own counters are exported.
type (
	archiveStats interface{ Stats() archive.Stats }
	countStats   interface{ Stats() count.Stats }
)

var (
	_ archiveStats = (*archive.Archive)(nil)
	_ countStats   = (*count.Counter)(nil)
)

// Processors is a prometheus.Collector of the built-in processors' own
// counters (archive, count), per pipeline, read at scrape time. Like
// Pipelines, its source is set once the runner exists.
type Processors struct {
	src atomic.Pointer[ProcessorSource]

	archiveObjects, archiveRecords, archiveBytes, archiveSpooled *prometheus.Desc
	archiveSkipped, archiveWriteErrors, archivePending           *prometheus.Desc
	archiveErrorRecords                                          *prometheus.Desc
	countRecords, countRejected, countBatches, countSkipped      *prometheus.Desc
}

var _ prometheus.Collector = (*Processors)(nil)

// NewProcessors registers the processor metrics with reg.
func NewProcessors(reg prometheus.Registerer) *Processors {
	desc := func(sub, name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, sub, name), help, []string{"pipeline"}, nil)
	}
	p := &Processors{
		archiveObjects:      desc("archive", "objects_total", "Objects (files) the archive processor wrote."),
		archiveRecords:      desc("archive", "records_total", "Records in the objects the archive processor wrote."),
		archiveBytes:        desc("archive", "bytes_total", "Bytes of the objects the archive processor wrote (after gzip)."),
		archiveSpooled:      desc("archive", "spooled_records_total", "Records the archive processor appended to its spool."),
		archiveSkipped:      desc("archive", "redelivered_records_total", "Records delivered again that the archive processor had already spooled."),
		archiveWriteErrors:  desc("archive", "write_errors_total", "Rounds of writing objects that failed (logged and retried)."),
		archivePending:      desc("archive", "pending_segments", "Sealed spool segments waiting to be written as objects."),
		archiveErrorRecords: desc("archive", "error_records_total", "Records the archive processor could not partition or convert, written under its error prefix with the reason."),
		countRecords:        desc("count", "records_total", "Records the count processor counted."),
		countRejected:       desc("count", "rejected_records_total", "Records the count processor could not count and handed to the on-failure destination."),
		countBatches:        desc("count", "batches_total", "Batches (or their parts after the shard's marker) the count processor applied."),
		countSkipped:        desc("count", "skipped_batches_total", "Batches the count processor skipped whole because they were already counted."),
	}
	reg.MustRegister(p)
	return p
}

// SetSource sets (or with nil, clears) the runner whose processors are read.
func (p *Processors) SetSource(src ProcessorSource) {
	if src == nil {
		p.src.Store(nil)
		return
	}
	p.src.Store(&src)
}

// Describe implements prometheus.Collector.
func (p *Processors) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		p.archiveObjects, p.archiveRecords, p.archiveBytes, p.archiveSpooled, p.archiveSkipped, p.archiveWriteErrors, p.archivePending,
		p.archiveErrorRecords, p.countRecords, p.countRejected, p.countBatches, p.countSkipped,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *Processors) Collect(ch chan<- prometheus.Metric) {
	src := p.src.Load()
	if src == nil {
		return
	}
	for _, pr := range (*src).Processors() {
		counter := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), pr.Pipeline)
		}
		switch h := pr.Handler.(type) {
		case archiveStats:
			st := h.Stats()
			counter(p.archiveObjects, st.Objects)
			counter(p.archiveRecords, st.Records)
			counter(p.archiveBytes, st.Bytes)
			counter(p.archiveSpooled, st.Spooled)
			counter(p.archiveSkipped, st.Skipped)
			counter(p.archiveWriteErrors, st.WriteErrors)
			counter(p.archiveErrorRecords, st.ErrorRecords)
			ch <- prometheus.MustNewConstMetric(p.archivePending, prometheus.GaugeValue, float64(st.Pending), pr.Pipeline)
		case countStats:
			st := h.Stats()
			counter(p.countRecords, st.Records)
			counter(p.countRejected, st.Rejected)
			counter(p.countBatches, st.Batches)
			counter(p.countSkipped, st.Skipped)
		}
	}
}
