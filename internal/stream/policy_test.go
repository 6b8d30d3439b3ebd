package stream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Resource policies survive a restart and go with their stream or
// consumer.
func TestResourcePolicyStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, nil)
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	c, err := s.RegisterConsumer(ctx, "s", "c", 0)
	require.NoError(t, err)
	require.False(t, s.HasResourcePolicies())
	require.NoError(t, s.SetResourcePolicy(ctx, s.ARN("s"), `{"stream":1}`))
	require.NoError(t, s.SetResourcePolicy(ctx, c.ARN, `{"consumer":1}`))
	require.ErrorIs(t, s.SetResourcePolicy(ctx, s.ARN("s")+"/consumer/c:1", `{}`), ErrNotFound)
	require.ErrorIs(t, s.SetResourcePolicy(ctx, s.ARN("t"), `{}`), ErrNotFound)
	require.NoError(t, s.Close())

	s = open(t, dir, nil)
	defer s.Close()
	require.True(t, s.HasResourcePolicies())
	// Every authorized request asks, so the answer takes no lock: it
	// comes while the streams are locked for a change.
	s.mu.Lock()
	answered := make(chan bool, 1)
	go func() { answered <- s.HasResourcePolicies() }()
	select {
	case has := <-answered:
		require.True(t, has)
	case <-time.After(10 * time.Second):
		t.Error("HasResourcePolicies waits for the streams' lock")
	}
	s.mu.Unlock()
	require.Equal(t, `{"stream":1}`, s.StreamPolicy("s"))
	p, err := s.ResourcePolicy(c.ARN)
	require.NoError(t, err)
	require.Equal(t, `{"consumer":1}`, p)

	require.NoError(t, s.DeregisterConsumer(ctx, "s", "c", ""))
	_, err = s.ResourcePolicy(c.ARN)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, s.SetResourcePolicy(ctx, s.ARN("s"), ""))
	require.False(t, s.HasResourcePolicies())
	require.NoError(t, s.SetResourcePolicy(ctx, s.ARN("s"), `{"stream":2}`))
	require.NoError(t, s.DeleteStream(ctx, "s", true))
	require.False(t, s.HasResourcePolicies(), "gone with the stream")
	require.NoError(t, s.CreateStream(ctx, "s", 1, CreateOptions{}))
	require.Empty(t, s.StreamPolicy("s"), "a new stream of the same name starts without")
}
