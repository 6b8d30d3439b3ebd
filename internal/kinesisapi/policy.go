package kinesisapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"sync"

	"github.com/runnel-dev/runnel/internal/auth"
)

// policyEngine is what the resource policy actions and their enforcement
// need from the engine.
type policyEngine interface {
	ResourcePolicy(arn string) (string, error)
	SetResourcePolicy(ctx context.Context, arn, policy string) error
	StreamPolicy(name string) string
	HasResourcePolicies() bool
}

// policyARNRule is the ResourceARN of the policy actions: a stream or
// consumer ARN.
var policyARNRule = strRule{required: true, min: 1, max: maxARNLen, pattern: regexp.MustCompile(`^` + policyARNPatternText + `$`), patternText: policyARNPatternText}

const policyARNPatternText = `arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+`

type resourceRef struct {
	ResourceARN *string `json:"ResourceARN"`
	StreamID    *string `json:"StreamId"`
}

// PutResourcePolicy

type putPolicyRequest struct {
	resourceRef
	Policy *string `json:"Policy"`
}

func (r *putPolicyRequest) validate() error {
	var v violations
	v.str("resourceARN", r.ResourceARN, policyARNRule)
	v.str("policy", r.Policy, strRule{required: true})
	if err := v.err(); err != nil {
		return err
	}
	if _, err := auth.ParsePolicy(*r.Policy); err != nil {
		return invalidArgument("%s", err)
	}
	return nil
}

func (h *Handler) putResourcePolicy(ctx context.Context, r *putPolicyRequest) (any, error) {
	return nil, h.svc.SetResourcePolicy(ctx, *r.ResourceARN, *r.Policy)
}

// GetResourcePolicy

type getPolicyRequest struct{ resourceRef }

func (r *getPolicyRequest) validate() error {
	var v violations
	v.str("resourceARN", r.ResourceARN, policyARNRule)
	return v.err()
}

// getResourcePolicy answers "{}" for a resource with no policy, as Kinesis
// does.
func (h *Handler) getResourcePolicy(_ context.Context, r *getPolicyRequest) (any, error) {
	p, err := h.svc.ResourcePolicy(*r.ResourceARN)
	if err != nil {
		return nil, err
	}
	if p == "" {
		p = "{}"
	}
	return struct {
		Policy string `json:"Policy"`
	}{p}, nil
}

// DeleteResourcePolicy

type deletePolicyRequest struct{ resourceRef }

func (r *deletePolicyRequest) validate() error {
	var v violations
	v.str("resourceARN", r.ResourceARN, policyARNRule)
	return v.err()
}

func (h *Handler) deleteResourcePolicy(ctx context.Context, r *deletePolicyRequest) (any, error) {
	return nil, h.svc.SetResourcePolicy(ctx, *r.ResourceARN, "")
}

// policyCache holds parsed policy documents by their text, so a request
// parses none. It is safe for concurrent use.
type policyCache struct {
	mu     sync.Mutex
	parsed map[string]*auth.Policy
}

// maxCachedPolicies bounds the cache; past it, it starts again empty.
const maxCachedPolicies = 1024

func (c *policyCache) get(doc string) (*auth.Policy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.parsed[doc]; ok {
		return p, nil
	}
	p, err := auth.ParsePolicy(doc)
	if err != nil {
		return nil, err
	}
	if c.parsed == nil || len(c.parsed) >= maxCachedPolicies {
		c.parsed = map[string]*auth.Policy{}
	}
	c.parsed[doc] = p
	return p, nil
}

// errStoredPolicy marks a stored policy that no longer parses.
var errStoredPolicy = errors.New("stored resource policy does not parse")

// policyDecision is what the resource policies of the stream (and of the
// consumer, when the request names one) say of who calling action. A
// stored policy that does not parse denies, with a warning.
func (h *Handler) policyDecision(who auth.Principal, action, streamName, streamARN, consumerARN string) auth.Decision {
	type target struct{ doc, arn string }
	var targets []target
	if streamName != "" {
		if doc := h.svc.StreamPolicy(streamName); doc != "" {
			targets = append(targets, target{doc, streamARN})
		}
	}
	if consumerARN != "" {
		if doc, err := h.svc.ResourcePolicy(consumerARN); err == nil && doc != "" {
			targets = append(targets, target{doc, consumerARN})
		}
	}
	d := auth.NoDecision
	for _, t := range targets {
		p, err := h.policies.get(t.doc)
		if err != nil {
			h.logger.Warn("refusing a request: its resource's policy does not parse; replace it with PutResourcePolicy", "resource", t.arn, "err", errors.Join(errStoredPolicy, err))
			return auth.Denied
		}
		switch p.Decide(who, action, t.arn) {
		case auth.Denied:
			return auth.Denied
		case auth.Allowed:
			d = auth.Allowed
		}
	}
	return d
}

// accessDenied is the AccessDeniedException for a refused request.
func accessDenied(msg string) error {
	return newError(typeAccessDenied, http.StatusBadRequest, "%s", msg)
}
