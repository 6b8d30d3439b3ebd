package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/clickstream"
)

// GeneratorSource is a clickstream generator; *clickstream.Service
// satisfies it.
type GeneratorSource interface {
	Status() clickstream.Status
}

var _ GeneratorSource = (*clickstream.Service)(nil)

// Generator is a prometheus.Collector of a clickstream generator's
// figures, read from its status at scrape time. Its source is set when a
// generator runs in the process; until then there are no series.
type Generator struct {
	src atomic.Pointer[generatorSource]

	running, sent, delivered, failures, sessions *prometheus.Desc
}

type generatorSource struct {
	g      GeneratorSource
	stream string
}

var _ prometheus.Collector = (*Generator)(nil)

// NewGenerator registers the generator metrics with reg.
func NewGenerator(reg prometheus.Registerer) *Generator {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "generator", name), help, []string{"stream"}, nil)
	}
	g := &Generator{
		running:   desc("running", "1 while the clickstream generator generates, 0 while it is stopped."),
		sent:      desc("events_sent_total", "Events the generator handed to its producer, over all runs."),
		delivered: desc("events_delivered_total", "Events the stream acknowledged."),
		failures:  desc("events_failed_total", "Events that could not be delivered."),
		sessions:  desc("sessions", "Concurrent simulated sessions while running."),
	}
	reg.MustRegister(g)
	return g
}

// SetSource sets (or with nil, clears) the generator writing to the named
// stream.
func (g *Generator) SetSource(src GeneratorSource, stream string) {
	if src == nil {
		g.src.Store(nil)
		return
	}
	g.src.Store(&generatorSource{g: src, stream: stream})
}

// Describe implements prometheus.Collector.
func (g *Generator) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.running, g.sent, g.delivered, g.failures, g.sessions} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (g *Generator) Collect(ch chan<- prometheus.Metric) {
	src := g.src.Load()
	if src == nil {
		return
	}
	st := src.g.Status()
	running := 0.0
	if st.Running {
		running = 1
	}
	ch <- prometheus.MustNewConstMetric(g.running, prometheus.GaugeValue, running, src.stream)
	ch <- prometheus.MustNewConstMetric(g.sent, prometheus.CounterValue, float64(st.EventsSent), src.stream)
	ch <- prometheus.MustNewConstMetric(g.delivered, prometheus.CounterValue, float64(st.EventsDelivered), src.stream)
	ch <- prometheus.MustNewConstMetric(g.failures, prometheus.CounterValue, float64(st.Failures), src.stream)
	ch <- prometheus.MustNewConstMetric(g.sessions, prometheus.GaugeValue, float64(st.Sessions), src.stream)
}
