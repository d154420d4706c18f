package billing

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

// Durable consumer names.
const (
	DurableUsage = "billing-usage"
)

// loops lists the background work of Run.
func (s *Service) loops() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"outbox":  s.outbox.Run,
		"hold":    s.serveHolds,
		"usage":   s.ConsumeUsage,
		"stopped": func(ctx context.Context) error { return s.consumeEnded(ctx, "stopped") },
		"failed":  func(ctx context.Context) error { return s.consumeEnded(ctx, "failed") },
		"orders": func(ctx context.Context) error {
			return eventbus.Consume(ctx, s.bus, events.OrderPlaced, eventbus.ConsumeOptions{Durable: "billing-orders"},
				func(ctx context.Context, ev eventbus.Event[events.OrderPlacedV1]) error {
					return s.SettleOrder(ctx, ev.ID, ev.Data)
				})
		},
		"orgs-created": func(ctx context.Context) error {
			return eventbus.Consume(ctx, s.bus, events.OrganizationCreated, eventbus.ConsumeOptions{Durable: "billing-org-created"},
				func(ctx context.Context, ev eventbus.Event[events.OrganizationCreatedV1]) error {
					return s.projectOrg(ctx, ev.Data)
				})
		},
		"orgs-verified": func(ctx context.Context) error {
			return eventbus.Consume(ctx, s.bus, events.OrganizationVerified, eventbus.ConsumeOptions{Durable: "billing-org-verified"},
				func(ctx context.Context, ev eventbus.Event[events.OrganizationVerifiedV1]) error {
					return s.ProjectVerified(ctx, ev.Data.OrganizationID, ev.Data.Verified)
				})
		},
		"memberships": func(ctx context.Context) error {
			return eventbus.Consume(ctx, s.bus, events.MembershipChanged, eventbus.ConsumeOptions{Durable: "billing-memberships"},
				func(ctx context.Context, ev eventbus.Event[events.MembershipChangedV1]) error {
					return s.projectMembership(ctx, ev.Data)
				})
		},
		"listings-published": s.consumeListing(events.ListingPublished, "billing-listing-published", true),
		"listings-suspended": s.consumeListing(events.ListingSuspended, "billing-listing-suspended", false),
		"listings-retired":   s.consumeListing(events.ListingRetired, "billing-listing-retired", false),
		"grant-expiry":       s.expiryLoop,
	}
}

func (s *Service) serveHolds(ctx context.Context) error {
	if _, err := eventbus.Serve(ctx, s.bus, events.Hold, "billing", s.ServeHold); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// ConsumeUsage charges usage events in batches until ctx ends (durable billing-usage), with UsageWorkers
// batches in flight.
func (s *Service) ConsumeUsage(ctx context.Context) error {
	errs := make(chan error, s.cfg.UsageWorkers)
	for range s.cfg.UsageWorkers {
		go func() {
			errs <- eventbus.ConsumeBatch(ctx, s.bus, events.SandboxUsage, eventbus.ConsumeOptions{Durable: DurableUsage, Batch: s.cfg.UsageBatch,
				AckWait: s.cfg.UsageAckWait, IdleWait: 500 * time.Millisecond}, s.ChargeUsage)
		}()
	}
	var first error
	for range s.cfg.UsageWorkers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *Service) consumeEnded(ctx context.Context, state string) error {
	return eventbus.Consume(ctx, s.bus, events.SandboxSubject(state), eventbus.ConsumeOptions{Durable: "billing-sandbox-" + state},
		func(ctx context.Context, ev eventbus.Event[events.SandboxChangedV1]) error {
			return s.SandboxEnded(ctx, ev.ID, ev.Data)
		})
}

func (s *Service) consumeListing(sub eventbus.Subject[events.ListingChangedV1], durable string, publish bool) func(context.Context) error {
	return func(ctx context.Context) error {
		return eventbus.Consume(ctx, s.bus, sub, eventbus.ConsumeOptions{Durable: durable},
			func(ctx context.Context, ev eventbus.Event[events.ListingChangedV1]) error {
				return s.ProjectListing(ctx, ev.Data, publish)
			})
	}
}

func (s *Service) expiryLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ExpiryEvery)
	defer t.Stop()
	for {
		if _, err := s.ExpireGrants(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("grant expiry sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Service) projectOrg(ctx context.Context, ev events.OrganizationCreatedV1) error {
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := s.ensureOrg(tx, ev.OrganizationID); err != nil {
			return err
		}
		return setOrgNameKind(tx, ev.OrganizationID, ev.Name, ev.Kind, s.now())
	})
}

// ProjectVerified records an organisation's verification (co-funding and grants depend on it).
func (s *Service) ProjectVerified(ctx context.Context, orgID string, verified bool) error {
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := s.ensureOrg(tx, orgID); err != nil {
			return err
		}
		return setOrgVerified(tx, orgID, verified, s.now())
	})
}

// ProjectOrg records an organisation's name and kind (tests and seeds use it directly).
func (s *Service) ProjectOrg(ctx context.Context, orgID, name, kind string) error {
	return s.projectOrg(ctx, events.OrganizationCreatedV1{OrganizationID: orgID, Name: name, Kind: kind})
}

func (s *Service) projectMembership(ctx context.Context, ev events.MembershipChangedV1) error {
	if ev.Change == "removed" || (ev.Role != "owner" && ev.Role != "admin") {
		return deleteAdmin(s.db.WithContext(ctx), ev.OrganizationID, ev.UserID)
	}
	return upsertAdmin(s.db.WithContext(ctx), Admin{OrgID: ev.OrganizationID, UserID: ev.UserID, Email: ev.Email, Role: ev.Role})
}

// ProjectListing keeps the price list of published compute listings.
func (s *Service) ProjectListing(ctx context.Context, ev events.ListingChangedV1, published bool) error {
	if !published || ev.Compute == nil {
		if published {
			return nil
		}
		return deletePrice(s.db.WithContext(ctx), ev.ListingID)
	}
	c := ev.Compute
	return upsertPrice(s.db.WithContext(ctx), Price{ListingID: ev.ListingID, VendorOrgID: ev.VendorOrgID,
		Title: ev.Title, PoolID: c.PoolID, GPUModel: c.GPUModel, Region: c.Region, PricePerGPUHour: c.PricePerGPUHour, UpdatedAt: s.now()})
}
