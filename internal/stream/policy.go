package stream

import (
	"context"
)

// Resource policies (PutResourcePolicy) are stored with the stream they
// belong to, the stream's own and each consumer's, so they go with the
// stream or consumer when it is deleted. The engine stores the document as
// given; the API layer checks it before and enforces it (see
// internal/auth/policy.go).

// ResourcePolicy returns the policy document attached to a stream or
// consumer ARN, "" when none is.
func (s *Service) ResourcePolicy(arn string) (string, error) {
	name, consumer, err := s.policyTarget(arn)
	if err != nil {
		return "", err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(name)
	if err != nil {
		return "", err
	}
	if consumer == "" {
		return st.meta.Policy, nil
	}
	for _, c := range st.meta.Consumers {
		if c.ARN == arn {
			return c.Policy, nil
		}
	}
	return "", s.consumerARNNotFound(name, arn)
}

// SetResourcePolicy attaches policy to a stream or consumer ARN, replacing
// any policy it had; "" removes it. ErrNotFound when the stream or
// consumer does not exist.
func (s *Service) SetResourcePolicy(ctx context.Context, arn, policy string) error {
	name, consumer, err := s.policyTarget(arn)
	if err != nil {
		return err
	}
	return s.updateMeta(ctx, name, func(m *streamMeta) error {
		old := &m.Policy
		if consumer != "" {
			old = nil
			m.Consumers = append([]ConsumerMeta(nil), m.Consumers...)
			for i := range m.Consumers {
				if m.Consumers[i].ARN == arn {
					old = &m.Consumers[i].Policy
				}
			}
			if old == nil {
				return s.consumerARNNotFound(name, arn)
			}
		}
		*old = policy
		return nil
	})
}

// HasResourcePolicies reports whether any stream or consumer has a
// resource policy, so that a request no policy can concern is refused
// before its body is read.
// It reads one counter, kept as policies are stored and removed.
func (s *Service) HasResourcePolicies() bool {
	return s.policies.Load() > 0
}

// policyCount is the number of resource policies a stream's metadata
// holds, its own and its consumers'.
func policyCount(m *streamMeta) int64 {
	var n int64
	if m.Policy != "" {
		n++
	}
	for _, c := range m.Consumers {
		if c.Policy != "" {
			n++
		}
	}
	return n
}

// policyTarget returns the stream an ARN names and, for a consumer ARN,
// the consumer's name.
func (s *Service) policyTarget(arn string) (name, consumer string, err error) {
	if _, _, ok := SplitConsumerARN(arn); ok {
		name, c, err := s.ConsumerByARN(arn)
		return name, c.Name, err
	}
	name, err = s.NameFromARN(arn)
	return name, "", err
}

// StreamPolicy returns the resource policy of the stream named name, ""
// when it has none or does not exist.
func (s *Service) StreamPolicy(name string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if st, ok := s.byName[name]; ok {
		return st.meta.Policy
	}
	return ""
}
