package bufpool

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A buffer put back is empty when got again, and one over the pool's
// limit is not kept.
func TestPool(t *testing.T) {
	p := New(64)
	require.Nil(t, p.Get(), "a new pool has no buffer")
	p.Put(nil)
	p.Put(make([]byte, 100, 128))
	require.Nil(t, p.Get(), "a buffer over the limit is not kept")
	b := append(make([]byte, 0, 64), "data"...)
	p.Put(b)
	// sync.Pool may drop what it holds (it does at random under the race
	// detector): a buffer got back is empty and of the one put.
	if got := p.Get(); got != nil {
		require.Empty(t, got)
		require.Equal(t, 64, cap(got))
		require.Same(t, &b[:1][0], &got[:1][0])
	}
}
