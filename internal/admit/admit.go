// Package admit decides which HTTP requests runnel serve lets in, before
// any handler acts on them, and bounds what a request's body may cost.
//
// Requests: without authentication the Host header must name this machine
// (a loopback name or address, the address the client connected to, or a
// host allowed by configuration), which defeats DNS rebinding: a web page
// whose name an attacker points at 127.0.0.1 sends its own name as Host.
// Requests a browser marks as coming from another site (Origin,
// Sec-Fetch-Site) are refused on every route, read-only or not, so no page
// elsewhere can drive the API, read the dashboard's JSON or hold an event
// stream open; opening the dashboard from a link (a top-level navigation)
// stays possible. A cross-origin policy (CORS) plugs in as
// Config.AllowOrigin, in the same step: a request from an origin it admits
// gets the CORS answer headers, and its preflight (OPTIONS) is answered
// here, before any handler.
//
// Bodies: see Bodies.
package admit

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Reasons a request is refused, the values of the reason label of
// runnel_http_refused_total.
const (
	ReasonHost         = "host"
	ReasonOrigin       = "origin"
	ReasonBodySlow     = "body_slow"
	ReasonBodyBusy     = "body_busy"
	ReasonBodyTooLarge = "body_too_large"
)

// Refusal is why a request is refused; Msg is for the client.
type Refusal struct {
	Reason string
	Status int
	Msg    string
}

func (e *Refusal) Error() string { return e.Msg }

// Config configures an Admission.
type Config struct {
	// CheckHost refuses requests whose Host is not this machine's (see
	// the package comment). Set it when requests are not authenticated.
	CheckHost bool
	// AllowedHosts are further host names or addresses (without port) the
	// Host header may name when CheckHost is set.
	AllowedHosts []string
	// AllowOrigin, when set, admits browser requests from an origin other
	// than the server's own (a CORS policy); nil admits only same-origin
	// requests. It is given the Origin header's value.
	AllowOrigin func(r *http.Request, origin string) bool
	// ExposeHeaders are the response headers a page from an admitted
	// origin may read (Access-Control-Expose-Headers).
	ExposeHeaders []string
	// Bodies bounds request bodies.
	Bodies BodyLimits
	// Registerer receives the admission metrics. Required.
	Registerer prometheus.Registerer
	// Logger receives a WARN line for refused requests (at most a few a
	// second, the rest counted in the metric). The default discards them.
	Logger *slog.Logger
}

// Admission admits requests and reads their bodies. It is safe for
// concurrent use.
type Admission struct {
	cfg     Config
	allowed []string
	refused *prometheus.CounterVec
	logs    *rate.Limiter
	log     *slog.Logger
	// Bodies reads request bodies within BodyLimits.
	Bodies *Bodies
}

// New returns an Admission for cfg and registers its metrics.
func New(cfg Config) (*Admission, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var allowed []string
	for _, h := range cfg.AllowedHosts {
		h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
		if h == "" || strings.ContainsAny(h, "/: ") && net.ParseIP(h) == nil {
			return nil, fmt.Errorf("allowed host %q: want a host name or IP address without a port", h)
		}
		allowed = append(allowed, h)
	}
	a := &Admission{
		cfg: cfg, allowed: allowed, log: cfg.Logger, logs: rate.NewLimiter(2, 10),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "runnel", Subsystem: "http", Name: "refused_total",
			Help: "HTTP requests refused before a handler acted on them, by reason: host (Host is not this machine), " +
				"origin (a browser request from another site), body_slow, body_busy (the body memory budget is spent), body_too_large.",
		}, []string{"reason"}),
	}
	for _, r := range []string{ReasonHost, ReasonOrigin, ReasonBodySlow, ReasonBodyBusy, ReasonBodyTooLarge} {
		a.refused.WithLabelValues(r)
	}
	b, err := newBodies(cfg.Bodies, a, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	a.Bodies = b
	if err := cfg.Registerer.Register(a.refused); err != nil {
		return nil, err
	}
	return a, nil
}

// Check admits or refuses r by its Host and origin.
func (a *Admission) Check(r *http.Request) *Refusal {
	if a.cfg.CheckHost && !a.localHost(r) {
		return a.refuse(r, &Refusal{Reason: ReasonHost, Status: http.StatusForbidden, Msg: fmt.Sprintf(
			"Host %q is not this machine: without --auth, runnel answers only requests addressed to a loopback name or address "+
				"(such as 127.0.0.1 or localhost); allow another name with --allow-host", r.Host)})
	}
	if !a.sameOrigin(r) {
		return a.refuse(r, &Refusal{Reason: ReasonOrigin, Status: http.StatusForbidden,
			Msg: "cross-origin request refused: a page from another site may not call this server"})
	}
	return nil
}

// Handler refuses what Check refuses, with refuse rendering the answer,
// and passes the rest to next.
func (a *Admission) Handler(next http.Handler, refuse func(http.ResponseWriter, *http.Request, *Refusal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := a.Check(r); e != nil {
			w.Header().Set("Connection", "close")
			refuse(w, r, e)
			return
		}
		if a.cors(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// corsMaxAge is how long (seconds) a browser may cache a preflight
// answer: two days, as Kinesis answers.
const corsMaxAge = "172800"

// cors adds the CORS answer headers to an admitted request from another
// origin, and answers it when it is a preflight (reporting true).
func (a *Admission) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || SameOrigin(r) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	if r.Method != http.MethodOptions || method == "" {
		if len(a.cfg.ExposeHeaders) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(a.cfg.ExposeHeaders, ","))
		}
		return false
	}
	h.Set("Access-Control-Allow-Methods", method)
	if hdrs := r.Header.Get("Access-Control-Request-Headers"); hdrs != "" {
		h.Set("Access-Control-Allow-Headers", hdrs)
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return true
}

// LoopbackOrigin reports whether origin (an Origin header's value) is a
// page served from this machine: http or https on localhost, a name under
// .localhost, or a loopback address, on any port.
func LoopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Path != "" || u.User != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *Admission) refuse(r *http.Request, e *Refusal) *Refusal {
	a.refused.WithLabelValues(e.Reason).Inc()
	if a.logs.Allow() {
		a.log.Warn("request refused", "reason", e.Reason, "remote", r.RemoteAddr, "host", r.Host,
			"origin", r.Header.Get("Origin"), "method", r.Method, "path", r.URL.Path)
	}
	return e
}

// Refused is the counter of refused requests for reason, for other parts
// that refuse requests for the reasons above.
func (a *Admission) Refused(r *http.Request, e *Refusal) *Refusal { return a.refuse(r, e) }

// localHost reports whether r's Host names this machine.
func (a *Admission) localHost(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || slices.Contains(a.allowed, host) {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	// The address the client connected to is this machine's, whatever
	// interface it is: a browser sends an address as Host only when it
	// connected to that address.
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if tcp, ok := la.(*net.TCPAddr); ok && tcp.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether r is SameOrigin or from an origin
// AllowOrigin admits.
func (a *Admission) sameOrigin(r *http.Request) bool {
	if SameOrigin(r) {
		return true
	}
	o := r.Header.Get("Origin")
	return o != "" && a.cfg.AllowOrigin != nil && a.cfg.AllowOrigin(r, o)
}

// SameOrigin reports whether r is not a browser request from another
// site: its Origin, when present, is this server's scheme and Host;
// without Origin, Sec-Fetch-Site, when present, says same-origin or none
// (typed by the user), or r is a top-level navigation to a page outside
// /api/ (following a link to the dashboard).
func SameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) && u.Scheme == scheme(r) && u.Path == ""
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Sec-Fetch-Mode") == "navigate" &&
		!strings.HasPrefix(r.URL.Path, "/api/")
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
