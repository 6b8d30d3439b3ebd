package stream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCommitment: the commitment's 24-hour minimum, its scheduled end, and
// the settings surviving a restart with the warm throughput they allow.
func TestCommitment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock()
	dir := t.TempDir()
	s, err := Open(t.Context(), Config{Dir: dir, NoSync: true, Now: c.Now})
	require.NoError(t, err)

	got, err := s.AccountCommitment()
	require.NoError(t, err)
	require.Equal(t, CommitmentDisabled, got.Status)
	got, err = s.SetCommitment(ctx, false)
	require.NoError(t, err)
	require.Equal(t, Commitment{Status: CommitmentDisabled}, got, "disabling a disabled commitment changes nothing")

	start := c.Now().UTC()
	got, err = s.SetCommitment(ctx, true)
	require.NoError(t, err)
	require.Equal(t, Commitment{Status: CommitmentEnabled, StartedAt: start, EarliestAllowedAt: start.Add(CommitmentMinimum)}, got)
	c.Advance(time.Hour)
	got, err = s.SetCommitment(ctx, false)
	require.NoError(t, err)
	require.Equal(t, CommitmentEnding, got.Status, "a commitment ends no sooner than 24 hours after it started")

	require.NoError(t, s.CreateStream(ctx, "od", 1, CreateOptions{Mode: ModeOnDemand}))
	require.NoError(t, s.SetWarmThroughput(ctx, "od", 50), "a commitment ending later is still in force")
	require.NoError(t, s.Close())

	s, err = Open(t.Context(), Config{Dir: dir, NoSync: true, Now: c.Now})
	require.NoError(t, err)
	defer s.Close()
	got, err = s.AccountCommitment()
	require.NoError(t, err)
	require.Equal(t, CommitmentEnding, got.Status, "the settings survive a restart")
	d, err := s.Describe("od")
	require.NoError(t, err)
	require.Equal(t, 50, d.WarmThroughputMiBps)

	c.Advance(CommitmentMinimum)
	got, err = s.AccountCommitment()
	require.NoError(t, err)
	require.Equal(t, Commitment{Status: CommitmentDisabled, StartedAt: start, EndedAt: start.Add(CommitmentMinimum), EarliestAllowedAt: start.Add(CommitmentMinimum)}, got)
	require.ErrorIs(t, s.SetWarmThroughput(ctx, "od", 60), ErrInvalidArgument, "no warm throughput without a commitment")

	// Enabled again after its end: a new commitment, disabled at once
	// once its 24 hours are over.
	got, err = s.SetCommitment(ctx, true)
	require.NoError(t, err)
	require.Equal(t, c.Now().UTC(), got.StartedAt)
	require.True(t, got.EndedAt.IsZero())
	c.Advance(CommitmentMinimum + time.Minute)
	got, err = s.SetCommitment(ctx, false)
	require.NoError(t, err)
	require.Equal(t, CommitmentDisabled, got.Status)
	require.Equal(t, c.Now().UTC(), got.EndedAt)
}
