package stream

import (
	"log/slog"
	"strings"
)

// Streams are scoped by account and region, as on Kinesis: the same name
// in two regions (or accounts) names two streams. A stream of the engine's
// own account and region (Config.AccountID, Config.Region) is known by its
// plain name, as every stream was before scopes, so data directories
// written before keep their layout and meaning. A stream of another scope
// is known inside the engine by its qualified name, "region/account/name"
// (a stream name has no slash), under which it is stored, listed and
// addressed; ARN renders it with its own region and account, and
// NameFromARN reads it back. Only Config.MultiRegion streams take other
// scopes: without it every ARN must carry the engine's own.

// Qualify returns the engine's name for the stream name in region and
// account: the plain name in the engine's own scope (or when either is
// empty), the qualified name otherwise.
func (s *Service) Qualify(region, account, name string) string {
	if (region == "" || region == s.cfg.Region) && (account == "" || account == s.cfg.AccountID) {
		return name
	}
	if region == "" {
		region = s.cfg.Region
	}
	if account == "" {
		account = s.cfg.AccountID
	}
	return region + "/" + account + "/" + name
}

// SplitName returns the region, account and plain name of an engine
// stream name.
func (s *Service) SplitName(q string) (region, account, name string) {
	if r, rest, ok := strings.Cut(q, "/"); ok {
		if a, n, ok := strings.Cut(rest, "/"); ok {
			return r, a, n
		}
	}
	return s.cfg.Region, s.cfg.AccountID, q
}

// InAccount is how messages name the stream an engine name names: its
// plain name and its account ("orders under account 123456789012"), never
// the engine's qualified name.
func (s *Service) InAccount(name string) string {
	_, account, plain := s.SplitName(name)
	return plain + " under account " + account
}

// plain is the plain name of an engine stream name.
func (s *Service) plain(name string) string {
	_, _, plain := s.SplitName(name)
	return plain
}

// sameScope reports whether two engine stream names share account and
// region (limits such as the shard limit are per account and region).
func (s *Service) sameScope(a, b string) bool {
	ra, aa, _ := s.SplitName(a)
	rb, ab, _ := s.SplitName(b)
	return ra == rb && aa == ab
}

// LogName is how log lines name the stream an engine name names, as users
// name it: its plain name, followed by its region and account when they
// are not the engine's own ("orders (us-west-2, account 222222222222)").
func (s *Service) LogName(name string) slog.LogValuer {
	return logName{s, name}
}

type logName struct {
	s    *Service
	name string
}

func (n logName) LogValue() slog.Value {
	if !strings.Contains(n.name, "/") {
		return slog.StringValue(n.name)
	}
	region, account, plain := n.s.SplitName(n.name)
	return slog.StringValue(plain + " (" + region + ", account " + account + ")")
}
