package kinesisapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// decodeJSON decodes an AWS JSON 1.1 request body into dst. An empty body
// or JSON null is an empty request. Unknown members are ignored, as AWS
// does; a malformed document or a member of the wrong type is a
// SerializationException naming the member.
func decodeJSON(body []byte, dst any) error {
	if f, ok := dst.(fastJSONDecoder); ok && f.decodeFastJSON(body) {
		return nil
	}
	return decodeJSONReflect(body, dst)
}

// decodeJSONReflect is decodeJSON through encoding/json alone.
func decodeJSONReflect(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := checkUnicode(body); err != nil {
		return err
	}
	err := json.Unmarshal(body, dst)
	if err == nil {
		return nil
	}
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		member *memberError
	)
	switch {
	case errors.As(err, &member):
		return serializationError("%s", member.msg)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return serializationError("The request body must be a JSON object, not %s.", describeJSON(typ.Value))
		}
		if strings.HasPrefix(typ.Value, "number") && isInteger(typ.Type) {
			return serializationError("Member '%s' must be an integer, not %s.", typ.Field, typ.Value)
		}
		return serializationError("Member '%s' must be %s, not %s.", typ.Field, kindName(typ.Type), describeJSON(typ.Value))
	case errors.As(err, &syntax):
		return serializationError("The request body is not valid JSON (error at byte offset %d).", syntax.Offset)
	default:
		return serializationError("The request body is not valid JSON.")
	}
}

// checkUnicode refuses a body that is not valid UTF-8 or whose strings
// escape a lone UTF-16 surrogate ("\ud800"): encoding/json would replace
// either with U+FFFD, so a partition key or stream name would be stored as
// something other than what was sent.
func checkUnicode(body []byte) error {
	if !utf8.Valid(body) {
		off := 0
		for off < len(body) {
			r, n := utf8.DecodeRune(body[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return serializationError("The request body is not valid UTF-8 (invalid byte at offset %d); strings must be sent as UTF-8.", off)
	}
	if !bytes.Contains(body, []byte(`\u`)) {
		return nil
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(body):
			if body[i+1] != 'u' {
				i++ // an escape of one character
				continue
			}
			hi, ok := hex4(body, i+2)
			if !ok {
				i++
				continue
			}
			i += 5
			switch {
			case hi >= 0xdc00 && hi <= 0xdfff:
				return loneSurrogate(hi)
			case hi >= 0xd800 && hi <= 0xdbff:
				lo, ok := rune(0), false
				if i+2 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
					lo, ok = hex4(body, i+3)
				}
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return loneSurrogate(hi)
				}
				i += 6
			}
		}
	}
	return nil
}

func loneSurrogate(r rune) error {
	return serializationError("The request body escapes a lone UTF-16 surrogate (\\u%04x), which is not a Unicode character; strings must be valid Unicode.", r)
}

// hex4 decodes the four hex digits at body[i:].
func hex4(body []byte, i int) (rune, bool) {
	if i+4 > len(body) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(body[i:i+4]), 16, 32)
	return rune(v), err == nil
}

// memberError is returned by the custom member decoders below; its message
// is client-facing.
type memberError struct{ msg string }

func (e *memberError) Error() string { return e.msg }

// describeJSON names the kind of JSON value encoding/json reports in an
// UnmarshalTypeError ("string", "number 1.5", "bool", "array", "object").
func describeJSON(v string) string {
	switch {
	case v == "array", v == "object":
		return "an " + v
	case v == "bool":
		return "a boolean"
	case v == "string":
		return "a string"
	case strings.HasPrefix(v, "number"):
		return "a number"
	}
	return "a value of another type"
}

func isInteger(t reflect.Type) bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t != nil && t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a map"
	case reflect.Pointer:
		return kindName(t.Elem())
	default:
		return "a structure"
	}
}

// blob is a binary member, sent as a base64 string.
type blob []byte

func (b *blob) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*b = nil
		return nil
	}
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return &memberError{msg: "Member 'Data' must be a base64-encoded string."}
	}
	// Base64 text needs no JSON escapes, so the quoted bytes usually decode
	// as they are; an encoder that escapes "/" takes the slow path.
	inner := data[1 : len(data)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return &memberError{msg: "Member 'Data' must be a base64-encoded string."}
		}
		inner = []byte(s)
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(inner)))
	n, err := base64.StdEncoding.Decode(out, inner)
	if err != nil {
		return &memberError{msg: "Member 'Data' is not valid base64."}
	}
	*b = out[:n]
	return nil
}

// MarshalJSON keeps an empty blob a string rather than null.
func (b blob) MarshalJSON() ([]byte, error) {
	return json.Marshal([]byte(b))
}

// maxEpochSeconds keeps decoded timestamps inside years 0001–9999.
const maxEpochSeconds = 253402300799

// epochTime is a timestamp member: seconds since the Unix epoch as a JSON
// number, possibly fractional (millisecond precision is kept).
type epochTime struct{ time.Time }

func (t *epochTime) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(string(data), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return &memberError{msg: "Timestamp members must be a number of seconds since the Unix epoch."}
	}
	if f < -62135596800 || f > maxEpochSeconds {
		return &memberError{msg: "Timestamp member is out of range."}
	}
	ms := int64(math.Round(f * 1000))
	t.Time = time.UnixMilli(ms).UTC()
	return nil
}

// epochSeconds renders t as AWS JSON does: seconds since the epoch with
// millisecond precision.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	return t.appendJSON(nil), nil
}

func (t epochSeconds) appendJSON(b []byte) []byte {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(b, float64(ms)/1000, 'f', -1, 64)
}
