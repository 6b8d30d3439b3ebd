// Package metrics exposes runnel's figures in the Prometheus exposition
// format. Nothing here registers itself: app creates a registry and hands
// it to the constructors, and the collectors read the stream engine's and
// the pipelines' own counters at scrape time, so what /metrics reports is
// exactly what the engine counted.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/runnel-dev/runnel/internal/stream"
)

// Namespace prefixes every runnel metric.
const Namespace = "runnel"

// NewRegistry returns a registry holding the Go runtime and process
// collectors, ready for the collectors of this package.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// StatsSource is the part of the stream engine the stream collector reads;
// *stream.Service satisfies it.
type StatsSource interface {
	Stats() []stream.StreamStats
}

var _ StatsSource = (*stream.Service)(nil)

// Streams is a prometheus.Collector of per-shard traffic counters. Its
// counters are the engine's own (since the engine opened), read on every
// scrape.
type Streams struct {
	src                                       StatsSource
	recordsIn, bytesIn, recordsOut, bytesOut  *prometheus.Desc
	throttled, open, lastArrival, shardsTotal *prometheus.Desc
}

var _ prometheus.Collector = (*Streams)(nil)

// NewStreams returns the collector of src's per-shard traffic.
func NewStreams(src StatsSource) *Streams {
	labels := []string{"stream", "shard"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "stream", name), help, labels, nil)
	}
	return &Streams{
		src:         src,
		recordsIn:   desc("incoming_records_total", "Records appended to the shard (PutRecord, PutRecords and in-process writers) since the server started.", labels...),
		bytesIn:     desc("incoming_bytes_total", "Data bytes of the records appended to the shard since the server started.", labels...),
		recordsOut:  desc("outgoing_records_total", "Records read from the shard (GetRecords, SubscribeToShard and in-process readers) since the server started.", labels...),
		bytesOut:    desc("outgoing_bytes_total", "Data bytes of the records read from the shard since the server started.", labels...),
		throttled:   desc("throttled_total", "Records refused by the shard's write limits plus reads refused by its read limits since the server started.", labels...),
		open:        desc("shard_open", "1 while the shard is open, 0 once it is closed by a split or merge.", labels...),
		lastArrival: desc("last_arrival_timestamp_seconds", "Arrival time of the shard's newest record, in seconds since the Unix epoch.", labels...),
		shardsTotal: desc("shards", "Shards of the stream, open and closed.", "stream"),
	}
}

// Describe implements prometheus.Collector.
func (c *Streams) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.recordsIn, c.bytesIn, c.recordsOut, c.bytesOut, c.throttled, c.open, c.lastArrival, c.shardsTotal} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Streams) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.src.Stats() {
		ch <- prometheus.MustNewConstMetric(c.shardsTotal, prometheus.GaugeValue, float64(len(st.Shards)), st.Name)
		for _, sh := range st.Shards {
			counter := func(d *prometheus.Desc, v int64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), st.Name, sh.ShardID)
			}
			counter(c.recordsIn, sh.RecordsIn)
			counter(c.bytesIn, sh.BytesIn)
			counter(c.recordsOut, sh.RecordsOut)
			counter(c.bytesOut, sh.BytesOut)
			counter(c.throttled, sh.Throttled)
			open := 0.0
			if sh.Open {
				open = 1
			}
			ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, open, st.Name, sh.ShardID)
			if !sh.LastArrival.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.lastArrival, prometheus.GaugeValue,
					float64(sh.LastArrival.UnixMilli())/1000, st.Name, sh.ShardID)
			}
		}
	}
}
