package bench

import (
	"slices"
	"time"
)

// Latency summarizes call latencies in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// summarize sorts lat in place and returns its nearest-rank percentiles.
func summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	return Latency{
		P50: msOf(rank(lat, 0.50)),
		P99: msOf(rank(lat, 0.99)),
		Max: msOf(lat[len(lat)-1]),
	}
}

// rank returns the nearest-rank q-quantile of sorted, non-empty lat.
func rank(lat []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(lat))+0.999999999) - 1
	return lat[max(0, min(i, len(lat)-1))]
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
