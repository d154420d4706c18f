package billing

import (
	"context"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/services/events"
)

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	p, ok := problem.From(err)
	if !ok || p.Code != code {
		t.Fatalf("error %v, want problem %s", err, code)
	}
}

// Staff actions naming an organisation refuse one billing has never heard of (no organization.created
// projected): a mistyped ID credits nobody. A row that only a verification event created is not enough.
func TestStaffActionsRefuseUnknownOrganisation(t *testing.T) {
	t.Parallel()
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		_, err := f.s.RecordOfflinePayment(ctx, OfflinePaymentInput{OrganizationID: "typo", Credits: 10, Reference: "PO-1", ActorUserID: "staff"})
		wantCode(t, err, "organization_not_found")
		_, err = f.s.CreateGrant(ctx, GrantInput{OrganizationID: "typo", AmountMicro: 1_000_000, ExpiresAt: t0.Add(time.Hour), ActorUserID: "staff"})
		wantCode(t, err, "organization_not_found")
		wantCode(t, f.s.SetConnectAccount(ctx, "staff", "typo", "acct_1"), "organization_not_found")

		// Verified before its creation event arrived: still unknown.
		must(t, f.s.ProjectVerified(ctx, "early", true))
		_, err = f.s.RecordOfflinePayment(ctx, OfflinePaymentInput{OrganizationID: "early", Credits: 10, Reference: "PO-1", ActorUserID: "staff"})
		wantCode(t, err, "organization_not_found")
		_, err = f.s.CreateGrant(ctx, GrantInput{OrganizationID: "early", AmountMicro: 1_000_000, ExpiresAt: t0.Add(time.Hour), ActorUserID: "staff"})
		wantCode(t, err, "organization_not_found")

		// Nothing was written for the unknown IDs.
		var n int64
		must(t, f.db.Model(&Purchase{}).Count(&n).Error)
		if n != 0 {
			t.Fatalf("%d purchases recorded for unknown organisations", n)
		}
		if b := f.balance(walletAcct("typo")); b != 0 {
			t.Fatalf("typo wallet %d", b)
		}
		must(t, f.db.Model(&Org{}).Where("id = ?", "typo").Count(&n).Error)
		if n != 0 {
			t.Fatal("an organisation row was created for a mistyped ID")
		}

		// Once created (the event arrives), the same actions work.
		must(t, f.s.ProjectOrg(ctx, "early", "Early Inc.", "sme"))
		f.buy("early", 10)
		if _, err := f.s.CreateGrant(ctx, GrantInput{OrganizationID: "early", AmountMicro: 1_000_000, ExpiresAt: t0.Add(time.Hour), ActorUserID: "staff"}); err != nil {
			t.Fatal(err)
		}
		// Known but unverified: a grant is still organization_not_verified.
		f.org("plain", "sme", false)
		_, err = f.s.CreateGrant(ctx, GrantInput{OrganizationID: "plain", AmountMicro: 1_000_000, ExpiresAt: t0.Add(time.Hour), ActorUserID: "staff"})
		wantCode(t, err, "organization_not_verified")

		// Connect accounts are for vendors only.
		wantCode(t, f.s.SetConnectAccount(ctx, "staff", "plain", "acct_1"), "vendor_not_found")
		f.org("ven", "vendor", true)
		must(t, f.s.SetConnectAccount(ctx, "staff", "ven", "acct_1"))
		var org Org
		must(t, f.db.Where("id = ?", "ven").Take(&org).Error)
		if org.StripeAccount != "acct_1" {
			t.Fatalf("stripe account %q", org.StripeAccount)
		}
		f.verify()
	})
}

// A brand-new organisation whose created event has not reached billing yet still sees its (empty) wallet and
// can be held against (it is the caller's own organisation, vouched for by identity's token).
func TestOwnOrganisationBeforeProjection(t *testing.T) {
	t.Parallel()
	eachFx(t, func(t *testing.T, f *fx) {
		a := newAPI(t, f)
		fresh := who{user: "u-new", org: "brand-new", kind: "sme", role: "owner"}
		out := a.expect(fresh, "GET", "/api/v1/billing/wallet", nil, 200, "")
		if len(out) == 0 {
			t.Fatal("empty wallet body")
		}
		_, err := f.hold("sb-new", "brand-new", "ven", 1_000_000, 1, 3600)
		wantCode(t, err, "insufficient_credits")
	})
}

func TestStaffActionsUnknownOrganisationHTTP(t *testing.T) {
	t.Parallel()
	eachFx(t, func(t *testing.T, f *fx) {
		a := newAPI(t, f)
		f.org("sme", "sme", true)
		f.org("ven", "vendor", true)
		exp := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)

		a.expect(staff, "POST", "/api/v1/billing/offline-payments", map[string]any{"organization_id": "smee", "credits": 10, "reference": "PO-1"}, 404, "organization_not_found")
		a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "smee", "amount_micro": 1_000_000, "expires_at": exp}, 404, "organization_not_found")
		a.expect(staff, "PUT", "/api/v1/billing/vendors/vem/connect-account", map[string]any{"stripe_account_id": "acct_1"}, 404, "organization_not_found")
		a.expect(staff, "PUT", "/api/v1/billing/vendors/sme/connect-account", map[string]any{"stripe_account_id": "acct_1"}, 404, "vendor_not_found")

		a.expect(staff, "POST", "/api/v1/billing/offline-payments", map[string]any{"organization_id": "sme", "credits": 10, "reference": "PO-1"}, 201, "")
		a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": 1_000_000, "expires_at": exp}, 201, "")
		a.expect(staff, "PUT", "/api/v1/billing/vendors/ven/connect-account", map[string]any{"stripe_account_id": "acct_1"}, 204, "")
	})
}

// Grants are usable by verified organisations only: when an organisation loses verification its grants stop
// being spendable (holds and charges skip them; co-funding stops) until it is verified again.
func TestGrantsSuspendedWhileUnverified(t *testing.T) {
	t.Parallel()
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", true)
		f.org("ven", "vendor", true)
		g, err := f.s.CreateGrant(ctx, GrantInput{OrganizationID: "sme", AmountMicro: 10_000_000, ExpiresAt: t0.Add(24 * time.Hour), ActorUserID: "staff"})
		must(t, err)
		f.buy("sme", 1) // 1 credit in the wallet
		f.listing()

		must(t, f.s.ProjectVerified(ctx, "sme", false))
		w, err := f.s.WalletOf(ctx, "sme")
		must(t, err)
		if w.GrantedMicro != 0 || w.AvailableMicro != 1_000_000 || len(w.Grants) != 1 || !w.Grants[0].Suspended {
			t.Fatalf("unverified wallet: %+v", w)
		}
		// A 2-credit hold fits only with the grant: refused while unverified.
		_, err = f.hold("sb-1", "sme", "ven", 2_000_000, 1, 3600)
		wantCode(t, err, "insufficient_credits")

		// A charge without a hold (usage of a sandbox billing did not hold) takes the wallet, never the grant.
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb-2", "sme", "ven", 1, t0, 30*60_000, 1)}))
		if b := f.balance(grantAcct(g.ID)); b != 10_000_000 {
			t.Fatalf("grant spent while unverified: balance %d", b)
		}
		if b := f.balance(walletAcct("sme")); b >= 1_000_000 {
			t.Fatalf("wallet not charged: %d", b)
		}

		// Re-verified: the grant is spendable again.
		must(t, f.s.ProjectVerified(ctx, "sme", true))
		w, err = f.s.WalletOf(ctx, "sme")
		must(t, err)
		if w.GrantedMicro != 10_000_000 || w.Grants[0].Suspended {
			t.Fatalf("re-verified wallet: %+v", w)
		}
		if _, err := f.hold("sb-1", "sme", "ven", 2_000_000, 1, 3600); err != nil {
			t.Fatal(err)
		}
		f.verify()
	})
}
