package dashboard

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/clickstream"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/stream"
)

// StreamInfo is one stream as /api/streams describes it.
type StreamInfo struct {
	Scope
	ARN            string      `json:"arn"`
	Status         string      `json:"status"`
	Mode           string      `json:"mode"`
	RetentionHours int         `json:"retentionHours"`
	Created        time.Time   `json:"created"`
	OpenShards     int         `json:"openShards"`
	Shards         []ShardInfo `json:"shards"`
}

// ShardInfo is one shard with its hash-key range and lineage.
type ShardInfo struct {
	ID                     string    `json:"id"`
	Open                   bool      `json:"open"`
	ParentShardID          string    `json:"parentShardId,omitempty"`
	AdjacentParentShardID  string    `json:"adjacentParentShardId,omitempty"`
	StartingHashKey        string    `json:"startingHashKey"`
	EndingHashKey          string    `json:"endingHashKey"`
	StartingSequenceNumber string    `json:"startingSequenceNumber"`
	EndingSequenceNumber   string    `json:"endingSequenceNumber,omitempty"`
	Created                time.Time `json:"created"`
	Closed                 time.Time `json:"closed,omitzero"`
}

// Scope names a stream as users do: by its plain name in its region and
// account. ID is what /api/streams/{id} takes: the plain name for a stream
// of the server's own region and account, "region/account/name" for one
// of another (under serve --multi-region).
type Scope struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Region  string `json:"region"`
	Account string `json:"account"`
}

// scope is the Scope of the engine's stream name id.
func (d *Dashboard) scope(id string) Scope {
	region, account, name := d.cfg.Engine.SplitName(id)
	return Scope{ID: id, Name: name, Region: region, Account: account}
}

func (d *Dashboard) streamInfo(id string, desc *stream.Description) StreamInfo {
	s := StreamInfo{
		Scope: d.scope(id), ARN: desc.ARN, Status: desc.Status, Mode: desc.Mode,
		RetentionHours: desc.RetentionHours, Created: desc.Created, OpenShards: desc.OpenShardCount,
		Shards: make([]ShardInfo, 0, len(desc.Shards)),
	}
	for _, sh := range desc.Shards {
		s.Shards = append(s.Shards, ShardInfo{
			ID: sh.ID, Open: sh.EndingSequenceNumber == "",
			ParentShardID: sh.ParentShardID, AdjacentParentShardID: sh.AdjacentParentShardID,
			StartingHashKey: sh.StartingHashKey, EndingHashKey: sh.EndingHashKey,
			StartingSequenceNumber: sh.StartingSequenceNumber, EndingSequenceNumber: sh.EndingSequenceNumber,
			Created: sh.Created, Closed: sh.Closed,
		})
	}
	return s
}

func (d *Dashboard) handleStreams(w http.ResponseWriter, r *http.Request) {
	out := []StreamInfo{}
	for _, sum := range d.cfg.Engine.List() {
		if !d.allowsRead(r.Context(), sum.Name) {
			continue
		}
		desc, err := d.cfg.Engine.Describe(sum.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, d.streamInfo(sum.Name, desc))
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": out})
}

func (d *Dashboard) handleStream(w http.ResponseWriter, r *http.Request) {
	if desc := d.readableStream(w, r); desc != nil {
		writeJSON(w, http.StatusOK, d.streamInfo(r.PathValue("name"), desc))
	}
}

// readableStream describes the stream the request's path names (by its
// Scope.ID) when the request's key may read it; otherwise it answers 403
// or 404 and returns nil.
func (d *Dashboard) readableStream(w http.ResponseWriter, r *http.Request) *stream.Description {
	name := r.PathValue("name")
	if !d.allowsRead(r.Context(), name) {
		writeError(w, http.StatusForbidden, "this access key may not read stream "+name)
		return nil
	}
	desc, err := d.cfg.Engine.Describe(name)
	if err != nil {
		writeError(w, http.StatusNotFound, "stream "+name+" not found")
		return nil
	}
	return desc
}

// rates keeps the last samples of every stream's totals, for rates and
// their history.
type rates struct {
	mu      sync.Mutex
	max     int
	samples []rateSample // oldest first
}

type rateSample struct {
	t       time.Time
	streams map[string]Totals
}

// Totals are a stream's counters since the server started, summed over
// its shards.
type Totals struct {
	RecordsIn  int64 `json:"recordsIn"`
	BytesIn    int64 `json:"bytesIn"`
	RecordsOut int64 `json:"recordsOut"`
	BytesOut   int64 `json:"bytesOut"`
	Throttled  int64 `json:"throttled"`
}

func sumShards(shards []stream.ShardStats) Totals {
	var t Totals
	for _, sh := range shards {
		t.RecordsIn += sh.RecordsIn
		t.BytesIn += sh.BytesIn
		t.RecordsOut += sh.RecordsOut
		t.BytesOut += sh.BytesOut
		t.Throttled += sh.Throttled
	}
	return t
}

func newRates(max int) *rates { return &rates{max: max} }

func (r *rates) sample(now time.Time, stats []stream.StreamStats) {
	s := rateSample{t: now, streams: make(map[string]Totals, len(stats))}
	for _, st := range stats {
		s.streams[st.Name] = sumShards(st.Shards)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == r.max {
		copy(r.samples, r.samples[1:])
		r.samples = r.samples[:r.max-1]
	}
	r.samples = append(r.samples, s)
}

// Rate is a stream's traffic per second.
type Rate struct {
	RecordsIn  float64 `json:"recordsIn"`
	BytesIn    float64 `json:"bytesIn"`
	RecordsOut float64 `json:"recordsOut"`
	BytesOut   float64 `json:"bytesOut"`
	Throttled  float64 `json:"throttled"`
}

func rateBetween(a, b Totals, secs float64) Rate {
	pos := func(x int64) float64 { return max(0, float64(x)) / secs }
	return Rate{
		RecordsIn: pos(b.RecordsIn - a.RecordsIn), BytesIn: pos(b.BytesIn - a.BytesIn),
		RecordsOut: pos(b.RecordsOut - a.RecordsOut), BytesOut: pos(b.BytesOut - a.BytesOut),
		Throttled: pos(b.Throttled - a.Throttled),
	}
}

// History is the per-second rates of every stream between consecutive
// samples: Times[i] is the end of the interval of every series' i-th value.
type History struct {
	Times   []float64          `json:"times"` // seconds since the Unix epoch
	Streams map[string][]*Rate `json:"streams"`
}

// current returns each stream's rate over the last interval and the
// history of rates.
func (r *rates) current() (map[string]Rate, History) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := map[string]Rate{}
	h := History{Times: []float64{}, Streams: map[string][]*Rate{}}
	for i := 1; i < len(r.samples); i++ {
		a, b := r.samples[i-1], r.samples[i]
		secs := b.t.Sub(a.t).Seconds()
		if secs <= 0 {
			continue
		}
		h.Times = append(h.Times, float64(b.t.UnixMilli())/1000)
		n := len(h.Times)
		for name, bt := range b.streams {
			series := h.Streams[name]
			for len(series) < n-1 {
				series = append(series, nil) // the stream did not exist yet
			}
			at, ok := a.streams[name]
			if !ok {
				series = append(series, nil)
			} else {
				rt := rateBetween(at, bt, secs)
				series = append(series, &rt)
				if i == len(r.samples)-1 {
					cur[name] = rt
				}
			}
			h.Streams[name] = series
		}
	}
	for name, series := range h.Streams {
		for len(series) < len(h.Times) {
			series = append(series, nil) // deleted since
		}
		h.Streams[name] = series
	}
	return cur, h
}

// StreamStats is one stream in /api/stats: its shards' counters since the
// server started, their sum, and the current rate.
type StreamStats struct {
	Scope
	Totals
	Rate   Rate                `json:"rate"`
	Shards []stream.ShardStats `json:"shards"`
}

// StatsAnswer is the answer of /api/stats.
type StatsAnswer struct {
	Time    time.Time     `json:"time"`
	Streams []StreamStats `json:"streams"`
	History History       `json:"history"`
	// Storage is why storage refuses writes, "" while it accepts them.
	Storage string `json:"storage,omitempty"`
}

func (d *Dashboard) handleStats(w http.ResponseWriter, r *http.Request) {
	cur, hist := d.rates.current()
	ans := StatsAnswer{Time: time.Now().UTC(), Streams: []StreamStats{}, History: hist}
	if err := d.cfg.Engine.Health(); err != nil {
		ans.Storage = err.Error()
	}
	for _, st := range d.cfg.Engine.Stats() {
		if !d.allowsRead(r.Context(), st.Name) {
			continue
		}
		ans.Streams = append(ans.Streams, StreamStats{Scope: d.scope(st.Name), Totals: sumShards(st.Shards), Rate: cur[st.Name], Shards: st.Shards})
	}
	for name := range hist.Streams {
		if !d.allowsRead(r.Context(), name) {
			delete(hist.Streams, name)
		}
	}
	slices.SortFunc(ans.Streams, func(a, b StreamStats) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, ans)
}

// PipelineView is one pipeline in /api/pipelines.
type PipelineView struct {
	pipeline.PipelineStatus
	// Process is the `runnel run` process that runs the pipeline and
	// reports it; absent for pipelines running inside this server.
	Process *ProcessInfo `json:"process,omitempty"`
}

// PipelinesAnswer is the answer of /api/pipelines.
type PipelinesAnswer struct {
	// Running is set when any pipeline runs, here or reported.
	Running   bool           `json:"running"`
	Pipelines []PipelineView `json:"pipelines"`
}

func (d *Dashboard) handlePipelines(w http.ResponseWriter, r *http.Request) {
	ans := PipelinesAnswer{Pipelines: []PipelineView{}}
	if p := d.pipelines.Load(); p != nil {
		for _, ps := range (*p).Status() {
			if d.allowsRead(r.Context(), SourceStream(ps.Source)) {
				ans.Pipelines = append(ans.Pipelines, PipelineView{PipelineStatus: ps})
			}
		}
	}
	now := time.Now()
	for _, rp := range d.remote.processes(now) {
		info := rp.info(now)
		for _, ps := range rp.rep.Pipelines {
			if d.allowsRead(r.Context(), SourceStream(ps.Source)) {
				ans.Pipelines = append(ans.Pipelines, PipelineView{PipelineStatus: ps, Process: info})
			}
		}
	}
	ans.Running = len(ans.Pipelines) > 0
	writeJSON(w, http.StatusOK, ans)
}

// ResultView is one pipeline's results in /api/results.
type ResultView struct {
	pipeline.PipelineReport
	// Process is as in PipelineView.
	Process *ProcessInfo `json:"process,omitempty"`
}

func (d *Dashboard) handleResults(w http.ResponseWriter, r *http.Request) {
	out := []ResultView{}
	if p := d.pipelines.Load(); p != nil {
		for _, rep := range (*p).Reports() {
			if d.mayReadPipeline(r.Context(), *p, rep.Pipeline) {
				out = append(out, ResultView{PipelineReport: rep})
			}
		}
	}
	now := time.Now()
	for _, rp := range d.remote.processes(now) {
		info := rp.info(now)
		sources := map[string]string{}
		for _, ps := range rp.rep.Pipelines {
			sources[ps.Name] = ps.Source
		}
		for _, rep := range rp.rep.Results {
			if src, ok := sources[rep.Pipeline]; ok && d.allowsRead(r.Context(), SourceStream(src)) {
				out = append(out, ResultView{PipelineReport: rep, Process: info})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

// MayReadPipeline reports whether r's key (see RequestKey) may see what
// the named pipeline derives from its source stream: its status, results
// and counts. It may when it may read the source; an unknown pipeline is
// visible only to a key that reads every stream.
func (d *Dashboard) MayReadPipeline(r *http.Request, name string) bool {
	key, ok := d.RequestKey(r)
	if !ok {
		return false
	}
	ctx := context.WithValue(r.Context(), keyContext{}, key)
	p := d.pipelines.Load()
	if p == nil {
		return key == nil || key.ReadsAll()
	}
	return d.mayReadPipeline(ctx, *p, name)
}

func (d *Dashboard) mayReadPipeline(ctx context.Context, p Pipelines, name string) bool {
	for _, st := range p.Status() {
		if st.Name == name {
			return d.allowsRead(ctx, SourceStream(st.Source))
		}
	}
	k := requestKey(ctx)
	return k == nil || k.ReadsAll()
}

// SourceStream is the stream name a pipeline's source (a name or an ARN)
// names.
func SourceStream(source string) string {
	if _, name, ok := strings.Cut(source, ":stream/"); ok && strings.HasPrefix(source, "arn:") {
		name, _, _ = strings.Cut(name, "/")
		return name
	}
	return source
}

// GeneratorAnswer is the answer of /api/generator.
type GeneratorAnswer struct {
	// Present is set when a generator runs inside this server.
	Present bool                `json:"present"`
	Stream  string              `json:"stream,omitempty"`
	Status  *clickstream.Status `json:"status,omitempty"`
	// Changed, on start and stop, is false when the generator already was
	// in the requested state.
	Changed *bool `json:"changed,omitempty"`
}

func (d *Dashboard) handleGenerator(w http.ResponseWriter, r *http.Request) {
	g := d.generator.Load()
	// A key that may not read the generator's stream does not see it.
	if g == nil || !d.allowsRead(r.Context(), g.stream) {
		writeJSON(w, http.StatusOK, GeneratorAnswer{})
		return
	}
	st := g.g.Status()
	writeJSON(w, http.StatusOK, GeneratorAnswer{Present: true, Stream: g.stream, Status: &st})
}

var errNoGenerator = errors.New("no generator runs in this server (runnel serve --demo runs one)")

func (d *Dashboard) handleGeneratorAction(w http.ResponseWriter, r *http.Request) {
	if k := requestKey(r.Context()); k != nil && !k.All {
		writeError(w, http.StatusForbidden, "starting and stopping the generator needs a key with all: true")
		return
	}
	g := d.generator.Load()
	if g == nil {
		writeError(w, http.StatusNotFound, errNoGenerator.Error())
		return
	}
	// Under --multi-region an all: true key of another account does not
	// reach this server's stream.
	if !d.allowsRead(r.Context(), g.stream) {
		writeError(w, http.StatusForbidden, "starting and stopping the generator needs a key of its stream's account")
		return
	}
	var changed bool
	switch r.PathValue("action") {
	case "start":
		changed = g.g.Start()
	case "stop":
		changed = g.g.Stop()
	default:
		writeError(w, http.StatusNotFound, "want /api/generator/start or /api/generator/stop")
		return
	}
	st := g.g.Status()
	writeJSON(w, http.StatusOK, GeneratorAnswer{Present: true, Stream: g.stream, Status: &st, Changed: &changed})
}
