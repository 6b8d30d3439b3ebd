package stream

import (
	"context"
	"maps"
)

// Tags on streams.

// AddTags adds or overwrites tags; ErrInvalidArgument past MaxTagsPerStream.
func (s *Service) AddTags(ctx context.Context, name string, tags map[string]string) error {
	return s.updateMeta(ctx, name, func(m *streamMeta) error {
		merged := maps.Clone(m.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTagsPerStream {
			return newError(ErrInvalidArgument, "Failed to add tags to stream %s because a given stream cannot have more than %d tags associated with it.", s.InAccount(name), MaxTagsPerStream)
		}
		m.Tags = merged
		return nil
	})
}

// RemoveTags removes the tags with the given keys; absent keys are ignored.
func (s *Service) RemoveTags(ctx context.Context, name string, keys []string) error {
	return s.updateMeta(ctx, name, func(m *streamMeta) error {
		for _, k := range keys {
			delete(m.Tags, k)
		}
		return nil
	})
}

// Tags returns a copy of a stream's tags.
func (s *Service) Tags(name string) (map[string]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	t := maps.Clone(st.meta.Tags)
	if t == nil {
		t = map[string]string{}
	}
	return t, nil
}
