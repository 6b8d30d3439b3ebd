package consumer

import (
	"context"
	"errors"
	"strconv"

	"github.com/runnel-dev/runnel/internal/seqnum"
)

// The checkpoint sentinels of the KCL: positions that are not a sequence
// number.
const (
	SentinelTrimHorizon = "TRIM_HORIZON"
	SentinelLatest      = "LATEST"
	SentinelAtTimestamp = "AT_TIMESTAMP"
	// SentinelShardEnd marks a closed shard whose every record was
	// handled; its children may start.
	SentinelShardEnd = "SHARD_END"
)

// Checkpoint is how far a shard has been handled: every record up to and
// including SequenceNumber (and, within a KPL aggregate, up to and
// including user record SubSequenceNumber) is done. SequenceNumber may
// instead be one of the Sentinel values, with SubSequenceNumber 0.
type Checkpoint struct {
	SequenceNumber    string `json:"sequenceNumber"`
	SubSequenceNumber int64  `json:"subSequenceNumber,omitempty"`
}

// IsSentinel reports whether c is a sentinel rather than a position.
func (c Checkpoint) IsSentinel() bool {
	switch c.SequenceNumber {
	case SentinelTrimHorizon, SentinelLatest, SentinelAtTimestamp, SentinelShardEnd:
		return true
	}
	return false
}

// ShardEnd reports whether c is SHARD_END.
func (c Checkpoint) ShardEnd() bool { return c.SequenceNumber == SentinelShardEnd }

func (c Checkpoint) String() string {
	if c.IsSentinel() || c.SubSequenceNumber == 0 {
		return c.SequenceNumber
	}
	return c.SequenceNumber + "/" + strconv.FormatInt(c.SubSequenceNumber, 10)
}

// after reports whether position (seq, sub) lies after checkpoint c, a
// non-sentinel checkpoint.
func (c Checkpoint) before(seq string, sub int64) bool {
	switch seqnum.Compare(c.SequenceNumber, seq) {
	case -1:
		return true
	case 0:
		return sub > c.SubSequenceNumber
	}
	return false
}

// Lease is one shard's lease in an application, with the meaning the KCL
// gives its lease-table items.
type Lease struct {
	// Key is the shard id (KCL leaseKey).
	Key string `json:"leaseKey"`
	// Owner is the worker holding the lease, "" when none does.
	Owner string `json:"leaseOwner,omitempty"`
	// Counter is incremented by every take, renewal, checkpoint and
	// eviction; conditional updates compare it.
	Counter int64 `json:"leaseCounter"`
	// Checkpoint is how far the shard has been handled.
	Checkpoint Checkpoint `json:"checkpoint"`
	// OwnerSwitchesSinceCheckpoint counts takes by a different worker
	// since the last checkpoint.
	OwnerSwitchesSinceCheckpoint int64 `json:"ownerSwitchesSinceCheckpoint"`
	// ParentShardIDs are the shards this one was split or merged from;
	// it starts only when every parent's lease is at SHARD_END (or gone).
	ParentShardIDs []string `json:"parentShardIds,omitempty"`
	// CheckpointOwner, during a graceful hand-off, is the previous owner,
	// which still has to checkpoint what it finished and stop; the new
	// Owner starts only when it is "" (or after a lease duration).
	CheckpointOwner string `json:"checkpointOwner,omitempty"`
}

// Errors of lease stores.
var (
	// ErrLeaseConflict means a conditional update found the lease changed
	// (another worker took or renewed it): the caller's copy is stale.
	ErrLeaseConflict = errors.New("consumer: lease changed by another worker")
	// ErrLeaseNotFound means there is no lease with that key.
	ErrLeaseNotFound = errors.New("consumer: lease not found")
	// ErrLeaseExists means CreateLease found a lease with that key.
	ErrLeaseExists = errors.New("consumer: lease exists")
)

// LeaseStore holds the leases of one application. Every update is
// conditional, as the KCL's DynamoDB writes are: it applies only when the
// stored lease still has the counter (and, where stated, owner) of the
// caller's copy, and otherwise returns ErrLeaseConflict. Updates return
// the lease as stored afterwards. Implementations are safe for concurrent
// use by any number of workers.
type LeaseStore interface {
	// ListLeases returns every lease.
	ListLeases(ctx context.Context) ([]Lease, error)
	// GetLease returns one lease, or ErrLeaseNotFound.
	GetLease(ctx context.Context, key string) (Lease, error)
	// CreateLease stores l if no lease has its key, else ErrLeaseExists.
	CreateLease(ctx context.Context, l Lease) error
	// TakeLease makes owner the owner if the counter is still l.Counter,
	// incrementing the counter and, when the owner changes,
	// OwnerSwitchesSinceCheckpoint. With handOff and a current owner other
	// than owner, that owner becomes CheckpointOwner (a graceful hand-off);
	// otherwise CheckpointOwner is cleared.
	TakeLease(ctx context.Context, l Lease, owner string, handOff bool) (Lease, error)
	// RenewLease increments the counter if counter and owner are still
	// l's.
	RenewLease(ctx context.Context, l Lease) (Lease, error)
	// UpdateCheckpoint sets the checkpoint, zeroes
	// OwnerSwitchesSinceCheckpoint and increments the counter if counter
	// and owner are still l's.
	UpdateCheckpoint(ctx context.Context, l Lease, cp Checkpoint) (Lease, error)
	// HandOff ends a graceful hand-off by from: if CheckpointOwner is
	// still from it sets the checkpoint (when cp is not nil) and clears
	// CheckpointOwner, leaving the counter alone.
	HandOff(ctx context.Context, key, from string, cp *Checkpoint) (Lease, error)
	// EvictLease clears the owner (and CheckpointOwner) and increments the
	// counter if counter and owner are still l's, so any worker may take
	// the lease at once.
	EvictLease(ctx context.Context, l Lease) (Lease, error)
	// DeleteLease removes the lease if its counter is still l's.
	DeleteLease(ctx context.Context, l Lease) error
}
