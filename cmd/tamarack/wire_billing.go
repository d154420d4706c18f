package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tamarack-ai/tamarack/billing"
	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/identity"
	"gorm.io/gorm"
)

// Billing's wiring.

func billingMigrations() []sqldb.Migrations { return []sqldb.Migrations{billing.Migrations()} }

func newBilling(e *env) (*billing.Service, error) {
	log := e.log.With("service", "billing")
	mailer, err := e.mailer(log)
	if err != nil {
		return nil, err
	}
	return billing.New(billing.Deps{
		DB: e.db, Bus: e.bus, Clock: e.clock, Log: log, Mailer: mailer,
		PublicURL: e.cfg.PublicURL, ProgrammeLegalName: e.cfg.ProgrammeLegalName, CreditValue: e.cfg.creditValue, Tax: e.cfg.tax(),
		Stripe: billing.StripeConfig{Key: e.cfg.StripeKey, WebhookSecret: e.cfg.StripeWebhookSecret, APIBase: e.cfg.StripeAPIBase},
	})
}

// wireBilling builds the billing service, mounts its routes on e.api, adds its OpenAPI operations to e.doc and
// its background loops with e.background.
func wireBilling(ctx context.Context, e *env) error {
	svc, err := newBilling(e)
	if err != nil {
		return err
	}
	if err := svc.Setup(ctx); err != nil {
		return err
	}
	svc.Routes(e.api.Group("/billing"))
	svc.OpenAPI(e.doc)
	e.background("billing", svc.Run)
	return nil
}

// seedBilling gives the demo SME a programme grant with co-funding and the partner purchased credits recorded
// as an offline payment, so the demo works without Stripe. Running it again adds nothing.
func seedBilling(ctx context.Context, e *env, d *demo) error {
	svc, err := newBilling(e)
	if err != nil {
		return err
	}
	if err := svc.Setup(ctx); err != nil {
		return err
	}
	// Staff actions refuse organisations billing has not heard of, and identity's organization.created and
	// verified events may not have reached billing yet (no consumer runs during a seed): project the demo
	// organisations as identity's seed made them (names and kinds mirror seedIdentity). Idempotent: an upsert of
	// the same facts. Verification is only set, never cleared, as identity's EnsureDemo does on a re-run.
	for _, o := range []struct {
		id, name, kind string
		verified       bool
	}{
		{d.ProgrammeOrgID, "AI Compute Programme", identity.KindProgramme, true},
		{d.VendorOrgID, "Northern GPU Co.", identity.KindVendor, true},
		{d.SMEOrgID, "Maple Robotics", identity.KindSME, true},
		{d.PartnerOrgID, "Laurentian Industries", identity.KindPartner, false},
	} {
		if o.id == "" {
			continue
		}
		if err := svc.ProjectOrg(ctx, o.id, o.name, o.kind); err != nil {
			return fmt.Errorf("project demo organisation %s: %w", o.id, err)
		}
		if o.verified {
			if err := svc.ProjectVerified(ctx, o.id, true); err != nil {
				return fmt.Errorf("project demo organisation %s: %w", o.id, err)
			}
		}
	}
	if d.SMEOrgID != "" {
		gs, err := svc.Grants(ctx, d.SMEOrgID)
		if err != nil {
			return err
		}
		if len(gs) == 0 {
			g, err := svc.CreateGrant(ctx, billing.GrantInput{OrganizationID: d.SMEOrgID, AmountMicro: 500_000_000,
				ExpiresAt: e.clock.Now().Add(90 * 24 * time.Hour), CofundPercent: 50, CapMicro: 200_000_000,
				Note: "Demo programme grant", ActorUserID: d.StaffUserID})
			if err != nil {
				return err
			}
			d.Notes = append(d.Notes, fmt.Sprintf("Billing: SME grant %s of 500 credits, 50%% co-funding up to 200 credits, 90 days.", g.ID))
		}
	}
	if d.PartnerOrgID != "" {
		done, err := svc.HasPurchase(ctx, d.PartnerOrgID, "DEMO-PO-0001")
		if err != nil {
			return err
		}
		if !done {
			if _, err := svc.RecordOfflinePayment(ctx, billing.OfflinePaymentInput{OrganizationID: d.PartnerOrgID, Credits: 1000,
				Reference: "DEMO-PO-0001", ActorUserID: d.StaffUserID}); err != nil {
				return err
			}
			d.Notes = append(d.Notes, "Billing: partner bought 1,000 credits (offline payment DEMO-PO-0001).")
		}
	}
	return nil
}

// billingVerify recomputes every ledger balance from the transfers; any difference is an error (exit 1).
func billingVerify(ctx context.Context, c *config, stdout io.Writer) error {
	db, err := sqldb.Open(ctx, c.dsn(), sqldb.Options{Logger: newLogger(c)})
	if err != nil {
		return err
	}
	defer func() { _ = sqldb.Close(db) }()
	// Idempotent; lets verify run against a database no server has started on yet.
	if err := sqldb.Migrate(ctx, db, newLogger(c), billingMigrations()...); err != nil {
		return err
	}
	return verifyLedger(db.WithContext(ctx), stdout)
}

func verifyLedger(db *gorm.DB, stdout io.Writer) error {
	diffs, n, err := ledger.Verify(db)
	if err != nil {
		return err
	}
	for _, d := range diffs {
		fmt.Fprintln(stdout, "DIFFERENCE", d)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("billing verify: %d differences in %d accounts", len(diffs), n)
	}
	fmt.Fprintf(stdout, "billing verify: %d accounts, every balance equals the sum of its transfers, total is zero\n", n)
	return nil
}
