package testbed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/services/events"
)

// HoldProvider asks billing to hold credits for a sandbox's time (action place) or more time (extend).
// An error means no start: a *problem.Problem from billing (insufficient_credits with shortfall_micro) is
// passed to the caller as is; anything else becomes 503 billing_unavailable.
type HoldProvider interface {
	Hold(ctx context.Context, req events.HoldRequestV1) (events.HoldReplyV1, error)
}

// BusHolds asks billing over NATS request/reply (events.Hold). No answer within Timeout is a refusal.
type BusHolds struct {
	Bus     *eventbus.Bus
	Timeout time.Duration
}

// Hold implements HoldProvider.
func (h BusHolds) Hold(ctx context.Context, req events.HoldRequestV1) (events.HoldReplyV1, error) {
	r, err := eventbus.CallWithin(ctx, h.Bus, h.Timeout, events.Hold, req)
	if err != nil {
		if p, ok := problem.From(err); ok && p.Status < 500 {
			return r, err
		}
		return r, fmt.Errorf("hold %s for %s: %w", req.Action, req.SandboxID, ErrBillingUnavailable.WithDetail("%v", err))
	}
	return r, nil
}

// ApproveHolds approves every hold. FOR TESTS ONLY: it never asks billing, so nothing is paid for.
type ApproveHolds struct{}

// Hold implements HoldProvider.
func (ApproveHolds) Hold(_ context.Context, req events.HoldRequestV1) (events.HoldReplyV1, error) {
	return events.HoldReplyV1{HoldID: "test-hold-" + req.SandboxID}, nil
}

// holdError maps a provider error to the API's answer.
func holdError(err error) error {
	if p, ok := problem.From(err); ok {
		if p.Code == "insufficient_credits" {
			// Billing's detail crossed NATS as English text; its shortfall travels as a number, so the
			// detail is written again from it in the reader's language.
			out := ErrInsufficientCredits.WithDetail("%s", p.Detail)
			var short int64
			switch n := p.Extra["shortfall_micro"].(type) {
			case float64:
				short = int64(n)
			case int64:
				short = n
			}
			if short > 0 {
				out = ErrInsufficientCredits.WithDetailMsg("problem.insufficient_credits.shortfall",
					problem.Args{"Shortfall": money.Micro(short).String()})
			}
			for k, v := range p.Extra {
				out = out.WithExtra(k, v)
			}
			return out
		}
		if p.Status < 500 {
			return err
		}
	}
	if errors.Is(err, ErrBillingUnavailable) {
		return err
	}
	return ErrBillingUnavailable.WithDetail("%v", err)
}
