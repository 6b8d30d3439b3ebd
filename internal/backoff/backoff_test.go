package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDelayIsCapped(t *testing.T) {
	t.Parallel()
	for n := 1; n < 100; n++ {
		d := Delay(n, 10*time.Millisecond, time.Second)
		require.LessOrEqual(t, d, time.Second)
		require.GreaterOrEqual(t, d, 5*time.Millisecond)
	}
	require.Zero(t, Delay(3, 0, 0))
}

func TestSleepEndsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.False(t, Sleep(ctx, time.Hour))
	require.False(t, Sleep(ctx, 0))
	require.True(t, Sleep(t.Context(), time.Nanosecond))
}
