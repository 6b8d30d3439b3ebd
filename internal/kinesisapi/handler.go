// Package kinesisapi serves the Amazon Kinesis Data Streams API (AWS JSON
// 1.1 over HTTP) on top of the stream engine, so the aws CLI and every AWS
// SDK work against it unchanged.
package kinesisapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/admit"
	"github.com/runnel-dev/runnel/internal/bufpool"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Engine is what the API layer needs from the stream engine;
// *stream.Service satisfies it. Each group of actions declares the part it
// calls next to its handlers.
type Engine interface {
	FanOutEngine
	ARN(name string) string
	NameFromARN(arn string) (string, error)
	streamsEngine
	tagsEngine
	recordsEngine
	tokenSealer
	controlEngine
	accountEngine
	reshardEngine
	policyEngine
	channelsEngine
	scopeEngine
}

var _ Engine = (*stream.Service)(nil)

const (
	targetPrefix    = "Kinesis_20131202."
	contentTypeJSON = "application/x-amz-json-1.1"
	requestIDHeader = "x-amzn-RequestId"
	// extendedIDHeader is AWS's second request id.
	extendedIDHeader = "x-amz-id-2"
	// maxBodyBytes bounds a request body. The largest valid request is a
	// PutRecords of 10 MiB of data and keys, which base64 inflates by 4/3;
	// the rest is JSON framing.
	maxBodyBytes = 15 << 20
)

// Handler serves the Kinesis API. It is safe for concurrent use.
type Handler struct {
	svc     Engine
	logger  *slog.Logger
	now     func() time.Time
	tokens  tokenCodec
	actions map[string]action
	opts    handlerOptions
	rates   rateLimits
	fanout  *fanOut
	// policies caches parsed resource policies.
	policies policyCache
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns an http.Handler serving the Kinesis API over svc.
// Errors that are not client errors are logged to logger (nil discards
// them) and answered with InternalFailure. Options turn on authentication
// and AWS limits.
func NewHandler(svc Engine, logger *slog.Logger, opts ...Option) http.Handler {
	return newHandler(svc, logger, time.Now, opts...)
}

func newHandler(svc Engine, logger *slog.Logger, now func() time.Time, opts ...Option) *Handler {
	o := defaultOptions()
	for _, fn := range opts {
		fn(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.bodies == nil {
		// A handler of its own (tests, embedding) reads bodies within
		// the default limits.
		a, err := admit.New(admit.Config{Registerer: prometheus.NewRegistry(), Logger: logger})
		if err != nil {
			panic(err) // a fresh registry takes every metric
		}
		o.bodies = a.Bodies
	}
	return &Handler{
		svc:     svc,
		logger:  logger,
		now:     now,
		tokens:  tokenCodec{sealer: svc},
		actions: actions(),
		opts:    o,
		fanout:  newFanOut(),
	}
}

// request is a decoded request body; validate checks what can be checked
// without the engine.
type request interface {
	validate() error
}

// action is one API operation: decodeWith parses and validates a body in
// the request's wire format, run executes it against the engine.
type action struct {
	decodeWith func(c codec, body []byte) (request, error)
	run        func(h *Handler, ctx context.Context, req request) (any, error)
}

// decode parses and validates an AWS JSON 1.1 body.
func (a action) decode(body []byte) (request, error) { return a.decodeWith(jsonCodec{}, body) }

func op[R any, P interface {
	*R
	request
}](run func(*Handler, context.Context, P) (any, error)) action {
	return action{
		decodeWith: func(c codec, body []byte) (request, error) {
			p := P(new(R))
			if err := c.decode(body, p); err != nil {
				return nil, err
			}
			if err := p.validate(); err != nil {
				return nil, err
			}
			if a, ok := any(p).(interface{ answerIn(codec) }); ok {
				a.answerIn(c)
			}
			return p, nil
		},
		run: func(h *Handler, ctx context.Context, req request) (any, error) {
			return run(h, ctx, req.(P))
		},
	}
}

// actions lists every supported operation by its X-Amz-Target name.
func actions() map[string]action {
	return map[string]action{
		"CreateStream":                           op((*Handler).createStream),
		"DeleteStream":                           op((*Handler).deleteStream),
		"DescribeStream":                         op((*Handler).describeStream),
		"DescribeStreamSummary":                  op((*Handler).describeStreamSummary),
		"ListStreams":                            op((*Handler).listStreams),
		"ListShards":                             op((*Handler).listShards),
		"IncreaseStreamRetentionPeriod":          op((*Handler).increaseRetention),
		"DecreaseStreamRetentionPeriod":          op((*Handler).decreaseRetention),
		"PutRecord":                              op((*Handler).putRecord),
		"PutRecords":                             op((*Handler).putRecords),
		"GetShardIterator":                       op((*Handler).getShardIterator),
		"GetRecords":                             op((*Handler).getRecords),
		"AddTagsToStream":                        op((*Handler).addTags),
		"RemoveTagsFromStream":                   op((*Handler).removeTags),
		"ListTagsForStream":                      op((*Handler).listTags),
		"UpdateStreamMode":                       op((*Handler).updateStreamMode),
		"StartStreamEncryption":                  op((*Handler).startEncryption),
		"StopStreamEncryption":                   op((*Handler).stopEncryption),
		"EnableEnhancedMonitoring":               op((*Handler).enableMonitoring),
		"DisableEnhancedMonitoring":              op((*Handler).disableMonitoring),
		"DescribeLimits":                         op((*Handler).describeLimits),
		"UpdateMaxRecordSize":                    op((*Handler).updateMaxRecordSize),
		"TagResource":                            op((*Handler).tagResource),
		"UntagResource":                          op((*Handler).untagResource),
		"ListTagsForResource":                    op((*Handler).listTagsForResource),
		"SplitShard":                             op((*Handler).splitShard),
		"MergeShards":                            op((*Handler).mergeShards),
		"UpdateShardCount":                       op((*Handler).updateShardCount),
		"RegisterStreamConsumer":                 op((*Handler).registerConsumer),
		"DeregisterStreamConsumer":               op((*Handler).deregisterConsumer),
		"DescribeStreamConsumer":                 op((*Handler).describeConsumer),
		"ListStreamConsumers":                    op((*Handler).listConsumers),
		"SubscribeToShard":                       op((*Handler).subscribeToShard),
		"DescribeAccountSettings":                op((*Handler).describeAccountSettings),
		"UpdateAccountSettings":                  op((*Handler).updateAccountSettings),
		"UpdateStreamWarmThroughput":             op((*Handler).updateWarmThroughput),
		"UpdateStreamRecordDistributionStrategy": op((*Handler).updateDistribution),
		"PutResourcePolicy":                      op((*Handler).putResourcePolicy),
		"GetResourcePolicy":                      op((*Handler).getResourcePolicy),
		"DeleteResourcePolicy":                   op((*Handler).deleteResourcePolicy),
		"CreateChannel":                          op((*Handler).createChannel),
		"DescribeChannel":                        op((*Handler).describeChannel),
		"ListChannels":                           op((*Handler).listChannels),
		"UpdateChannel":                          op((*Handler).updateChannel),
		"DeleteChannel":                          op((*Handler).deleteChannel),
	}
}

// ServeHTTP answers one API call. Every response, error or not, carries a
// request id and the content type of the request's wire format (AWS JSON
// 1.1 unless the request was CBOR).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	setRequestIDs(w.Header(), id)
	if r.Method == http.MethodPost && isPlainJSON(r.Header.Get("Content-Type")) {
		h.writePlainJSON(w, r, id)
		return
	}
	c, cerr := codecFor(r.Header.Get("Content-Type"))
	w.Header().Set("Content-Type", c.contentType())

	name, out, err := h.serve(w, r, c, cerr)
	if err != nil {
		e, known := classify(err)
		if !known {
			h.logger.Error("request failed", "action", name, "request_id", id, "err", err)
		}
		writeBody(w, c, e.Status, errorBody(e.Type, e.Msg))
		return
	}
	if s, ok := out.(streamedResponse); ok {
		s.writeResponse(r.Context(), w, c)
		return
	}
	if _, isJSON := c.(jsonCodec); isJSON && out == nil {
		// An operation with no output answers with an empty body, as
		// Kinesis does in AWS JSON. (In CBOR it answers an empty map,
		// which every CBOR client reads.)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	if out == nil {
		out = struct{}{}
	}
	writeBody(w, c, http.StatusOK, out)
}

// setRequestIDs sets the two ids every Kinesis answer carries:
// x-amzn-RequestId, and x-amz-id-2, the extended id AWS adds (72 random
// bytes, base64).
func setRequestIDs(h http.Header, id string) {
	h.Set(requestIDHeader, id)
	var ext [72]byte
	_, _ = rand.Read(ext[:]) // crypto/rand.Read never fails
	h.Set(extendedIDHeader, base64.StdEncoding.EncodeToString(ext[:]))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, c codec, codecErr error) (string, any, error) {
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, targetPrefix)
	if r.Method != http.MethodPost || !ok {
		return "", nil, newError(typeUnknownOperation, http.StatusBadRequest, "The X-Amz-Target header must name a Kinesis_20131202 operation in a POST request.")
	}
	act, ok := h.actions[name]
	if !ok {
		return name, nil, newError(typeUnknownOperation, http.StatusBadRequest, "The operation %q is not supported.", name)
	}
	if codecErr != nil {
		return name, nil, codecErr
	}
	// The signature is checked as far as the headers allow before the
	// body is read: an unknown key, a stale date or a missing signed
	// header costs no body, nor, when the client declared the body's hash,
	// does a wrong signature or an action the key may never call.
	check, err := h.beginAuth(r)
	if err != nil {
		return name, nil, err
	}
	if key := check.Key(); key != nil {
		if err := h.mayCall(key, name); err != nil {
			return name, nil, err
		}
	}
	// The body is hashed as it arrives, for the signature.
	var sum hash.Hash
	if check != nil {
		sum = sha256.New()
	}
	body, release, err := h.opts.bodies.ReadAll(w, r, maxBodyBytes, sum)
	defer release()
	if err != nil {
		return name, nil, bodyError(err)
	}
	if _, isJSON := c.(jsonCodec); isJSON && len(bytes.TrimSpace(body)) == 0 {
		// Every SDK sends at least an empty document ({}); Kinesis refuses
		// an AWS JSON request with no body at all. (An empty CBOR body is
		// read as an empty request: an SDK may send one for an operation
		// whose input has no members.)
		return name, nil, serializationError("The request body is empty; send the operation's input document, an empty one ({} in JSON) when it takes none.")
	}
	key, err := h.finishAuth(check, sum)
	if err != nil {
		return name, nil, err
	}
	req, err := act.decodeWith(c, body)
	if err != nil {
		return name, nil, err
	}
	ctx := withScope(r.Context(), h.scopeOf(r, key))
	if err := h.authorize(ctx, key, name, req); err != nil {
		return name, nil, err
	}
	if err := h.checkRate(ctx, name, req); err != nil {
		return name, nil, err
	}
	out, err := act.run(h, ctx, req)
	return name, out, err
}

// answerBufs holds the buffers hot answers are rendered into between
// requests, up to the largest GetRecords answer (10 MiB of data in base64,
// and its members).
var answerBufs = bufpool.New(16 << 20)

// renderedAnswer is an answer already rendered, in the request's wire
// format, into a pooled buffer from off on (GetRecords, renderRecords);
// writeBody gives the buffer back.
type renderedAnswer struct {
	buf []byte
	off int
}

func writeBody(w http.ResponseWriter, c codec, status int, v any) {
	var written, rendered bool
	var body, pooled []byte
	var err error
	if a, ok := v.(*renderedAnswer); ok {
		pooled, body = a.buf, a.buf[a.off:]
	} else if pooled, rendered, err = renderPooled(c, v); rendered {
		body = pooled
	} else {
		body, err = c.encode(v)
	}
	if pooled != nil {
		defer func() {
			// Back to the pool only once written in full (renderPooled).
			if written {
				answerBufs.Put(pooled)
			}
		}()
	}
	if err != nil {
		// Every response type marshals; this is a programming error.
		status = http.StatusInternalServerError
		body, _ = c.encode(errorBody(typeInternalFailure, internalFailureMessage))
	}
	// A known length (rather than chunked encoding) lets clients read the
	// whole answer without waiting on the connection.
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, werr := w.Write(body)
	written = werr == nil
}

// newRequestID returns a random (version 4) UUID.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// streamName resolves the stream a request names, checking that a name and
// an ARN given together agree.
func (h *Handler) streamName(ctx context.Context, ref streamRef) (string, error) {
	if ref.StreamARN == nil {
		return h.qualify(ctx, *ref.StreamName), nil
	}
	name, err := h.svc.NameFromARN(*ref.StreamARN)
	if err != nil {
		return "", err
	}
	if ref.StreamName != nil && *ref.StreamName != h.plainName(name) {
		return "", invalidArgument("StreamName %s and StreamARN %s do not name the same stream.", *ref.StreamName, *ref.StreamARN)
	}
	return name, nil
}
