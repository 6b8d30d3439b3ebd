package kinesisapi

import (
	"fmt"
	"io"
	"net/http"

	"github.com/aws/smithy-go/eventstream"
)

// The AWS event-stream encoding (application/vnd.amazon.eventstream) frames
// each message as a prelude (total length, headers length, prelude CRC32),
// typed headers, a payload and a message CRC32. The framing is smithy-go's,
// the same code the AWS SDKs decode it with; this file decides what goes in
// the messages.

const (
	contentTypeEventStream = "application/vnd.amazon.eventstream"
	// eventPayloadType is the :content-type of event payloads under AWS
	// JSON 1.1, as the SDKs' awsJson protocol writes and expects it.
	eventPayloadType = "application/json"
	// eventPayloadTypeCBOR is the :content-type of CBOR event payloads.
	eventPayloadTypeCBOR = "application/cbor"
	// eventInitialResponse is the first event of an RPC-protocol event
	// stream; its payload holds the operation's output members (none for
	// SubscribeToShard).
	eventInitialResponse = "initial-response"
)

// eventWriter writes event-stream messages to an HTTP response, flushing
// each so the client sees it at once. It is not safe for concurrent use.
type eventWriter struct {
	w   io.Writer
	rc  *http.ResponseController
	enc *eventstream.Encoder
	// c encodes payloads in the request's protocol: JSON for AWS JSON 1.1,
	// CBOR for the CBOR protocol the Java SDK and the KCL use.
	c codec
}

func newEventWriter(w http.ResponseWriter, c codec) *eventWriter {
	return &eventWriter{w: w, rc: http.NewResponseController(w), enc: eventstream.NewEncoder(), c: c}
}

// payloadType is the :content-type of payloads in the writer's protocol.
func (e *eventWriter) payloadType() string {
	if _, ok := e.c.(cborCodec); ok {
		return eventPayloadTypeCBOR
	}
	return eventPayloadType
}

// event sends an event message of type eventType with v as its payload.
func (e *eventWriter) event(eventType string, v any) error {
	payload, pooled, err := renderPooled(e.c, v)
	if !pooled {
		payload, err = e.c.encode(v)
	}
	if err != nil {
		return fmt.Errorf("encoding %s event: %w", eventType, err)
	}
	if err := e.send(eventMessage(eventType, e.payloadType(), payload)); err != nil {
		return err
	}
	if pooled {
		answerBufs.Put(payload) // sent in full (renderPooled)
	}
	return nil
}

// exception sends an exception message: the stream's way of failing after
// its response has begun. exceptionType is the AWS error type.
func (e *eventWriter) exception(exceptionType, message string) error {
	payload, err := e.c.encode(struct {
		Message string `json:"message"`
	}{message})
	if err != nil {
		return err
	}
	return e.send(exceptionMessage(exceptionType, e.payloadType(), payload))
}

func (e *eventWriter) send(msg eventstream.Message) error {
	if err := e.enc.Encode(e.w, msg); err != nil {
		return err
	}
	return e.rc.Flush()
}

func eventMessage(eventType, contentType string, payload []byte) eventstream.Message {
	var msg eventstream.Message
	msg.Headers.Set(eventstream.EventTypeHeader, eventstream.StringValue(eventType))
	msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue(contentType))
	msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.EventMessageType))
	msg.Payload = payload
	return msg
}

func exceptionMessage(exceptionType, contentType string, payload []byte) eventstream.Message {
	var msg eventstream.Message
	msg.Headers.Set(eventstream.ExceptionTypeHeader, eventstream.StringValue(exceptionType))
	msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue(contentType))
	msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.ExceptionMessageType))
	msg.Payload = payload
	return msg
}
