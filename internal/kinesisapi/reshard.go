package kinesisapi

import (
	"context"
	"time"

	"github.com/runnel-dev/runnel/internal/stream"
)

// reshardEngine is the part of the engine the resharding actions call.
type reshardEngine interface {
	SplitShard(ctx context.Context, name, shardID, newStartingHashKey string) error
	MergeShards(ctx context.Context, name, shardID, adjacentShardID string) error
	UpdateShardCount(ctx context.Context, name string, target int) (int, error)
}

// SplitShard

type splitShardRequest struct {
	streamRef
	ShardToSplit       *string `json:"ShardToSplit"`
	NewStartingHashKey *string `json:"NewStartingHashKey"`
}

func (r *splitShardRequest) validate() error {
	var v violations
	r.check(&v)
	v.str("shardToSplit", r.ShardToSplit, strRule{required: true, min: 1, max: maxShardIDLen, pattern: namePattern, patternText: namePatternText})
	v.str("newStartingHashKey", r.NewStartingHashKey, strRule{required: true, pattern: hashKeyPattern, patternText: hashPatternText})
	if err := v.err(); err != nil {
		return err
	}
	if err := r.require(); err != nil {
		return err
	}
	r.ShardToSplit = normalizeShardID(r.ShardToSplit)
	return checkHashKey(*r.NewStartingHashKey)
}

func (h *Handler) splitShard(ctx context.Context, r *splitShardRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.SplitShard(ctx, name, *r.ShardToSplit, *r.NewStartingHashKey)
}

// MergeShards

type mergeShardsRequest struct {
	streamRef
	ShardToMerge         *string `json:"ShardToMerge"`
	AdjacentShardToMerge *string `json:"AdjacentShardToMerge"`
}

func (r *mergeShardsRequest) validate() error {
	var v violations
	r.check(&v)
	rule := strRule{required: true, min: 1, max: maxShardIDLen, pattern: namePattern, patternText: namePatternText}
	v.str("shardToMerge", r.ShardToMerge, rule)
	v.str("adjacentShardToMerge", r.AdjacentShardToMerge, rule)
	if err := v.err(); err != nil {
		return err
	}
	r.ShardToMerge = normalizeShardID(r.ShardToMerge)
	r.AdjacentShardToMerge = normalizeShardID(r.AdjacentShardToMerge)
	return r.require()
}

func (h *Handler) mergeShards(ctx context.Context, r *mergeShardsRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.MergeShards(ctx, name, *r.ShardToMerge, *r.AdjacentShardToMerge)
}

// UpdateShardCount

const scalingUniform = "UNIFORM_SCALING"

type updateShardCountRequest struct {
	streamRef
	TargetShardCount *int    `json:"TargetShardCount"`
	ScalingType      *string `json:"ScalingType"`
}

func (r *updateShardCountRequest) validate() error {
	var v violations
	r.check(&v)
	v.intRange("targetShardCount", r.TargetShardCount, true, 1, 1<<24-1)
	v.enum("scalingType", r.ScalingType, true, scalingUniform)
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

func (h *Handler) updateShardCount(ctx context.Context, r *updateShardCountRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	current, err := h.svc.UpdateShardCount(ctx, name, *r.TargetShardCount)
	if err != nil {
		return nil, err
	}
	return struct {
		StreamName        string `json:"StreamName"`
		StreamARN         string `json:"StreamARN"`
		CurrentShardCount int    `json:"CurrentShardCount"`
		TargetShardCount  int    `json:"TargetShardCount"`
	}{h.plainName(name), h.svc.ARN(name), current, *r.TargetShardCount}, nil
}

type childShardOut struct {
	ShardID      string       `json:"ShardId"`
	ParentShards []string     `json:"ParentShards"`
	HashKeyRange hashKeyRange `json:"HashKeyRange"`
}

func toChildShardsOut(children []stream.ChildShard) []childShardOut {
	if len(children) == 0 {
		return nil
	}
	out := make([]childShardOut, len(children))
	for i, c := range children {
		out[i] = childShardOut{ShardID: c.ShardID, ParentShards: c.ParentShards,
			HashKeyRange: hashKeyRange{StartingHashKey: c.StartingHashKey, EndingHashKey: c.EndingHashKey}}
	}
	return out
}

// filterShards applies a ShardFilter type, as ListShards documents them:
// AT_LATEST keeps the open shards; AT_TRIM_HORIZON and AT_TIMESTAMP the
// shards open at that moment; FROM_TRIM_HORIZON and FROM_TIMESTAMP the
// shards open at or after it. A stream's first shards count as open since
// before any timestamp.
func filterShards(shards []stream.Shard, filter string, at, horizon time.Time) []stream.Shard {
	if filter == "" || filter == filterAfterShardID {
		return shards
	}
	out := make([]stream.Shard, 0, len(shards))
	for _, s := range shards {
		open := s.EndingSequenceNumber == ""
		initial := s.ParentShardID == "" && s.AdjacentParentShardID == ""
		keep := false
		switch filter {
		case filterAtLatest:
			keep = open
		case filterAtTrimHorizon:
			keep = (initial || !s.Created.After(horizon)) && (open || s.Closed.After(horizon))
		case filterFromTrimHorizon:
			keep = open || s.Closed.After(horizon)
		case filterAtTimestamp:
			keep = (initial || !s.Created.After(at)) && (open || !s.Closed.Before(at))
		case filterFromTimestamp:
			keep = open || !s.Closed.Before(at)
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}
