package kinesisapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/runnel-dev/runnel/internal/seqnum"
	"github.com/runnel-dev/runnel/internal/stream"
)

// recordsEngine is the part of the engine the record actions call.
type recordsEngine interface {
	Put(ctx context.Context, name string, recs []stream.PutInput) ([]stream.PutResult, error)
	ShardIterator(name, shardID string, spec stream.IteratorSpec) (string, error)
	SubscriberRecords(ctx context.Context, iterator string, limit int) (*stream.GetResult, error)
	VisitRecords(ctx context.Context, iterator string, limit int, visit func(*stream.RecordView)) (*stream.GetResult, error)
	IteratorStream(iterator string) (string, error)
}

const (
	maxPartitionKeyLen  = 256
	maxPutRecords       = 500
	maxPutRecordsBytes  = 10 << 20
	maxShardIteratorLen = 512
)

var (
	// A partition key may be left out on a stream whose records the
	// service places (AUTO); putRecord and putRecords require it on any
	// other (keyRequired).
	partitionKeyRule = strRule{min: 1, max: maxPartitionKeyLen}
	hashKeyRule      = strRule{pattern: hashKeyPattern, patternText: hashPatternText}
)

// PutRecord

type putRecordRequest struct {
	streamRef
	Data                      *blob   `json:"Data"`
	PartitionKey              *string `json:"PartitionKey"`
	ExplicitHashKey           *string `json:"ExplicitHashKey"`
	SequenceNumberForOrdering *string `json:"SequenceNumberForOrdering"`
}

func (r *putRecordRequest) validate() error {
	var v violations
	r.check(&v)
	if r.Data == nil {
		v.null("data")
	}
	v.str("partitionKey", r.PartitionKey, partitionKeyRule)
	v.str("explicitHashKey", r.ExplicitHashKey, hashKeyRule)
	v.str("sequenceNumberForOrdering", r.SequenceNumberForOrdering, sequenceRule)
	if err := v.err(); err != nil {
		return err
	}
	if err := r.require(); err != nil {
		return err
	}
	if r.ExplicitHashKey != nil {
		return checkHashKey(*r.ExplicitHashKey)
	}
	return nil
}

func (h *Handler) putRecord(ctx context.Context, r *putRecordRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	if o := r.SequenceNumberForOrdering; o != nil && !stream.ValidSequenceNumber(*o, h.now()) {
		return nil, invalidArgument("ExclusiveMinimumSequenceNumber %s used in PutRecord on stream %s is invalid.", *o, h.svc.InAccount(name))
	}
	if r.PartitionKey == nil {
		if err := h.keyRequired(name, func(v *violations) { v.null("partitionKey") }); err != nil {
			return nil, err
		}
	}
	if r.SequenceNumberForOrdering != nil {
		// Ordering has no meaning when the service places records.
		if d, err := h.svc.Describe(name); err == nil && recordDistribution(d) == stream.DistributionAuto {
			return nil, invalidArgument("SequenceNumberForOrdering cannot be used in PutRecord on stream %s, which uses the AUTO record distribution strategy.", h.svc.InAccount(name))
		}
	}
	results, err := h.svc.Put(ctx, name, []stream.PutInput{{
		PartitionKey:    deref(r.PartitionKey, ""),
		ExplicitHashKey: deref(r.ExplicitHashKey, ""),
		Data:            *r.Data,
	}})
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("put of one record returned %d results", len(results))
	}
	res := results[0]
	if res.ErrorCode != "" {
		return nil, recordError(res)
	}
	return struct {
		ShardID        string `json:"ShardId"`
		SequenceNumber string `json:"SequenceNumber"`
		EncryptionType string `json:"EncryptionType"`
	}{res.ShardID, res.SequenceNumber, stream.EncryptionNone}, nil
}

// keyRequired refuses records put without a partition key, which add
// names, unless stream name uses the AUTO record distribution: the
// ValidationException of a request that leaves out a required member,
// as Kinesis answers for a stream that routes by partition key. A stream
// that changes strategy meanwhile routes such a record by the key "".
func (h *Handler) keyRequired(name string, add func(*violations)) error {
	if d, err := h.svc.Describe(name); err == nil && recordDistribution(d) == stream.DistributionAuto {
		return nil
	}
	var v violations
	add(&v)
	return v.err()
}

// recordError turns the failure of a single-record put into the error
// PutRecord answers with.
func recordError(res stream.PutResult) error {
	if res.ErrorCode == typeThroughputExceeded {
		return newError(typeThroughputExceeded, http.StatusBadRequest, "%s", res.ErrorMessage)
	}
	return fmt.Errorf("put failed: %s: %s", res.ErrorCode, res.ErrorMessage)
}

// PutRecords

type putRecordsEntry struct {
	Data            *blob   `json:"Data"`
	PartitionKey    *string `json:"PartitionKey"`
	ExplicitHashKey *string `json:"ExplicitHashKey"`
}

type putRecordsRequest struct {
	streamRef
	Records []putRecordsEntry `json:"Records"`
	// more counts the entries past the first maxPutRecords that the JSON
	// decoder read without keeping (a request that long is refused);
	// moreBad keeps the first few of them that break a rule, enough for
	// the violations a refusal lists.
	more    int
	moreBad []numberedEntry
	// arena holds the records' data when the JSON decoder read them
	// (decodeFastJSON), to be released once they are stored.
	arena *blobArena
}

// numberedEntry is a PutRecords entry and its index in the request.
type numberedEntry struct {
	at  int
	rec putRecordsEntry
}

// plain reports whether rec breaks no rule a violation would name.
func (rec *putRecordsEntry) plain() bool {
	return rec.Data != nil && (rec.ExplicitHashKey == nil || plainHashKey(*rec.ExplicitHashKey)) &&
		(rec.PartitionKey == nil || len(*rec.PartitionKey) >= 1 && len(*rec.PartitionKey) <= maxPartitionKeyLen)
}

// checkEntry adds the violations of entry i.
func checkEntry(v *violations, i int, rec *putRecordsEntry) {
	if rec.plain() {
		return // the common entry breaks no rule: no field name needed
	}
	field := fmt.Sprintf("records.%d.member.", i+1)
	if rec.Data == nil {
		v.null(field + "data")
	}
	v.str(field+"partitionKey", rec.PartitionKey, partitionKeyRule)
	v.str(field+"explicitHashKey", rec.ExplicitHashKey, hashKeyRule)
}

func (r *putRecordsRequest) validate() error {
	var v violations
	var shown string // the list as a violation shows it, built only for one
	n := len(r.Records) + r.more
	if n < 1 || n > maxPutRecords {
		shown = javaList(slices.Repeat([]string{"PutRecordsRequestEntry"}, n))
	}
	v.count("records", shown, n, r.Records != nil, true, 1, maxPutRecords)
	for i := range r.Records {
		checkEntry(&v, i, &r.Records[i])
	}
	for i := range r.moreBad {
		checkEntry(&v, r.moreBad[i].at, &r.moreBad[i].rec)
	}
	r.check(&v)
	if err := v.err(); err != nil {
		return err
	}
	if err := r.require(); err != nil {
		return err
	}
	total := 0
	for _, rec := range r.Records {
		total += len(*rec.Data)
		if rec.PartitionKey != nil {
			total += len(*rec.PartitionKey)
		}
		if rec.ExplicitHashKey != nil {
			if err := checkHashKey(*rec.ExplicitHashKey); err != nil {
				return err
			}
		}
	}
	if total > maxPutRecordsBytes {
		return invalidArgument("Records size exceeds the %d MiB limit: the data and partition keys of this request total %d bytes.", maxPutRecordsBytes>>20, total)
	}
	return nil
}

func (h *Handler) putRecords(ctx context.Context, r *putRecordsRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	if err := h.keysRequired(name, r.Records); err != nil {
		return nil, err
	}
	in := make([]stream.PutInput, len(r.Records))
	for i, rec := range r.Records {
		in[i] = stream.PutInput{
			PartitionKey:    deref(rec.PartitionKey, ""),
			ExplicitHashKey: deref(rec.ExplicitHashKey, ""),
			Data:            *rec.Data,
		}
	}
	results, err := h.svc.Put(ctx, name, in)
	if err != nil {
		// The arena is not reused: a put cut short may still be read.
		return nil, err
	}
	// Put returned its results: the store has copied the records.
	r.arena.release()
	if len(results) != len(in) {
		return nil, fmt.Errorf("put of %d records returned %d results", len(in), len(results))
	}
	out := &putRecordsOutput{Records: make([]putRecordsResultEntry, len(results)), EncryptionType: stream.EncryptionNone}
	for i, res := range results {
		if res.ErrorCode != "" {
			out.FailedRecordCount++
			out.Records[i] = putRecordsResultEntry{ErrorCode: res.ErrorCode, ErrorMessage: res.ErrorMessage}
			continue
		}
		out.Records[i] = putRecordsResultEntry{SequenceNumber: res.SequenceNumber, ShardID: res.ShardID}
	}
	return out, nil
}

// keysRequired is keyRequired for the entries of a PutRecords request.
func (h *Handler) keysRequired(name string, recs []putRecordsEntry) error {
	for i := range recs {
		if recs[i].PartitionKey != nil {
			continue
		}
		return h.keyRequired(name, func(v *violations) {
			for j := range recs {
				if recs[j].PartitionKey == nil {
					v.null(fmt.Sprintf("records.%d.member.partitionKey", j+1))
				}
			}
		})
	}
	return nil
}

type putRecordsOutput struct {
	FailedRecordCount int                     `json:"FailedRecordCount"`
	Records           []putRecordsResultEntry `json:"Records"`
	EncryptionType    string                  `json:"EncryptionType"`
}

// appendJSON renders the answer as encoding/json would, without its
// reflection: PutRecords is the hot write path.
func (o *putRecordsOutput) appendJSON(b []byte) ([]byte, error) {
	size := 64
	for _, r := range o.Records {
		size += 80 + len(r.SequenceNumber) + len(r.ShardID) + len(r.ErrorCode) + len(r.ErrorMessage)
	}
	b = slices.Grow(b, size)
	b = append(b, `{"FailedRecordCount":`...)
	b = strconv.AppendInt(b, int64(o.FailedRecordCount), 10)
	b = append(b, `,"Records":`...)
	if o.Records == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range o.Records {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			sep := false
			for _, m := range [...]struct{ name, value string }{
				{`"SequenceNumber":`, r.SequenceNumber}, {`"ShardId":`, r.ShardID},
				{`"ErrorCode":`, r.ErrorCode}, {`"ErrorMessage":`, r.ErrorMessage},
			} {
				if m.value == "" {
					continue // omitempty
				}
				if sep {
					b = append(b, ',')
				}
				b = append(b, m.name...)
				b = appendJSONString(b, m.value)
				sep = true
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"EncryptionType":`...)
	b = appendJSONString(b, o.EncryptionType)
	return append(b, '}'), nil
}

// GetShardIterator

// appendCBOR renders the answer as the CBOR encoder would, without its
// reflection: the AWS SDK for Java puts in CBOR.
func (o *putRecordsOutput) appendCBOR(b []byte) ([]byte, error) {
	b = appendCBORHead(b, cborMap, 3)
	b = appendCBORString(b, cborText, "FailedRecordCount")
	b = appendCBORInt(b, int64(o.FailedRecordCount))
	b = appendCBORString(b, cborText, "Records")
	b = appendCBORListHead(b, len(o.Records), o.Records == nil)
	for _, r := range o.Records {
		members := [...]struct{ name, value string }{
			{"SequenceNumber", r.SequenceNumber}, {"ShardId", r.ShardID},
			{"ErrorCode", r.ErrorCode}, {"ErrorMessage", r.ErrorMessage},
		}
		n := 0
		for _, m := range members {
			if m.value != "" {
				n++ // omitempty
			}
		}
		b = appendCBORHead(b, cborMap, uint64(n))
		for _, m := range members {
			if m.value != "" {
				b = appendCBORString(b, cborText, m.name)
				b = appendCBORString(b, cborText, m.value)
			}
		}
	}
	b = appendCBORString(b, cborText, "EncryptionType")
	return appendCBORString(b, cborText, o.EncryptionType), nil
}

type getShardIteratorRequest struct {
	streamRef
	ShardID                *string    `json:"ShardId"`
	ShardIteratorType      *string    `json:"ShardIteratorType"`
	StartingSequenceNumber *string    `json:"StartingSequenceNumber"`
	Timestamp              *epochTime `json:"Timestamp"`
}

func (r *getShardIteratorRequest) validate() error {
	var v violations
	r.check(&v)
	v.str("shardId", r.ShardID, strRule{required: true, min: 1, max: maxShardIDLen, pattern: namePattern, patternText: namePatternText})
	v.enum("shardIteratorType", r.ShardIteratorType, true,
		string(stream.AtSequenceNumber), string(stream.AfterSequenceNumber), string(stream.TrimHorizon),
		string(stream.Latest), string(stream.AtTimestamp))
	v.str("startingSequenceNumber", r.StartingSequenceNumber, sequenceRule)
	if err := v.err(); err != nil {
		return err
	}
	if err := r.require(); err != nil {
		return err
	}
	r.ShardID = normalizeShardID(r.ShardID)
	switch typ := *r.ShardIteratorType; stream.IteratorType(typ) {
	case stream.AtSequenceNumber, stream.AfterSequenceNumber:
		if r.StartingSequenceNumber == nil {
			return invalidArgument("StartingSequenceNumber is required for a shard iterator of type %s.", typ)
		}
	case stream.TrimHorizon, stream.Latest:
		if r.StartingSequenceNumber != nil {
			return invalidArgument("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified %s and also a StartingSequenceNumber.", typ)
		}
	case stream.AtTimestamp:
		if r.Timestamp == nil {
			return invalidArgument("Timestamp is required for a shard iterator of type %s.", typ)
		}
	}
	return nil
}

func (h *Handler) getShardIterator(ctx context.Context, r *getShardIteratorRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	spec := stream.IteratorSpec{Type: stream.IteratorType(*r.ShardIteratorType)}
	switch spec.Type {
	case stream.AtSequenceNumber, stream.AfterSequenceNumber:
		spec.SequenceNumber = *r.StartingSequenceNumber
	case stream.AtTimestamp:
		spec.Timestamp = r.Timestamp.Time
	}
	it, err := h.svc.ShardIterator(name, *r.ShardID, spec)
	if err != nil {
		return nil, err
	}
	return struct {
		ShardIterator string `json:"ShardIterator"`
	}{it}, nil
}

// GetRecords

type getRecordsRequest struct {
	ShardIterator *string `json:"ShardIterator"`
	Limit         *int    `json:"Limit"`
	StreamARN     *string `json:"StreamARN"`
	// answer is the answer's wire format (answerIn).
	answer codec
}

func (r *getRecordsRequest) validate() error {
	var v violations
	v.str("shardIterator", r.ShardIterator, strRule{required: true, min: 1, max: maxShardIteratorLen})
	v.intRange("limit", r.Limit, false, 1, stream.MaxGetRecordsLimit)
	v.str("streamARN", r.StreamARN, streamARNRule)
	return v.err()
}

func (h *Handler) getRecords(ctx context.Context, r *getRecordsRequest) (any, error) {
	c := r.answer
	if c == nil {
		c = jsonCodec{}
	}
	return renderRecords(ctx, h.svc, c, *r.ShardIterator, deref(r.Limit, stream.MaxGetRecordsLimit))
}

// answerIn learns the wire format of the answer, which GetRecords renders
// as the records are read.
func (r *getRecordsRequest) answerIn(c codec) { r.answer = c }

// renderRecords reads and renders a GetRecords answer in one pass: each
// record goes from the store into the answer's pooled buffer, with no copy
// of its data, and no string or struct for it, in between. The answer is
// byte for byte what encoding/json or the CBOR encoder renders from the
// same records as recordOut (records_json_test.go holds it to both).
func renderRecords(ctx context.Context, svc recordsEngine, c codec, iter string, limit int) (*renderedAnswer, error) {
	_, inCBOR := c.(cborCodec)
	b := answerBufs.Get()
	if inCBOR {
		// Room for the answer's map head, the Records key and the
		// array's head, written once the count is known.
		b = append(b, make([]byte, cborRecordsRoom)...)
	} else {
		b = append(b, recordsStart...)
	}
	first := len(b)
	var seq [seqnum.Digits]byte
	count := 0
	res, err := svc.VisitRecords(ctx, iter, limit, func(v *stream.RecordView) {
		count++
		if inCBOR {
			b = appendRecordCBOR(b, v.AppendSequenceNumber(seq[:0]), v.ArrivalTime, v.Data, v.PartitionKey)
			return
		}
		if len(b) > first {
			b = append(b, ',')
		}
		b = appendRecordJSON(b, v.AppendSequenceNumber(seq[:0]), v.ArrivalTime, v.Data, v.PartitionKey)
	})
	off := 0
	if err == nil {
		t := nextIteratorTail(res.NextIterator, res.MillisBehindLatest, toChildShardsOut(res.ChildShards))
		if inCBOR {
			head := appendRecordsCBORStart(nil, count, false, t)
			off = first - len(head)
			copy(b[off:], head)
			b, err = t.appendCBOR(b)
		} else {
			b, err = t.appendJSON(append(b, ']'))
		}
	}
	if err != nil {
		answerBufs.Put(b)
		return nil, err
	}
	return &renderedAnswer{buf: b, off: off}, nil
}

// toRecordsOut converts records to their wire shape.
func toRecordsOut(recs []stream.Record) []recordOut {
	out := make([]recordOut, len(recs))
	for i, rec := range recs {
		out[i] = recordOut{
			SequenceNumber:              rec.SequenceNumber,
			ApproximateArrivalTimestamp: epochSeconds(rec.ArrivalTime),
			Data:                        rec.Data,
			PartitionKey:                rec.PartitionKey,
		}
	}
	return out
}

// recordsStart opens a GetRecords answer, up to its first record.
const recordsStart = `{"Records":[`

// appendRecordJSON appends one record of a GetRecords answer. Its data is
// never null: nil is written as an empty blob, as Kinesis answers (the
// encoders would write null; no read hands out nil data).
func appendRecordJSON[S string | []byte](b []byte, seq S, at time.Time, data []byte, pk S) []byte {
	b = append(b, `{"SequenceNumber":`...)
	b = appendJSONString(b, seq)
	b = append(b, `,"ApproximateArrivalTimestamp":`...)
	b = epochSeconds(at).appendJSON(b)
	b = append(b, `,"Data":"`...)
	b = appendBase64(b, data)
	b = append(b, '"')
	if len(pk) > 0 {
		b = append(b, `,"PartitionKey":`...)
		b = appendJSONString(b, pk)
	}
	return append(b, '}')
}

// recordsTail is what an answer of records (GetRecords, a SubscribeToShard
// event) holds after them: where to read next, when there is a next read,
// as the member name names (GetRecords' NextShardIterator, an event's
// ContinuationSequenceNumber); MillisBehindLatest; and the child shards
// of a shard read to its end.
type recordsTail struct {
	name     string
	next     string
	hasNext  bool
	behind   int64
	children []childShardOut
}

// nextIteratorTail is the tail of a GetRecords answer.
func nextIteratorTail(next string, behind int64, children []childShardOut) recordsTail {
	return recordsTail{name: "NextShardIterator", next: next, hasNext: next != "", behind: behind, children: children}
}

// members counts the answer's members: Records and the tail's.
func (t recordsTail) members() uint64 {
	n := uint64(2) // Records, MillisBehindLatest
	if t.hasNext {
		n++
	}
	if len(t.children) > 0 {
		n++
	}
	return n
}

// appendJSON closes the answer after its records.
func (t recordsTail) appendJSON(b []byte) ([]byte, error) {
	if t.hasNext {
		b = append(b, `,"`...)
		b = append(b, t.name...)
		b = append(b, `":`...)
		b = appendJSONString(b, t.next)
	}
	b = append(b, `,"MillisBehindLatest":`...)
	b = strconv.AppendInt(b, t.behind, 10)
	if len(t.children) > 0 {
		out, err := json.Marshal(t.children)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"ChildShards":`...)
		b = append(b, out...)
	}
	return append(b, '}'), nil
}

// jsonPlain marks the bytes encoding/json writes as they are inside a
// string: printable ASCII but for the quote, the backslash and the three
// it escapes for HTML (<, > and &).
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string: plain printable ASCII as it
// is, anything else through encoding/json.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
