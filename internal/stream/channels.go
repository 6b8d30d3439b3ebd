package stream

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Channels deliver a stream to a destination (CreateChannel and the other
// channel actions). The engine only keeps them: a channel is stored in its
// source stream's metadata, so it survives restarts and vanishes with the
// stream, and its status says what the delivery runner (which lives
// outside the engine) is to do next:
//
//	CREATING, UPDATING  start (or restart) delivery, then ACTIVE
//	DELETING            stop delivery, then RemoveChannel
//	FAILED              delivery could not start; StatusReason says why
//
// Every change is announced on ChannelChanges, which the runner waits on.

// Channel statuses as Kinesis names them.
const (
	ChannelCreating = "CREATING"
	ChannelActive   = "ACTIVE"
	ChannelUpdating = "UPDATING"
	ChannelDeleting = "DELETING"
	ChannelFailed   = "FAILED"
)

const channelARNResource = "channel/"

// ChannelConfig is a channel's configuration as CreateChannel gives it
// (and UpdateChannel changes it), in the API's terms.
type ChannelConfig struct {
	// RoleARN is the ServiceExecutionRoleARN, stored and reported.
	RoleARN string `json:"roleArn"`
	// RecordFormat is the source's RecordFormatType; GSRSchemaARN its
	// schema, when given.
	RecordFormat string `json:"recordFormat"`
	GSRSchemaARN string `json:"gsrSchemaArn,omitempty"`
	// S3 is the general purpose bucket destination.
	S3 ChannelS3 `json:"s3"`
	// EncryptionType and KeyID are the EncryptionConfiguration, stored
	// and reported.
	EncryptionType string `json:"encryptionType,omitempty"`
	KeyID          string `json:"keyId,omitempty"`
	// Logging is the LoggingConfiguration, stored and reported.
	Logging *ChannelLogging `json:"logging,omitempty"`
	// Tags are the channel's tags.
	Tags map[string]string `json:"tags,omitempty"`
}

// ChannelS3 is an S3DestinationConfiguration.
type ChannelS3 struct {
	BucketARN         string `json:"bucketArn"`
	Compression       string `json:"compression"`
	ExpectedOwner     string `json:"expectedOwner"`
	OutputKeyTemplate string `json:"outputKeyTemplate,omitempty"`
	StorageClass      string `json:"storageClass,omitempty"`
	FreshnessSeconds  int    `json:"freshnessSeconds"`
	DLQBucketARN      string `json:"dlqBucketArn"`
	DLQExpectedOwner  string `json:"dlqExpectedOwner"`
	ErrorOutputPrefix string `json:"errorOutputPrefix,omitempty"`
}

// ChannelLogging is a ChannelLoggingConfiguration.
type ChannelLogging struct {
	Enabled   bool   `json:"enabled"`
	LogGroup  string `json:"logGroup,omitempty"`
	LogStream string `json:"logStream,omitempty"`
}

// ChannelMeta is a channel as persisted in its stream's metadata.
type ChannelMeta struct {
	Name         string        `json:"name"`
	ID           string        `json:"id"`
	ARN          string        `json:"arn"`
	Created      time.Time     `json:"created"`
	Status       string        `json:"status"`
	StatusReason string        `json:"statusReason,omitempty"`
	Config       ChannelConfig `json:"config"`
	// Generation counts the channel's configurations: it grows with each
	// UpdateChannel, so the runner knows which one a status is about.
	Generation int `json:"generation"`
}

// Channel is a channel with its source stream.
type Channel struct {
	ChannelMeta
	StreamName    string
	StreamARN     string
	StreamCreated time.Time
}

func (s *Service) channel(st *streamState, m ChannelMeta) Channel {
	m.Config.Tags = maps.Clone(m.Config.Tags)
	if m.Config.Logging != nil {
		l := *m.Config.Logging
		m.Config.Logging = &l
	}
	return Channel{ChannelMeta: m, StreamName: st.meta.Name, StreamARN: s.ARN(st.meta.Name), StreamCreated: st.meta.Created}
}

// channelARN is a channel's ARN: the account and region of its stream,
// its name and its id, so a channel made again under the same name has a
// new ARN.
func (s *Service) channelARN(streamName, name, id string) string {
	region, account, _ := s.SplitName(streamName)
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:%s%s/%s", region, account, channelARNResource, name, id)
}

// arnAccount is the account an ARN names ("" when it names none).
func arnAccount(arn string) string {
	if parts := strings.SplitN(arn, ":", 6); len(parts) == 6 {
		return parts[4]
	}
	return ""
}

// CreateChannel creates channel name on a stream, in status CREATING.
// ErrNotFound without the stream; ErrInUse when the account already has a
// channel of that name; ErrInvalidArgument when the stream is not
// on-demand; ErrLimitExceeded when the stream already has limit channels
// (0 for no limit).
func (s *Service) CreateChannel(ctx context.Context, streamName, name string, cfg ChannelConfig, limit int) (Channel, error) {
	var made ChannelMeta
	err := s.updateMeta(ctx, streamName, func(m *streamMeta) error {
		// Channel names are unique in an account and region.
		arn := s.channelARN(streamName, name, "")
		if _, _, err := s.findChannel(func(c ChannelMeta) bool { return strings.HasPrefix(c.ARN, arn) }); err == nil {
			return newError(ErrInUse, "Channel %s under account %s already exists.", name, arnAccount(arn))
		}
		if m.Mode != ModeOnDemand {
			return newError(ErrInvalidArgument, "Stream %s is in PROVISIONED mode; channels deliver only on-demand streams (UpdateStreamMode to ON_DEMAND first).", s.InAccount(streamName))
		}
		if limit > 0 && len(m.Channels) >= limit {
			return newError(ErrLimitExceeded, "Stream %s already has %d channel(s), its limit.", s.InAccount(streamName), len(m.Channels))
		}
		id := uuid.NewString()
		made = ChannelMeta{
			Name: name, ID: id, ARN: s.channelARN(streamName, name, id), Created: s.now().UTC().Truncate(time.Millisecond),
			Status: ChannelCreating, Config: cfg, Generation: 1,
		}
		m.Channels = append(slices.Clone(m.Channels), made)
		return nil
	})
	if err != nil {
		return Channel{}, err
	}
	s.log.Info("channel created", "stream", s.LogName(streamName), "channel", name)
	s.channelsChanged()
	c, err := s.ChannelByARN(made.ARN)
	if err != nil {
		return Channel{}, err
	}
	return c, nil
}

// findChannel returns the stream and the channel match selects. It takes
// s.mu itself.
func (s *Service) findChannel(match func(ChannelMeta) bool) (*streamState, ChannelMeta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, st := range s.byName {
		for _, c := range st.meta.Channels {
			if match(c) {
				return st, c, nil
			}
		}
	}
	return nil, ChannelMeta{}, ErrNotFound
}

// ChannelByARN returns the channel arn names. ErrNotFound when there is
// none (a channel made again under the same name has a new ARN).
func (s *Service) ChannelByARN(arn string) (Channel, error) {
	st, c, err := s.findChannel(func(c ChannelMeta) bool { return c.ARN == arn })
	if err != nil {
		return Channel{}, s.channelNotFound(arn)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.channel(st, c), nil
}

func (s *Service) channelNotFound(arn string) error {
	name := arn
	if _, after, ok := strings.Cut(arn, ":"+channelARNResource); ok {
		name, _, _ = strings.Cut(after, "/")
	}
	return newError(ErrNotFound, "Channel %s under account %s not found.", name, arnAccount(arn))
}

// Channels returns every channel, oldest first (by name when made at
// once).
func (s *Service) Channels() []Channel {
	s.mu.RLock()
	var out []Channel
	for _, st := range s.byName {
		for _, c := range st.meta.Channels {
			out = append(out, s.channel(st, c))
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Channel) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// updateChannel applies fn to the channel arn names, in its stream's
// metadata.
func (s *Service) updateChannel(ctx context.Context, arn string, fn func(c *ChannelMeta) error) (Channel, error) {
	st, _, err := s.findChannel(func(c ChannelMeta) bool { return c.ARN == arn })
	if err != nil {
		return Channel{}, s.channelNotFound(arn)
	}
	s.mu.RLock()
	streamName := st.meta.Name
	s.mu.RUnlock()
	var out ChannelMeta
	err = s.updateMeta(ctx, streamName, func(m *streamMeta) error {
		i := slices.IndexFunc(m.Channels, func(c ChannelMeta) bool { return c.ARN == arn })
		if i < 0 {
			return s.channelNotFound(arn)
		}
		m.Channels = slices.Clone(m.Channels)
		c := m.Channels[i]
		c.Config.Tags = maps.Clone(c.Config.Tags)
		if err := fn(&c); err != nil {
			return err
		}
		m.Channels[i] = c
		out = c
		return nil
	})
	if err != nil {
		return Channel{}, err
	}
	s.channelsChanged()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.channel(st, out), nil
}

// UpdateChannel changes an ACTIVE channel's configuration with fn and
// sets it UPDATING. ErrInUse when the channel is not ACTIVE or FAILED.
func (s *Service) UpdateChannel(ctx context.Context, arn string, fn func(*ChannelConfig)) (Channel, error) {
	c, err := s.updateChannel(ctx, arn, func(c *ChannelMeta) error {
		if c.Status != ChannelActive && c.Status != ChannelFailed {
			return newError(ErrInUse, "Channel %s under account %s is %s; it can be updated when ACTIVE.", c.Name, arnAccount(c.ARN), c.Status)
		}
		fn(&c.Config)
		c.Status, c.StatusReason = ChannelUpdating, ""
		c.Generation++
		return nil
	})
	if err == nil {
		s.log.Info("channel updated", "channel", c.Name)
	}
	return c, err
}

// DeleteChannel sets a channel DELETING; the runner stops its delivery
// and removes it. ErrInUse when it is already being deleted.
func (s *Service) DeleteChannel(ctx context.Context, arn string) error {
	c, err := s.updateChannel(ctx, arn, func(c *ChannelMeta) error {
		if c.Status == ChannelDeleting {
			return newError(ErrInUse, "Channel %s under account %s is already being deleted.", c.Name, arnAccount(c.ARN))
		}
		c.Status, c.StatusReason = ChannelDeleting, ""
		return nil
	})
	if err == nil {
		s.log.Info("channel deleting", "channel", c.Name)
	}
	return err
}

// SetChannelStatus records what the runner made of a channel's
// configuration generation: ACTIVE, or FAILED with the reason. It does
// nothing when the channel has moved on since (updated, or being
// deleted).
func (s *Service) SetChannelStatus(ctx context.Context, arn string, generation int, status, reason string) error {
	_, err := s.updateChannel(ctx, arn, func(c *ChannelMeta) error {
		if c.Generation == generation && c.Status != ChannelDeleting {
			c.Status, c.StatusReason = status, reason
		}
		return nil
	})
	return err
}

// RemoveChannel removes a channel once its delivery has stopped.
func (s *Service) RemoveChannel(ctx context.Context, arn string) error {
	st, _, err := s.findChannel(func(c ChannelMeta) bool { return c.ARN == arn })
	if err != nil {
		return nil // already gone, with its stream
	}
	s.mu.RLock()
	streamName := st.meta.Name
	s.mu.RUnlock()
	err = s.updateMeta(ctx, streamName, func(m *streamMeta) error {
		m.Channels = slices.DeleteFunc(slices.Clone(m.Channels), func(c ChannelMeta) bool { return c.ARN == arn })
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("channel deleted", "stream", s.LogName(streamName), "channel", arn)
	s.channelsChanged()
	return nil
}

// ChannelChanges returns a channel closed at the next change to any
// channel (or to a stream holding one), for the runner to look again.
func (s *Service) ChannelChanges() <-chan struct{} {
	s.chanMu.Lock()
	defer s.chanMu.Unlock()
	if s.chanChanged == nil {
		s.chanChanged = make(chan struct{})
	}
	return s.chanChanged
}

func (s *Service) channelsChanged() {
	s.chanMu.Lock()
	defer s.chanMu.Unlock()
	if s.chanChanged != nil {
		close(s.chanChanged)
		s.chanChanged = nil
	}
}

// AddChannelTags adds or overwrites a channel's tags (TagResource);
// ErrInvalidArgument past MaxTagsPerStream.
func (s *Service) AddChannelTags(ctx context.Context, arn string, tags map[string]string) error {
	_, err := s.updateChannel(ctx, arn, func(c *ChannelMeta) error {
		merged := maps.Clone(c.Config.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTagsPerStream {
			return newError(ErrInvalidArgument, "Failed to add tags to channel %s under account %s because a given channel cannot have more than %d tags associated with it.", c.Name, arnAccount(c.ARN), MaxTagsPerStream)
		}
		c.Config.Tags = merged
		return nil
	})
	return err
}

// RemoveChannelTags removes a channel's tags with the given keys
// (UntagResource); absent keys are ignored.
func (s *Service) RemoveChannelTags(ctx context.Context, arn string, keys []string) error {
	_, err := s.updateChannel(ctx, arn, func(c *ChannelMeta) error {
		for _, k := range keys {
			delete(c.Config.Tags, k)
		}
		return nil
	})
	return err
}
