package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/app"
	"github.com/runnel-dev/runnel/internal/clickstream"
	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/kinesislocal"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/processor/count"
	"github.com/runnel-dev/runnel/internal/producer"
)

// The demo's stream and pipelines.
const (
	demoStream        = "clickstream"
	demoShards        = 4
	demoCounter       = "clickstream-counter"
	demoArchive       = "clickstream-archive"
	demoKey           = "{ts:2006-01-02T15:04}:{page}:{eventType}"
	demoRedisPrefix   = "runnel-demo:" // + the data dir's demo id + ":"
	demoIDFile        = "demo-id"
	demoDefaultRedis  = "127.0.0.1:6379"
	demoPingTimeout   = 200 * time.Millisecond
	demoCloseTimeout  = 30 * time.Second
	demoArchiveEvery  = "10s"
	demoDefaultRate   = 50
	demoDefaultTopMax = 1000
)

// Values of --demo-store.
const (
	demoStoreAuto  = "auto"
	demoStoreRedis = "redis"
	demoStoreLocal = "local"
)

// demoOptions are the serve flags of --demo.
type demoOptions struct {
	store string  // demoStoreAuto, demoStoreRedis or demoStoreLocal
	redis string  // Redis address; "" means the default address if it answers
	rate  float64 // events per second
}

// demoStoreChoice is where the demo counts: Redis at addr, or the local
// store when addr is "".
func (o demoOptions) redisAddr(ctx context.Context) (string, error) {
	switch o.store {
	case demoStoreLocal:
		return "", nil
	case demoStoreRedis:
		if o.redis == "" {
			return demoDefaultRedis, nil
		}
		return o.redis, nil
	case demoStoreAuto:
		if o.redis != "" {
			return o.redis, nil
		}
		if redisAnswers(ctx, demoDefaultRedis, demoPingTimeout) {
			return demoDefaultRedis, nil
		}
		return "", nil
	}
	return "", usagef("--demo-store %q: want auto, redis or local", o.store)
}

// redisAnswers reports whether a Redis server at addr answers PING within
// timeout.
func redisAnswers(ctx context.Context, addr string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, MaxRetries: -1})
	defer rc.Close()
	return rc.Ping(ctx).Err() == nil
}

// demoConfig is the demo's pipelines file: the clickstream stream, its
// counter (into Redis at redisAddr, or the local store when "") and its
// archive under archiveDir.
func demoConfig(redisAddr, redisPrefix, archiveDir string) ([]byte, error) {
	countOpts := map[string]any{"key": demoKey, "timeField": "timestamp"}
	if redisAddr != "" {
		countOpts["redis"] = map[string]any{"addr": redisAddr, "keyPrefix": redisPrefix}
	} else {
		countOpts["store"] = count.StoreLocal
	}
	doc := map[string]any{
		"streams": []any{map[string]any{"name": demoStream, "shards": demoShards}},
		"pipelines": []any{
			map[string]any{
				"name": demoCounter, "source": demoStream, "batchSize": 500,
				"handler": map[string]any{"type": "builtin", "name": "count", "options": countOpts},
			},
			map[string]any{
				"name": demoArchive, "source": demoStream, "batchSize": 500,
				"handler": map[string]any{"type": "builtin", "name": "archive", "options": map[string]any{
					"dir": archiveDir, "bufferInterval": demoArchiveEvery, "prefixStyle": "hive", "timeField": "timestamp",
				}},
			},
		},
	}
	return yaml.Marshal(doc)
}

// CountsAnswer is the answer of GET /api/counts.
type CountsAnswer struct {
	Pipeline string `json:"pipeline"`
	// Store is "local" (the counts follow) or "redis" (they are in Redis
	// at Redis, under keys starting with KeyPrefix).
	Store     string `json:"store"`
	Dir       string `json:"dir,omitempty"`
	Redis     string `json:"redis,omitempty"`
	KeyPrefix string `json:"keyPrefix,omitempty"`
	count.Summary
}

// demoRedisKeyPrefix returns the Redis key prefix of the demo whose state
// is in stateDir: "runnel-demo:<id>:", with an id made on the first run and
// kept in stateDir, so demos of different data dirs (or a data dir deleted
// and made again) never count into the same keys, while a restarted demo
// carries on with its own.
func demoRedisKeyPrefix(stateDir string) (string, error) {
	path := filepath.Join(stateDir, demoIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return demoRedisPrefix + id + ":", nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading the demo id: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return "", err
	}
	id := strings.ToLower(rand.Text()[:10])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("writing the demo id: %w", err)
	}
	return demoRedisPrefix + id + ":", nil
}

// countsHandler answers GET /api/counts?pipeline=&top= for the demo: from
// the local store, or read from Redis (rc, under redisPrefix) when store is
// nil.
func countsHandler(store *counterstore.Store, rc *redis.Client, redisAddr, redisPrefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ans := CountsAnswer{Pipeline: q.Get("pipeline")}
		if ans.Pipeline == "" {
			ans.Pipeline = demoCounter
		}
		top := 20
		if s := q.Get("top"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > demoDefaultTopMax {
				writeCountsJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("top: want 0 to %d, got %q", demoDefaultTopMax, s)})
				return
			}
			top = n
		}
		if ans.Pipeline != demoCounter {
			writeCountsJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no count pipeline %q in this server (the demo's is %s)", ans.Pipeline, demoCounter)})
			return
		}
		if store == nil {
			ans.Store, ans.Redis, ans.KeyPrefix = demoStoreRedis, redisAddr, redisPrefix
			ctx, cancel := context.WithTimeout(r.Context(), countsTimeout)
			defer cancel()
			sum, err := count.RedisTop(ctx, rc, redisPrefix, "", top)
			if err != nil {
				writeCountsJSON(w, http.StatusBadGateway, map[string]string{"error": fmt.Sprintf("reading the counts in Redis %s: %v", redisAddr, err)})
				return
			}
			ans.Summary = sum
		} else {
			sum, err := store.Top(ans.Pipeline, top)
			if err != nil {
				writeCountsJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
				return
			}
			ans.Store, ans.Dir, ans.Summary.Summary = demoStoreLocal, store.Dir(), sum
		}
		if ans.Top == nil {
			ans.Top = []counterstore.Count{}
		}
		writeCountsJSON(w, http.StatusOK, ans)
	})
}

func writeCountsJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serveDemo runs the server with the clickstream generator and the demo's
// counter and archive pipelines inside it. On shutdown the generator stops
// and delivers what it buffered, then the pipelines stop (checkpointing),
// then the server.
func (e *env) serveDemo(ctx context.Context, cfg app.Config, opts demoOptions) error {
	redisAddr, err := opts.redisAddr(ctx)
	if err != nil {
		return err
	}
	if !(opts.rate > 0) {
		return usagef("--demo-rate %v: must be more than 0 events per second", opts.rate)
	}
	stateDir := filepath.Join(cfg.DataDir, "pipelines")
	archiveDir := filepath.Join(cfg.DataDir, "archive")
	if archiveDir, err = filepath.Abs(archiveDir); err != nil {
		return err
	}
	var redisPrefix string
	if redisAddr != "" {
		if redisPrefix, err = demoRedisKeyPrefix(stateDir); err != nil {
			return err
		}
	}
	doc, err := demoConfig(redisAddr, redisPrefix, archiveDir)
	if err != nil {
		return err
	}
	shared := &counterstore.Shared{}
	builtins := pipelineBuiltins()
	builtins["count"] = count.NewBuiltin(shared)
	pcfg, err := pipeline.Parse("demo pipelines", doc, builtins)
	if err != nil {
		return fmt.Errorf("the demo's pipelines: %w", err)
	}

	// The server holds the local store open for the pipelines and for
	// `runnel counts`, which asks it.
	var store *counterstore.Store
	if redisAddr == "" {
		var release func() error
		store, release, err = shared.Open(filepath.Join(stateDir, "counts"), e.logger.With("component", "counts"))
		if err != nil {
			return err
		}
		defer func() {
			if err := release(); err != nil {
				e.logger.Error("closing the counts store", "err", err)
			}
		}()
	}
	srv, err := app.New(ctx, cfg, e.logger)
	if err != nil {
		return err
	}
	var rc *redis.Client
	if redisAddr != "" {
		rc = redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rc.Close()
	}
	srv.SetCounts(countsHandler(store, rc, redisAddr, redisPrefix))

	h := host(ctx, srv)
	gctx := h.ctx
	client := kinesislocal.New(srv.Engine())
	runner, err := h.pipelines(e, pcfg, builtins, stateDir, cfg.Region)
	var gen *clickstream.Service
	var prod *producer.Producer
	if err == nil {
		prod, err = producer.New(client, producer.Config{Stream: demoStream, Endpoint: srv.URL(), Logger: e.logger.With("component", "generator")})
	}
	if err == nil {
		gen, err = clickstream.New(clickstream.Config{
			Writer: prod, Token: rand.Text(), Rate: opts.rate, Sessions: 50, Seed: randomSeed(),
			Target: fmt.Sprintf("stream %q in this server", demoStream), Logger: e.logger.With("component", "generator"),
		})
		if err != nil {
			_, _ = prod.Close(context.WithoutCancel(gctx))
			_ = runner.Close(context.WithoutCancel(gctx))
		}
	}
	if err != nil {
		return errors.Join(err, h.abort(errors.New("demo failed to start")))
	}
	srv.SetGenerator(gen, demoStream)
	h.g.Go(func() error { return h.run(e, runner) })
	h.g.Go(func() error {
		// Stop generating before the pipelines stop, and deliver what is
		// buffered, so the last events are counted on the next start.
		<-gctx.Done()
		gen.Stop()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), demoCloseTimeout)
		defer cancel()
		_, err := prod.Close(cctx)
		st := gen.Status()
		e.logger.Info("clickstream generator stopped", "sent", st.EventsSent, "delivered", st.EventsDelivered, "failed", st.Failures)
		return err
	})
	gen.Start()

	where := []any{"dashboard", srv.URL() + "/", "stream", demoStream, "rate", opts.rate,
		"generator", "POST " + srv.URL() + "/api/generator/stop (or /start)", "archive", archiveDir}
	if redisAddr == "" {
		where = append(where, "counts", "runnel counts --endpoint "+srv.URL(), "counts_dir", store.Dir())
	} else {
		where = append(where, "counts", "Redis "+redisAddr+" keys "+redisPrefix+"*")
	}
	e.logger.Info("demo running: the clickstream generator feeds "+demoCounter+" and "+demoArchive, where...)

	return h.wait()
}
