package stream

import (
	"context"
)

// Record distribution strategies (UpdateStreamRecordDistributionStrategy).
// Under AUTO an on-demand stream spreads records evenly over its open
// shards, ignoring partition keys and explicit hash keys, as Kinesis's
// service-managed distribution does; USER_PARTITION_KEY, the default,
// routes by the MD5 of the partition key. A provisioned stream always
// routes by partition key.
const (
	DistributionAuto             = "AUTO"
	DistributionUserPartitionKey = "USER_PARTITION_KEY"
)

// autoDistribution reports whether a stream spreads its records evenly
// now: it set AUTO and is on-demand. The caller holds Service.mu.
func (m *streamMeta) autoDistribution() bool {
	return m.Mode == ModeOnDemand && m.RecordDistribution == DistributionAuto
}

// checkDistribution refuses AUTO for a stream that is not on-demand, as
// Kinesis does (InvalidArgumentException).
func (s *Service) checkDistribution(name, mode, strategy string) error {
	if strategy == DistributionAuto && mode != ModeOnDemand {
		return newError(ErrInvalidArgument, "Stream %s is in %s mode; the AUTO record distribution strategy is supported only for ON_DEMAND streams.", s.InAccount(name), mode)
	}
	return nil
}

// SetRecordDistribution sets a stream's record distribution strategy. As
// on Kinesis it takes effect at once, for records put from then on; records
// already in the stream stay where they are.
func (s *Service) SetRecordDistribution(ctx context.Context, name, strategy string) error {
	if err := s.requireActive(name); err != nil {
		return err
	}
	return s.updateMeta(ctx, name, func(m *streamMeta) error {
		if err := s.checkDistribution(name, m.Mode, strategy); err != nil {
			return err
		}
		m.RecordDistribution = strategy
		if strategy == DistributionUserPartitionKey {
			m.RecordDistribution = ""
		}
		return nil
	})
}

// spreadHashes sets hashes to hash keys that spread n records evenly over
// st's open shards, each record to the shard after the previous one's,
// continuing from where the stream's last put left off. The caller holds
// s.mu.
func (st *streamState) spreadHashes(hashes []u128) {
	next := st.autoNext.Add(uint64(len(hashes))) - uint64(len(hashes))
	for i := range hashes {
		hashes[i] = st.open[(next+uint64(i))%uint64(len(st.open))].start
	}
}
