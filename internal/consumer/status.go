package consumer

import "time"

// Status is a snapshot of a Worker, for the dashboard, metrics and
// `runnel run` status output.
type Status struct {
	Application string `json:"application"`
	Stream      string `json:"stream"`
	StreamARN   string `json:"streamArn,omitempty"`
	WorkerID    string `json:"workerId"`
	// Held is the number of leases this worker processes.
	Held int `json:"held"`
	// RecordsBehind and MillisBehindLatest sum and maximize the values of
	// the shards this worker processes.
	RecordsBehind      int64 `json:"recordsBehind"`
	MillisBehindLatest int64 `json:"millisBehindLatest"`
	// Shards lists every lease of the application as last read, with
	// processing figures for the shards this worker holds.
	Shards []ShardStatus `json:"shards"`
	// Stopping is set once the worker has been told to stop and has asked
	// every shard to finish its batch in flight.
	Stopping bool `json:"stopping"`
	// LastError is the worker's most recent lease or shard-sync error.
	LastError string `json:"lastError,omitempty"`
	// LeasesLost counts leases this worker lost while processing their
	// shards (taken by another worker, or not renewed in time): each time
	// the batch in flight was abandoned without a checkpoint.
	LeasesLost int64 `json:"leasesLost"`
}

// Shard states in ShardStatus.State.
const (
	ShardRunning        = "running"         // processed by this worker
	ShardHandOff        = "hand-off"        // taken, waiting for the previous owner to checkpoint and stop
	ShardWaitingParents = "waiting-parents" // some parent is not at SHARD_END
	ShardOwned          = "owned"           // held by another worker
	ShardUnowned        = "unowned"         // nobody holds it
	ShardFinished       = "finished"        // checkpointed at SHARD_END
)

// ShardStatus describes one shard's lease and, when this worker holds it,
// its processing.
type ShardStatus struct {
	ShardID        string   `json:"shardId"`
	Owner          string   `json:"owner,omitempty"`
	State          string   `json:"state"`
	Checkpoint     string   `json:"checkpoint"`
	ParentShardIDs []string `json:"parentShardIds,omitempty"`
	LeaseCounter   int64    `json:"leaseCounter"`

	// LeaseLost says when and why this worker last lost the shard's lease
	// while processing it (the batch in flight was then abandoned without
	// a checkpoint); "" if it never did.
	LeaseLost string `json:"leaseLost,omitempty"`

	// Records, Invocations, Errors, ToDestination and LastError are this
	// worker's totals for the shard over every time it held it (so they
	// remain after its lease moves on or the worker stops); the rest is
	// filled only for shards this worker holds.

	// RecordsBehind counts records read from the shard and not yet
	// checkpointed (approximate: records not yet read are not counted; see
	// MillisBehindLatest for those).
	RecordsBehind int64 `json:"recordsBehind"`
	// MillisBehindLatest is the last value GetRecords returned.
	MillisBehindLatest int64 `json:"millisBehindLatest"`
	// Records counts records handled (invoked successfully or sent to the
	// on-failure destination).
	Records     int64 `json:"records"`
	Invocations int64 `json:"invocations"`
	// Errors counts failed invocations and failed reads.
	Errors int64 `json:"errors"`
	// ToDestination counts records sent to the on-failure destination
	// (or skipped without one).
	ToDestination int64  `json:"toDestination"`
	LastError     string `json:"lastError,omitempty"`
	// Blocked says why the shard's batch in flight waits, when it waits
	// for an unavailable target (a sink that is down or throttling, a
	// handler process restarting): "blocked since 02:31:07: redis
	// 127.0.0.1:6379: ...". The batch is held, not failed: its records
	// are not sent to the on-failure destination and the checkpoint does
	// not pass them.
	Blocked string `json:"blocked,omitempty"`
	// BlockedSince is when that wait began.
	BlockedSince  time.Time `json:"blockedSince,omitzero"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
	// LastProgress is when the checkpoint last advanced (or the shard was
	// taken).
	LastProgress time.Time `json:"lastProgress,omitzero"`
	// Stalled is set when records wait (read and not checkpointed, or
	// MillisBehindLatest > 0) and the checkpoint has not advanced for
	// Config.StallAfter; StallReason then says why.
	Stalled     bool   `json:"stalled"`
	StallReason string `json:"stallReason,omitempty"`
}
