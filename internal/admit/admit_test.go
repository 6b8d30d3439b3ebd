package admit

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	a, err := New(Config{CheckHost: true, AllowedHosts: []string{"Dev.Example."}, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	open, err := New(Config{Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	local := &net.TCPAddr{IP: net.ParseIP("192.168.7.7"), Port: 4567}
	tests := []struct {
		name   string
		method string
		host   string
		header map[string]string
		tls    bool
		reason string // "" admitted
	}{
		{name: "loopback v4", host: "127.0.0.1:4567"},
		{name: "loopback v6", host: "[::1]:4567"},
		{name: "localhost", host: "localhost:4567"},
		{name: "sub.localhost", host: "app.localhost"},
		{name: "allowed host", host: "dev.example:80"},
		{name: "connected address", host: "192.168.7.7:4567"},
		{name: "rebound name", host: "evil.example:4567", reason: ReasonHost},
		{name: "other address", host: "10.1.2.3:4567", reason: ReasonHost},
		{name: "localhost lookalike", host: "localhost.evil.example", reason: ReasonHost},
		{name: "same origin", host: "127.0.0.1:4567", header: map[string]string{"Origin": "http://127.0.0.1:4567"}},
		{name: "same origin https", host: "127.0.0.1:4567", tls: true, header: map[string]string{"Origin": "https://127.0.0.1:4567"}},
		{name: "scheme differs", host: "127.0.0.1:4567", header: map[string]string{"Origin": "https://127.0.0.1:4567"}, reason: ReasonOrigin},
		{name: "rebound origin", host: "127.0.0.1:4567", header: map[string]string{"Origin": "http://evil.example:4567"}, reason: ReasonOrigin},
		{name: "null origin", host: "127.0.0.1:4567", header: map[string]string{"Origin": "null"}, reason: ReasonOrigin},
		{name: "cross-site fetch", host: "127.0.0.1:4567", header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, reason: ReasonOrigin},
		{name: "cross-site event stream", method: http.MethodGet, host: "127.0.0.1:4567",
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, reason: ReasonOrigin},
		{name: "same-site subdomain", host: "127.0.0.1:4567", header: map[string]string{"Sec-Fetch-Site": "same-site"}, reason: ReasonOrigin},
		{name: "typed url", host: "127.0.0.1:4567", header: map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}},
		{name: "link to the page", method: http.MethodGet, host: "127.0.0.1:4567",
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}},
		{name: "cross-site form post", method: http.MethodPost, host: "127.0.0.1:4567",
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, reason: ReasonOrigin},
		{name: "no browser headers", host: "127.0.0.1:4567"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, "http://"+tc.host+"/", nil)
			r.Host = tc.host
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
			got := a.Check(r)
			if tc.reason == "" {
				require.Nil(t, got)
			} else {
				require.NotNil(t, got)
				require.Equal(t, tc.reason, got.Reason, got.Msg)
				require.Equal(t, http.StatusForbidden, got.Status)
			}
			if tc.reason == ReasonHost {
				require.Nil(t, open.Check(r), "without the host check (--auth) the host is not refused")
			}
		})
	}
}

func TestAllowedHostsValidated(t *testing.T) {
	_, err := New(Config{AllowedHosts: []string{"dev.example:80"}, Registerer: prometheus.NewRegistry()})
	require.Error(t, err)
}

func TestLoopbackOrigin(t *testing.T) {
	t.Parallel()
	for origin, want := range map[string]bool{
		"http://localhost:3000": true, "https://localhost": true, "http://app.localhost:8080": true,
		"http://127.0.0.1:5173": true, "http://127.9.9.9": true, "http://[::1]:8080": true,
		"http://evil.example": false, "http://localhost.evil.example": false, "http://10.0.0.1": false,
		"null": false, "file://": false, "ftp://localhost": false, "http://localhost/path": false, "": false,
	} {
		require.Equal(t, want, LoopbackOrigin(origin), origin)
	}
}

// TestCORS: a request from an origin AllowOrigin admits gets the CORS
// headers and its preflight is answered before the next handler; one from
// another origin is refused without them.
func TestCORS(t *testing.T) {
	t.Parallel()
	a, err := New(Config{CheckHost: true, Registerer: prometheus.NewRegistry(),
		AllowOrigin:   func(_ *http.Request, o string) bool { return LoopbackOrigin(o) },
		ExposeHeaders: []string{"x-amzn-RequestId", "x-amz-id-2"}})
	require.NoError(t, err)
	reached := 0
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }),
		func(w http.ResponseWriter, r *http.Request, e *Refusal) { w.WriteHeader(e.Status) })
	do := func(method, origin string, header map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://127.0.0.1:4567/", nil)
		r.Header.Set("Origin", origin)
		for k, v := range header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	preflight := map[string]string{"Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "content-type,x-amz-target,authorization"}

	w := do(http.MethodOptions, "http://localhost:3000", preflight)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, 0, reached, "a preflight is answered before the handler")
	require.Equal(t, "http://localhost:3000", w.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, "POST", w.Header().Get("Access-Control-Allow-Methods"))
	require.Equal(t, "content-type,x-amz-target,authorization", w.Header().Get("Access-Control-Allow-Headers"))
	require.Equal(t, "172800", w.Header().Get("Access-Control-Max-Age"))
	require.Empty(t, w.Body.String())

	w = do(http.MethodPost, "http://localhost:3000", nil)
	require.Equal(t, 1, reached)
	require.Equal(t, "http://localhost:3000", w.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, "x-amzn-RequestId,x-amz-id-2", w.Header().Get("Access-Control-Expose-Headers"))
	require.Equal(t, "Origin", w.Header().Get("Vary"))

	for _, method := range []string{http.MethodOptions, http.MethodPost} {
		w = do(method, "http://evil.example", preflight)
		require.Equal(t, http.StatusForbidden, w.Code)
		require.Empty(t, w.Header().Get("Access-Control-Allow-Origin"))
	}
	require.Equal(t, 1, reached)

	// Same-origin requests are no CORS requests: no headers added.
	w = do(http.MethodPost, "http://127.0.0.1:4567", nil)
	require.Equal(t, 2, reached)
	require.Empty(t, w.Header().Get("Access-Control-Allow-Origin"))
}
