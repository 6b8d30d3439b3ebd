package sink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type recorder struct {
	mu      sync.Mutex
	blocked []Wait
	cleared int
}

func (r *recorder) Blocked(w Wait) { r.mu.Lock(); r.blocked = append(r.blocked, w); r.mu.Unlock() }
func (r *recorder) Unblocked()     { r.mu.Lock(); r.cleared++; r.mu.Unlock() }

func TestDoRetriesUntilTheTargetTakesTheWrite(t *testing.T) {
	rec := &recorder{}
	ctx := WithReporter(context.Background(), rec)
	r := &Retry{Target: "db 1", Base: time.Millisecond, Ceiling: 2 * time.Millisecond}
	down := errors.New("connection refused")
	calls := 0
	err := r.Do(ctx, func(context.Context) error {
		calls++
		if calls < 5 {
			return down
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 5, calls)
	require.Len(t, rec.blocked, 4)
	for _, w := range rec.blocked {
		require.Equal(t, "db 1", w.Target)
		require.Equal(t, rec.blocked[0].Since, w.Since, "one wait, one start")
		require.ErrorIs(t, w.Err, down)
	}
	require.Contains(t, rec.blocked[0].String(), "blocked since ")
	require.Contains(t, rec.blocked[0].String(), ": db 1: connection refused")
	require.Equal(t, 1, rec.cleared)
}

func TestDoReturnsPoisonAtOnce(t *testing.T) {
	r := &Retry{Target: "db"}
	bad := errors.New("key attribute missing")
	calls := 0
	err := r.Do(context.Background(), func(context.Context) error { calls++; return Poison(bad) })
	require.Equal(t, 1, calls)
	require.True(t, IsPoison(err))
	require.ErrorIs(t, err, bad)
	require.NotErrorIs(t, err, ErrUnavailable)
}

func TestDoGivesTheBatchBackWhenCtxEnds(t *testing.T) {
	r := &Retry{Target: "db", Base: time.Millisecond, Ceiling: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	down := errors.New("throttled")
	err := r.Do(ctx, func(context.Context) error { return down })
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, err, down)
	require.False(t, IsPoison(err))
	var ue *UnavailableError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "db", ue.Wait.Target)
	// The target stays down for the next batch: the wait keeps its start.
	err2 := r.Do(context.Background(), func(context.Context) error { return nil })
	require.NoError(t, err2)
}
