package kinesisapi

import (
	"context"
	"time"

	"github.com/runnel-dev/runnel/internal/stream"
)

// accountEngine is what the account settings and warm throughput actions
// need from the engine.
type accountEngine interface {
	AccountCommitment() (stream.Commitment, error)
	SetCommitment(ctx context.Context, enable bool) (stream.Commitment, error)
	SetWarmThroughput(ctx context.Context, name string, mibps int) error
	WriteCapacity(name string) (current, target int, err error)
}

type commitmentOut struct {
	Status               string        `json:"Status"`
	StartedAt            *epochSeconds `json:"StartedAt,omitempty"`
	EndedAt              *epochSeconds `json:"EndedAt,omitempty"`
	EarliestAllowedEndAt *epochSeconds `json:"EarliestAllowedEndAt,omitempty"`
}

func toCommitmentOut(c stream.Commitment) commitmentOut {
	at := func(t time.Time) *epochSeconds {
		if t.IsZero() {
			return nil
		}
		e := epochSeconds(t)
		return &e
	}
	return commitmentOut{Status: c.Status, StartedAt: at(c.StartedAt), EndedAt: at(c.EndedAt), EarliestAllowedEndAt: at(c.EarliestAllowedAt)}
}

type accountSettingsOut struct {
	MinimumThroughputBillingCommitment commitmentOut `json:"MinimumThroughputBillingCommitment"`
}

// DescribeAccountSettings

type describeAccountSettingsRequest struct{}

func (*describeAccountSettingsRequest) validate() error { return nil }

func (h *Handler) describeAccountSettings(_ context.Context, _ *describeAccountSettingsRequest) (any, error) {
	c, err := h.svc.AccountCommitment()
	if err != nil {
		return nil, err
	}
	return accountSettingsOut{toCommitmentOut(c)}, nil
}

// UpdateAccountSettings

type updateAccountSettingsRequest struct {
	MinimumThroughputBillingCommitment *struct {
		Status *string `json:"Status"`
	} `json:"MinimumThroughputBillingCommitment"`
}

func (r *updateAccountSettingsRequest) validate() error {
	var v violations
	if c := r.MinimumThroughputBillingCommitment; c == nil {
		v.null("minimumThroughputBillingCommitment")
	} else {
		v.enum("minimumThroughputBillingCommitment.status", c.Status, true, stream.CommitmentEnabled, stream.CommitmentDisabled)
	}
	return v.err()
}

func (h *Handler) updateAccountSettings(ctx context.Context, r *updateAccountSettingsRequest) (any, error) {
	c, err := h.svc.SetCommitment(ctx, *r.MinimumThroughputBillingCommitment.Status == stream.CommitmentEnabled)
	if err != nil {
		return nil, err
	}
	return accountSettingsOut{toCommitmentOut(c)}, nil
}

// UpdateStreamWarmThroughput

type updateWarmThroughputRequest struct {
	streamRef
	StreamID            *string `json:"StreamId"`
	WarmThroughputMiBps *int    `json:"WarmThroughputMiBps"`
}

func (r *updateWarmThroughputRequest) validate() error {
	var v violations
	r.check(&v)
	v.intRange("warmThroughputMiBps", r.WarmThroughputMiBps, true, 0, stream.MaxWarmThroughputMiBps)
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

type warmThroughputOut struct {
	TargetMiBps  int `json:"TargetMiBps"`
	CurrentMiBps int `json:"CurrentMiBps"`
}

// warmThroughput is what DescribeStreamSummary reports of an on-demand
// stream's write capacity, as Kinesis does while the account's commitment
// is in force: the capacity the stream takes now (CurrentMiBps) and the
// one it is scaling to (TargetMiBps).
func (h *Handler) warmThroughput(name string, d *stream.Description) (*warmThroughputOut, error) {
	if d.Mode != stream.ModeOnDemand {
		return nil, nil
	}
	c, err := h.svc.AccountCommitment()
	if err != nil || !c.Active() {
		return nil, err
	}
	return h.capacityOut(name)
}

func (h *Handler) capacityOut(name string) (*warmThroughputOut, error) {
	current, target, err := h.svc.WriteCapacity(name)
	if err != nil {
		return nil, err
	}
	return &warmThroughputOut{CurrentMiBps: current, TargetMiBps: target}, nil
}

func (h *Handler) updateWarmThroughput(ctx context.Context, r *updateWarmThroughputRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	if err := h.svc.SetWarmThroughput(ctx, name, *r.WarmThroughputMiBps); err != nil {
		return nil, err
	}
	out, err := h.capacityOut(name)
	if err != nil {
		return nil, err
	}
	return struct {
		StreamName     string             `json:"StreamName"`
		StreamARN      string             `json:"StreamARN"`
		WarmThroughput *warmThroughputOut `json:"WarmThroughput"`
	}{h.plainName(name), h.svc.ARN(name), out}, nil
}
