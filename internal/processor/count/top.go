package count

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/pipeline"
)

// Bounds of reading counters back from Redis (Top, Report).
const (
	// RedisMaxKeys is the most counters Top reads from Redis; past it the
	// summary covers the first RedisMaxKeys found and says so (Partial).
	RedisMaxKeys = 100_000
	// reportEvery is how often Report reads the counters again; calls in
	// between get the last reading.
	reportEvery = 2 * time.Second
	// reportTimeout bounds one reading for Report.
	reportTimeout = 5 * time.Second
	// reportTop is how many counters Report shows.
	reportTop = 10
)

// Summary is a counter's largest counts, the number and sum of all, and
// whether the Redis reading stopped at RedisMaxKeys.
type Summary struct {
	counterstore.Summary
	Partial bool `json:"partial,omitempty"`
}

// Top returns the pipeline's n largest counters (largest first, equal
// values in key order, keys without the key prefix) and the number and sum
// of all: from the local store, or from Redis (SCAN and MGET of the keys
// under the key prefix, or HSCAN of the hash), skipping the per-shard
// markers.
func (c *Counter) Top(ctx context.Context, n int) (Summary, error) {
	if c.local != nil {
		sum, err := c.local.Top(c.pipeline, n)
		return Summary{Summary: sum}, err
	}
	return RedisTop(ctx, c.client, c.cfg.Redis.KeyPrefix, c.cfg.Hash, n)
}

// RedisTop reads the counters of a count processor from Redis: the keys
// under prefix (not its per-shard markers), or with hash set the fields of
// the hash prefix+hash. It returns the n largest and the number and sum of
// all, reading at most RedisMaxKeys counters.
func RedisTop(ctx context.Context, rc *redis.Client, prefix, hash string, n int) (Summary, error) {
	var all []counterstore.Count
	partial := false
	add := func(key, v string) {
		if x, err := strconv.ParseInt(v, 10, 64); err == nil {
			all = append(all, counterstore.Count{Key: key, Value: x})
		}
	}
	var cursor uint64
	for {
		if hash != "" {
			kvs, next, err := rc.HScan(ctx, prefix+hash, cursor, "*", 1000).Result()
			if err != nil {
				return Summary{}, err
			}
			for i := 0; i+1 < len(kvs); i += 2 {
				add(kvs[i], kvs[i+1])
			}
			cursor = next
		} else {
			keys, next, err := rc.Scan(ctx, cursor, prefix+"*", 1000).Result()
			if err != nil {
				return Summary{}, err
			}
			keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, prefix+markerInfix) })
			if len(keys) > 0 {
				vals, err := rc.MGet(ctx, keys...).Result()
				if err != nil {
					return Summary{}, err
				}
				for i, v := range vals {
					if s, ok := v.(string); ok { // nil: gone since SCAN
						add(strings.TrimPrefix(keys[i], prefix), s)
					}
				}
			}
			cursor = next
		}
		if cursor == 0 {
			break
		}
		if len(all) >= RedisMaxKeys {
			partial = true
			break
		}
	}
	sum := Summary{Summary: counterstore.Summary{Keys: len(all)}, Partial: partial}
	for _, c := range all {
		sum.Total += c.Value
	}
	slices.SortFunc(all, counterstore.ByValue)
	sum.Top = all[:min(max(n, 0), len(all))]
	return sum, nil
}

// reportCache keeps the last reading of the counters for Report.
type reportCache struct {
	mu      sync.Mutex
	at      time.Time
	rep     pipeline.Report
	lastErr string
}

var _ pipeline.Reporter = (*Counter)(nil)

// Report returns the largest counters for the dashboard, read at most
// every two seconds. A failed reading is logged (once until it changes)
// and the last good one returned.
func (c *Counter) Report() pipeline.Report {
	rc := &c.report
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.at.IsZero() && time.Since(rc.at) < reportEvery {
		return rc.rep
	}
	rc.at = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	sum, err := c.Top(ctx, reportTop)
	if err != nil {
		if msg := err.Error(); msg != rc.lastErr {
			rc.lastErr = msg
			c.logger.Warn("reading the counts for the dashboard", "err", err)
		}
		if rc.rep.Title == "" {
			rc.rep.Title = c.reportTitle()
		}
		return rc.rep
	}
	rc.lastErr = ""
	rep := pipeline.Report{Title: c.reportTitle(), TopKeys: make([]pipeline.KeyValue, 0, len(sum.Top)),
		Figures: []pipeline.Figure{{Label: "counters", Value: float64(sum.Keys)}, {Label: "total", Value: float64(sum.Total)}}}
	for _, kv := range sum.Top {
		rep.TopKeys = append(rep.TopKeys, pipeline.KeyValue{Key: kv.Key, Value: float64(kv.Value)})
	}
	rc.rep = rep
	return rep
}

func (c *Counter) reportTitle() string {
	if c.local != nil {
		return "top counts: " + c.cfg.Key
	}
	where := "Redis " + c.cfg.Redis.Addr
	if c.cfg.Hash != "" {
		where += " hash " + c.cfg.Redis.KeyPrefix + c.cfg.Hash
	} else if c.cfg.Redis.KeyPrefix != "" {
		where += " keys " + c.cfg.Redis.KeyPrefix + "*"
	}
	return fmt.Sprintf("top counts: %s (%s)", c.cfg.Key, where)
}
