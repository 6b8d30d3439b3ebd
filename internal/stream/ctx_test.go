package stream

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A call whose ctx is done before it writes changes nothing.
func TestDoneContextChangesNothing(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir(), nil)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.CreateStream(t.Context(), "s", 1, CreateOptions{}))
	done, cancel := context.WithCancel(t.Context())
	cancel()

	require.ErrorIs(t, s.CreateStream(done, "other", 1, CreateOptions{}), context.Canceled)
	require.ErrorIs(t, s.SetRetention(done, "s", 48, true), context.Canceled)
	require.ErrorIs(t, s.AddTags(done, "s", map[string]string{"k": "v"}), context.Canceled)
	_, err := s.RegisterConsumer(done, "s", "c", 20)
	require.ErrorIs(t, err, context.Canceled)

	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, DefaultRetentionHours, d.RetentionHours)
	tags, err := s.Tags("s")
	require.NoError(t, err)
	require.Empty(t, tags)
	_, err = s.Describe("other")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, s.AddTags(t.Context(), "s", map[string]string{"k": "v"}))
}
