package kinesisapi

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
)

const contentTypeCBOR = "application/x-amz-cbor-1.1"

// codec is one wire format of the Kinesis API. A request is decoded and its
// response encoded with the codec its Content-Type names; every action's
// request and response types are shared by all codecs.
type codec interface {
	// contentType is sent with every response in this format.
	contentType() string
	// decode parses a request body into dst. An empty body is an empty
	// request; a malformed one is a SerializationException.
	decode(body []byte, dst any) error
	// encode renders a response or error body.
	encode(v any) ([]byte, error)
}

// codecFor picks the codec for a request's Content-Type. No Content-Type
// means AWS JSON 1.1; an unsupported one is a SerializationException.
func codecFor(value string) (codec, error) {
	if value == "" {
		return jsonCodec{}, nil
	}
	mt, _, err := mime.ParseMediaType(value)
	if err == nil {
		switch mt {
		case contentTypeJSON, "application/x-amz-json-1.0":
			return jsonCodec{}, nil
		case contentTypeCBOR:
			return cborCodec{}, nil
		}
	}
	return jsonCodec{}, serializationError("Unsupported Content-Type %q; send %s or %s.", value, contentTypeJSON, contentTypeCBOR)
}

// jsonCodec is AWS JSON 1.1: blobs as base64 strings, timestamps as epoch
// seconds with a fractional part.
type jsonCodec struct{}

func (jsonCodec) contentType() string               { return contentTypeJSON }
func (jsonCodec) decode(body []byte, dst any) error { return decodeJSON(body, dst) }
func (jsonCodec) encode(v any) ([]byte, error) {
	if a, ok := v.(jsonAppender); ok {
		return a.appendJSON(nil)
	}
	return json.Marshal(v)
}

// jsonAppender is a response that renders its own JSON, for hot paths.
type jsonAppender interface {
	appendJSON(b []byte) ([]byte, error)
}

// cborAppender is a response that renders its own CBOR, for hot paths.
type cborAppender interface {
	appendCBOR(b []byte) ([]byte, error)
}

// renderPooled renders v into a buffer from answerBufs when v renders
// itself in c's format; rendered is false when it does not (c.encode is
// then the way). The buffer goes back only once written in full: a write
// cut short (HTTP/2, its stream reset) may return while the connection
// still sends from it. A render that fails gives its buffer back itself.
func renderPooled(c codec, v any) (b []byte, rendered bool, err error) {
	var render func([]byte) ([]byte, error)
	switch c.(type) {
	case jsonCodec:
		if a, ok := v.(jsonAppender); ok {
			render = a.appendJSON
		}
	case cborCodec:
		if a, ok := v.(cborAppender); ok {
			render = a.appendCBOR
		}
	}
	if render == nil {
		return nil, false, nil
	}
	b, err = render(answerBufs.Get())
	if err != nil {
		answerBufs.Put(b)
		return nil, true, err
	}
	return b, true, nil
}

// cborCodec is the AWS CBOR 1.1 protocol that the AWS SDK for Java (and so
// the KCL) uses by default: the same members as AWS JSON 1.1, with blobs as
// CBOR byte strings and timestamps as tag 1 around an integer number of
// epoch milliseconds (the SDK's UNIX_TIMESTAMP_MILLIS format, not the
// seconds RFC 8949 describes). Struct fields take their names from the json
// tags.
type cborCodec struct{}

var (
	cborDec = mustDecMode(cbor.DecOptions{
		// Requests are small documents; these bound what a hostile body can
		// make the decoder allocate. PutRecords has at most 500 entries.
		MaxNestedLevels:  16,
		MaxArrayElements: 10000,
		MaxMapPairs:      10000,
		IndefLength:      cbor.IndefLengthAllowed, // the Java SDK's Jackson generator writes indefinite-length maps
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		UTF8:             cbor.UTF8RejectInvalid,
	})
	cborEnc = mustEncMode(cbor.EncOptions{})
)

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err) // constant options
	}
	return m
}

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(err) // constant options
	}
	return m
}

func (cborCodec) contentType() string          { return contentTypeCBOR }
func (cborCodec) encode(v any) ([]byte, error) { return cborEnc.Marshal(v) }

func (cborCodec) decode(body []byte, dst any) error {
	if len(body) == 0 {
		return nil
	}
	err := cborDec.Unmarshal(body, dst)
	if err == nil {
		return nil
	}
	var (
		member *memberError
		typ    *cbor.UnmarshalTypeError
		dup    *cbor.DupMapKeyError
	)
	switch {
	case errors.As(err, &member):
		return serializationError("%s", member.msg)
	case errors.As(err, &typ):
		if typ.StructFieldName == "" {
			return serializationError("The request body must be a CBOR map, not %s.", typ.CBORType)
		}
		return serializationError("Member '%s' must be %s, not %s.", memberName(typ.StructFieldName), cborKind(typ.GoType), typ.CBORType)
	case errors.As(err, &dup):
		return serializationError("The request body repeats a map key.")
	default:
		return serializationError("The request body is not valid CBOR: %s.", strings.TrimPrefix(err.Error(), "cbor: "))
	}
}

// memberName turns the decoder's Go field path ("Records.Data") into the
// member it names ("Data").
func memberName(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[i+1:]
	}
	return field
}

// cborKind names the CBOR value a Go type takes, from the type name the
// decoder reports.
func cborKind(goType string) string {
	switch {
	case strings.HasSuffix(goType, "blob"), goType == "[]uint8":
		return "a byte string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "a map"
	case strings.Contains(goType, "int"):
		return "an integer"
	case goType == "string":
		return "a text string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	default:
		return "a map"
	}
}

// cborTagEpoch is the CBOR tag of an epoch-based date/time.
const cborTagEpoch = 1

// MarshalCBOR renders t as the AWS CBOR protocol does: tag 1 around an
// integer count of epoch milliseconds.
func (t epochSeconds) MarshalCBOR() ([]byte, error) {
	return cborEnc.Marshal(cbor.Tag{Number: cborTagEpoch, Content: time.Time(t).UnixMilli()})
}

// UnmarshalCBOR accepts a timestamp member as the AWS SDKs send it: an
// integer number of epoch milliseconds, tagged 1 or not. A floating-point
// value is read as epoch seconds with a fraction, as RFC 8949 defines tag 1,
// so a generic CBOR client that follows the RFC also works (no AWS SDK sends
// floats). Millisecond precision is kept.
func (t *epochTime) UnmarshalCBOR(data []byte) error {
	var raw cbor.RawTag
	if len(data) > 0 && data[0]>>5 == 6 { // major type 6: a tag
		if err := cborDec.Unmarshal(data, &raw); err != nil || raw.Number != cborTagEpoch {
			return &memberError{msg: "Timestamp members must be tag 1 around a number of epoch milliseconds."}
		}
		data = raw.Content
	}
	if len(data) > 0 && data[0] == 0xf6 { // null
		return nil
	}
	var v any
	if err := cborDec.Unmarshal(data, &v); err != nil {
		return &memberError{msg: "Timestamp members must be a number of epoch milliseconds."}
	}
	var ms float64
	switch n := v.(type) {
	case uint64:
		ms = float64(n)
	case int64:
		ms = float64(n)
	case float64:
		ms = n * 1000
	default:
		return &memberError{msg: "Timestamp members must be a number of epoch milliseconds."}
	}
	if math.IsNaN(ms) || ms < -62135596800e3 || ms > maxEpochSeconds*1e3 {
		return &memberError{msg: "Timestamp member is out of range."}
	}
	t.Time = time.UnixMilli(int64(math.Round(ms))).UTC()
	return nil
}

// The GetRecords answer in CBOR, rendered by hand as the records are read
// (renderRecords), byte for byte as cborEnc renders the answer's struct
// (records_json_test.go holds it to that): maps of definite
// length in the structs' member order, the shortest heads, timestamps as
// tag 1 around epoch milliseconds.

// CBOR major types.
const (
	cborUint  = 0
	cborNeg   = 1
	cborBytes = 2
	cborText  = 3
	cborArray = 4
	cborMap   = 5
	cborTag   = 6
	// cborNull is the simple value null (major type 7, value 22).
	cborNull = 0xf6
)

// cborRecordsRoom is the most bytes a GetRecords answer takes before its
// first record: a map head, the Records key and an array head of up to
// 65535 records (the limit is 10000).
const cborRecordsRoom = 1 + 1 + len("Records") + 3

// appendCBORHead appends the head of a data item of major type major and
// argument n, in its shortest form.
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), n)
	}
}

// appendCBORListHead appends the head of an array of n items, or null for
// a nil list, as the encoder writes a nil slice.
func appendCBORListHead(b []byte, n int, null bool) []byte {
	if null {
		return append(b, cborNull)
	}
	return appendCBORHead(b, cborArray, uint64(n))
}

func appendCBORString[S string | []byte](b []byte, major byte, s S) []byte {
	return append(appendCBORHead(b, major, uint64(len(s))), s...)
}

func appendCBORInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendCBORHead(b, cborNeg, uint64(-(v + 1)))
	}
	return appendCBORHead(b, cborUint, uint64(v))
}

// appendRecordsCBORStart appends what comes before the first of count
// records (null for none at all) of an answer that ends with t.
func appendRecordsCBORStart(b []byte, count int, null bool, t recordsTail) []byte {
	b = appendCBORHead(b, cborMap, t.members())
	b = appendCBORString(b, cborText, "Records")
	return appendCBORListHead(b, count, null)
}

// appendRecordCBOR appends one record of a GetRecords answer, nil data as
// an empty byte string (see appendRecordJSON).
func appendRecordCBOR[S string | []byte](b []byte, seq S, at time.Time, data []byte, pk S) []byte {
	members := uint64(3)
	if len(pk) > 0 {
		members++
	}
	b = appendCBORHead(b, cborMap, members)
	b = appendCBORString(b, cborText, "SequenceNumber")
	b = appendCBORString(b, cborText, seq)
	b = appendCBORString(b, cborText, "ApproximateArrivalTimestamp")
	b = appendCBORHead(b, cborTag, cborTagEpoch)
	b = appendCBORInt(b, at.UnixMilli())
	b = appendCBORString(b, cborText, "Data")
	b = appendCBORString(b, cborBytes, data)
	if len(pk) > 0 {
		b = appendCBORString(b, cborText, "PartitionKey")
		b = appendCBORString(b, cborText, pk)
	}
	return b
}

// appendCBOR appends the tail after the last record.
func (t recordsTail) appendCBOR(b []byte) ([]byte, error) {
	if t.hasNext {
		b = appendCBORString(b, cborText, t.name)
		b = appendCBORString(b, cborText, t.next)
	}
	b = appendCBORString(b, cborText, "MillisBehindLatest")
	b = appendCBORInt(b, t.behind)
	if len(t.children) > 0 {
		out, err := cborEnc.Marshal(t.children)
		if err != nil {
			return nil, err
		}
		b = appendCBORString(b, cborText, "ChildShards")
		b = append(b, out...)
	}
	return b, nil
}
