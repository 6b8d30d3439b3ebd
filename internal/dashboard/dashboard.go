// Package dashboard serves the web page of `runnel serve` and the
// read-mostly JSON endpoints under /api/ it is drawn from (scripts may use
// them as well):
//
//	GET  /api/session                 whether login is needed, and who is logged in
//	POST /api/login                   {"accessKeyId", "secretAccessKey"} → session cookie
//	POST /api/logout
//	GET  /api/streams                 streams with their shards and hash ranges
//	GET  /api/stats                   per-shard counters, current rates, rate history
//	GET  /api/streams/{name}/tail     Server-Sent Events: records as they arrive
//	GET  /api/pipelines               pipelines with per-shard checkpoint, lag, errors
//	POST /api/pipelines/report        a runnel run process reports its pipelines (SigV4)
//	GET  /api/results                 results of processors that report them
//	GET  /api/generator               the clickstream generator's state
//	POST /api/generator/start|stop
//
// The page's assets are embedded in the binary; it loads nothing from
// elsewhere. Its charts are drawn by uPlot 1.6.32 (npm package uplot,
// MIT, assets/uPlot.LICENSE): assets/uPlot.iife.min.js and uPlot.min.css
// are that release's dist files, unchanged. To update, `npm pack uplot@X`
// and copy dist/uPlot.iife.min.js, dist/uPlot.min.css and LICENSE.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/clickstream"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/stream"
)

//go:embed assets
var assets embed.FS

// Engine is the part of the stream engine the dashboard reads;
// *stream.Service satisfies it. Its methods are called concurrently.
type Engine interface {
	List() []stream.Summary
	Describe(name string) (*stream.Description, error)
	Stats() []stream.StreamStats
	// SplitName returns the region, account and plain name of an engine
	// stream name.
	SplitName(name string) (region, account, plain string)
	ShardIterator(name, shard string, spec stream.IteratorSpec) (string, error)
	Records(ctx context.Context, iter string, limit int) (*stream.GetResult, error)
	WaitIterator(ctx context.Context, iter string) error
	// Health is nil while storage accepts writes, else why it refuses them.
	Health() error
}

var _ Engine = (*stream.Service)(nil)

// Pipelines is what the dashboard shows of the pipelines running inside
// the server; *pipeline.Runner satisfies it.
type Pipelines interface {
	Status() []pipeline.PipelineStatus
	Reports() []pipeline.PipelineReport
}

var _ Pipelines = (*pipeline.Runner)(nil)

// Generator is an in-process clickstream generator;
// *clickstream.Service satisfies it.
type Generator interface {
	Status() clickstream.Status
	Start() bool
	Stop() bool
}

var _ Generator = (*clickstream.Service)(nil)

// Config configures a Dashboard.
type Config struct {
	// Engine is the stream engine. Required.
	Engine Engine
	// Keys, when set, requires a login with one of its access keys for
	// the page and /api/. A key sees the streams it may read; starting and
	// stopping the generator needs a key with all: true.
	Keys *auth.Keys
	// MultiRegion is set when the server scopes streams by account and
	// region (serve --multi-region): a key then sees its own account's
	// streams only.
	MultiRegion bool
	// SecureCookie marks the session cookie Secure (the server speaks
	// HTTPS).
	SecureCookie bool
	// SampleInterval is how often rates are sampled. The default is 1s.
	SampleInterval time.Duration
	// History is how many samples of rates are kept. The default is 300.
	History int
	// Logger receives operational messages. The default discards them.
	Logger *slog.Logger
	// Registerer receives the dashboard's metrics (logins by result).
	// The default keeps them to the dashboard.
	Registerer prometheus.Registerer
}

// Dashboard serves the page and /api/. Create it with New, serve Handler,
// and run Run for the rate sampler. Its methods are safe for concurrent use.
type Dashboard struct {
	cfg      Config
	log      *slog.Logger
	sessions *sessions
	rates    *rates
	static   http.Handler

	// logins counts login attempts by result; loginLogs paces the WARN
	// lines of refused and throttled ones.
	logins    *prometheus.CounterVec
	loginLogs *rate.Limiter

	pipelines atomic.Pointer[Pipelines]
	generator atomic.Pointer[generatorHandle]
	// remote are the pipelines `runnel run` processes report.
	remote remote
}

type generatorHandle struct {
	g      Generator
	stream string
}

// New returns a dashboard over cfg.Engine.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Engine == nil {
		return nil, errors.New("dashboard: an engine is required")
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 300
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger, rates: newRates(cfg.History), static: http.FileServerFS(sub),
		loginLogs: rate.NewLimiter(2, 10),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "runnel", Subsystem: "dashboard", Name: "logins_total",
			Help: "Dashboard login attempts by result: ok, refused (unknown key or wrong secret), throttled (too many attempts from the address or, after failures, for the key).",
		}, []string{"result"}),
	}
	for _, res := range []string{"ok", "refused", "throttled"} {
		d.logins.WithLabelValues(res)
	}
	if err := cfg.Registerer.Register(d.logins); err != nil {
		return nil, err
	}
	if cfg.Keys != nil {
		d.sessions = newSessions(cfg.Keys, cfg.SecureCookie)
	}
	return d, nil
}

// SetPipelines shows the pipelines of p (nil: none run in this server).
func (d *Dashboard) SetPipelines(p Pipelines) {
	if p == nil {
		d.pipelines.Store(nil)
		return
	}
	d.pipelines.Store(&p)
}

// SetGenerator shows g, writing to the named stream, with start and stop
// (nil: no generator runs in this server).
func (d *Dashboard) SetGenerator(g Generator, streamName string) {
	if g == nil {
		d.generator.Store(nil)
		return
	}
	d.generator.Store(&generatorHandle{g: g, stream: streamName})
}

// Run samples the streams' counters every SampleInterval, for the rates and
// their history, until ctx is done.
func (d *Dashboard) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.SampleInterval)
	defer t.Stop()
	d.rates.sample(time.Now(), d.cfg.Engine.Stats())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			d.rates.sample(now, d.cfg.Engine.Stats())
		}
	}
}

// Handler serves the page, its assets and /api/.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/session", d.handleSession)
	mux.HandleFunc("POST /api/login", d.handleLogin)
	mux.HandleFunc("POST /api/logout", d.handleLogout)
	mux.Handle("GET /api/streams", d.authed(d.handleStreams))
	mux.Handle("GET /api/streams/{name}", d.authed(d.handleStream))
	mux.Handle("GET /api/streams/{name}/tail", d.authed(d.handleTail))
	mux.Handle("GET /api/stats", d.authed(d.handleStats))
	mux.Handle("GET /api/pipelines", d.authed(d.handlePipelines))
	mux.HandleFunc("POST "+pipeline.ReportPath, d.handleReport)
	mux.Handle("GET /api/results", d.authed(d.handleResults))
	mux.Handle("GET /api/generator", d.authed(d.handleGenerator))
	mux.Handle("POST /api/generator/{action}", d.authed(d.handleGeneratorAction))
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}
	mux.HandleFunc("GET /api/", notFound)
	mux.HandleFunc("POST /api/", notFound)
	// The page itself loads without a session: it shows the login form
	// when /api/session says one is needed.
	mux.Handle("GET /", d.staticHandler())
	return mux
}

func (d *Dashboard) staticHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		d.static.ServeHTTP(w, r)
	})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
