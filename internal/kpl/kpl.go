// Package kpl is the aggregated-record format of the Kinesis Producer
// Library: the producer packs user records into one Kinesis record with
// it, and the consumer runtime, runnel tail and the KCL unpack them.
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"

	"google.golang.org/protobuf/encoding/protowire"
)

// The format, which the KCL, the Lambda deaggregation modules and runnel's
// runtime unpack:
//
//	magic (4 bytes: F3 89 9A C2) | protobuf AggregatedRecord | MD5 of the protobuf bytes (16)
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//	message Tag { required string key = 1; optional string value = 2; }
//
// Tags are accepted when decoding and never written.

// aggMagic starts every aggregated record.
var aggMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// aggOverhead is what the format adds around the protobuf message.
const aggOverhead = 4 + md5.Size

// Protobuf field numbers of the format.
const (
	fieldPartitionKeyTable    = 1
	fieldExplicitHashKeyTable = 2
	fieldRecords              = 3

	fieldRecordPartitionKeyIndex    = 1
	fieldRecordExplicitHashKeyIndex = 2
	fieldRecordData                 = 3
	fieldRecordTags                 = 4

	fieldTagKey   = 1
	fieldTagValue = 2
)

// ErrBadAggregate is returned by Deaggregate for data that starts with the
// aggregation magic and carries a valid checksum but does not decode.
var ErrBadAggregate = errors.New("kpl: malformed aggregated record")

// Record is one user record, or the Kinesis record that carries an
// aggregate.
type Record struct {
	// PartitionKey is required (1–256 Unicode characters).
	PartitionKey string
	// ExplicitHashKey optionally overrides the partition key's hash.
	ExplicitHashKey string
	Data            []byte
}

// Aggregator builds one aggregated record. The zero value is empty and
// ready for use. It is not safe for concurrent use.
type Aggregator struct {
	records  []Record
	pkIndex  map[string]uint64
	pkTable  []string
	ehkIndex map[string]uint64
	ehkTable []string
	// size is the exact protobuf size of the message built so far.
	size int
}

// SizeWith returns the size of the encoded aggregated record (magic,
// message and checksum) if r were added.
func (a *Aggregator) SizeWith(r Record) int {
	n := a.size
	pki, ok := a.pkIndex[r.PartitionKey]
	if !ok {
		pki = uint64(len(a.pkTable))
		n += protowire.SizeTag(fieldPartitionKeyTable) + protowire.SizeBytes(len(r.PartitionKey))
	}
	var ehki uint64
	if r.ExplicitHashKey != "" {
		var ok bool
		ehki, ok = a.ehkIndex[r.ExplicitHashKey]
		if !ok {
			ehki = uint64(len(a.ehkTable))
			n += protowire.SizeTag(fieldExplicitHashKeyTable) + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
	}
	n += protowire.SizeTag(fieldRecords) + protowire.SizeBytes(recordSize(pki, ehki, r))
	return aggOverhead + n
}

// recordSize is the size of one encoded Record message.
func recordSize(pki, ehki uint64, r Record) int {
	n := protowire.SizeTag(fieldRecordPartitionKeyIndex) + protowire.SizeVarint(pki)
	if r.ExplicitHashKey != "" {
		n += protowire.SizeTag(fieldRecordExplicitHashKeyIndex) + protowire.SizeVarint(ehki)
	}
	return n + protowire.SizeTag(fieldRecordData) + protowire.SizeBytes(len(r.Data))
}

// Add appends r to the aggregate.
func (a *Aggregator) Add(r Record) {
	a.size = a.SizeWith(r) - aggOverhead
	if _, ok := a.pkIndex[r.PartitionKey]; !ok {
		if a.pkIndex == nil {
			a.pkIndex = make(map[string]uint64)
		}
		a.pkIndex[r.PartitionKey] = uint64(len(a.pkTable))
		a.pkTable = append(a.pkTable, r.PartitionKey)
	}
	if r.ExplicitHashKey != "" {
		if _, ok := a.ehkIndex[r.ExplicitHashKey]; !ok {
			if a.ehkIndex == nil {
				a.ehkIndex = make(map[string]uint64)
			}
			a.ehkIndex[r.ExplicitHashKey] = uint64(len(a.ehkTable))
			a.ehkTable = append(a.ehkTable, r.ExplicitHashKey)
		}
	}
	a.records = append(a.records, r)
}

// encode returns the aggregated data: magic, protobuf message, MD5.
func (a *Aggregator) encode() []byte {
	b := make([]byte, 0, aggOverhead+a.size)
	b = append(b, aggMagic...)
	for _, k := range a.pkTable {
		b = protowire.AppendTag(b, fieldPartitionKeyTable, protowire.BytesType)
		b = protowire.AppendString(b, k)
	}
	for _, k := range a.ehkTable {
		b = protowire.AppendTag(b, fieldExplicitHashKeyTable, protowire.BytesType)
		b = protowire.AppendString(b, k)
	}
	for _, r := range a.records {
		pki := a.pkIndex[r.PartitionKey]
		var ehki uint64
		if r.ExplicitHashKey != "" {
			ehki = a.ehkIndex[r.ExplicitHashKey]
		}
		b = protowire.AppendTag(b, fieldRecords, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(recordSize(pki, ehki, r)))
		b = protowire.AppendTag(b, fieldRecordPartitionKeyIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, pki)
		if r.ExplicitHashKey != "" {
			b = protowire.AppendTag(b, fieldRecordExplicitHashKeyIndex, protowire.VarintType)
			b = protowire.AppendVarint(b, ehki)
		}
		b = protowire.AppendTag(b, fieldRecordData, protowire.BytesType)
		b = protowire.AppendBytes(b, r.Data)
	}
	sum := md5.Sum(b[len(aggMagic):])
	return append(b, sum[:]...)
}

// Aggregate encodes records as one KPL aggregated record. The returned
// record is routed like the first user record: its partition key is the
// first record's, and its explicit hash key is the first record's explicit
// hash key or the MD5 hash of its partition key, so every user record lands
// on the shard the first one maps to. (The KPL itself puts only records that
// map to one shard into an aggregate, and sends a lone record unaggregated.)
// Aggregate does not check the 1 MiB record limit.
func Aggregate(records []Record) (Record, error) {
	if len(records) == 0 {
		return Record{}, errors.New("kpl: nothing to aggregate")
	}
	var a Aggregator
	for _, r := range records {
		a.Add(r)
	}
	return a.Record(), nil
}

// Record returns the Kinesis record that carries the aggregate, routed
// as Aggregate says. The aggregate must not be empty.
func (a *Aggregator) Record() Record {
	first := a.records[0]
	ehk := first.ExplicitHashKey
	if ehk == "" {
		ehk = HashKey(first.PartitionKey).String()
	}
	return Record{PartitionKey: first.PartitionKey, ExplicitHashKey: ehk, Data: a.encode()}
}

// HashKey returns the 128-bit hash key Kinesis derives from a partition key:
// its MD5 digest read as a big-endian unsigned integer.
func HashKey(partitionKey string) *big.Int {
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:])
}

// IsAggregated reports whether data carries the aggregation magic and a
// matching MD5 checksum.
func IsAggregated(data []byte) bool {
	if len(data) < aggOverhead || !bytes.HasPrefix(data, aggMagic) {
		return false
	}
	msg := data[len(aggMagic) : len(data)-md5.Size]
	sum := md5.Sum(msg)
	return bytes.Equal(sum[:], data[len(data)-md5.Size:])
}

// Deaggregate unpacks a KPL aggregated record into its user records, which
// share the aggregate's backing array. When data is not an aggregated
// record (no magic, or a checksum that does not match, as the KCL decides)
// it returns nil, false, nil, and the caller uses the record as it is. An
// aggregate that is well framed but does not decode returns an error
// wrapping ErrBadAggregate.
func Deaggregate(data []byte) ([]Record, bool, error) {
	if !IsAggregated(data) {
		return nil, false, nil
	}
	msg := data[len(aggMagic) : len(data)-md5.Size]
	var (
		pkTable, ehkTable []string
		raw               [][]byte
	)
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, true, fmt.Errorf("%w: %v", ErrBadAggregate, protowire.ParseError(n))
		}
		msg = msg[n:]
		if typ != protowire.BytesType || num < fieldPartitionKeyTable || num > fieldRecords {
			n = protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return nil, true, fmt.Errorf("%w: field %d: %v", ErrBadAggregate, num, protowire.ParseError(n))
			}
			msg = msg[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(msg)
		if n < 0 {
			return nil, true, fmt.Errorf("%w: field %d: %v", ErrBadAggregate, num, protowire.ParseError(n))
		}
		msg = msg[n:]
		switch num {
		case fieldPartitionKeyTable:
			pkTable = append(pkTable, string(v))
		case fieldExplicitHashKeyTable:
			ehkTable = append(ehkTable, string(v))
		case fieldRecords:
			raw = append(raw, v)
		}
	}
	out := make([]Record, 0, len(raw))
	for i, m := range raw {
		r, err := decodeRecord(m, pkTable, ehkTable)
		if err != nil {
			return nil, true, fmt.Errorf("%w: record %d: %v", ErrBadAggregate, i, err)
		}
		out = append(out, r)
	}
	return out, true, nil
}

func decodeRecord(m []byte, pkTable, ehkTable []string) (Record, error) {
	var (
		r              Record
		havePK, haveDt bool
	)
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		m = m[n:]
		switch {
		case num == fieldRecordPartitionKeyIndex && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(m)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			m = m[n:]
			if v >= uint64(len(pkTable)) {
				return r, fmt.Errorf("partition key index %d out of a table of %d", v, len(pkTable))
			}
			r.PartitionKey, havePK = pkTable[v], true
		case num == fieldRecordExplicitHashKeyIndex && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(m)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			m = m[n:]
			if v >= uint64(len(ehkTable)) {
				return r, fmt.Errorf("explicit hash key index %d out of a table of %d", v, len(ehkTable))
			}
			r.ExplicitHashKey = ehkTable[v]
		case num == fieldRecordData && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			m = m[n:]
			r.Data, haveDt = v, true
		case num == fieldRecordTags && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			m = m[n:]
			if err := checkTag(v); err != nil {
				return r, err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, m)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			m = m[n:]
		}
	}
	if !havePK {
		return r, errors.New("missing partition_key_index")
	}
	if !haveDt {
		return r, errors.New("missing data")
	}
	if r.Data == nil {
		r.Data = []byte{}
	}
	return r, nil
}

// checkTag validates a Tag message; runnel keeps no tags.
func checkTag(m []byte) error {
	haveKey := false
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m = m[n:]
		if (num == fieldTagKey || num == fieldTagValue) && typ == protowire.BytesType {
			_, n = protowire.ConsumeBytes(m)
			haveKey = haveKey || num == fieldTagKey
		} else {
			n = protowire.ConsumeFieldValue(num, typ, m)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		m = m[n:]
	}
	if !haveKey {
		return errors.New("tag without key")
	}
	return nil
}
