package kinesisapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/runnel-dev/runnel/internal/admit"
	"github.com/runnel-dev/runnel/internal/auth"
	"github.com/runnel-dev/runnel/internal/stream"
)

// Option configures a Handler.
type Option func(*handlerOptions)

type handlerOptions struct {
	// shardLimit is what DescribeLimits reports as ShardLimit; it should
	// match the engine's stream.Config.ShardLimit.
	shardLimit int
	// keys, when set, turns on Signature Version 4 authentication.
	keys *auth.Keys
	// awsLimits enforces the control-plane rate limits Kinesis documents.
	awsLimits bool
	region    string
	accountID string
	// multiRegion scopes streams by each request's region and account.
	multiRegion bool
	// bodies reads request bodies within the server's limits.
	bodies *admit.Bodies
	// channelCheck, when set, checks a channel's configuration can be
	// delivered before CreateChannel stores it.
	channelCheck func(stream.ChannelConfig) error
}

func defaultOptions() handlerOptions {
	return handlerOptions{shardLimit: 1000, region: stream.DefaultRegion, accountID: stream.DefaultAccountID}
}

// WithShardLimit sets the ShardLimit DescribeLimits reports (default 1000);
// pass the engine's stream.Config.ShardLimit.
func WithShardLimit(n int) Option { return func(o *handlerOptions) { o.shardLimit = n } }

// WithAccount sets the region and account id used in error messages and
// the ARNs of refused callers (defaults us-east-1 and 000000000000); pass
// the engine's.
func WithAccount(region, accountID string) Option {
	return func(o *handlerOptions) { o.region, o.accountID = region, accountID }
}

// WithBodies reads request bodies through b, whose deadlines, minimum
// rate and memory budget the server shares among its handlers. Without it
// the handler reads within admit's default limits on its own.
func WithBodies(b *admit.Bodies) Option { return func(o *handlerOptions) { o.bodies = b } }

// WithChannelCheck makes CreateChannel refuse, with
// InvalidArgumentException and check's message, a channel whose
// configuration check rejects (the server's channel runner says what it
// can deliver).
func WithChannelCheck(check func(stream.ChannelConfig) error) Option {
	return func(o *handlerOptions) { o.channelCheck = check }
}

// WithAuth requires every request to be signed with Signature Version 4 by
// one of keys, and refuses what a key may not do.
func WithAuth(keys *auth.Keys) Option { return func(o *handlerOptions) { o.keys = keys } }

// WithAWSLimits answers calls past the control-plane rate limits Kinesis
// documents with LimitExceededException (ProvisionedThroughputExceeded for
// GetShardIterator), as AWS does. The per-shard data limits are the
// engine's (stream.Config.ShardWriteLimits and ShardReadLimits).
func WithAWSLimits() Option { return func(o *handlerOptions) { o.awsLimits = true } }

// MaxConsumersPerStream is how many enhanced fan-out consumers Kinesis
// lets one provisioned or on-demand standard stream have.
const MaxConsumersPerStream = 20

// MaxConsumersAdvantage is how many an on-demand stream may have in
// On-demand Advantage mode, while the account's minimum throughput
// billing commitment is in force.
const MaxConsumersAdvantage = 50

// ConsumerLimit is the most consumers RegisterStreamConsumer may register
// on one stream: under AWS limits MaxConsumersPerStream, or
// MaxConsumersAdvantage when advantage (an on-demand stream under the
// commitment); otherwise 0 for no limit.
func (h *Handler) ConsumerLimit(advantage bool) int {
	switch {
	case !h.opts.awsLimits:
		return 0
	case advantage:
		return MaxConsumersAdvantage
	}
	return MaxConsumersPerStream
}

// advantage reports whether a stream is in On-demand Advantage mode.
func (h *Handler) advantage(name string) (bool, error) {
	d, err := h.svc.Describe(name)
	if err != nil || d.Mode != stream.ModeOnDemand {
		return false, err
	}
	c, err := h.svc.AccountCommitment()
	return c.Active(), err
}

// rateScope says what one rate limit is counted per.
type rateScope int

const (
	perAccount rateScope = iota
	perStream
	perShard
)

// controlRates are the control-plane rate limits of the Kinesis API
// reference and developer guide ("This operation has a limit of ...
// transactions per second per account/stream/open shard").
var controlRates = map[string]struct {
	perSecond int
	scope     rateScope
}{
	"AddTagsToStream":            {5, perAccount},
	"ListTagsForStream":          {5, perAccount},
	"RemoveTagsFromStream":       {5, perAccount},
	"CreateStream":               {5, perAccount},
	"DeleteStream":               {5, perAccount},
	"ListStreams":                {5, perAccount},
	"DescribeStream":             {10, perAccount},
	"DescribeStreamSummary":      {20, perAccount},
	"DescribeLimits":             {1, perAccount},
	"UpdateAccountSettings":      {5, perAccount},
	"UpdateStreamWarmThroughput": {5, perAccount},
	"MergeShards":                {5, perAccount},
	"SplitShard":                 {5, perAccount},
	"RegisterStreamConsumer":     {5, perAccount},
	"ListStreamConsumers":        {5, perStream},
	"ListShards":                 {1000, perStream},
	"GetShardIterator":           {5, perShard},
}

// rateLimits holds one token bucket (a second of burst) per limited action
// and scope. It is safe for concurrent use.
type rateLimits struct {
	mu      sync.Mutex
	buckets map[rateKey]*rate.Limiter
}

type rateKey struct {
	action, stream, shard string
}

// allow takes one call from the bucket of key, creating it full.
func (l *rateLimits) allow(key rateKey, perSecond int, now time.Time) bool {
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		if l.buckets == nil {
			l.buckets = map[rateKey]*rate.Limiter{}
		}
		b = rate.NewLimiter(rate.Limit(perSecond), perSecond)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	return b.AllowN(now, 1)
}

// checkRate answers a call past its action's control-plane limit the way
// Kinesis does.
func (h *Handler) checkRate(ctx context.Context, action string, req request) error {
	if !h.opts.awsLimits {
		return nil
	}
	lim, ok := controlRates[action]
	if !ok {
		return nil
	}
	key := rateKey{action: action}
	if lim.scope != perAccount {
		key.stream = h.requestStream(ctx, req)
	} else {
		// Each account and region has its own: the engine's prefix for
		// the request's scope ("" for the server's own).
		key.stream = h.qualify(ctx, "")
	}
	if lim.scope == perShard {
		if r, ok := req.(*getShardIteratorRequest); ok {
			key.shard = *r.ShardID
		}
	}
	if h.rates.allow(key, lim.perSecond, h.now()) {
		return nil
	}
	switch {
	case action == "GetShardIterator":
		return newError(typeThroughputExceeded, http.StatusBadRequest,
			"Rate exceeded for shard %s in stream %s.", key.shard, h.svc.InAccount(key.stream))
	case lim.scope == perStream:
		return newError(typeLimitExceeded, http.StatusBadRequest,
			"Rate exceeded for stream %s.", h.svc.InAccount(key.stream))
	default:
		return newError(typeLimitExceeded, http.StatusBadRequest,
			"Rate exceeded for %s under account %s: the limit is %d per second.", action, h.accountOf(key.stream), lim.perSecond)
	}
}
