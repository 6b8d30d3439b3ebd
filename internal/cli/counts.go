package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/kinesisclient"
	"github.com/runnel-dev/runnel/internal/processor/count"
)

// countsTimeout bounds asking the server for counts.
const countsTimeout = 10 * time.Second

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
counts into Redis instead, the server reads them there (SCAN and MGET of
the demo's keys, at most ` + strconv.Itoa(count.RedisMaxKeys) + `) and says where they are.

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

func printCounts(w io.Writer, ans *CountsAnswer) error {
	where := "runnel's own store in " + ans.Dir
	if ans.Store == demoStoreRedis {
		where = "Redis " + ans.Redis + ", keys " + ans.KeyPrefix + "*"
	}
	if ans.Partial {
		where += "; the first " + strconv.Itoa(ans.Keys) + " counters read"
	}
	fmt.Fprintf(w, "%s: %d counters, total %d (%s)\n", ans.Pipeline, ans.Keys, ans.Total, where)
	for _, c := range ans.Top {
		if _, err := fmt.Fprintf(w, "%12d  %s\n", c.Value, c.Key); err != nil {
			return err
		}
	}
	return nil
}
