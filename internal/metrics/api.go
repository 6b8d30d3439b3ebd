package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// targetPrefix is the X-Amz-Target prefix of every Kinesis action.
const targetPrefix = "Kinesis_20131202."

// Actions are the Kinesis actions the API middleware labels by name; any
// other X-Amz-Target is counted as "unknown", so a client cannot grow the
// number of series.
var Actions = []string{
	"AddTagsToStream", "CreateStream", "DecreaseStreamRetentionPeriod", "DeleteStream",
	"DeregisterStreamConsumer", "DescribeLimits", "DescribeStream", "DescribeStreamConsumer",
	"DescribeStreamSummary", "DisableEnhancedMonitoring", "EnableEnhancedMonitoring",
	"GetRecords", "GetShardIterator", "IncreaseStreamRetentionPeriod", "ListShards",
	"ListStreamConsumers", "ListStreams", "ListTagsForResource", "ListTagsForStream",
	"MergeShards", "PutRecord", "PutRecords", "RegisterStreamConsumer", "RemoveTagsFromStream",
	"SplitShard", "StartStreamEncryption", "StopStreamEncryption", "SubscribeToShard",
	"TagResource", "UntagResource", "UpdateMaxRecordSize", "UpdateShardCount", "UpdateStreamMode",
}

// API counts Kinesis API requests and times them, by action. An action's
// series are created when it is first called and then kept, so a request
// costs a map lookup and a small response-writer wrapper.
type API struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	byAction map[string]*actionMetrics
	unknown  *actionMetrics
}

type actionMetrics struct {
	name string
	api  *API

	durationOnce sync.Once
	duration     prometheus.Observer
	// ok, client and server count 200, 400 and 500, the codes Kinesis
	// answers with; other codes are looked up when seen.
	ok, client, server lazyCounter
}

// lazyCounter is a counter created on first use.
type lazyCounter struct {
	once sync.Once
	c    prometheus.Counter
}

func (l *lazyCounter) inc(vec *prometheus.CounterVec, labels ...string) {
	l.once.Do(func() { l.c = vec.WithLabelValues(labels...) })
	l.c.Inc()
}

func (m *actionMetrics) observe(d time.Duration, code int) {
	m.durationOnce.Do(func() { m.duration = m.api.duration.WithLabelValues(m.name) })
	m.duration.Observe(d.Seconds())
	switch code {
	case http.StatusOK:
		m.ok.inc(m.api.requests, m.name, "200")
	case http.StatusBadRequest:
		m.client.inc(m.api.requests, m.name, "400")
	case http.StatusInternalServerError:
		m.server.inc(m.api.requests, m.name, "500")
	default:
		m.api.requests.WithLabelValues(m.name, strconv.Itoa(code)).Inc()
	}
}

// NewAPI registers the API request metrics with reg.
func NewAPI(reg prometheus.Registerer) *API {
	a := &API{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "api", Name: "requests_total",
			Help: "Kinesis API requests answered, by action and HTTP status code.",
		}, []string{"action", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "api", Name: "request_duration_seconds",
			Help: "Time from a Kinesis API request's headers to the end of its response, by action. " +
				"SubscribeToShard responses stream for up to five minutes.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"action"}),
		byAction: make(map[string]*actionMetrics, len(Actions)),
	}
	reg.MustRegister(a.requests, a.duration)
	for _, name := range Actions {
		a.byAction[name] = a.resolve(name)
	}
	a.unknown = a.resolve("unknown")
	return a
}

func (a *API) resolve(action string) *actionMetrics {
	return &actionMetrics{name: action, api: a}
}

// Middleware wraps the Kinesis API handler: every request is counted and
// timed under the action its X-Amz-Target names.
func (a *API) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := a.unknown
		if name, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix); ok {
			if am := a.byAction[name]; am != nil {
				m = am
			}
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		m.observe(time.Since(start), sw.code())
	})
}

// statusWriter remembers the status code written. Unwrap lets
// http.ResponseController reach the connection (flushes and deadlines of
// SubscribeToShard's event stream).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher for handlers that assert it directly.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
