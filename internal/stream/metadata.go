package stream

import (
	"context"
	"slices"
)

// Metadata setters: retention, encryption, capacity mode, maximum record
// size and shard-level metrics, each written through updateMeta.

// SetRetention changes a stream's retention period. increase selects the
// IncreaseStreamRetentionPeriod rules (hours may not be below the current
// value), otherwise the Decrease rules apply.
func (s *Service) SetRetention(ctx context.Context, name string, hours int, increase bool) error {
	if hours < MinRetentionHours {
		return newError(ErrInvalidArgument, "Minimum allowed retention period is %d hours. Requested retention period (%d hours) is too short.", MinRetentionHours, hours)
	}
	if hours > MaxRetentionHours {
		return newError(ErrInvalidArgument, "Maximum allowed retention period is %d hours. Requested retention period (%d hours) is too long.", MaxRetentionHours, hours)
	}
	if err := s.requireActive(name); err != nil {
		return err
	}
	changed := false
	err := s.updateMeta(ctx, name, func(m *streamMeta) error {
		if increase && hours < m.RetentionHours {
			return newError(ErrInvalidArgument, "Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", hours, s.plain(name), m.RetentionHours)
		}
		if !increase && hours > m.RetentionHours {
			return newError(ErrInvalidArgument, "Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", hours, s.plain(name), m.RetentionHours)
		}
		changed = hours != m.RetentionHours
		m.RetentionHours = hours
		return nil
	})
	if err == nil && changed {
		// As on Kinesis, a period equal to the current one changes
		// nothing, and the stream stays ACTIVE.
		s.markUpdating(name)
	}
	return err
}

// SetEncryption records StartStreamEncryption (EncryptionKMS with a key id)
// or StopStreamEncryption (EncryptionNone). Data is not encrypted with KMS;
// the setting is stored and reported so clients that manage it work.
func (s *Service) SetEncryption(ctx context.Context, name, encryptionType, keyID string) error {
	if err := s.requireActive(name); err != nil {
		return err
	}
	err := s.updateMeta(ctx, name, func(m *streamMeta) error {
		m.EncryptionType, m.KeyID = encryptionType, keyID
		if encryptionType == EncryptionNone {
			m.KeyID = ""
		}
		return nil
	})
	if err == nil {
		s.markUpdating(name)
	}
	return err
}

// SetMode records UpdateStreamMode. The shard layout stays as it is (an
// ON_DEMAND stream keeps its shards; runnel does not autoscale).
func (s *Service) SetMode(ctx context.Context, name, mode string) error {
	if err := s.requireActive(name); err != nil {
		return err
	}
	err := s.updateMeta(ctx, name, func(m *streamMeta) error {
		m.Mode = mode
		return nil
	})
	if err == nil {
		s.markUpdating(name)
	}
	return err
}

// SetMaxRecordSize records UpdateMaxRecordSize (1024–10240 KiB, checked by
// the caller); Put enforces it from then on.
func (s *Service) SetMaxRecordSize(ctx context.Context, name string, kib int) error {
	return s.updateMeta(ctx, name, func(m *streamMeta) error {
		m.MaxRecordSizeKiB = kib
		return nil
	})
}

// SetShardLevelMetrics enables (or disables) enhanced-monitoring metrics
// and returns the metrics enabled before and after. "ALL" stands for every
// metric in all.
func (s *Service) SetShardLevelMetrics(ctx context.Context, name string, metrics, all []string, enable bool) (before, after []string, err error) {
	err = s.updateMeta(ctx, name, func(m *streamMeta) error {
		before = slices.Clone(m.ShardLevelMetrics)
		want := metrics
		if slices.Contains(metrics, "ALL") {
			want = all
		}
		cur := slices.Clone(m.ShardLevelMetrics)
		for _, x := range want {
			i := slices.Index(cur, x)
			if enable && i < 0 {
				cur = append(cur, x)
			} else if !enable && i >= 0 {
				cur = slices.Delete(cur, i, i+1)
			}
		}
		slices.Sort(cur)
		m.ShardLevelMetrics = cur
		after = slices.Clone(cur)
		return nil
	})
	return before, after, err
}
