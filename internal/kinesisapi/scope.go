package kinesisapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/runnel-dev/runnel/internal/auth"
)

// With WithMultiRegion a request's streams live in its own account and
// region, as on Kinesis: the region its SigV4 credential scope names
// (Authorization: ... Credential=KEY/DATE/REGION/kinesis/aws4_request),
// the account of its key (auth.Key.Account), each defaulting to the
// server's. Stream names in requests are qualified with that scope before
// the engine sees them (stream.Service.Qualify); ARNs carry their own.

// scopeEngine is what scoping needs from the engine.
type scopeEngine interface {
	Qualify(region, account, name string) string
	SplitName(q string) (region, account, name string)
	InAccount(name string) string
	LogName(name string) slog.LogValuer
}

type requestScope struct{ region, account string }

type scopeKey struct{}

// WithMultiRegion scopes streams by the region each request is signed for
// and the account of its key, so one server stands in for several regions
// and accounts. The engine must be opened with stream.Config.MultiRegion.
func WithMultiRegion() Option { return func(o *handlerOptions) { o.multiRegion = true } }

// scopeOf returns the account and region a request acts in; the zero
// scope (the server's own) unless WithMultiRegion is on.
func (h *Handler) scopeOf(r *http.Request, key *auth.Key) requestScope {
	if !h.opts.multiRegion {
		return requestScope{}
	}
	var sc requestScope
	if key != nil {
		sc.account = key.Account
	}
	if _, params, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		cred, _, _ := strings.Cut(params, ",")
		if parts := strings.Split(strings.TrimSpace(cred), "/"); len(parts) == 5 && validRegion(parts[2]) {
			sc.region = parts[2]
		}
	}
	return sc
}

// validRegion accepts what AWS region names look like (us-east-1,
// us-gov-west-1), so a scope never holds a slash or other characters an
// engine name cannot.
func validRegion(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func withScope(ctx context.Context, sc requestScope) context.Context {
	if sc == (requestScope{}) {
		return ctx
	}
	return context.WithValue(ctx, scopeKey{}, sc)
}

// qualify returns the engine name of the stream a request names by its
// plain name.
func (h *Handler) qualify(ctx context.Context, name string) string {
	sc, ok := ctx.Value(scopeKey{}).(requestScope)
	if !ok {
		return name // the server's own scope
	}
	return h.svc.Qualify(sc.region, sc.account, name)
}

// inScope reports whether an engine stream name lies in the request's
// scope, and returns its plain name.
func (h *Handler) inScope(ctx context.Context, q string) (string, bool) {
	sc, _ := ctx.Value(scopeKey{}).(requestScope)
	want := h.svc.Qualify(sc.region, sc.account, "")
	region, account, name := h.svc.SplitName(q)
	return name, h.svc.Qualify(region, account, "") == want
}

// ownAccount reports whether an engine stream name lies in the request's
// account, in any region.
func (h *Handler) ownAccount(ctx context.Context, q string) bool {
	sc, _ := ctx.Value(scopeKey{}).(requestScope)
	return h.accountOf(q) == h.accountOf(h.svc.Qualify("", sc.account, ""))
}

// accountOf is the account of an engine stream name.
func (h *Handler) accountOf(q string) string {
	_, account, _ := h.svc.SplitName(q)
	return account
}

// plainName is the name a response shows for an engine stream name.
func (h *Handler) plainName(q string) string {
	if !strings.Contains(q, "/") {
		return q // the server's own scope
	}
	_, _, name := h.svc.SplitName(q)
	return name
}
