package marketplace

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

// Consumers keep the marketplace's projections of organisations and pools, and settle paid orders. Each is
// idempotent by event ID: the ID is recorded in market_processed in the same transaction as the effect.

func (s *Service) consumeOrgCreated(ctx context.Context) error {
	return eventbus.Consume(ctx, s.bus, events.OrganizationCreated, eventbus.ConsumeOptions{Durable: "market-org-created"},
		func(ctx context.Context, ev eventbus.Event[events.OrganizationCreatedV1]) error {
			return s.ApplyOrganizationCreated(ctx, ev.ID, ev.Data)
		})
}

func (s *Service) consumeOrgVerified(ctx context.Context) error {
	return eventbus.Consume(ctx, s.bus, events.OrganizationVerified, eventbus.ConsumeOptions{Durable: "market-org-verified"},
		func(ctx context.Context, ev eventbus.Event[events.OrganizationVerifiedV1]) error {
			return s.ApplyOrganizationVerified(ctx, ev.ID, ev.Data)
		})
}

func (s *Service) consumePools(ctx context.Context) error {
	return eventbus.Consume(ctx, s.bus, events.PoolChanged, eventbus.ConsumeOptions{Durable: "market-pools"},
		func(ctx context.Context, ev eventbus.Event[events.PoolChangedV1]) error {
			return s.ApplyPoolChanged(ctx, ev.ID, ev.Data)
		})
}

func (s *Service) consumeOrderSettled(ctx context.Context) error {
	return eventbus.Consume(ctx, s.bus, events.OrderSettled, eventbus.ConsumeOptions{Durable: "market-order-settled"},
		func(ctx context.Context, ev eventbus.Event[events.OrderSettledV1]) error {
			return s.settleOrder(ctx, ev.ID, "order-settled", ev.Data.OrderID, true, "", ev.Data.TransferID)
		})
}

func (s *Service) consumeOrderFailed(ctx context.Context) error {
	return eventbus.Consume(ctx, s.bus, events.OrderFailed, eventbus.ConsumeOptions{Durable: "market-order-failed"},
		func(ctx context.Context, ev eventbus.Event[events.OrderFailedV1]) error {
			return s.settleOrder(ctx, ev.ID, "order-failed", ev.Data.OrderID, false, ev.Data.Reason, "")
		})
}

// followCatalog keeps this process's catalogue index current with every replica's catalogue writes: each
// process follows the listing events (published, suspended, retired) and organisations' names, re-reading the
// listings they name. Once all are followed the index is rebuilt, so nothing written before is missed.
func (s *Service) followCatalog(ctx context.Context) error {
	if s.index == nil {
		return nil
	}
	listing := func(ctx context.Context, ev eventbus.Event[events.ListingChangedV1]) {
		s.catalogChanged(ctx, ev.Data.ListingID)
	}
	follows := []func(ctx context.Context, ready chan<- struct{}) error{
		func(ctx context.Context, ready chan<- struct{}) error {
			return eventbus.Follow(ctx, s.bus, events.ListingPublished, ready, listing)
		},
		func(ctx context.Context, ready chan<- struct{}) error {
			return eventbus.Follow(ctx, s.bus, events.ListingSuspended, ready, listing)
		},
		func(ctx context.Context, ready chan<- struct{}) error {
			return eventbus.Follow(ctx, s.bus, events.ListingRetired, ready, listing)
		},
		func(ctx context.Context, ready chan<- struct{}) error {
			return eventbus.Follow(ctx, s.bus, events.OrganizationCreated, ready, func(_ context.Context, ev eventbus.Event[events.OrganizationCreatedV1]) {
				s.index.setVendorName(ev.Data.OrganizationID, ev.Data.Name)
				s.cache.invalidate()
			})
		},
	}
	for {
		fctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, len(follows))
		var err error
		for _, f := range follows {
			ready := make(chan struct{})
			go func() { errc <- f(fctx, ready) }()
			select {
			case <-ready:
			case err = <-errc:
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			if s.index.cur.Load() != nil {
				err = s.index.rebuild(ctx)
			}
			if err == nil {
				err = <-errc
			}
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("following catalogue events failed; retrying", "err", err)
		if eventbus.WaitOrDone(ctx, time.Second) {
			return nil
		}
	}
}

// ApplyOrganizationCreated records an organisation's name and kind (verification is kept as it is: the
// verified event may arrive first).
func (s *Service) ApplyOrganizationCreated(ctx context.Context, eventID string, e events.OrganizationCreatedV1) error {
	err := s.once(ctx, eventID, "org-created", func(tx *gorm.DB, now time.Time) error {
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "org_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"name", "kind", "updated_at"})}).
			Create(&orgRow{OrgID: e.OrganizationID, Name: e.Name, Kind: e.Kind, UpdatedAt: now}).Error; err != nil {
			return err
		}
		// Listings published before the name arrived show it from now on.
		return tx.Exec(`UPDATE market_catalog SET vendor_name = ? WHERE vendor_org_id = ?`, e.Name, e.OrganizationID).Error
	})
	if err == nil {
		if s.index != nil {
			s.index.setVendorName(e.OrganizationID, e.Name)
		}
		s.cache.invalidate()
	}
	return err
}

// ApplyOrganizationVerified records an organisation's verification.
func (s *Service) ApplyOrganizationVerified(ctx context.Context, eventID string, e events.OrganizationVerifiedV1) error {
	return s.once(ctx, eventID, "org-verified", func(tx *gorm.DB, now time.Time) error {
		return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "org_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"verified", "updated_at"})}).
			Create(&orgRow{OrgID: e.OrganizationID, Verified: e.Verified, UpdatedAt: now}).Error
	})
}

// ApplyPoolChanged records which vendor owns a pool and the GPU models it declares.
func (s *Service) ApplyPoolChanged(ctx context.Context, eventID string, e events.PoolChangedV1) error {
	return s.once(ctx, eventID, "pool-changed", func(tx *gorm.DB, now time.Time) error {
		return upsertPool(tx, e, now)
	})
}

func upsertPool(tx *gorm.DB, e events.PoolChangedV1, now time.Time) error {
	return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "pool_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"vendor_org_id", "name", "region", "gpu_models", "updated_at"})}).
		Create(&poolRow{PoolID: e.PoolID, VendorOrgID: e.VendorOrgID, Name: e.Name, Region: e.Region,
			GPUModels: strings.Join(e.GPUModels, ","), UpdatedAt: now}).Error
}

func (s *Service) once(ctx context.Context, eventID, consumer string, fn func(tx *gorm.DB, now time.Time) error) error {
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		fresh, err := processed.Mark(tx, consumer, eventID, now)
		if err != nil || !fresh {
			return err
		}
		return fn(tx, now)
	})
}
