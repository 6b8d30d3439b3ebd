package kinesisapi

import (
	"context"
	"errors"
	"hash"
	"net/http"
	"reflect"

	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Error types of the AWS common errors for authentication.
const (
	typeMissingToken        = "MissingAuthenticationTokenException"
	typeIncompleteSignature = "IncompleteSignatureException"
	typeUnrecognizedClient  = "UnrecognizedClientException"
	typeInvalidSignature    = "InvalidSignatureException"
	typeAccessDenied        = "AccessDeniedException"
)

// authErrors maps each verification failure onto the error Kinesis sends;
// over the JSON and CBOR protocols all of them are HTTP 400.
var authErrors = []struct {
	kind error
	typ  string
}{
	{auth.ErrMissingToken, typeMissingToken},
	{auth.ErrIncompleteSignature, typeIncompleteSignature},
	{auth.ErrUnknownKey, typeUnrecognizedClient},
	{auth.ErrInvalidSignature, typeInvalidSignature},
}

// permissions says which actions a put-only or read-only key may call; any
// other action needs a key with all: true.
var permissions = map[string]auth.Permission{
	"PutRecord":                auth.Put,
	"PutRecords":               auth.Put,
	"GetShardIterator":         auth.Read,
	"GetRecords":               auth.Read,
	"DescribeStream":           auth.Read,
	"DescribeStreamSummary":    auth.Read,
	"ListShards":               auth.Read,
	"RegisterStreamConsumer":   auth.Read,
	"DeregisterStreamConsumer": auth.Read,
	"DescribeStreamConsumer":   auth.Read,
	"ListStreamConsumers":      auth.Read,
	"SubscribeToShard":         auth.Read,
}

// beginAuth checks the request's signature as far as its headers allow
// (auth.Keys.Begin) when authentication is on; nil when it is off.
func (h *Handler) beginAuth(r *http.Request) (*auth.Check, error) {
	if h.opts.keys == nil {
		return nil, nil
	}
	c, err := h.opts.keys.Begin(r, h.now())
	if err != nil {
		return nil, authError(err)
	}
	return c, nil
}

// finishAuth completes the signature check with the body's hash, fed as
// the body was read, and returns the signing key (nil when authentication
// is off).
func (h *Handler) finishAuth(c *auth.Check, bodySum hash.Hash) (*auth.Key, error) {
	if c == nil {
		return nil, nil
	}
	key, err := c.Finish(bodySum.Sum(nil))
	if err != nil {
		return nil, authError(err)
	}
	return key, nil
}

func authError(err error) error {
	var ae *auth.Error
	if errors.As(err, &ae) {
		for _, m := range authErrors {
			if errors.Is(err, m.kind) {
				return newError(m.typ, http.StatusBadRequest, "%s", ae.Msg)
			}
		}
	}
	return err
}

// mayCall refuses, before the body names a stream, an action the key may
// call on no stream at all: one its scopes do not cover while no resource
// policy is stored that could allow it.
func (h *Handler) mayCall(key *auth.Key, action string) error {
	if key.All {
		return nil
	}
	p, scoped := permissions[action]
	if scoped && (p == auth.Put && len(key.PutStreams) > 0 || p == auth.Read && len(key.ReadStreams) > 0) {
		return nil
	}
	if h.svc.HasResourcePolicies() {
		return nil
	}
	return accessDenied(auth.Refused(h.keyAccount(key), key.ID, action, "*"))
}

// policyActions manage a resource's policy: a key with all: true may
// always call them on its own account's streams and consumers, whatever
// the policy says, so that no policy can lock its owner out (as an S3
// bucket's owner can always remove the bucket's policy).
var policyActions = map[string]bool{
	"GetResourcePolicy":    true,
	"PutResourcePolicy":    true,
	"DeleteResourcePolicy": true,
}

// authorize refuses an action the key may not call on the stream the
// request names (GetRecords names its stream through the shard iterator):
// an explicit Deny in the resource policy of the stream or of the
// consumer the request names refuses it whatever the key (but see
// policyActions); otherwise a key with all: true acting in its own
// account, the key's scopes or an Allow in those policies let it through.
// Only an Allow reaches another account's streams.
func (h *Handler) authorize(ctx context.Context, key *auth.Key, action string, req request) error {
	if key == nil {
		return nil
	}
	name := h.requestStream(ctx, req)
	resource := "*"
	if name != "" {
		resource = h.svc.ARN(name)
	}
	consumerARN := requestConsumerARN(req)
	account := h.keyAccount(key)
	who := auth.Principal{Account: account, KeyID: key.ID}
	owner := key.All && (name == "" || h.ownAccount(ctx, name))
	decision := h.policyDecision(who, action, name, resource, consumerARN)
	if decision == auth.Denied {
		if owner && policyActions[action] {
			return nil
		}
		if consumerARN != "" {
			resource = consumerARN
		}
		return accessDenied(auth.RefusedByPolicy(who, action, resource))
	}
	if owner || decision == auth.Allowed {
		return nil
	}
	// A key's scopes name streams of its own account and region.
	if plain, own := h.inScope(ctx, name); own {
		if p, scoped := permissions[action]; scoped && key.Allows(p, plain) {
			return nil
		}
	}
	return accessDenied(auth.Refused(account, key.ID, action, resource))
}

// keyAccount is the account a key belongs to: its own, or the server's.
func (h *Handler) keyAccount(key *auth.Key) string {
	if key.Account != "" {
		return key.Account
	}
	return h.opts.accountID
}

// requestConsumerARN returns the consumer ARN a request names through its
// ConsumerARN or ResourceARN member, "" when none.
func requestConsumerARN(req request) string {
	for _, field := range []string{"ConsumerARN", "ResourceARN"} {
		if arn, ok := requestString(req, field); ok {
			if _, _, consumer := stream.SplitConsumerARN(arn); consumer {
				return arn
			}
		}
	}
	return ""
}

// requestChannelARN returns the channel ARN a request names through its
// ChannelARN or ResourceARN member.
func requestChannelARN(req request) (string, bool) {
	for _, field := range []string{"ChannelARN", "ResourceARN"} {
		if arn, ok := requestString(req, field); ok && channelARNPattern.MatchString(arn) {
			return arn, true
		}
	}
	return "", false
}

// requestString returns a request's string member of that name, when it
// has one and it was given.
func requestString(req request, field string) (string, bool) {
	v := reflect.ValueOf(req)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "", false
	}
	f := v.FieldByName(field)
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() || f.Elem().Kind() != reflect.String {
		return "", false
	}
	return f.Elem().String(), true
}

// requestStream returns the stream a request names through its
// StreamName, StreamARN, ConsumerARN or ResourceARN member, or a
// ListShards NextToken; "" when it names none or names it unrecognisably.
func (h *Handler) requestStream(ctx context.Context, req request) string {
	if r, ok := req.(*getRecordsRequest); ok && r.ShardIterator != nil {
		// The iterator names the stream it reads; a StreamARN next to it
		// must name the same one.
		name, err := h.svc.IteratorStream(*r.ShardIterator)
		if err != nil {
			return ""
		}
		if r.StreamARN != nil {
			if arnName, err := h.svc.NameFromARN(*r.StreamARN); err != nil || arnName != name {
				return ""
			}
		}
		return name
	}
	if r, ok := req.(*listShardsRequest); ok && r.NextToken != nil {
		if t, err := h.tokens.open(*r.NextToken, "shards", h.now()); err == nil {
			return t.Stream
		}
		return ""
	}
	if r, ok := req.(*createChannelRequest); ok {
		// A channel reads the stream it delivers: it is authorized on
		// that stream, its policy included.
		if len(r.StreamConfigurationList) == 1 && r.StreamConfigurationList[0].StreamARN != nil {
			if name, err := h.svc.NameFromARN(*r.StreamConfigurationList[0].StreamARN); err == nil {
				return name
			}
		}
		return ""
	}
	if arn, ok := requestChannelARN(req); ok {
		// A channel's actions are authorized on its source stream.
		if c, err := h.svc.ChannelByARN(arn); err == nil {
			return c.StreamName
		}
		return ""
	}
	if s, ok := requestString(req, "StreamName"); ok {
		return h.qualify(ctx, s)
	}
	if arn, ok := requestString(req, "StreamARN"); ok {
		if name, err := h.svc.NameFromARN(arn); err == nil {
			return name
		}
		return ""
	}
	for _, field := range []string{"ConsumerARN", "ResourceARN"} {
		arn, ok := requestString(req, field)
		if !ok {
			continue
		}
		// A consumer ARN names its stream by the stream's ARN, resolved as
		// the engine resolves it (stream.Service.ConsumerByARN).
		streamARN, _, consumer := stream.SplitConsumerARN(arn)
		if !consumer {
			if field != "ResourceARN" {
				return ""
			}
			streamARN = arn // a ResourceARN may name the stream itself
		}
		if name, err := h.svc.NameFromARN(streamARN); err == nil {
			return name
		}
		return ""
	}
	return ""
}
