package stream

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The write capacity of an on-demand stream under ShardWriteLimits, as
// Kinesis documents on-demand mode: a new stream takes 4 MiB/s and 4,000
// records/s; when its writes reach a new peak it scales, within 15
// minutes, to take double that peak; warm throughput
// (UpdateStreamWarmThroughput) is write capacity available at once while
// the account's commitment is in force (On-demand Advantage), and setting
// it releases capacity learned from earlier peaks. Kinesis adds
// shards to an on-demand stream as it scales; runnel does not, so the
// stream's capacity is one pair of token buckets (one second of burst)
// for the whole stream instead of per-shard ones. What it learned from
// peaks is kept in memory: a restart starts again from the default.

// The default write capacity of an on-demand stream and how long it takes
// to scale to double a new peak.
const (
	OnDemandWriteMiBps      = 4
	OnDemandRecordsPerMiBps = 1000
	OnDemandScaleUpDelay    = 15 * time.Minute
)

// writeCapacity is an on-demand stream's write capacity. Its methods are
// called with mu held.
type writeCapacity struct {
	mu      sync.Mutex
	limiter writeLimiter
	// mibps is the capacity the buckets are set to, now the larger of
	// learned and the warm throughput.
	mibps int
	// learned is the capacity scaled to from observed peaks; 0 for the
	// default.
	learned int
	// growTo, when above learned, is the capacity a new peak asked for,
	// made at growAt.
	growTo int
	growAt time.Time
	// second is the Unix second whose writes bytes and records count.
	second         int64
	bytes, records int
}

// set makes the buckets take mibps at now. What the second's writes used
// stays used: capacity added is there at once, capacity taken away is
// taken from what is left.
func (c *writeCapacity) set(now time.Time, mibps int) {
	if mibps == c.mibps {
		return
	}
	c.mibps = mibps
	c.limiter.records = resize(c.limiter.records, now, mibps*OnDemandRecordsPerMiBps)
	c.limiter.bytes = resize(c.limiter.bytes, now, mibps<<20)
}

// resize returns a bucket of perSecond (one second of burst) holding what
// l holds less what it has given out (a full one when l is nil).
func resize(l *rate.Limiter, now time.Time, perSecond int) *rate.Limiter {
	used := 0
	if l != nil {
		used = max(0, int(float64(l.Burst())-l.TokensAt(now)))
	}
	n := rate.NewLimiter(rate.Limit(perSecond), perSecond)
	n.ReserveN(now, min(used, perSecond))
	return n
}

// current returns the capacity in force at now for a stream whose warm
// throughput is warm, and the capacity it is scaling to.
func (c *writeCapacity) current(now time.Time, warm int) (current, target int) {
	if c.growTo > c.learned && !now.Before(c.growAt) {
		c.learned, c.growTo = c.growTo, 0
	}
	current = max(OnDemandWriteMiBps, c.learned, warm)
	return current, max(current, c.growTo)
}

// take admits one record of size bytes at now, or refuses it when the
// stream's capacity is used up, and counts what it admits towards a new
// peak.
func (c *writeCapacity) take(now time.Time, warm, size int) bool {
	mibps, _ := c.current(now, warm)
	c.set(now, mibps)
	if !c.limiter.allow(now, size) {
		return false
	}
	if s := now.Unix(); s != c.second {
		c.second, c.bytes, c.records = s, 0, 0
	}
	c.bytes += size
	c.records++
	// Double this second's writes, in whole MiB/s of capacity.
	need := min(MaxWarmThroughputMiBps, max((2*c.bytes+(1<<20)-1)>>20, (2*c.records+OnDemandRecordsPerMiBps-1)/OnDemandRecordsPerMiBps))
	if need > mibps && need > c.growTo {
		if c.growTo <= c.learned {
			c.growAt = now.Add(OnDemandScaleUpDelay)
		}
		c.growTo = need
	}
	return true
}

// release forgets the capacity learned from peaks, as setting warm
// throughput does on Kinesis.
func (c *writeCapacity) release() {
	c.mu.Lock()
	c.learned, c.growTo = 0, 0
	c.mu.Unlock()
}

// advantage reports whether on-demand streams are in On-demand Advantage
// mode at now, the account's commitment in force: only then does their
// warm throughput count. A commitment that cannot be read counts as
// none.
func (s *Service) advantage(now time.Time) bool {
	c, err := s.commitment()
	return err == nil && c.at(now).Active()
}

// WriteCapacity returns the write capacity (MiB/s) an on-demand stream
// takes now and the capacity it is scaling to; both are the default for a
// stream that has not written yet. Its warm throughput counts while the
// account's commitment is in force.
func (s *Service) WriteCapacity(name string) (current, target int, err error) {
	now := s.now()
	advantage := s.advantage(now)
	s.mu.RLock()
	st, err := s.lookup(name)
	var warm int
	if err == nil && advantage {
		warm = st.meta.WarmThroughputMiBps
	}
	s.mu.RUnlock()
	if err != nil {
		return 0, 0, err
	}
	st.capacity.mu.Lock()
	defer st.capacity.mu.Unlock()
	current, target = st.capacity.current(now, warm)
	return current, target, nil
}
