package count

import (
	"context"
	"fmt"

	"github.com/runnel-dev/runnel/internal/counterstore"
	redissink "github.com/runnel-dev/runnel/internal/sink/redis"
)

// apply counts the items of one shard's batch, skipping those at or before
// the shard's marker.
func (c *Counter) apply(ctx context.Context, shard string, items []item) error {
	marker := c.MarkerKey(shard)
	// Each partial result moves the start past at least one record, so
	// this ends within len(items) rounds.
	for from := 0; from < len(items); {
		var (
			code redissink.Result
			mark string
			err  error
		)
		part := items[from:]
		if c.local != nil {
			code, mark, err = c.applyLocal(shard, part)
		} else {
			// Redis down, restarting or busy holds the batch until it
			// is back; the marker makes the repeat exact.
			code, mark, err = c.counters.Apply(ctx, marker, part[0].pos.String(), part[len(part)-1].pos.String(), sums(part))
		}
		if err != nil {
			return fmt.Errorf("count: shard %s: %w", shard, err)
		}
		switch code {
		case redissink.Applied:
			c.stats.batches.Add(1)
			for i := from; i < len(items); i++ {
				if items[i].counted {
					c.stats.records.Add(1)
				}
			}
			return nil
		case redissink.Skipped:
			c.stats.skipped.Add(1)
			return nil
		case redissink.Partial:
			m := parsePosition(mark)
			next := from
			for next < len(items) && items[next].pos.compare(m) <= 0 {
				next++
			}
			if next == from {
				return fmt.Errorf("count: shard %s: marker %s is within the batch but before its first record %s", shard, mark, items[from].pos)
			}
			from = next
		default:
			return fmt.Errorf("count: shard %s: unexpected script result %d", shard, code)
		}
	}
	return nil
}

// sums adds up the increments of equal keys among items.
func sums(items []item) map[string]int64 {
	out := make(map[string]int64, len(items)/2+1)
	for i := range items {
		if it := &items[i]; it.counted {
			out[it.key] += it.incr
		}
	}
	return out
}

// applyLocal is counters.Apply for the local store, with the same results.
func (c *Counter) applyLocal(shard string, items []item) (redissink.Result, string, error) {
	res, mark, err := c.local.Apply(c.pipeline, shard, items[0].pos.String(), items[len(items)-1].pos.String(), sums(items))
	if err != nil {
		return 0, "", err
	}
	switch res {
	case counterstore.Applied:
		return redissink.Applied, "", nil
	case counterstore.Skipped:
		return redissink.Skipped, mark, nil
	case counterstore.Partial:
		return redissink.Partial, mark, nil
	}
	return 0, "", fmt.Errorf("unexpected result %d of the local store", res)
}
