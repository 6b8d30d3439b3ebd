package app

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runnel-dev/runnel/internal/admit"
	"github.com/runnel-dev/runnel/internal/channel"
	"github.com/runnel-dev/runnel/internal/dashboard"
	"github.com/runnel-dev/runnel/internal/kinesisapi"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

// observability is what `runnel serve` shows besides the Kinesis API: the
// Prometheus registry and its collectors, and the dashboard.
type observability struct {
	reg        *prometheus.Registry
	api        *metrics.API
	pipelines  *metrics.Pipelines
	processors *metrics.Processors
	generator  *metrics.Generator
	dash       *dashboard.Dashboard
	// counts answers GET /api/counts when set (SetCounts).
	counts atomic.Pointer[http.Handler]
}

func (s *Server) newObservability() error {
	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.NewStreams(s.svc), metrics.NewDirSize(s.cfg.DataDir, 30*time.Second),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "runnel_storage_writable",
			Help: "1 while storage accepts writes; 0 while it refuses them (the log and /readyz say why).",
		}, func() float64 {
			if s.svc.Health() != nil {
				return 0
			}
			return 1
		}))
	adm, err := admit.New(admit.Config{
		CheckHost:     s.keys == nil,
		AllowedHosts:  s.cfg.AllowedHosts,
		AllowOrigin:   s.allowOrigin,
		ExposeHeaders: kinesisapi.ExposedHeaders,
		Bodies: admit.BodyLimits{
			Timeout: s.cfg.BodyTimeout, MinRate: s.cfg.BodyMinRate, Memory: s.cfg.BodyMemory,
		},
		Registerer: reg,
		Logger:     s.logger.With("component", "admit"),
	})
	if err != nil {
		return err
	}
	s.adm = adm
	dash, err := dashboard.New(dashboard.Config{
		Engine:       s.svc,
		Keys:         s.keys,
		MultiRegion:  s.cfg.MultiRegion,
		SecureCookie: s.tls != nil,
		Logger:       s.logger.With("component", "dashboard"),
		Registerer:   reg,
	})
	if err != nil {
		return err
	}
	s.obs = observability{
		reg: reg, api: metrics.NewAPI(reg), pipelines: metrics.NewPipelines(reg),
		processors: metrics.NewProcessors(reg), generator: metrics.NewGenerator(reg), dash: dash,
	}
	s.obs.pipelines.SetReports(dash)
	return nil
}

// Metrics is the server's Prometheus registry, served at /metrics; parts
// running beside the server may register their collectors with it.
func (s *Server) Metrics() *prometheus.Registry { return s.obs.reg }

// PipelineObserver is the pipeline.Observer (Options.Observer) that feeds
// the pipeline metrics of pipelines run inside the server.
func (s *Server) PipelineObserver() pipeline.Observer { return s.obs.pipelines }

// SetPipelines shows the pipelines of p (a *pipeline.Runner) on the
// dashboard and in /metrics, beside the channels' deliveries; nil
// removes them.
func (s *Server) SetPipelines(p dashboard.Pipelines) {
	h := hostedPipelines{base: p, channels: s.channels}
	s.obs.dash.SetPipelines(h)
	s.obs.pipelines.SetSource(h)
	s.obs.processors.SetSource(h)
}

// hostedPipelines are the pipelines run inside the server: those of
// --pipelines (or the demo), if any, then the channels' deliveries.
type hostedPipelines struct {
	base     dashboard.Pipelines // nil without
	channels *channel.Runner
}

func (h hostedPipelines) Status() []pipeline.PipelineStatus {
	var out []pipeline.PipelineStatus
	if h.base != nil {
		out = h.base.Status()
	}
	return append(out, h.channels.Status()...)
}

func (h hostedPipelines) Reports() []pipeline.PipelineReport {
	var out []pipeline.PipelineReport
	if h.base != nil {
		out = h.base.Reports()
	}
	return append(out, h.channels.Reports()...)
}

func (h hostedPipelines) Processors() []pipeline.Processor {
	var out []pipeline.Processor
	if ps, ok := h.base.(metrics.ProcessorSource); ok {
		out = ps.Processors()
	}
	return append(out, h.channels.Processors()...)
}

// SetGenerator shows g, a clickstream generator writing to the named
// stream, on the dashboard with start and stop; nil removes it.
func (s *Server) SetGenerator(g dashboard.Generator, streamName string) {
	s.obs.dash.SetGenerator(g, streamName)
	if g == nil {
		s.obs.generator.SetSource(nil, "")
		return
	}
	s.obs.generator.SetSource(g, streamName)
}

// SetCounts serves h at GET /api/counts (what `runnel counts` asks): the
// counters of pipelines counting into runnel's own store, or where they
// are counted instead. nil answers 404.
func (s *Server) SetCounts(h http.Handler) {
	if h == nil {
		s.obs.counts.Store(nil)
		return
	}
	s.obs.counts.Store(&h)
}

// serveCounts serves GET /api/counts, behind the dashboard's login when
// authentication is on, to keys that may read the counted pipeline's
// source stream (?pipeline=NAME; without it, to keys that read every
// stream).
func (s *Server) serveCounts(w http.ResponseWriter, r *http.Request) {
	if s.keys != nil {
		key, ok := s.obs.dash.RequestKey(r)
		if !ok {
			writeJSONError(w, http.StatusUnauthorized, "log in to the dashboard first")
			return
		}
		name := r.URL.Query().Get("pipeline")
		if name == "" && !key.ReadsAll() || name != "" && !s.obs.dash.MayReadPipeline(r, name) {
			writeJSONError(w, http.StatusForbidden, "access key "+key.ID+" may not read the stream these counts are made from")
			return
		}
	}
	h := s.obs.counts.Load()
	if h == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"no counts in this server (runnel serve --demo keeps them)"}` + "\n"))
		return
	}
	(*h).ServeHTTP(w, r)
}

// routes is the server's HTTP handler. The Kinesis API keeps every request
// it had before: anything but GET and HEAD (and POSTs under /api/, which
// the API never answers) goes to it, whatever the path. GET and HEAD serve
// the dashboard at /, /metrics, /healthz, /readyz and /api/.
func (s *Server) routes(kinesisAPI http.Handler) http.Handler {
	api := s.obs.api.Middleware(kinesisAPI)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		if err := s.svc.Health(); err != nil {
			// Reads still work, but writes are refused: take this server
			// out of rotation and say why.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", s.metricsAuth(promhttp.HandlerFor(s.obs.reg, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{s},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})))
	mux.HandleFunc("GET /api/counts", s.serveCounts)
	if s.cfg.Pprof {
		mux.Handle("GET /debug/pprof/", s.pprofAuth(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/profile", s.pprofAuth(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", s.pprofAuth(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", s.pprofAuth(http.HandlerFunc(pprof.Trace)))
	}
	dash := s.obs.dash.Handler()
	mux.Handle("GET /", dash)
	mux.Handle("POST /api/", dash)
	return s.adm.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAPI(r) {
			api.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodPost {
			// Dashboard bodies (a login, a pipelines report) are read
			// within the same deadlines and budget as the API's.
			body, release, err := s.adm.Bodies.ReadAll(w, r, dashboardBodyBytes, nil)
			defer release()
			if err != nil {
				if ref, ok := errors.AsType[*admit.Refusal](err); ok {
					writeJSONError(w, ref.Status, ref.Msg)
				} else {
					writeJSONError(w, http.StatusBadRequest, "the request body could not be read")
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		mux.ServeHTTP(w, r)
	}), s.refuse)
}

// allowOrigin is the CORS policy: a page from another origin may call the
// Kinesis API (never the dashboard, which stays same-origin) when it is
// served from this machine, when its origin is in AllowedOrigins, or, with
// authentication on, from anywhere, since every call must then be signed
// with a key the page does not have unless it was given one.
func (s *Server) allowOrigin(r *http.Request, origin string) bool {
	if !isAPI(r) {
		return false
	}
	return s.keys != nil || admit.LoopbackOrigin(origin) || slices.Contains(s.cfg.AllowedOrigins, origin)
}

// dashboardBodyBytes bounds the body of a POST under /api/: a login, or
// the largest report of a `runnel run` process.
const dashboardBodyBytes = pipeline.MaxProcessReport

// isAPI reports whether r goes to the Kinesis API: anything but GET and
// HEAD, except POSTs under /api/ without X-Amz-Target.
func isAPI(r *http.Request) bool {
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return false
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/") && r.Header.Get("X-Amz-Target") == "":
		return false
	}
	return true
}

// refuse answers a request admission refused: as the Kinesis API answers
// a refused call for API requests, as the dashboard answers errors
// otherwise.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ref *admit.Refusal) {
	if isAPI(r) {
		kinesisapi.WriteRefusal(w, r, ref)
		return
	}
	writeJSONError(w, ref.Status, ref.Msg)
}

// metricsAuth guards /metrics, which names every stream and pipeline:
// with MetricsToken set, "Authorization: Bearer <token>" admits; with
// authentication on, so does a dashboard login with a key that may read
// every stream (all: true or read: ["*"]); with neither, anyone may read
// it.
func (s *Server) metricsAuth(h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.MetricsToken != "" {
			if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
				got := sha256.Sum256([]byte(tok))
				if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
					h.ServeHTTP(w, r)
					return
				}
			}
		}
		if s.cfg.MetricsToken == "" && s.keys == nil {
			h.ServeHTTP(w, r)
			return
		}
		if s.keys != nil {
			if key, ok := s.obs.dash.RequestKey(r); ok {
				// Under --multi-region a key of another account may read
				// its own streams only, so it may not see them all.
				if key.ReadsAll() && (!s.cfg.MultiRegion || key.Account == "" || key.Account == s.cfg.AccountID) {
					h.ServeHTTP(w, r)
					return
				}
				writeJSONError(w, http.StatusForbidden, "/metrics names every stream: it needs a key of this server's account that may read every stream (all: true or read: [\"*\"]), or the metrics token")
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="runnel metrics"`)
		writeJSONError(w, http.StatusUnauthorized, "metrics need a bearer token (--metrics-token) or a dashboard login with a key that may read every stream")
	})
}

// pprofAuth guards /debug/pprof/ (Config.Pprof): as metricsAuth guards
// /metrics, and, with neither a metrics token nor authentication, for
// clients connecting from this machine only, since a profile shows the
// server's code paths. The command line, which may hold secrets, is not
// served.
func (s *Server) pprofAuth(h http.Handler) http.Handler {
	guarded := s.metricsAuth(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.MetricsToken == "" && s.keys == nil {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil || !isLoopback(host) {
				writeJSONError(w, http.StatusForbidden, "profiles are served only to this machine's clients without --auth or --metrics-token")
				return
			}
		}
		guarded.ServeHTTP(w, r)
	})
}

// writeJSONError answers {"error": msg}, as the dashboard's endpoints do.
func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// slogPrinter adapts the server's logger to promhttp's error log.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.logger.Warn("serving metrics", "err", fmt.Sprint(v...))
}
