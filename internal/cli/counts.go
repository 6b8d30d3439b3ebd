package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/counts"
	"github.com/runnel-dev/runnel/internal/kinesisclient"
)

// Bounds of reading counts from Redis.
const (
	countsRedisMaxKeys = 100_000
	countsTimeout      = 10 * time.Second
)

func newCountsCommand(e *env) *cobra.Command {
	var (
		pipelineName string
		top          int
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "counts",
		Short: "Show the largest counts of a count pipeline run by runnel serve --demo",
		Long: `Ask the server at --endpoint (default ` + kinesisclient.DefaultEndpoint + `) for the largest
counters of a count pipeline (GET /api/counts): the server holds runnel's
own counter store open, so the counts come from it. When the pipeline
counts into Redis instead, the server says where, and the counters are read
from Redis (SCAN and GET, at most ` + strconv.Itoa(countsRedisMaxKeys) + ` keys).

--json prints the answer as JSON: pipeline, store, keys (how many
counters), total (their sum) and top (key, value; largest first).`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if top < 0 || top > demoDefaultTopMax {
				return usagef("--top %d: want 0 to %d", top, demoDefaultTopMax)
			}
			endpoint := e.endpoint
			if endpoint == "" {
				endpoint = kinesisclient.DefaultEndpoint
			}
			if endpoint == "aws" {
				return usagef("runnel counts asks a runnel server, not AWS")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), countsTimeout)
			defer cancel()
			ans, err := fetchCounts(ctx, endpoint, pipelineName, top)
			if err != nil {
				return err
			}
			if ans.Store == demoStoreRedis {
				if ans.Summary, err = redisCounts(ctx, ans.Redis, ans.KeyPrefix, top); err != nil {
					return fmt.Errorf("reading the counts in Redis %s: %w", ans.Redis, err)
				}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ans)
			}
			return printCounts(e.stdout, ans)
		},
	}
	f := cmd.Flags()
	f.StringVar(&pipelineName, "pipeline", demoCounter, "count pipeline whose counters to show")
	f.IntVar(&top, "top", 20, "how many of the largest counters to show")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// fetchCounts asks the server at endpoint for GET /api/counts.
func fetchCounts(ctx context.Context, endpoint, pipelineName string, top int) (*CountsAnswer, error) {
	u := strings.TrimRight(endpoint, "/") + "/api/counts?" + url.Values{
		"pipeline": {pipelineName}, "top": {strconv.Itoa(top)},
	}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, usagef("--endpoint %q: %v", endpoint, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking runnel serve at %s for counts: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the counts from %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", endpoint, e.Error)
		}
		return nil, fmt.Errorf("%s answered %s: %s", endpoint, resp.Status, strings.TrimSpace(string(body)))
	}
	var ans CountsAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("the counts from %s: %w", endpoint, err)
	}
	return &ans, nil
}

// redisCounts reads the counters under prefix in Redis at addr (not the
// per-shard markers), at most countsRedisMaxKeys of them.
func redisCounts(ctx context.Context, addr, prefix string, top int) (counts.Summary, error) {
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	var all []counts.Count
	var cursor uint64
	for range countsRedisMaxKeys { // each round reads at least one key or ends
		keys, next, err := rc.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return counts.Summary{}, err
		}
		var names []string
		for _, k := range keys {
			if !strings.HasPrefix(k, prefix+"__applied:") {
				names = append(names, k)
			}
		}
		if len(names) > 0 {
			vals, err := rc.MGet(ctx, names...).Result()
			if err != nil {
				return counts.Summary{}, err
			}
			for i, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue // gone since SCAN
				}
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					continue // not a counter
				}
				all = append(all, counts.Count{Key: strings.TrimPrefix(names[i], prefix), Value: n})
			}
		}
		cursor = next
		if cursor == 0 || len(all) >= countsRedisMaxKeys {
			break
		}
	}
	sum := counts.Summary{Keys: len(all)}
	for _, c := range all {
		sum.Total += c.Value
	}
	slices.SortFunc(all, func(a, b counts.Count) int {
		if a.Value != b.Value {
			if a.Value > b.Value {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	sum.Top = all[:min(top, len(all))]
	return sum, nil
}

func printCounts(w io.Writer, ans *CountsAnswer) error {
	where := "runnel's own store in " + ans.Dir
	if ans.Store == demoStoreRedis {
		where = "Redis " + ans.Redis + ", keys " + ans.KeyPrefix + "*"
	}
	fmt.Fprintf(w, "%s: %d counters, total %d (%s)\n", ans.Pipeline, ans.Keys, ans.Total, where)
	for _, c := range ans.Top {
		if _, err := fmt.Fprintf(w, "%12d  %s\n", c.Value, c.Key); err != nil {
			return err
		}
	}
	return nil
}
