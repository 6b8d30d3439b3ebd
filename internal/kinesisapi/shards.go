package kinesisapi

import (
	"context"

	"github.com/runnel-dev/runnel/internal/stream"
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

func (h *Handler) listShards(_ context.Context, r *listShardsRequest) (any, error) {
	var name, after, filter string
	if r.NextToken != nil {
		t, err := h.tokens.open(*r.NextToken, "shards", h.now())
		if err != nil {
			return nil, err
		}
		name, after, filter = t.Stream, t.After, t.Filter
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
		if name, err = h.streamName(r.streamRef); err != nil {
			return nil, err
		}
		after = deref(r.ExclusiveStartShardID, "")
		if f := r.ShardFilter; f != nil {
			filter = *f.Type
			if *f.Type == filterAfterShardID && *f.ShardID > after {
				after = *f.ShardID
			}
		}
	}
	d, err := h.svc.Describe(name)
	if err != nil {
		return nil, err
	}
	shards := filterShards(shardsAfter(d.Shards, after), filter)
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
			Issued: h.now().UnixMilli(),
		})
	}
	out.Shards = toShardsOut(shards)
	return out, nil
}

// filterShards applies a ShardFilter type. AT_LATEST keeps the open shards.
// The trim-horizon and timestamp filters keep every listed shard: the
// engine does not expire closed shards or report when a shard closed, so
// every shard it lists may still hold records at or after any position.
func filterShards(shards []stream.Shard, filter string) []stream.Shard {
	if filter != filterAtLatest {
		return shards
	}
	open := make([]stream.Shard, 0, len(shards))
	for _, s := range shards {
		if s.EndingSequenceNumber == "" {
			open = append(open, s)
		}
	}
	return open
}
