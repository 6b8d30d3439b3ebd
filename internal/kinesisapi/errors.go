package kinesisapi

import (
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel/internal/admit"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Error type names, spelled as aws-sdk-go-v2 service/kinesis/types (and the
// AWS common errors) spell them, because clients match on them.
const (
	typeValidation          = "ValidationException"
	typeInvalidArgument     = "InvalidArgumentException"
	typeResourceNotFound    = "ResourceNotFoundException"
	typeResourceInUse       = "ResourceInUseException"
	typeLimitExceeded       = "LimitExceededException"
	typeExpiredIterator     = "ExpiredIteratorException"
	typeExpiredNextToken    = "ExpiredNextTokenException"
	typeThroughputExceeded  = "ProvisionedThroughputExceededException"
	typeSerialization       = "SerializationException"
	typeUnknownOperation    = "UnknownOperationException"
	typeInternalFailure     = "InternalFailure"
	typeServiceUnavailable  = "ServiceUnavailable"
	typeRequestTooLarge     = "RequestEntityTooLargeException"
	typeRequestTimeout      = "RequestTimeoutException"
	internalFailureMessage  = "The request processing has failed because of an unknown error, exception or failure."
	validationMessagePrefix = " validation error"
)

// Error is a client-facing failure: the AWS error type sent as __type, the
// HTTP status and the message.
type Error struct {
	Type   string
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Type + ": " + e.Msg }

func newError(typ string, status int, format string, args ...any) *Error {
	return &Error{Type: typ, Status: status, Msg: fmt.Sprintf(format, args...)}
}

func invalidArgument(format string, args ...any) *Error {
	return newError(typeInvalidArgument, http.StatusBadRequest, format, args...)
}

func serializationError(format string, args ...any) *Error {
	return newError(typeSerialization, http.StatusBadRequest, format, args...)
}

func notFound(format string, args ...any) *Error {
	return newError(typeResourceNotFound, http.StatusBadRequest, format, args...)
}

// sentinels maps each stream engine condition onto the error type and
// status Kinesis sends for it. Every engine error wraps one of these;
// anything else is an internal failure.
var sentinels = []struct {
	kind   error
	typ    string
	status int
}{
	{stream.ErrNotFound, typeResourceNotFound, http.StatusBadRequest},
	{stream.ErrInUse, typeResourceInUse, http.StatusBadRequest},
	{stream.ErrInvalidArgument, typeInvalidArgument, http.StatusBadRequest},
	{stream.ErrLimitExceeded, typeLimitExceeded, http.StatusBadRequest},
	{stream.ErrExpiredIterator, typeExpiredIterator, http.StatusBadRequest},
	{stream.ErrThroughputExceeded, typeThroughputExceeded, http.StatusBadRequest},
	// Storage refuses writes for now (or the server is closing): a 503,
	// which every AWS SDK retries, with the cause in the message.
	{stream.ErrUnavailable, typeServiceUnavailable, http.StatusServiceUnavailable},
}

// classify turns any error into the *Error sent to the client. ok is false
// when err is not a known condition and must be logged as an internal
// failure.
func classify(err error) (e *Error, ok bool) {
	if errors.As(err, &e) {
		return e, true
	}
	msg := err.Error()
	if se, isStreamErr := errors.AsType[*stream.Error](err); isStreamErr {
		msg = se.Msg
	}
	for _, s := range sentinels {
		if errors.Is(err, s.kind) {
			return &Error{Type: s.typ, Status: s.status, Msg: msg}, true
		}
	}
	return &Error{Type: typeInternalFailure, Status: http.StatusInternalServerError, Msg: internalFailureMessage}, false
}

// violations collects shape-constraint failures and reports them the way
// AWS does: "2 validation errors detected: Value ... ; Value ...".
type violations struct {
	msgs []string
}

// maxViolations is how many constraint failures Kinesis lists in one
// ValidationException; it stops checking after that many.
const maxViolations = 10

func (v *violations) add(value any, field, constraint string) {
	if len(v.msgs) >= maxViolations {
		return
	}
	var shown string
	switch x := value.(type) {
	case nil:
		shown = "null"
	case string:
		shown = "'" + x + "'"
	default:
		shown = fmt.Sprintf("'%v'", x)
	}
	v.msgs = append(v.msgs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: %s", shown, field, constraint))
}

// javaList shows a list value as Kinesis's validation messages do:
// "[a, b]".
func javaList(items []string) string { return "[" + strings.Join(items, ", ") + "]" }

// javaMap shows a map value as Kinesis's validation messages do:
// "{k1=v1, k2=v2}", in key order.
func javaMap(m map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + m[k])
	}
	b.WriteByte('}')
	return b.String()
}

func (v *violations) null(field string) {
	v.add(nil, field, "Member must not be null")
}

func (v *violations) err() error {
	if len(v.msgs) == 0 {
		return nil
	}
	plural := ""
	if len(v.msgs) > 1 {
		plural = "s"
	}
	return newError(typeValidation, http.StatusBadRequest, "%d%s%s detected: %s",
		len(v.msgs), validationMessagePrefix, plural, strings.Join(v.msgs, "; "))
}

// bodyError turns a failure to read the request body into the error sent:
// too large, too slow, or refused while the server's body budget is spent
// (503, which the AWS SDKs retry).
func bodyError(err error) error {
	var ref *admit.Refusal
	if !errors.As(err, &ref) {
		return serializationError("The request body could not be read.")
	}
	switch ref.Reason {
	case admit.ReasonBodyTooLarge:
		return newError(typeRequestTooLarge, http.StatusRequestEntityTooLarge, "%s", ref.Msg)
	case admit.ReasonBodySlow:
		return newError(typeRequestTimeout, http.StatusRequestTimeout, "%s", ref.Msg)
	default:
		return newError(typeServiceUnavailable, http.StatusServiceUnavailable, "%s", ref.Msg)
	}
}

// ExposedHeaders are the answer headers a web page calling the API from
// another origin may read, as Kinesis exposes them: the SDKs read the
// request ids, the error type and the date (for clock skew).
var ExposedHeaders = []string{requestIDHeader, "x-amzn-ErrorType", "x-amz-request-id", extendedIDHeader, "x-amzn-ErrorMessage", "Date"}

// WriteRefusal answers a request refused before it reached the API (a
// foreign Host or Origin, see package admit) as Kinesis answers one it may
// not make: AccessDeniedException, in the request's wire format.
func WriteRefusal(w http.ResponseWriter, r *http.Request, ref *admit.Refusal) {
	c, _ := codecFor(r.Header.Get("Content-Type"))
	w.Header().Set("Content-Type", c.contentType())
	w.Header().Set(requestIDHeader, newRequestID())
	writeBody(w, c, http.StatusForbidden, errorBody(typeAccessDenied, ref.Msg))
}

// errorBody is the body of an error answer. Kinesis spells the message
// member "Message" in a SerializationException and "message" in every
// other error; the SDKs read either.
func errorBody(typ, msg string) any {
	if typ == typeSerialization {
		return struct {
			Type    string `json:"__type"`
			Message string `json:"Message"`
		}{typ, msg}
	}
	return struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{typ, msg}
}

// isPlainJSON reports whether a Content-Type is plain application/json,
// which Kinesis does not dispatch: it answers 200 with a Coral envelope
// naming UnknownOperationException, whatever the target.
func isPlainJSON(value string) bool {
	mt, _, err := mime.ParseMediaType(value)
	return err == nil && mt == "application/json"
}

// writePlainJSON answers a request sent as application/json as Kinesis
// does (status 200, the error inside an Output envelope, nothing run) and
// logs a warning, since a client that reads only the status would take it
// for success.
func (h *Handler) writePlainJSON(w http.ResponseWriter, r *http.Request, id string) {
	h.logger.Warn("request sent as application/json was not run; Kinesis clients send "+contentTypeJSON,
		"target", r.Header.Get("X-Amz-Target"), "request_id", id)
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, jsonCodec{}, http.StatusOK, struct {
		Output  any    `json:"Output"`
		Version string `json:"Version"`
	}{
		Output: struct {
			Type    string  `json:"__type"`
			Message *string `json:"message"`
		}{Type: "com.amazon.coral.service#" + typeUnknownOperation},
		Version: "1.0",
	})
}
