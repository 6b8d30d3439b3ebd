package kinesisapi

import (
	"context"
	"time"
)

const (
	defaultListShards = 1000
	maxListShardsPage = 1000
)

// ShardFilter types as Kinesis names them.
const (
	filterAfterShardID    = "AFTER_SHARD_ID"
	filterAtTrimHorizon   = "AT_TRIM_HORIZON"
	filterFromTrimHorizon = "FROM_TRIM_HORIZON"
	filterAtLatest        = "AT_LATEST"
	filterAtTimestamp     = "AT_TIMESTAMP"
	filterFromTimestamp   = "FROM_TIMESTAMP"
)

type shardFilter struct {
	Type      *string    `json:"Type"`
	ShardID   *string    `json:"ShardId"`
	Timestamp *epochTime `json:"Timestamp"`
}

type listShardsRequest struct {
	streamRef
	NextToken               *string      `json:"NextToken"`
	ExclusiveStartShardID   *string      `json:"ExclusiveStartShardId"`
	MaxResults              *int         `json:"MaxResults"`
	StreamCreationTimestamp *epochTime   `json:"StreamCreationTimestamp"`
	ShardFilter             *shardFilter `json:"ShardFilter"`
}

func (r *listShardsRequest) validate() error {
	var v violations
	r.check(&v)
	v.str("nextToken", r.NextToken, strRule{min: 1, max: maxTokenLen})
	v.str("exclusiveStartShardId", r.ExclusiveStartShardID, shardIDRule)
	v.intRange("maxResults", r.MaxResults, false, 1, maxListLimit)
	if f := r.ShardFilter; f != nil {
		v.enum("shardFilter.type", f.Type, true, filterAfterShardID, filterAtTrimHorizon, filterFromTrimHorizon,
			filterAtLatest, filterAtTimestamp, filterFromTimestamp)
		v.str("shardFilter.shardId", f.ShardID, shardIDRule)
	}
	if err := v.err(); err != nil {
		return err
	}
	r.ExclusiveStartShardID = normalizeShardID(r.ExclusiveStartShardID)
	if f := r.ShardFilter; f != nil {
		f.ShardID = normalizeShardID(f.ShardID)
	}
	if r.NextToken != nil {
		if r.StreamName != nil || r.ExclusiveStartShardID != nil || r.StreamCreationTimestamp != nil {
			return invalidArgument("NextToken and StreamName, ExclusiveStartShardId or StreamCreationTimestamp cannot be provided together.")
		}
	} else if err := r.require(); err != nil {
		return err
	}
	if f := r.ShardFilter; f != nil {
		switch *f.Type {
		case filterAfterShardID:
			if f.ShardID == nil {
				return invalidArgument("ShardFilter of type %s requires a ShardId.", filterAfterShardID)
			}
		case filterAtTimestamp, filterFromTimestamp:
			if f.Timestamp == nil {
				return invalidArgument("ShardFilter of type %s requires a Timestamp.", *f.Type)
			}
		}
	}
	return nil
}

func (h *Handler) listShards(ctx context.Context, r *listShardsRequest) (any, error) {
	var name, after, filter string
	var at time.Time
	if r.NextToken != nil {
		t, err := h.tokens.open(*r.NextToken, "shards", h.now())
		if err != nil {
			return nil, err
		}
		name, after, filter, at = t.Stream, t.After, t.Filter, time.UnixMilli(t.At)
		if r.StreamARN != nil {
			arnName, err := h.svc.NameFromARN(*r.StreamARN)
			if err != nil {
				return nil, err
			}
			if arnName != name {
				return nil, invalidArgument("The NextToken was issued for another stream.")
			}
		}
	} else {
		var err error
		if name, err = h.streamName(ctx, r.streamRef); err != nil {
			return nil, err
		}
		after = deref(r.ExclusiveStartShardID, "")
		if f := r.ShardFilter; f != nil {
			filter = *f.Type
			if f.Timestamp != nil {
				at = f.Timestamp.Time
			}
			if *f.Type == filterAfterShardID && *f.ShardID > after {
				after = *f.ShardID
			}
		}
	}
	d, err := h.svc.Describe(name)
	if err != nil {
		return nil, err
	}
	horizon := h.now().Add(-time.Duration(d.RetentionHours) * time.Hour)
	shards := filterShards(shardsAfter(d.Shards, after), filter, at, horizon)
	limit := min(deref(r.MaxResults, defaultListShards), maxListShardsPage)
	out := struct {
		Shards    []shardOut `json:"Shards"`
		NextToken string     `json:"NextToken,omitempty"`
	}{}
	if len(shards) > limit {
		shards = shards[:limit]
		out.NextToken = h.tokens.seal(pageToken{
			Kind:   "shards",
			Stream: name,
			After:  shards[len(shards)-1].ID,
			Filter: filter,
			At:     at.UnixMilli(),
			Issued: h.now().UnixMilli(),
		})
	}
	out.Shards = toShardsOut(shards)
	return out, nil
}
