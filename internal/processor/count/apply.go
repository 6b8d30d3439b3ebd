package count

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/counterstore"
	"github.com/runnel-dev/runnel/internal/sink"
	redissink "github.com/runnel-dev/runnel/internal/sink/redis"
)

// applyScript counts one batch (or its part after the marker) atomically
// with moving the shard's marker.
//
//	KEYS[1]   the shard's marker
//	KEYS[2..] the counters (keys mode) or the hash (hash mode)
//	ARGV[1]   position of the first record ("seq" or "seq/sub")
//	ARGV[2]   position of the last record, the new marker
//	ARGV[3]   time to live in milliseconds for new keys, 0 for none
//	ARGV[4]   "k" (keys mode: ARGV[5..] are the increments of KEYS[2..])
//	          or "h" (hash mode: ARGV[5..] are field, increment pairs)
//
// It returns {1, ""} when it counted, {0, marker} when the marker is at or
// past the last record (nothing to do) and {2, marker} when the marker
// lies within the batch: the caller sends again the records after it.
// Every key is checked before any is written, so an error writes nothing.
var applyScript = redis.NewScript(`
local function parse(p)
  local slash = string.find(p, '/', 1, true)
  if slash then
    return string.sub(p, 1, slash - 1), tonumber(string.sub(p, slash + 1))
  end
  return p, 0
end
-- Sequence numbers are decimal strings of any length: a longer one is
-- larger; equal lengths compare digit chunks exactly as numbers.
local function cmp(a, b)
  local as, asub = parse(a)
  local bs, bsub = parse(b)
  if #as ~= #bs then
    if #as < #bs then return -1 end
    return 1
  end
  for i = 1, #as, 15 do
    local x, y = tonumber(string.sub(as, i, i + 14)), tonumber(string.sub(bs, i, i + 14))
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
  end
  if asub ~= bsub then
    if asub < bsub then return -1 end
    return 1
  end
  return 0
end
local mark = redis.call('GET', KEYS[1])
if mark then
  if cmp(mark, ARGV[2]) >= 0 then return {0, mark} end
  if cmp(mark, ARGV[1]) >= 0 then return {2, mark} end
end
local ttl = tonumber(ARGV[3])
local function check(v, what)
  if type(v) == 'table' and v.err then
    return 'count: ' .. what .. ': ' .. v.err
  end
  if v and v ~= '0' and not (#v <= 20 and string.match(v, '^%-?[1-9]%d*$')) then
    return 'count: ' .. what .. ' does not hold an integer'
  end
  return nil
end
if ARGV[4] == 'h' then
  local h = KEYS[2]
  for i = 5, #ARGV, 2 do
    local e = check(redis.pcall('HGET', h, ARGV[i]), 'hash ' .. h .. ' field ' .. ARGV[i])
    if e then return redis.error_reply(e) end
  end
  for i = 5, #ARGV, 2 do
    redis.call('HINCRBY', h, ARGV[i], ARGV[i + 1])
  end
  if ttl > 0 and redis.call('PTTL', h) == -1 then
    redis.call('PEXPIRE', h, ttl)
  end
else
  for i = 2, #KEYS do
    local e = check(redis.pcall('GET', KEYS[i]), 'key ' .. KEYS[i])
    if e then return redis.error_reply(e) end
  end
  for i = 2, #KEYS do
    redis.call('INCRBY', KEYS[i], ARGV[i + 3])
    if ttl > 0 and redis.call('PTTL', KEYS[i]) == -1 then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return {1, ''}
`)

// Results of applyScript.
const (
	resultSkipped = 0
	resultApplied = 1
	resultPartial = 2
)

// apply counts the items of one shard's batch, skipping those at or before
// the shard's marker.
func (c *Counter) apply(ctx context.Context, shard string, items []item) error {
	marker := c.MarkerKey(shard)
	// Each partial result moves the start past at least one record, so
	// this ends within len(items) rounds.
	for from := 0; from < len(items); {
		var (
			code int64
			mark string
			err  error
		)
		if c.local != nil {
			code, mark, err = c.applyLocal(shard, items[from:])
		} else {
			// Redis down, restarting or busy holds the batch until it
			// is back; the marker makes the repeat exact.
			err = c.retry.Do(ctx, func(ctx context.Context) error {
				code, mark, err = c.applyRedis(ctx, marker, items[from:])
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("count: shard %s: %w", shard, err)
		}
		switch code {
		case resultApplied:
			c.stats.batches.Add(1)
			for i := from; i < len(items); i++ {
				if items[i].counted {
					c.stats.records.Add(1)
				}
			}
			return nil
		case resultSkipped:
			c.stats.skipped.Add(1)
			return nil
		case resultPartial:
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

// applyRedis runs applyScript on items.
func (c *Counter) applyRedis(ctx context.Context, marker string, items []item) (int64, string, error) {
	keys, args := c.scriptArgs(marker, items)
	res, err := applyScript.Run(ctx, c.client, keys, args...).Slice()
	if err != nil {
		// The script refuses a counter key of the wrong type with "count: ".
		return 0, "", redissink.Classify(err, "count: ")
	}
	code, mark, err := scriptResult(res)
	return code, mark, sink.Poison(err)
}

// applyLocal is applyRedis for the local store, with the same results.
func (c *Counter) applyLocal(shard string, items []item) (int64, string, error) {
	sums := make(map[string]int64, len(items)/2+1)
	for i := range items {
		if it := &items[i]; it.counted {
			sums[it.key] += it.incr
		}
	}
	res, mark, err := c.local.Apply(c.pipeline, shard, items[0].pos.String(), items[len(items)-1].pos.String(), sums)
	if err != nil {
		return 0, "", err
	}
	switch res {
	case counterstore.Applied:
		return resultApplied, "", nil
	case counterstore.Skipped:
		return resultSkipped, mark, nil
	case counterstore.Partial:
		return resultPartial, mark, nil
	}
	return 0, "", fmt.Errorf("unexpected result %d of the local store", res)
}

func scriptResult(res []any) (int64, string, error) {
	if len(res) != 2 {
		return 0, "", fmt.Errorf("unexpected script result %v", res)
	}
	code, ok := res[0].(int64)
	mark, ok2 := res[1].(string)
	if !ok || !ok2 {
		return 0, "", fmt.Errorf("unexpected script result %v", res)
	}
	return code, mark, nil
}

// scriptArgs sums the increments of equal keys among items and lays them
// out for applyScript.
func (c *Counter) scriptArgs(marker string, items []item) ([]string, []any) {
	sums := make(map[string]int64, len(items)/2+1)
	order := make([]string, 0, len(items)/2+1)
	for i := range items {
		it := &items[i]
		if !it.counted {
			continue
		}
		if _, ok := sums[it.key]; !ok {
			order = append(order, it.key)
		}
		sums[it.key] += it.incr
	}
	mode := "k"
	keys := make([]string, 1, len(order)+2)
	keys[0] = marker
	args := make([]any, 4, 4+2*len(order))
	if c.cfg.Hash != "" {
		mode = "h"
		keys = append(keys, c.cfg.Redis.KeyPrefix+c.cfg.Hash)
		for _, k := range order {
			args = append(args, k, strconv.FormatInt(sums[k], 10))
		}
	} else {
		keys = append(keys, order...)
		for _, k := range order {
			args = append(args, strconv.FormatInt(sums[k], 10))
		}
	}
	args[0] = items[0].pos.String()
	args[1] = items[len(items)-1].pos.String()
	args[2] = strconv.FormatInt(c.cfg.Expire.Milliseconds(), 10)
	args[3] = mode
	return keys, args
}
