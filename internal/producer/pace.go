package producer

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Pacing. Each shard the producer sends to has a send rate in records and
// bytes per second, enforced by token buckets holding a tenth of a second
// of sends (a call waits for half of that, so that a held-back shard is
// not sent a few records a call). A shard starts at a provisioned shard's
// limits (1000 records/s, 1 MiB/s) and, as long as it has never
// throttled and the rate holds it back, the rate grows tenfold a second
// ("slow start", as TCP's), so that a shard without limits is sent to
// without any after about a second. The first
// ProvisionedThroughputExceededException puts the rate back to the
// provisioned limits; each later one cuts it by a tenth (at most once per
// cutInterval, as the calls already in flight were paced at the old
// rate), and every successful call of a shard the rate held back, and
// that was sent at least usedToGrow of its rate, raises it by
// growthPerSecond of the limit per second since the last change:
// additive increase, multiplicative decrease, as TCP does, but never
// below half the provisioned limits (minPace), so that throttling that
// does not come from the rate (a shard shared with other producers, a
// fault) cannot slow the producer to a crawl. A throttled
// shard is so filled close to its limit with few retries. A rate that
// climbs past growthCeiling times the limits is lifted: whatever
// throttled the shard has gone. Without a shard map the whole stream is
// one shard.
const (
	shardRecordsPerSecond = 1000
	shardBytesPerSecond   = 1 << 20
	cutFactor             = 0.9
	cutInterval           = 250 * time.Millisecond
	growthPerSecond       = 0.05
	growthCeiling         = 10
	slowStartPerSecond    = 10
	minPace               = 0.5
	usedToGrow            = 0.8
	paceBurst             = 100 * time.Millisecond
)

// pace is one shard's send rate. The Producer's mutex guards it.
type pace struct {
	records, bytes *rate.Limiter
	maxRecordBytes int
	changed        time.Time // last cut or raise
	cut            time.Time
	bound          bool    // ran out of tokens since the last change
	slowStart      bool    // never throttled
	sentRecords    float64 // since the last change
	sentBytes      float64
}

func newPace(now time.Time, maxRecordBytes int) *pace {
	return &pace{
		// Full buckets: the first call need not wait.
		records:        rate.NewLimiter(shardRecordsPerSecond, int(shardRecordsPerSecond*paceBurst.Seconds())),
		bytes:          rate.NewLimiter(shardBytesPerSecond, max(maxRecordBytes, int(shardBytesPerSecond*paceBurst.Seconds()))),
		maxRecordBytes: maxRecordBytes,
		changed:        now,
		slowStart:      true,
	}
}

func (pc *pace) limited() bool { return pc.records.Limit() != rate.Inf }

// set changes the rates to records and bytes per second.
func (pc *pace) set(now time.Time, records, bytes float64) {
	if records > growthCeiling*shardRecordsPerSecond && bytes > growthCeiling*shardBytesPerSecond {
		pc.records.SetLimitAt(now, rate.Inf)
		pc.bytes.SetLimitAt(now, rate.Inf)
		return
	}
	pc.records.SetLimitAt(now, rate.Limit(records))
	pc.records.SetBurstAt(now, max(1, int(records*paceBurst.Seconds())))
	pc.bytes.SetLimitAt(now, rate.Limit(bytes))
	// A record of the largest size must fit in the bucket.
	pc.bytes.SetBurstAt(now, max(pc.maxRecordBytes, int(bytes*paceBurst.Seconds())))
}

// throttled cuts the rate after the shard refused records.
func (pc *pace) throttled(now time.Time) {
	if now.Sub(pc.cut) < cutInterval {
		return
	}
	pc.cut, pc.changed, pc.bound = now, now, false
	pc.sentRecords, pc.sentBytes = 0, 0
	if pc.slowStart || !pc.limited() {
		pc.slowStart = false
		pc.set(now, shardRecordsPerSecond, shardBytesPerSecond)
		return
	}
	pc.set(now, max(minPace*shardRecordsPerSecond, float64(pc.records.Limit())*cutFactor), max(minPace*shardBytesPerSecond, float64(pc.bytes.Limit())*cutFactor))
}

// succeeded raises the rate after a call the shard took in full, when the
// rate held the shard back.
func (pc *pace) succeeded(now time.Time) {
	if !pc.limited() || !pc.bound {
		return
	}
	dt := now.Sub(pc.changed).Seconds()
	if dt < paceBurst.Seconds() {
		return
	}
	// Raise only a rate the shard was sent at: a busy machine that
	// cannot keep up with it learns nothing about the shard.
	used := max(pc.sentRecords/float64(pc.records.Limit()), pc.sentBytes/float64(pc.bytes.Limit())) / dt
	pc.changed, pc.bound = now, false
	pc.sentRecords, pc.sentBytes = 0, 0
	if used < usedToGrow {
		return
	}
	r, b := float64(pc.records.Limit()), float64(pc.bytes.Limit())
	if pc.slowStart {
		f := math.Pow(slowStartPerSecond, dt)
		pc.set(now, r*f, b*f)
		return
	}
	pc.set(now, r+growthPerSecond*max(r, shardRecordsPerSecond)*dt, b+growthPerSecond*max(b, shardBytesPerSecond)*dt)
}

// budget is what a shard may send now, counted down as a call is built.
type budget struct {
	records, bytes float64
}

// budget returns the tokens the shard has at now.
func (pc *pace) budget(now time.Time) budget {
	return budget{pc.records.TokensAt(now), pc.bytes.TokensAt(now)}
}

// wait is how long until the shard has tokens for a record of size bytes.
func (pc *pace) wait(b budget, size int) time.Duration {
	var d float64
	if b.records < 1 {
		d = (1 - b.records) / float64(pc.records.Limit())
	}
	if need := float64(size) - b.bytes; need > 0 {
		d = max(d, need/float64(pc.bytes.Limit()))
	}
	return time.Duration(d * float64(time.Second))
}

// spend takes a sent record's tokens: its bytes, and one record unless
// it travels in an aggregate.
func (pc *pace) spend(now time.Time, size int, record bool) {
	if record {
		pc.records.AllowN(now, 1)
		pc.sentRecords++
	}
	pc.bytes.AllowN(now, size)
	pc.sentBytes += float64(size)
}
