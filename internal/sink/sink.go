// Package sink is what every built-in processor shares when it writes to
// an outside system (Redis, DynamoDB, S3, a stream) or waits for one (a
// handler process): one sorting of errors in two, one capped-backoff retry
// loop, and one way to make a wait visible.
//
// The contract of a write: a func(ctx) error that returns nil when the
// data is stored, an error wrapped with Poison when the data itself is
// wrong for the target (retrying cannot help: the caller sends the records
// to the pipeline's on-failure destination with the reason), and any other
// error when the target is unavailable, throttling or failing (retrying
// can help). Retry.Do repeats an unavailable write with capped backoff for
// as long as ctx lasts, so a sink outage holds the shard in order and
// never diverts good records; while it waits it reports a Wait to the
// Reporter that the caller of the processor put in ctx (the consumer
// shows it in status, metrics and the dashboard).
//
// When ctx ends before the target comes back, Do returns an error that
// wraps ErrUnavailable: the batch did not fail, it was not written, and
// the consumer invokes it again without counting a retry.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/smithy-go"

	"github.com/runnel-dev/runnel/internal/backoff"
)

// ErrUnavailable is wrapped by errors that say a target could not take a
// write (unreachable, throttling, failing) for reasons that have nothing
// to do with the data: the write may be repeated later unchanged.
var ErrUnavailable = errors.New("unavailable")

// PoisonError marks an error caused by the data written: the target
// refuses it and will refuse it again.
type PoisonError struct{ Err error }

func (e *PoisonError) Error() string { return e.Err.Error() }
func (e *PoisonError) Unwrap() error { return e.Err }

// Poison marks err as caused by the data; nil stays nil.
func Poison(err error) error {
	if err == nil {
		return nil
	}
	return &PoisonError{Err: err}
}

// PoisonCodes marks err as poison when it wraps an AWS API error whose
// code is one of codes (the errors a request earns by what it holds).
func PoisonCodes(err error, codes ...string) error {
	var api smithy.APIError
	if errors.As(err, &api) && slices.Contains(codes, api.ErrorCode()) {
		return Poison(err)
	}
	return err
}

// IsPoison reports whether err, or an error it wraps, was marked by
// Poison.
func IsPoison(err error) bool {
	var p *PoisonError
	return errors.As(err, &p)
}

// UnavailableError is what Do returns when its ctx ended while the target
// was still unavailable. It wraps both ErrUnavailable and the last error.
type UnavailableError struct {
	Wait Wait
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s unavailable since %s: %v", e.Wait.Target, e.Wait.Since.UTC().Format(time.TimeOnly), e.Wait.Err)
}

// Unwrap returns ErrUnavailable and the target's last error.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Wait.Err} }

// Unavailable returns an error wrapping ErrUnavailable that says target
// could not be reached since since because of err.
func Unavailable(target string, since time.Time, err error) error {
	return &UnavailableError{Wait: Wait{Target: target, Since: since, Err: err}}
}

// Wait describes a write held up by an unavailable target.
type Wait struct {
	// Target names what is waited for: "redis 127.0.0.1:6379",
	// "dynamodb table events", "handler process 0".
	Target string
	// Since is when the wait began.
	Since time.Time
	// Err is the target's latest error.
	Err error
}

// String reads "blocked since 02:31:07: redis 127.0.0.1:6379: dial tcp
// 127.0.0.1:6379: connect: connection refused".
func (w Wait) String() string {
	return fmt.Sprintf("blocked since %s: %s: %v", w.Since.UTC().Format(time.TimeOnly), w.Target, w.Err)
}

// A Reporter hears about waits: Blocked each time a write to a target
// fails and will be tried again, Unblocked when the target took it.
type Reporter interface {
	Blocked(w Wait)
	Unblocked()
}

type reporterKey struct{}

// WithReporter returns ctx carrying r, for the processors invoked with it.
func WithReporter(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, reporterKey{}, r)
}

// ReporterFrom returns the Reporter ctx carries, or one that discards.
func ReporterFrom(ctx context.Context) Reporter {
	if r, ok := ctx.Value(reporterKey{}).(Reporter); ok {
		return r
	}
	return discard{}
}

type discard struct{}

func (discard) Blocked(Wait) {}
func (discard) Unblocked()   {}

// Default retry delays.
const (
	DefaultBase    = 50 * time.Millisecond
	DefaultCeiling = 5 * time.Second
	// warnEvery is how often a continuing wait is logged again.
	warnEvery = time.Minute
)

// Retry is the retry policy of one target, shared by every write to it
// (it is safe for concurrent use): the target is down from its first
// failed write until a write succeeds, whichever batch makes them. Set
// the fields before the first Do.
type Retry struct {
	// Target names the target in logs, status and errors, such as
	// "redis 127.0.0.1:6379".
	Target string
	// Base and Ceiling shape the backoff between attempts (see
	// backoff.Delay).
	// Defaults DefaultBase and DefaultCeiling.
	Base, Ceiling time.Duration
	// Logger gets a WARN line when the target goes down (and every
	// minute it stays down) and an INFO line when it is back. Nil
	// discards.
	Logger *slog.Logger

	mu     sync.Mutex
	since  time.Time // when the target went down; zero while it is up
	warned time.Time // when the last WARN was logged
}

// Do calls write until it returns nil or a poison error, or until ctx
// ends. Any other error from write means the target is unavailable: the
// wait is reported to ctx's Reporter and logged, and write is called again
// after a capped backoff. write is responsible for remembering any partial
// progress between calls (for example, the items a call did store).
//
// Do returns nil, write's poison error, or (ctx ended first) an error
// wrapping ErrUnavailable and the last error.
func (r *Retry) Do(ctx context.Context, write func(ctx context.Context) error) error {
	base, ceiling := r.Base, r.Ceiling
	if base <= 0 {
		base = DefaultBase
	}
	if ceiling < base {
		ceiling = max(DefaultCeiling, base)
	}
	rep := ReporterFrom(ctx)
	blocked := false
	var last error // the target's last answer
	for attempt := 1; ; attempt++ {
		err := write(ctx)
		if err == nil || IsPoison(err) {
			r.up(attempt)
			if blocked {
				rep.Unblocked()
			}
			return err
		}
		// An error that only says ctx ended is no news about the target:
		// the wait ends with what the target said last.
		if ctx.Err() != nil {
			if last != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				err = last
			}
			return Unavailable(r.Target, r.down(attempt, err), err)
		}
		since := r.down(attempt, err)
		last = err
		blocked = true
		rep.Blocked(Wait{Target: r.Target, Since: since, Err: err})
		if !backoff.Sleep(ctx, backoff.Delay(attempt, base, ceiling)) {
			return Unavailable(r.Target, since, err)
		}
	}
}

func (r *Retry) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// down notes a failed write and returns since when the target is down.
func (r *Retry) down(attempt int, err error) time.Time {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.since.IsZero() {
		r.since = now
	}
	if now.Sub(r.warned) >= warnEvery {
		r.warned = now
		r.logger().Warn("target unavailable; holding its batches and retrying", "target", r.Target,
			"since", r.since.UTC().Format(time.TimeOnly), "attempt", attempt, "err", err)
	}
	return r.since
}

// up notes a write the target took.
func (r *Retry) up(attempt int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.since.IsZero() {
		return
	}
	r.logger().Info("target available again", "target", r.Target, "down", time.Since(r.since).Round(time.Millisecond), "attempt", attempt)
	r.since, r.warned = time.Time{}, time.Time{}
}

// Writer stores batches in one target (a Redis hash, a DynamoDB table, a
// directory or bucket, a stream). Write returns nil once the whole batch
// is stored; an error marked Poison when the target refuses the data
// itself; or, when ctx ends while the target is still unavailable, an
// error wrapping ErrUnavailable. While the target is unavailable Write
// waits and tries again through the writer's Retry, so the wait shows
// like any other. A batch written twice leaves what writing it once
// leaves, except on a stream, which appends.
type Writer[T any] interface {
	Write(ctx context.Context, batch []T) error
}
