package clickstream

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/internal/producer"
)

// Config configures a Service.
type Config struct {
	// Catalogue is the simulated store; default DefaultCatalogue().
	Catalogue *Catalogue
	// Writer receives every event; required. The Service does not close it.
	Writer producer.Writer
	// Token authorises /status, /start and /stop; required.
	Token string
	// Rate is the overall number of events per second; 0 means as fast
	// as Writer accepts them. The default is 0.
	Rate float64
	// Sessions is the number of concurrent simulated sessions; at least 1.
	Sessions int
	// Seed seeds the simulation; the same seed gives the same sessions.
	Seed uint64
	// Format is the events' shape: FormatJSON (the default) or FormatURL.
	Format string
	// Target describes where Writer delivers, for /info (for example
	// `stream "clickstream" at http://127.0.0.1:4567`).
	Target string
	// Metrics, when set, is served at GET /metrics behind the token (a
	// Prometheus scrape sends it as a bearer token).
	Metrics http.Handler
	// Now is the clock for event timestamps and pacing; default time.Now.
	Now func() time.Time
	// Logger receives operational messages; default discards them.
	Logger *slog.Logger
}

// MaxSessions bounds Config.Sessions.
const MaxSessions = 1_000_000

// Formats of the events.
const (
	// FormatJSON events are JSON objects (see Event), each a step of a
	// visitor's session, with the event id as partition key.
	FormatJSON = "json"
	// FormatURL events are {"url": URL} objects (see URLClick), each a
	// click on a product group's list or product, with a random UUID as
	// partition key.
	FormatURL = "url"
)

func (c *Config) validate() error {
	var errs []error
	if c.Writer == nil {
		errs = append(errs, errors.New("a writer is required"))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("a token is required"))
	}
	if !(c.Rate >= 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: must be a finite number of events per second, 0 or more", c.Rate))
	}
	if c.Sessions < 1 || c.Sessions > MaxSessions {
		errs = append(errs, fmt.Errorf("sessions %d: must be from 1 to %d", c.Sessions, MaxSessions))
	}
	switch c.Format {
	case "", FormatJSON:
	case FormatURL:
		if c.Catalogue != nil {
			errs = append(errs, c.Catalogue.CheckURLFormat())
		}
	default:
		errs = append(errs, fmt.Errorf("format %q: want %s or %s", c.Format, FormatJSON, FormatURL))
	}
	return errors.Join(errs...)
}

// Status is the answer of /status.
type Status struct {
	Running bool `json:"running"`
	// EventsSent counts events the writer accepted, over all runs.
	EventsSent int64 `json:"eventsSent"`
	// EventsDelivered counts events the writer's destination acknowledged.
	EventsDelivered int64 `json:"eventsDelivered"`
	// EventsPerSecond is the rate of the last ten seconds while running.
	EventsPerSecond float64 `json:"eventsPerSecond"`
	// Failures counts events that could not be delivered.
	Failures int64 `json:"failures"`
	// Sessions is the number of concurrent sessions while running, else 0.
	Sessions int `json:"sessions"`
	SimStats
	// StartedAt is when the current, or last, run started.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// StoppedAt is when the last run stopped, unset while running.
	StoppedAt *time.Time     `json:"stoppedAt,omitempty"`
	Writer    producer.Stats `json:"writer"`
	LastError string         `json:"lastError,omitempty"`
}

// Service runs a Simulator on demand and writes its events to a Writer.
// Its methods are safe for concurrent use.
type Service struct {
	cfg      Config
	tokenSum [sha256.Size]byte

	mu  sync.Mutex // guards the fields below
	sim *Simulator // used by the generator while it runs
	// pending is an event a stopped run had taken from sim but not
	// written; the next run writes it first, so no event is lost to a
	// stop. Used by the generator while it runs.
	pending   *producer.Record
	cancel    context.CancelFunc
	done      chan struct{} // closed when the generator returns; nil when never started or stopped
	startedAt time.Time
	stoppedAt time.Time

	sent          atomic.Int64
	writeFailures atomic.Int64

	statsMu   sync.Mutex // guards the fields below
	simStats  SimStats
	samples   []sample // (time, sent) about once a second, the last rateWindow
	lastError string
	exitedAt  time.Time // when the last generator returned
}

type sample struct {
	t time.Time
	n int64
}

const (
	rateWindow = 10 * time.Second
	// maxCatchUp bounds the burst the pacer allows after a stall.
	maxCatchUp = time.Second
	// minWait is the shortest wait the generator sleeps for; shorter ones
	// are carried over, so the average rate holds.
	minWait = time.Millisecond
)

// New returns a stopped Service.
func New(cfg Config) (*Service, error) {
	if cfg.Catalogue == nil {
		cfg.Catalogue = DefaultCatalogue()
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSON
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("clickstream: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Service{cfg: cfg, tokenSum: sha256.Sum256([]byte(cfg.Token))}
	s.sim = NewSimulator(cfg.Catalogue, cfg.Seed, cfg.Sessions, cfg.Now)
	return s, nil
}

// Start starts generating. It reports false when already running.
func (s *Service) Start() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running() {
		return false
	}
	s.reap()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	now := s.cfg.Now()
	s.startedAt, s.stoppedAt = now, time.Time{}
	s.statsMu.Lock()
	s.samples = append(s.samples[:0], sample{now, s.sent.Load()})
	s.lastError = ""
	s.statsMu.Unlock()
	go s.generate(ctx, s.sim, s.done)
	s.cfg.Logger.Info("clickstream generation started", "rate", s.cfg.Rate, "sessions", s.cfg.Sessions)
	return true
}

// Stop stops generating and waits until the generator has returned. It
// reports false when not running.
func (s *Service) Stop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.running()
	if s.done != nil {
		s.cancel()
		<-s.done
		s.reap()
	}
	if was {
		s.cfg.Logger.Info("clickstream generation stopped", "events", s.sent.Load())
	}
	return was
}

// running reports whether the generator runs. s.mu must be held.
func (s *Service) running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// reap forgets a generator that has returned. s.mu must be held.
func (s *Service) reap() {
	if s.done == nil {
		return
	}
	<-s.done
	s.cancel()
	s.done, s.cancel = nil, nil
	s.statsMu.Lock()
	s.stoppedAt = s.exitedAt
	s.statsMu.Unlock()
}

// Status returns the counters.
func (s *Service) Status() Status {
	s.mu.Lock()
	running := s.running()
	if !running {
		s.reap() // a generator that ended on its own
	}
	startedAt, stoppedAt := s.startedAt, s.stoppedAt
	s.mu.Unlock()

	now := s.cfg.Now()
	sent := s.sent.Load()
	ws := s.cfg.Writer.Stats()
	st := Status{
		Running:         running,
		EventsSent:      sent,
		EventsDelivered: ws.Delivered,
		Failures:        ws.Failed + s.writeFailures.Load(),
		Writer:          ws,
	}
	if running {
		st.Sessions = s.cfg.Sessions
	}
	if !startedAt.IsZero() {
		st.StartedAt = &startedAt
	}
	if !running && !stoppedAt.IsZero() {
		st.StoppedAt = &stoppedAt
	}
	s.statsMu.Lock()
	st.SimStats = s.simStats
	st.LastError = s.lastError
	if running && len(s.samples) > 0 {
		if dt := now.Sub(s.samples[0].t).Seconds(); dt > 0 {
			st.EventsPerSecond = math.Round(float64(sent-s.samples[0].n)/dt*10) / 10
		}
	}
	s.statsMu.Unlock()
	if st.LastError == "" {
		st.LastError = ws.LastError
	}
	return st
}

// generate writes sim's events until ctx is done or the writer fails.
func (s *Service) generate(ctx context.Context, sim *Simulator, done chan<- struct{}) {
	defer func() {
		s.statsMu.Lock()
		s.exitedAt = s.cfg.Now()
		s.statsMu.Unlock()
		close(done)
	}()
	p := newPacer(s.cfg.Rate, s.cfg.Now())
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if d := p.reserve(s.cfg.Now()); d >= minWait {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		rec := s.pending
		s.pending = nil
		if rec == nil {
			rec = s.next(sim)
		}
		if err := s.cfg.Writer.Write(ctx, *rec); err != nil {
			if ctx.Err() != nil {
				s.pending = rec // a Write that fails took nothing
				return
			}
			s.writeFailures.Add(1)
			s.statsMu.Lock()
			s.lastError = err.Error()
			s.statsMu.Unlock()
			s.cfg.Logger.Error("clickstream generation stopped: writer refused an event", "err", err)
			return
		}
		n := s.sent.Add(1)
		now := s.cfg.Now()
		s.statsMu.Lock()
		s.simStats = sim.Stats()
		if last := s.samples[len(s.samples)-1]; now.Sub(last.t) >= time.Second {
			s.samples = append(s.samples, sample{now, n})
			if keep := int(rateWindow / time.Second); len(s.samples) > keep {
				s.samples = append(s.samples[:0], s.samples[len(s.samples)-keep:]...)
			}
		}
		s.statsMu.Unlock()
	}
}

// next returns sim's next event as a record, in the configured format.
// Partition keys are random UUIDs, so events spread evenly over shards.
func (s *Service) next(sim *Simulator) *producer.Record {
	var (
		ev  any
		key string
	)
	if s.cfg.Format == FormatURL {
		ev, key = sim.NextURL(), sim.uuid()
	} else {
		e := sim.Next()
		ev, key = e, e.EventID
	}
	data, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("clickstream: encoding event: %v", err)) // events hold only strings and numbers
	}
	return &producer.Record{PartitionKey: key, Data: data}
}

// pacer spaces events at a rate. After a stall it allows a burst of at most
// maxCatchUp's worth of events.
type pacer struct {
	interval time.Duration // 0: no pacing
	next     time.Time
}

func newPacer(rate float64, now time.Time) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate), next: now}
}

// reserve books the next event's slot and returns how long to wait for it;
// 0 or less means now.
func (p *pacer) reserve(now time.Time) time.Duration {
	if p.interval == 0 {
		return 0
	}
	if earliest := now.Add(-maxCatchUp); p.next.Before(earliest) {
		p.next = earliest
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(p.interval)
	return d
}

// Run serves the HTTP API on ln until ctx is done, then stops generating
// and shuts the server down. It returns nil after a shutdown caused by ctx.
func (s *Service) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		s.Stop()
		return fmt.Errorf("serving clickstream API: %w", err)
	case <-ctx.Done():
	}
	s.Stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Handler returns the HTTP API: /info, /status, /start and /stop, and
// /metrics when Config.Metrics is set.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleInfo)
	mux.HandleFunc("GET /info", s.handleInfo)
	mux.HandleFunc("GET /status", s.authorised(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	}))
	start := s.authorised(func(w http.ResponseWriter, r *http.Request) {
		changed := s.Start()
		writeJSON(w, http.StatusOK, changeAnswer{Changed: changed, Status: s.Status()})
	})
	stop := s.authorised(func(w http.ResponseWriter, r *http.Request) {
		changed := s.Stop()
		writeJSON(w, http.StatusOK, changeAnswer{Changed: changed, Status: s.Status()})
	})
	mux.HandleFunc("GET /start", start)
	mux.HandleFunc("POST /start", start)
	mux.HandleFunc("GET /stop", stop)
	mux.HandleFunc("POST /stop", stop)
	if s.cfg.Metrics != nil {
		mux.HandleFunc("GET /metrics", s.authorised(s.cfg.Metrics.ServeHTTP))
	}
	return mux
}

// changeAnswer is the answer of /start and /stop. Changed is false when
// the generator already was in the requested state.
type changeAnswer struct {
	Changed bool   `json:"changed"`
	Status  Status `json:"status"`
}

// authorised lets a request through when it carries the token, as the
// token query parameter or as "Authorization: Bearer <token>".
func (s *Service) authorised(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := r.URL.Query().Get("token")
		if token == "" {
			if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
				token = v
			}
		}
		// Comparing fixed-length digests keeps the token's length secret.
		sum := sha256.Sum256([]byte(token))
		if token == "" || subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="runnel clickstream"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{
				"error": "missing or wrong token: pass ?token=TOKEN, the token printed when the generator started",
			})
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client may have gone; nothing to do then
}

func (s *Service) handleInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Info())
}

// Info is the answer of /info: what the generator is, how to use it and
// its configuration, never the token.
type Info struct {
	Service     string `json:"service"`
	Description string `json:"description"`
	// Usage lists the requests the generator answers.
	Usage []Usage `json:"usage"`
	// State is "running" or "stopped".
	State      string `json:"state"`
	EventsSent int64  `json:"eventsSent"`
	// Format is FormatJSON or FormatURL.
	Format      string `json:"format"`
	Destination string `json:"destination"`
	// Rate is in events per second; 0 is as fast as the destination
	// accepts them.
	Rate      float64       `json:"rate"`
	Sessions  int           `json:"sessions"`
	Seed      uint64        `json:"seed"`
	Catalogue CatalogueInfo `json:"catalogue"`
}

// Usage is one request the generator answers.
type Usage struct {
	Request string `json:"request"`
	Does    string `json:"does"`
}

// CatalogueInfo describes the catalogue in /info.
type CatalogueInfo struct {
	Name          string        `json:"name"`
	File          string        `json:"file"`
	Users         int           `json:"users"`
	Session       SessionSpec   `json:"session"`
	Probabilities Probabilities `json:"probabilities"`
	Campaigns     []string      `json:"campaigns"`
	ProductGroups []GroupInfo   `json:"productGroups"`
	URLs          URLSpec       `json:"urls"`
}

// GroupInfo describes a product group in /info.
type GroupInfo struct {
	Name string `json:"name"`
	ID   int    `json:"id"`
	// Share is the group's probability of being picked by a browse step
	// or a url click.
	Share      float64  `json:"share"`
	Products   []string `json:"products"`
	ProductIDs *IDRange `json:"productIds,omitempty"`
}

// Info describes the service, its use and its configuration.
func (s *Service) Info() Info {
	cat := s.cfg.Catalogue
	st := s.Status()
	info := Info{
		Service: "runnel clickstream generator",
		Description: fmt.Sprintf("Simulates the visitors of a web store, %q. Format json: sessions land on the home page, "+
			"browse product groups and products, see campaign banners, add to cart and check out; every event is one JSON record "+
			"(timestamp, sessionId, userId, eventType, page, section, element, productGroup, product, campaignId, ...) with its "+
			"event id as partition key. Format url: every event is a click on a product group's list or on one of its products, "+
			`written as {"url": URL} from the catalogue's urls templates, with a random UUID as partition key.`, cat.Name),
		Usage: []Usage{
			{"GET /status?token=TOKEN", "counters, as JSON"},
			{"GET /start?token=TOKEN", "start generating; starting twice is harmless"},
			{"GET /stop?token=TOKEN", "stop generating; stopping twice is harmless"},
			{"GET /info", "this description"},
			{"GET /metrics?token=TOKEN", "Prometheus metrics (standalone generator)"},
			{"Authorization: Bearer TOKEN", "the token as a header instead of ?token= (TOKEN was printed when the generator started)"},
		},
		State:       "stopped",
		EventsSent:  st.EventsSent,
		Format:      s.cfg.Format,
		Destination: s.cfg.Target,
		Rate:        s.cfg.Rate,
		Sessions:    s.cfg.Sessions,
		Seed:        s.cfg.Seed,
		Catalogue: CatalogueInfo{
			Name: cat.Name, File: cat.File(), Users: cat.Users,
			Session: cat.Session, Probabilities: cat.Probabilities, Campaigns: cat.Campaigns,
			URLs: cat.URLs,
		},
	}
	if st.Running {
		info.State = "running"
	}
	probs := cat.GroupProbabilities()
	for _, g := range cat.ProductGroups {
		gi := GroupInfo{Name: g.Name, ID: g.ID, Share: probs[g.Name], ProductIDs: g.ProductIDs}
		for _, p := range g.Products {
			gi.Products = append(gi.Products, p.ID)
		}
		info.Catalogue.ProductGroups = append(info.Catalogue.ProductGroups, gi)
	}
	return info
}
