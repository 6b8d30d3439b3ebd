package dashboard

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

// Bounds of the remote pipelines the dashboard keeps.
const (
	// maxProcesses is how many reporting processes are kept at once; a
	// new one past it is refused until one stops or is forgotten.
	maxProcesses = 64
	// maxProcessID bounds a process id's length.
	maxProcessID = 128
	// staleAfterReports is how many reports a process may miss before
	// its pipelines show as stale.
	staleAfterReports = 3
	// minStale is the shortest time before a process shows as stale.
	minStale = time.Second
	// forgetAfter is how long a stale process stays on the dashboard.
	forgetAfter = 2 * time.Minute
)

// ProcessInfo describes the `runnel run` process that runs a pipeline
// reported to this server.
type ProcessInfo struct {
	ID      string    `json:"id"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started"`
	// LastReport is when the process last reported.
	LastReport time.Time `json:"lastReport"`
	// Stale is set when the process has missed three reports: it has
	// stopped, hangs or cannot reach the server, and the figures are as
	// of LastReport.
	Stale bool `json:"stale"`
}

// remote holds the last report of every process reporting to the server.
type remote struct {
	mu    sync.Mutex
	procs map[string]*remoteProcess
}

type remoteProcess struct {
	rep   pipeline.ProcessReport
	keyID string // the access key that reported it, "" without auth
	last  time.Time
}

func (p *remoteProcess) info(now time.Time) *ProcessInfo {
	stale := max(minStale, time.Duration(staleAfterReports*p.rep.IntervalSeconds*float64(time.Second)))
	return &ProcessInfo{
		ID: p.rep.Process, Host: p.rep.Host, PID: p.rep.PID, Started: p.rep.Started,
		LastReport: p.last.UTC(), Stale: now.Sub(p.last) > stale,
	}
}

// errTooManyProcesses refuses a new process past maxProcesses.
var errTooManyProcesses = errors.New("too many processes report to this server; one must stop (or go quiet for " + forgetAfter.String() + ") first")

// put records a report made with the access key keyID.
func (rm *remote) put(rep pipeline.ProcessReport, keyID string, now time.Time) error {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	rm.expireLocked(now)
	p := rm.procs[rep.Process]
	if p != nil && p.keyID != keyID {
		return errors.New("process " + rep.Process + " reports with another access key")
	}
	if rep.Final {
		delete(rm.procs, rep.Process)
		return nil
	}
	if p == nil {
		if len(rm.procs) >= maxProcesses {
			return errTooManyProcesses
		}
		if rm.procs == nil {
			rm.procs = map[string]*remoteProcess{}
		}
		p = &remoteProcess{keyID: keyID}
		rm.procs[rep.Process] = p
	}
	p.rep, p.last = rep, now
	return nil
}

func (rm *remote) expireLocked(now time.Time) {
	for id, p := range rm.procs {
		if now.Sub(p.last) > forgetAfter+minStale {
			delete(rm.procs, id)
		}
	}
}

// processes returns the processes reported, oldest first.
func (rm *remote) processes(now time.Time) []*remoteProcess {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	rm.expireLocked(now)
	out := make([]*remoteProcess, 0, len(rm.procs))
	for _, p := range rm.procs {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *remoteProcess) int {
		if c := a.rep.Started.Compare(b.rep.Started); c != 0 {
			return c
		}
		return strings.Compare(a.rep.Process, b.rep.Process)
	})
	return out
}

// Reports returns the last report of every process that reports its
// pipelines to the server, oldest process first (metrics.ReportSource).
func (d *Dashboard) Reports() []metrics.Report {
	procs := d.remote.processes(time.Now())
	out := make([]metrics.Report, len(procs))
	for i, p := range procs {
		out[i] = metrics.Report{ProcessReport: p.rep, Received: p.last}
	}
	return out
}

// checkReportNames refuses a report whose figures could not stand beside
// the others in /metrics: the process id of the server's own pipelines,
// a pipeline named twice, or a shard twice in one pipeline.
func checkReportNames(rep pipeline.ProcessReport) error {
	if rep.Process == metrics.InServer {
		return errors.New("process: " + metrics.InServer + " names the server's own pipelines; want another id")
	}
	names := make(map[string]bool, len(rep.Pipelines))
	for _, p := range rep.Pipelines {
		if names[p.Name] {
			return errors.New("pipelines: " + p.Name + " is reported twice")
		}
		names[p.Name] = true
		shards := make(map[string]bool, len(p.Worker.Shards))
		for _, sh := range p.Worker.Shards {
			if shards[sh.ShardID] {
				return errors.New("pipelines: " + p.Name + ": shard " + sh.ShardID + " is reported twice")
			}
			shards[sh.ShardID] = true
		}
	}
	return nil
}

// handleReport takes a ProcessReport: POST /api/pipelines/report, signed
// with Signature Version 4 when authentication is on, by a key that may
// read every stream the reported pipelines read.
func (d *Dashboard) handleReport(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pipeline.MaxProcessReport))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "a report may be at most 1 MiB")
		return
	}
	var keyID string
	var key *auth.Key
	if d.cfg.Keys != nil {
		key, err = d.cfg.Keys.Verify(r, body, time.Now())
		if err != nil {
			d.log.Warn("pipeline report refused", "remote", r.RemoteAddr, "err", err)
			writeError(w, http.StatusUnauthorized, "sign the report with Signature Version 4 (service kinesis), as for the Kinesis API: "+err.Error())
			return
		}
		keyID = key.ID
	}
	var rep pipeline.ProcessReport
	if err := json.Unmarshal(body, &rep); err != nil {
		writeError(w, http.StatusBadRequest, "want a JSON process report: "+err.Error())
		return
	}
	if rep.Process == "" || len(rep.Process) > maxProcessID {
		writeError(w, http.StatusBadRequest, "process: want an id of 1 to 128 characters")
		return
	}
	if !(rep.IntervalSeconds > 0) {
		writeError(w, http.StatusBadRequest, "intervalSeconds: want more than 0")
		return
	}
	if err := checkReportNames(rep); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if key != nil {
		for _, p := range rep.Pipelines {
			if !key.Allows(auth.Read, p.Source) {
				writeError(w, http.StatusForbidden, "access key "+key.ID+" may not read stream "+p.Source+", the source of pipeline "+p.Name)
				return
			}
		}
	}
	if err := d.remote.put(rep, keyID, time.Now()); err != nil {
		code := http.StatusForbidden
		if errors.Is(err, errTooManyProcesses) {
			code = http.StatusServiceUnavailable
			d.log.Warn("pipeline report refused", "remote", r.RemoteAddr, "err", err)
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
