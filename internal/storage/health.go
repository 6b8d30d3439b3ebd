package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrUnavailable is wrapped by every error of a write refused because the
// store cannot take writes now. Three conditions refuse writes; the error's
// message names which, and its cause:
//
//   - pebble failed (an I/O error writing the write-ahead log, a failed
//     flush or compaction): its errors are sticky, so writes stay refused
//     until the process is restarted. Nothing acknowledged is lost: a put
//     is acknowledged only after its log write succeeded.
//   - free space in the data dir fell below Options.MinFreeBytes: writes
//     resume by themselves once space is back (with a margin), because
//     pebble itself never ran out.
//   - a write stall outlasted Options.StallTimeout: writes resume when it
//     ends.
//
// Reads keep working in all three.
var ErrUnavailable = errors.New("storage unavailable")

const (
	// spaceCheckBytes and spaceCheckInterval bound how much is written, or
	// how long passes, between two free-space checks on the write path.
	spaceCheckBytes    = 1 << 20
	spaceCheckInterval = 100 * time.Millisecond
	// spacePoll is how often free space is polled while writes are refused
	// for lack of it.
	spacePoll = 500 * time.Millisecond
)

// health latches the conditions that refuse writes (see ErrUnavailable).
type health struct {
	log          *slog.Logger
	dir          string
	minFree      int64
	stallTimeout time.Duration

	mu         sync.Mutex
	sticky     error // pebble failed: until restart
	stalled    error // a write stall past stallTimeout: until it ends
	lowSpace   error // free space below minFree: until it is back
	stallTimer *time.Timer
	// failed is closed while any condition holds, and replaced by an open
	// channel when the last one clears.
	failed chan struct{}
	cur    atomic.Pointer[error] // the reported error, nil when healthy

	fs        vfs.FS // set by start; nil until then
	fsDir     string
	unchecked atomic.Int64 // bytes written since the last space check
	lastCheck atomic.Int64 // UnixNano of the last space check
	polling   bool         // a space poller runs (guarded by mu)
	stopCh    chan struct{}
	wg        sync.WaitGroup
}

func (h *health) init(o Options) {
	h.log = o.Logger
	h.dir = o.Dir
	h.minFree = o.MinFreeBytes
	h.stallTimeout = o.StallTimeout
	h.failed = make(chan struct{})
	h.stopCh = make(chan struct{})
}

// start enables the free-space checks of the write path.
func (h *health) start(fs vfs.FS, dir string) {
	h.mu.Lock()
	h.fs, h.fsDir = fs, dir
	h.mu.Unlock()
	h.lastCheck.Store(time.Now().UnixNano())
}

// stop ends the space poller, if one runs, and any stall timer.
func (h *health) stop() {
	h.mu.Lock()
	select {
	case <-h.stopCh:
	default:
		close(h.stopCh)
	}
	if h.stallTimer != nil {
		h.stallTimer.Stop()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *health) err() error {
	if p := h.cur.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *health) failedSticky() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sticky != nil
}

func (h *health) failedCh() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}

// update recomputes the reported error after a change; the caller holds mu.
func (h *health) update() {
	err := h.sticky
	if err == nil {
		err = h.stalled
	}
	if err == nil {
		err = h.lowSpace
	}
	was := h.cur.Load() != nil
	switch {
	case err != nil:
		h.cur.Store(&err)
		if !was {
			close(h.failed)
		}
	case was:
		h.cur.Store(nil)
		h.failed = make(chan struct{})
	}
}

// fail latches a pebble failure: writes are refused until restart.
func (h *health) fail(cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sticky != nil {
		return
	}
	h.sticky = fmt.Errorf("%w: writing to %s failed (%w); writes are refused until runnel is restarted", ErrUnavailable, h.where(), cause)
	h.update()
	h.log.Error("storage failed: writes are refused until runnel is restarted; reads go on. Fix the cause (a full disk: free space), then restart runnel; nothing acknowledged is lost",
		"err", cause, "data_dir", h.dir)
}

func (h *health) where() string {
	if h.dir == "" {
		return "the store"
	}
	return "data dir " + h.dir
}

// stallBegin starts the clock on a write stall.
func (h *health) stallBegin(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stallTimer != nil {
		return
	}
	begun := time.Now()
	h.stallTimer = time.AfterFunc(h.stallTimeout, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.stallTimer == nil {
			return // ended meanwhile
		}
		h.stalled = fmt.Errorf("%w: pebble has held writes back since %s (%s): flushes are not keeping up or are failing; writes resume when the stall ends",
			ErrUnavailable, begun.UTC().Format(time.RFC3339), reason)
		h.update()
		h.log.Error("write stall: writes are refused until it ends; check the log for flush errors and the data dir's disk", "reason", reason, "since", begun, "data_dir", h.dir)
	})
}

// stallEnd clears a write stall.
func (h *health) stallEnd() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stallTimer != nil {
		h.stallTimer.Stop()
		h.stallTimer = nil
	}
	if h.stalled != nil {
		h.stalled = nil
		h.update()
		h.log.Warn("write stall ended: accepting writes again", "data_dir", h.dir)
	}
}

// beforeWrite returns the reported error, first checking free space when
// enough was written or enough time passed since the last check.
func (h *health) beforeWrite(n int) error {
	if err := h.err(); err != nil {
		return err
	}
	now := time.Now().UnixNano()
	if h.unchecked.Add(int64(n)) < spaceCheckBytes && now-h.lastCheck.Load() < int64(spaceCheckInterval) {
		return nil
	}
	h.unchecked.Store(0)
	h.lastCheck.Store(now)
	h.mu.Lock()
	fs, dir := h.fs, h.fsDir
	h.mu.Unlock()
	if fs == nil {
		return nil
	}
	if err := h.checkSpace(fs, dir, false); err != nil {
		return err
	}
	return h.err()
}

// checkSpace compares free space with minFree. Opening, it returns an
// error when space is short; later it latches the shortage and starts a
// poller that clears it once space is back. A filesystem that cannot say
// (an in-memory one) is never short.
func (h *health) checkSpace(fs vfs.FS, dir string, opening bool) error {
	if h.minFree < 0 {
		return nil
	}
	du, err := fs.GetDiskUsage(dir)
	if err != nil {
		return nil // unsupported: no guard
	}
	free := int64(du.AvailBytes)
	if free >= h.minFree {
		return nil
	}
	if opening {
		return fmt.Errorf("%s has %s free; runnel needs at least %s free to open it (for pebble's log and flushes): free space and start again",
			h.where(), mib(free), mib(h.minFree))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lowSpace == nil {
		h.lowSpace = fmt.Errorf("%w: %s has %s free, below the %s runnel keeps for pebble's log and flushes; free space, and writes resume by themselves",
			ErrUnavailable, h.where(), mib(free), mib(h.minFree))
		h.update()
		h.log.Error("disk nearly full: writes are refused until space is freed; reads go on",
			"data_dir", h.dir, "free", mib(free), "needed", mib(h.minFree+h.minFree/4))
	}
	if !h.polling {
		h.polling = true
		h.wg.Add(1)
		go h.pollSpace(fs, dir)
	}
	return nil
}

// pollSpace clears the free-space shortage once minFree plus a quarter is
// free, so writes do not flap at the threshold.
func (h *health) pollSpace(fs vfs.FS, dir string) {
	defer h.wg.Done()
	t := time.NewTicker(spacePoll)
	defer t.Stop()
	for {
		select {
		case <-h.stopCh:
			return
		case <-t.C:
		}
		du, err := fs.GetDiskUsage(dir)
		if err != nil || int64(du.AvailBytes) < h.minFree+h.minFree/4 {
			continue
		}
		h.mu.Lock()
		h.lowSpace = nil
		h.polling = false
		h.update()
		h.mu.Unlock()
		h.log.Warn("free space restored: accepting writes again", "data_dir", h.dir, "free", mib(int64(du.AvailBytes)))
		return
	}
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
