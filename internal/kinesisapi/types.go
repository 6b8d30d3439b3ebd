package kinesisapi

import (
	"github.com/runnel-dev/runnel/internal/stream"
)

// Response shapes, named and spelled as in the Kinesis API reference.

type streamModeDetails struct {
	StreamMode string `json:"StreamMode"`
}

type hashKeyRange struct {
	StartingHashKey string `json:"StartingHashKey"`
	EndingHashKey   string `json:"EndingHashKey"`
}

type sequenceNumberRange struct {
	StartingSequenceNumber string `json:"StartingSequenceNumber"`
	EndingSequenceNumber   string `json:"EndingSequenceNumber,omitempty"`
}

type shardOut struct {
	ShardID               string              `json:"ShardId"`
	ParentShardID         string              `json:"ParentShardId,omitempty"`
	AdjacentParentShardID string              `json:"AdjacentParentShardId,omitempty"`
	HashKeyRange          hashKeyRange        `json:"HashKeyRange"`
	SequenceNumberRange   sequenceNumberRange `json:"SequenceNumberRange"`
}

type enhancedMetrics struct {
	ShardLevelMetrics []string `json:"ShardLevelMetrics"`
}

type streamDescription struct {
	StreamName              string            `json:"StreamName"`
	StreamARN               string            `json:"StreamARN"`
	StreamStatus            string            `json:"StreamStatus"`
	StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
	Shards                  []shardOut        `json:"Shards"`
	HasMoreShards           bool              `json:"HasMoreShards"`
	RetentionPeriodHours    int               `json:"RetentionPeriodHours"`
	StreamCreationTimestamp epochSeconds      `json:"StreamCreationTimestamp"`
	EnhancedMonitoring      []enhancedMetrics `json:"EnhancedMonitoring"`
	EncryptionType          string            `json:"EncryptionType"`
	KeyID                   string            `json:"KeyId,omitempty"`
}

type streamDescriptionSummary struct {
	StreamName              string             `json:"StreamName"`
	StreamARN               string             `json:"StreamARN"`
	StreamStatus            string             `json:"StreamStatus"`
	StreamModeDetails       streamModeDetails  `json:"StreamModeDetails"`
	RetentionPeriodHours    int                `json:"RetentionPeriodHours"`
	StreamCreationTimestamp epochSeconds       `json:"StreamCreationTimestamp"`
	EnhancedMonitoring      []enhancedMetrics  `json:"EnhancedMonitoring"`
	EncryptionType          string             `json:"EncryptionType"`
	KeyID                   string             `json:"KeyId,omitempty"`
	OpenShardCount          int                `json:"OpenShardCount"`
	ConsumerCount           int                `json:"ConsumerCount"`
	MaxRecordSizeInKiB      int                `json:"MaxRecordSizeInKiB,omitempty"`
	WarmThroughput          *warmThroughputOut `json:"WarmThroughput,omitempty"`
	RecordDistribution      string             `json:"RecordDistributionStrategy,omitempty"`
}

type streamSummary struct {
	StreamName              string            `json:"StreamName"`
	StreamARN               string            `json:"StreamARN"`
	StreamStatus            string            `json:"StreamStatus"`
	StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
	StreamCreationTimestamp epochSeconds      `json:"StreamCreationTimestamp"`
}

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type recordOut struct {
	SequenceNumber              string       `json:"SequenceNumber"`
	ApproximateArrivalTimestamp epochSeconds `json:"ApproximateArrivalTimestamp"`
	Data                        blob         `json:"Data"`
	// PartitionKey is absent for a record put without one (AUTO
	// streams), as Kinesis answers.
	PartitionKey string `json:"PartitionKey,omitempty"`
}

type putRecordsResultEntry struct {
	SequenceNumber string `json:"SequenceNumber,omitempty"`
	ShardID        string `json:"ShardId,omitempty"`
	ErrorCode      string `json:"ErrorCode,omitempty"`
	ErrorMessage   string `json:"ErrorMessage,omitempty"`
}

func toShardOut(s stream.Shard) shardOut {
	return shardOut{
		ShardID:               s.ID,
		ParentShardID:         s.ParentShardID,
		AdjacentParentShardID: s.AdjacentParentShardID,
		HashKeyRange:          hashKeyRange{StartingHashKey: s.StartingHashKey, EndingHashKey: s.EndingHashKey},
		SequenceNumberRange: sequenceNumberRange{
			StartingSequenceNumber: s.StartingSequenceNumber,
			EndingSequenceNumber:   s.EndingSequenceNumber,
		},
	}
}

func toShardsOut(shards []stream.Shard) []shardOut {
	out := make([]shardOut, 0, len(shards))
	for _, s := range shards {
		out = append(out, toShardOut(s))
	}
	return out
}

func encryptionType(d *stream.Description) string {
	if d.EncryptionType == "" {
		return stream.EncryptionNone
	}
	return d.EncryptionType
}
