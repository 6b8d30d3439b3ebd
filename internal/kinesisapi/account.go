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

// warmThroughput is what DescribeStreamSummary reports of a stream's warm
// throughput: nothing until one is set. runnel has no capacity to scale,
// so the target is current at once.
func warmThroughput(d *stream.Description) *warmThroughputOut {
	if d.WarmThroughputMiBps == 0 {
		return nil
	}
	return &warmThroughputOut{TargetMiBps: d.WarmThroughputMiBps, CurrentMiBps: d.WarmThroughputMiBps}
}

func (h *Handler) updateWarmThroughput(ctx context.Context, r *updateWarmThroughputRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	if err := h.svc.SetWarmThroughput(ctx, name, *r.WarmThroughputMiBps); err != nil {
		return nil, err
	}
	return struct {
		StreamName     string             `json:"StreamName"`
		StreamARN      string             `json:"StreamARN"`
		WarmThroughput *warmThroughputOut `json:"WarmThroughput"`
	}{h.plainName(name), h.svc.ARN(name), &warmThroughputOut{TargetMiBps: *r.WarmThroughputMiBps, CurrentMiBps: *r.WarmThroughputMiBps}}, nil
}
