package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/sink"
)

// Counters adds increments to Redis counters exactly once per position
// of a source shard: each Apply checks and moves the shard's marker (the
// position of the last record counted) in the same Lua script that adds
// the increments, so a batch counted again after a crash, a retry or a
// redelivery is skipped, or counted from its first record past the
// marker only. Batches of one shard must be applied one at a time.
type Counters struct {
	Client *goredis.Client
	// Hash, when set, keeps the counters as fields of this hash; else
	// each counter is a key of its own.
	Hash string
	// Expire is the time to live given to a counter key (or the hash)
	// that has none; 0 sets none.
	Expire time.Duration
	// Retry is the policy of the writes: Redis down, restarting or busy
	// holds Apply until it is back.
	Retry *sink.Retry
}

// Result says what Apply did.
type Result int

// Results of Apply, as the script returns them.
const (
	// Skipped: the marker was at or past last; nothing was written.
	Skipped Result = 0
	// Applied: the increments were added and the marker moved to last.
	Applied Result = 1
	// Partial: the marker lies between first and last; nothing was
	// written, and the caller applies again the records past the marker.
	Partial Result = 2
)

// Apply adds sums (counter, or hash field, to increment) and moves the
// marker key from before first to last ("seq" or "seq/sub" positions),
// in one atomic script. It returns the marker it found when it did not
// apply. Every counter is checked before any is written: one that does
// not hold an integer, or has another type, is poison and nothing is
// written.
func (c *Counters) Apply(ctx context.Context, marker, first, last string, sums map[string]int64) (Result, string, error) {
	keys, args := c.scriptArgs(marker, first, last, sums)
	var (
		res  Result
		mark string
	)
	err := c.Retry.Do(ctx, func(ctx context.Context) error {
		out, err := countersScript.Run(ctx, c.Client, keys, args...).Slice()
		if err != nil {
			// The script refuses a counter that is not an integer with
			// "counters: ".
			return Classify(err, "counters: ")
		}
		res, mark, err = scriptResult(out)
		return sink.Poison(err)
	})
	return res, mark, err
}

// scriptArgs lays sums out for countersScript, counters in order.
func (c *Counters) scriptArgs(marker, first, last string, sums map[string]int64) ([]string, []any) {
	order := make([]string, 0, len(sums))
	for k := range sums {
		order = append(order, k)
	}
	slices.Sort(order)
	mode := "k"
	keys := make([]string, 1, len(order)+2)
	keys[0] = marker
	args := make([]any, 4, 4+2*len(order))
	if c.Hash != "" {
		mode = "h"
		keys = append(keys, c.Hash)
		for _, k := range order {
			args = append(args, k, strconv.FormatInt(sums[k], 10))
		}
	} else {
		keys = append(keys, order...)
		for _, k := range order {
			args = append(args, strconv.FormatInt(sums[k], 10))
		}
	}
	args[0], args[1] = first, last
	args[2] = strconv.FormatInt(c.Expire.Milliseconds(), 10)
	args[3] = mode
	return keys, args
}

func scriptResult(out []any) (Result, string, error) {
	if len(out) == 2 {
		code, ok := out[0].(int64)
		mark, ok2 := out[1].(string)
		if ok && ok2 && code >= int64(Skipped) && code <= int64(Partial) {
			return Result(code), mark, nil
		}
	}
	return 0, "", fmt.Errorf("unexpected script result %v", out)
}

// countersScript applies one batch of increments atomically with moving
// the shard's marker.
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
var countersScript = goredis.NewScript(`
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
    return 'counters: ' .. what .. ': ' .. v.err
  end
  if v and v ~= '0' and not (#v <= 20 and string.match(v, '^%-?[1-9]%d*$')) then
    return 'counters: ' .. what .. ' does not hold an integer'
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
