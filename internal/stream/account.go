package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Account settings (DescribeAccountSettings, UpdateAccountSettings): the
// on-demand minimum throughput billing commitment, stored in the metadata
// under metaAccount. As on Kinesis a commitment lasts at least
// CommitmentMinimum: disabling it sooner schedules its end for then
// (CommitmentEnding), and enabling it again before then cancels that.
// Warm throughput (UpdateStreamWarmThroughput) is a setting of on-demand
// streams under an active commitment.

// metaAccount is the metadata name of the account settings.
const metaAccount = "account"

// The statuses of the minimum throughput billing commitment.
const (
	CommitmentEnabled  = "ENABLED"
	CommitmentDisabled = "DISABLED"
	CommitmentEnding   = "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
)

// CommitmentMinimum is how long a commitment lasts at least.
const CommitmentMinimum = 24 * time.Hour

// MaxWarmThroughputMiBps is the most warm throughput one on-demand stream
// may have (10 GiB/s).
const MaxWarmThroughputMiBps = 10 << 10

// Commitment is the account's minimum throughput billing commitment. The
// times are zero when they do not apply.
type Commitment struct {
	Status            string    `json:"status"`
	StartedAt         time.Time `json:"startedAt,omitzero"`
	EndedAt           time.Time `json:"endedAt,omitzero"`
	EarliestAllowedAt time.Time `json:"earliestAllowedEndAt,omitzero"`
}

// Active reports whether the commitment is in force: on-demand streams
// are then in On-demand Advantage mode.
func (c Commitment) Active() bool {
	return c.Status == CommitmentEnabled || c.Status == CommitmentEnding
}

// at is c as it stands at now: a scheduled end that has come is an end.
func (c Commitment) at(now time.Time) Commitment {
	if c.Status == CommitmentEnding && !now.Before(c.EarliestAllowedAt) {
		c.Status, c.EndedAt = CommitmentDisabled, c.EarliestAllowedAt
	}
	return c
}

// AccountCommitment returns the account's commitment as it stands now.
func (s *Service) AccountCommitment() (Commitment, error) {
	c, err := s.commitment()
	return c.at(s.now()), err
}

// commitment returns the stored commitment, read from the metadata once
// and then kept as SetCommitment changes it.
func (s *Service) commitment() (Commitment, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.commit != nil {
		return *s.commit, nil
	}
	c, err := s.loadCommitment()
	if err == nil {
		s.commit = &c
	}
	return c, err
}

func (s *Service) loadCommitment() (Commitment, error) {
	c := Commitment{Status: CommitmentDisabled}
	raw, err := s.eng.GetMeta(metaAccount)
	if err != nil || raw == nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("reading the account settings: %w", err)
	}
	return c, nil
}

// SetCommitment enables or disables the account's commitment and returns
// it as it then stands. Enabling an enabled commitment, or disabling a
// disabled one, changes nothing.
func (s *Service) SetCommitment(ctx context.Context, enable bool) (Commitment, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	c, err := s.loadCommitment()
	if err != nil {
		return c, err
	}
	now := s.now().UTC()
	c = c.at(now)
	switch {
	case enable && c.Status == CommitmentDisabled:
		c = Commitment{Status: CommitmentEnabled, StartedAt: now, EarliestAllowedAt: now.Add(CommitmentMinimum)}
	case enable:
		c.Status = CommitmentEnabled // cancels a scheduled end
	case c.Status == CommitmentEnabled && now.Before(c.EarliestAllowedAt):
		c.Status = CommitmentEnding
	case c.Status == CommitmentEnabled:
		c.Status, c.EndedAt = CommitmentDisabled, now
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	b := s.eng.NewBatch()
	b.SetMeta(metaAccount, raw)
	if err := s.eng.Commit(b); err != nil {
		return c, fmt.Errorf("writing the account settings: %w", err)
	}
	s.commitMu.Lock()
	s.commit = &c
	s.commitMu.Unlock()
	return c, nil
}

// SetWarmThroughput sets an on-demand stream's warm throughput (MiB/s):
// under ShardWriteLimits the stream takes that much at once, and forgets
// the capacity its peaks taught it (see capacity.go). The stream is
// UPDATING for the transition delay. Kinesis refuses it for provisioned
// streams and without an active commitment.
func (s *Service) SetWarmThroughput(ctx context.Context, name string, mibps int) error {
	if mibps < 0 || mibps > MaxWarmThroughputMiBps {
		return newError(ErrInvalidArgument, "WarmThroughputMiBps %d is out of range: an on-demand stream may have at most %d MiBps of warm throughput.", mibps, MaxWarmThroughputMiBps)
	}
	c, err := s.AccountCommitment()
	if err != nil {
		return err
	}
	if !c.Active() {
		return newError(ErrInvalidArgument, "Warm throughput can be configured only in accounts with the MinimumThroughputBillingCommitment enabled; enable it with UpdateAccountSettings.")
	}
	if err := s.requireActive(name); err != nil {
		return err
	}
	err = s.updateMeta(ctx, name, func(m *streamMeta) error {
		if m.Mode != ModeOnDemand {
			return newError(ErrInvalidArgument, "Stream %s is in %s mode; warm throughput can be configured only for ON_DEMAND streams.", s.InAccount(name), m.Mode)
		}
		m.WarmThroughputMiBps = mibps
		return nil
	})
	if err == nil {
		s.markUpdating(name)
		s.mu.RLock()
		if st, err := s.lookup(name); err == nil {
			st.capacity.release()
		}
		s.mu.RUnlock()
	}
	return err
}
