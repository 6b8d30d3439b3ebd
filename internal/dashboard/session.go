package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/admit"
	"github.com/runnel-dev/runnel/internal/auth"
)

const (
	cookieName = "runnel_session"
	// sessionTTL is how long a login lasts.
	sessionTTL = 12 * time.Hour
)

// sessions issues and checks session cookies. A cookie is
// "<key id>.<expiry unix>.<mac>" where mac is HMAC-SHA256, under a secret
// made at start, of the id, the expiry and a digest of the key's secret: a
// restart or a changed secret ends every session.
type sessions struct {
	keys   *auth.Keys
	secret [32]byte
	secure bool
	// logins bounds login attempts, against guessing secrets.
	logins *loginThrottle
}

func newSessions(keys *auth.Keys, secure bool) *sessions {
	s := &sessions{keys: keys, secure: secure, logins: newLoginThrottle(func(id string) bool { return keys.Lookup(id) != nil })}
	_, _ = rand.Read(s.secret[:])
	return s
}

func (s *sessions) mac(key *auth.Key, expiry int64) []byte {
	secretSum := sha256.Sum256([]byte(key.Secret))
	m := hmac.New(sha256.New, s.secret[:])
	m.Write([]byte(key.ID))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(expiry, 10)))
	m.Write([]byte{0})
	m.Write(secretSum[:])
	return m.Sum(nil)
}

// login checks an access key id and secret and returns the cookie that
// carries the session.
func (s *sessions) login(id, secret string, now time.Time) (*http.Cookie, *auth.Key, bool) {
	key := s.keys.Lookup(id)
	want := []byte("\x00no such key")
	if key != nil {
		want = []byte(key.Secret)
	}
	// Compare even for an unknown id, so timing does not tell ids apart.
	ok := subtle.ConstantTimeCompare(want, []byte(secret)) == 1 && key != nil
	if !ok {
		return nil, nil, false
	}
	exp := now.Add(sessionTTL).Unix()
	v := base64.RawURLEncoding.EncodeToString([]byte(key.ID)) + "." + strconv.FormatInt(exp, 10) + "." +
		base64.RawURLEncoding.EncodeToString(s.mac(key, exp))
	return s.cookie(v, int(sessionTTL/time.Second)), key, true
}

func (s *sessions) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode,
	}
}

// check returns the key of the request's session, or nil.
func (s *sessions) check(r *http.Request, now time.Time) *auth.Key {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return nil
	}
	id, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() >= exp {
		return nil
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil
	}
	key := s.keys.Lookup(string(id))
	if key == nil || !hmac.Equal(mac, s.mac(key, exp)) {
		return nil
	}
	return key
}

type keyContext struct{}

// requestKey is the logged-in key, nil when authentication is off.
func requestKey(ctx context.Context) *auth.Key {
	k, _ := ctx.Value(keyContext{}).(*auth.Key)
	return k
}

// RequestKey returns the access key of r's dashboard session: ok is false
// when authentication is on and r has no valid session; key is nil when
// authentication is off. Endpoints served beside the dashboard (/metrics,
// /api/counts) authorize with it, by the key's stream permissions as the
// Kinesis API does (auth.Key.Allows, auth.Key.ReadsAll, MayReadPipeline).
func (d *Dashboard) RequestKey(r *http.Request) (key *auth.Key, ok bool) {
	if d.sessions == nil {
		return nil, true
	}
	key = d.sessions.check(r, time.Now())
	return key, key != nil
}

// authed requires a session when authentication is on; POSTs must also
// come from this origin.
func (d *Dashboard) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		if d.sessions == nil {
			h(w, r)
			return
		}
		key := d.sessions.check(r, time.Now())
		if key == nil {
			writeError(w, http.StatusUnauthorized, "log in with an access key")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), keyContext{}, key)))
	})
}

// sameOrigin reports whether a state-changing request comes from the
// dashboard's own page (the cookie is SameSite=Strict as well). runnel
// serve checks every request the same way before it reaches the
// dashboard; this keeps the dashboard safe on its own.
func sameOrigin(r *http.Request) bool { return admit.SameOrigin(r) }

// allowsRead reports whether the request's key may read the stream the
// engine names streamName. Under MultiRegion a key reads in its own
// account only (a key without one is the server's), as the API lets it.
func (d *Dashboard) allowsRead(ctx context.Context, streamName string) bool {
	k := requestKey(ctx)
	if k == nil {
		return true
	}
	_, account, plain := d.cfg.Engine.SplitName(streamName)
	if d.cfg.MultiRegion {
		_, own, _ := d.cfg.Engine.SplitName("")
		if k.Account != "" {
			own = k.Account
		}
		if account != own {
			return false
		}
	}
	return k.Allows(auth.Read, plain)
}

// sessionAnswer is the answer of /api/session and /api/login.
type sessionAnswer struct {
	// AuthRequired is set when the server runs with --auth.
	AuthRequired bool `json:"authRequired"`
	// LoggedIn is set when the request carries a valid session (always
	// when authentication is off).
	LoggedIn bool `json:"loggedIn"`
	// AccessKeyID is the session's key.
	AccessKeyID string `json:"accessKeyId,omitempty"`
	// Admin is set for a key with all: true (or without authentication):
	// it may start and stop the generator.
	Admin bool `json:"admin"`
}

func (d *Dashboard) handleSession(w http.ResponseWriter, r *http.Request) {
	if d.sessions == nil {
		writeJSON(w, http.StatusOK, sessionAnswer{LoggedIn: true, Admin: true})
		return
	}
	a := sessionAnswer{AuthRequired: true}
	if k := d.sessions.check(r, time.Now()); k != nil {
		a.LoggedIn, a.AccessKeyID, a.Admin = true, k.ID, k.All
	}
	writeJSON(w, http.StatusOK, a)
}

func (d *Dashboard) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if d.sessions == nil {
		writeJSON(w, http.StatusOK, sessionAnswer{LoggedIn: true, Admin: true})
		return
	}
	var in struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "want a JSON body with accessKeyId and secretAccessKey")
		return
	}
	now, addr := time.Now(), clientAddr(r)
	if ok, why := d.sessions.logins.allow(addr, in.AccessKeyID, now); !ok {
		d.logins.WithLabelValues("throttled").Inc()
		if d.loginLogs.Allow() {
			d.log.Warn("dashboard login throttled", "access_key_id", in.AccessKeyID, "remote", r.RemoteAddr, "budget", why)
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too many login attempts from this address; try again in a moment")
		return
	}
	c, key, ok := d.sessions.login(in.AccessKeyID, in.SecretAccessKey, now)
	if !ok {
		d.sessions.logins.failed(addr, in.AccessKeyID, now)
		d.logins.WithLabelValues("refused").Inc()
		if d.loginLogs.Allow() {
			d.log.Warn("dashboard login refused", "access_key_id", in.AccessKeyID, "remote", r.RemoteAddr)
		}
		writeError(w, http.StatusUnauthorized, "unknown access key id or wrong secret")
		return
	}
	d.logins.WithLabelValues("ok").Inc()
	http.SetCookie(w, c)
	writeJSON(w, http.StatusOK, sessionAnswer{AuthRequired: true, LoggedIn: true, AccessKeyID: key.ID, Admin: key.All})
}

func (d *Dashboard) handleLogout(w http.ResponseWriter, r *http.Request) {
	if d.sessions != nil {
		http.SetCookie(w, d.sessions.cookie("", -1))
	}
	writeJSON(w, http.StatusOK, sessionAnswer{AuthRequired: d.sessions != nil})
}
