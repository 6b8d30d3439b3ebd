package dashboard

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// loginThrottle bounds login attempts, so that guessing secrets is slow
// and one client's flood does not lock anybody else out. Every client
// address has its own budget of failed attempts (addrRate, addrBurst);
// every key id a budget of failures too (keyFailRate, keyFailBurst). An
// address whose budget is spent may not try again until it refills. Once
// a key's budget is spent, addresses that failed within failMemory may not
// try that key, while addresses that have not failed still may: a flood of
// wrong secrets from one place throttles that place, not the key's owner
// logging in elsewhere. Correct logins spend nothing.
//
// Its maps are bounded: addresses by maxAddrs (idle ones are dropped
// first; past that, new addresses share one budget), key ids by the
// credentials file (unknown ids share one entry). Safe for concurrent use.
type loginThrottle struct {
	mu    sync.Mutex
	addrs map[string]*addrState
	keys  map[string]*rate.Limiter
	known func(id string) bool
}

type addrState struct {
	lim    *rate.Limiter
	seen   time.Time
	failed time.Time
}

const (
	addrRate     = rate.Limit(1)
	addrBurst    = 10
	keyFailRate  = rate.Limit(2)
	keyFailBurst = 20
	failMemory   = 10 * time.Minute
	maxAddrs     = 10000
	// overflowAddr is the budget addresses share once maxAddrs are held.
	overflowAddr = "overflow"
)

func newLoginThrottle(known func(id string) bool) *loginThrottle {
	return &loginThrottle{addrs: map[string]*addrState{}, keys: map[string]*rate.Limiter{}, known: known}
}

// clientAddr is the address a request comes from, without its port.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func (t *loginThrottle) addr(a string, now time.Time) *addrState {
	if st := t.addrs[a]; st != nil {
		st.seen = now
		return st
	}
	if len(t.addrs) >= maxAddrs {
		for k, st := range t.addrs {
			// An address idle long enough to have refilled its budget and
			// forgotten its failures loses nothing by being dropped.
			if now.Sub(st.seen) > failMemory && now.Sub(st.failed) > failMemory {
				delete(t.addrs, k)
			}
		}
		if len(t.addrs) >= maxAddrs {
			a = overflowAddr
			if st := t.addrs[a]; st != nil {
				st.seen = now
				return st
			}
		}
	}
	st := &addrState{lim: rate.NewLimiter(addrRate, addrBurst), seen: now}
	t.addrs[a] = st
	return st
}

func (t *loginThrottle) key(id string) *rate.Limiter {
	if !t.known(id) {
		id = ""
	}
	l := t.keys[id]
	if l == nil {
		l = rate.NewLimiter(keyFailRate, keyFailBurst)
		t.keys[id] = l
	}
	return l
}

// allow reports whether a login attempt for key id from address a may be
// checked now; the reason names the budget that is spent.
func (t *loginThrottle) allow(a, id string, now time.Time) (ok bool, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.addr(a, now)
	if st.lim.TokensAt(now) < 1 {
		return false, "address"
	}
	recentlyFailed := !st.failed.IsZero() && now.Sub(st.failed) < failMemory
	if recentlyFailed && t.key(id).TokensAt(now) < 1 {
		return false, "key"
	}
	return true, ""
}

// failed records a failed login for key id from address a.
func (t *loginThrottle) failed(a, id string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.addr(a, now)
	st.failed = now
	st.lim.AllowN(now, 1)
	t.key(id).AllowN(now, 1)
}
