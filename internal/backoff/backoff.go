// Package backoff is runnel's one retry delay: capped exponential backoff
// with jitter, and a sleep that ends with its context. Every retry loop
// (producers, the consumer runtime, handler restarts, sink writes, bench)
// paces itself with it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the jittered exponential delay before retry n (n ≥ 1): base
// doubled n-1 times, capped at ceiling, then drawn at random from its
// upper half, so that concurrent clients do not retry in step and none
// retries at once.
func Delay(n int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx is done; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
