package admit

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/bufpool"
)

// Bodies reads request bodies at a bounded cost: no body may pause longer
// than Timeout or, after its first Timeout, arrive slower than MinRate on
// average, and the bodies being read at once hold at most MaxBodies ×
// FreeBytes plus Memory bytes of buffers. The first FreeBytes of every
// body are read without touching the shared budget, so small requests
// (most Kinesis calls) keep working while large bodies have spent it;
// a body that needs more than the budget has left is refused at once.
//
// The read deadline of the request's connection (or HTTP/2 stream) is
// moved forward before every read, so a stalled client is cut off by the
// network stack itself, and cleared once the body is read.
type Bodies struct {
	lim     BodyLimits
	a       *Admission
	bodies  atomic.Int64 // bodies being read
	charged atomic.Int64 // bytes of Memory in use
	gauge   prometheus.GaugeFunc
}

// BodyLimits bound request bodies; zero fields take the defaults.
type BodyLimits struct {
	// Timeout is the longest a body may pause, and the time it has before
	// MinRate applies. The default is 10s.
	Timeout time.Duration
	// MinRate is the lowest average rate, in bytes a second, a body may
	// arrive at after its first Timeout. The default is 64 KiB/s.
	MinRate int64
	// Memory is the most bytes all bodies being read at once may hold
	// beyond their first FreeBytes. The default is 128 MiB.
	Memory int64
	// MaxBodies is the most bodies read at once; more are refused. The
	// default is 1024.
	MaxBodies int64
	// FreeBytes of each body are read without charge to Memory. The
	// default is 64 KiB.
	FreeBytes int64
}

// Defaults fills the zero fields of l.
func (l BodyLimits) Defaults() BodyLimits {
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	if l.MinRate <= 0 {
		l.MinRate = 64 << 10
	}
	if l.Memory <= 0 {
		l.Memory = 128 << 20
	}
	if l.MaxBodies <= 0 {
		l.MaxBodies = 1024
	}
	if l.FreeBytes <= 0 {
		l.FreeBytes = 64 << 10
	}
	return l
}

// WorstCase is the most bytes the buffers of bodies being read at once
// may hold.
func (l BodyLimits) WorstCase() int64 {
	l = l.Defaults()
	return l.Memory + l.MaxBodies*l.FreeBytes
}

func newBodies(lim BodyLimits, a *Admission, reg prometheus.Registerer) (*Bodies, error) {
	b := &Bodies{lim: lim.Defaults(), a: a}
	b.gauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "runnel", Subsystem: "http", Name: "body_buffer_bytes",
		Help: "Bytes of the shared request-body budget (--body-memory) held by bodies being read.",
	}, func() float64 { return float64(b.charged.Load()) })
	if err := reg.Register(b.gauge); err != nil {
		return nil, err
	}
	return b, nil
}

// Limits are the limits in force.
func (b *Bodies) Limits() BodyLimits { return b.lim }

// ReadAll reads r's body, of at most limit bytes, within the limits,
// writing what it reads to tee as well when tee is not nil (a hash that
// verifies the body as it arrives). The returned release gives the body's
// share of the budget back, and its buffer to the next body: call it once
// the body is no longer used, as nothing may read the body after (it is
// never nil, and calling it again does nothing). A failure is a *Refusal:
// too large (413), too slow (408) or over the budget (503); the body is
// then left unread and the connection closes after the answer.
func (b *Bodies) ReadAll(w http.ResponseWriter, r *http.Request, limit int64, tee io.Writer) (body []byte, release func(), err error) {
	noop := func() {}
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		return nil, noop, b.tooLarge(r, limit)
	}
	if b.bodies.Add(1) > b.lim.MaxBodies {
		b.bodies.Add(-1)
		w.Header().Set("Connection", "close")
		return nil, noop, b.busy(r)
	}
	var (
		charged int64  // of Memory, for backing (see charge)
		backing []byte // buf's whole buffer
	)
	release = func() {
		b.charged.Add(-charged)
		charged = 0
		bodyBufs.Put(backing)
		backing = nil
	}
	defer b.bodies.Add(-1)
	// charge takes from Memory what a backing of n bytes costs beyond the
	// one held, the first FreeBytes (and the byte after them, which finds
	// the end of a body of FreeBytes) being free; false when Memory has
	// not got it.
	charge := func(n int64) bool {
		extra := max(0, n-b.lim.FreeBytes-1) - charged
		if extra <= 0 {
			return true
		}
		if b.charged.Add(extra) > b.lim.Memory {
			b.charged.Add(-extra)
			return false
		}
		charged += extra
		return true
	}
	// grow gives buf a capacity of n, within backing while it is large
	// enough. A new backing is charged for; what the body holds is its
	// backing, so a reused one larger than the body needs is charged for
	// in full.
	grow := func(buf []byte, n int64) ([]byte, bool) {
		if int64(cap(backing)) >= n {
			return backing[:len(buf):n], true
		}
		if !charge(n) {
			return nil, false
		}
		grown := make([]byte, len(buf), n)
		copy(grown, buf)
		backing = grown
		return grown, true
	}

	ctl := http.NewResponseController(w)
	start := time.Now()
	// A known length is the most the buffer needs; the first FreeBytes
	// are allocated at once. The buffer of a body read before is taken
	// when this one's length is known, the buffer is at most twice that,
	// and Memory has room for all of it.
	want := limit
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	if reused := bodyBufs.Get(); r.ContentLength >= 0 && int64(cap(reused)) <= 2*(want+1) && charge(int64(cap(reused))) {
		backing = reused
	} else {
		bodyBufs.Put(reused)
	}
	buf, _ := grow(nil, min(want, b.lim.FreeBytes)+1) // free: never refused
	src := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			oldCap := int64(cap(buf))
			newCap := min(max(2*oldCap, 64<<10), want+1)
			if newCap <= oldCap {
				newCap = oldCap + 64<<10
			}
			var ok bool
			if buf, ok = grow(buf, newCap); !ok {
				release()
				w.Header().Set("Connection", "close")
				return nil, noop, b.busy(r)
			}
		}
		now := time.Now()
		deadline := min64time(now.Add(b.lim.Timeout),
			start.Add(b.lim.Timeout+time.Duration(float64(len(buf))/float64(b.lim.MinRate)*float64(time.Second))))
		_ = ctl.SetReadDeadline(deadline) // not every ResponseWriter supports deadlines
		n, rerr := src.Read(buf[len(buf):cap(buf)])
		if tee != nil && n > 0 {
			_, _ = tee.Write(buf[len(buf) : len(buf)+n]) // hashes do not fail
		}
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			release()
			w.Header().Set("Connection", "close")
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(rerr, &tooLarge):
				return nil, noop, b.tooLarge(r, limit)
			case errors.Is(rerr, os.ErrDeadlineExceeded):
				return nil, noop, b.a.refuse(r, &Refusal{Reason: ReasonBodySlow, Status: http.StatusRequestTimeout, Msg: fmt.Sprintf(
					"The request body arrived too slowly: after %s it must keep arriving at %d bytes a second or more, with no pause over %s.",
					b.lim.Timeout, b.lim.MinRate, b.lim.Timeout)})
			default:
				return nil, noop, fmt.Errorf("reading request body: %w", rerr)
			}
		}
	}
	_ = ctl.SetReadDeadline(time.Time{})
	return buf, release, nil
}

// bodyBufs holds body buffers, of up to 8 MiB, between requests: a
// PutRecords body of 500 records of 100 bytes is about 100 KB.
var bodyBufs = bufpool.New(8 << 20)

func min64time(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (b *Bodies) tooLarge(r *http.Request, limit int64) *Refusal {
	return b.a.refuse(r, &Refusal{Reason: ReasonBodyTooLarge, Status: http.StatusRequestEntityTooLarge,
		Msg: fmt.Sprintf("The request body exceeds the limit of %d bytes.", limit)})
}

func (b *Bodies) busy(r *http.Request) *Refusal {
	return b.a.refuse(r, &Refusal{Reason: ReasonBodyBusy, Status: http.StatusServiceUnavailable,
		Msg: "The server is reading as many request bodies as its memory budget allows; retry shortly."})
}
