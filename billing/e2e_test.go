package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestMoneyLoop is the acceptance test: in one process, with the real service loops on a real JetStream,
// stripe-mock and signed webhooks, a partner buys credits, staff grant an SME credits with co-funding, the
// SME's sandbox runs until its wallet is exhausted and the sandbox stops, and every balance adds up exactly.
func TestMoneyLoop(t *testing.T) {
	url := startStripeMock(t)
	eachBusDB(t, func(t *testing.T, bus *eventbus.Bus, db *gorm.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := newFx(t, db, bus, withStripe(url), func(d *Deps) { d.UsageBatch = 64 })
		a := newAPI(t, f)
		runDone := make(chan error, 1)
		go func() { runDone <- f.s.Run(ctx) }()
		defer func() { cancel(); <-runDone }()

		// What other services announce: organisations, the SME's admin, the verification, a compute listing.
		pub := func(err error) { t.Helper(); must(t, err) }
		pub(eventbus.Publish(ctx, bus, events.OrganizationCreated, "tamarack/identity", "org-sme", t0, events.OrganizationCreatedV1{OrganizationID: "sme", Name: "SME Ltd", Kind: "sme", At: t0}))
		pub(eventbus.Publish(ctx, bus, events.OrganizationCreated, "tamarack/identity", "org-partner", t0, events.OrganizationCreatedV1{OrganizationID: "partner", Name: "Partner Corp", Kind: "partner", At: t0}))
		pub(eventbus.Publish(ctx, bus, events.OrganizationCreated, "tamarack/identity", "org-ven", t0, events.OrganizationCreatedV1{OrganizationID: "ven", Name: "GPU Vendor", Kind: "vendor", At: t0}))
		pub(eventbus.Publish(ctx, bus, events.MembershipChanged, "tamarack/identity", "mem-1", t0, events.MembershipChangedV1{OrganizationID: "sme", UserID: "u-sme", Email: "admin@sme.test", Role: "admin", Change: "added", At: t0}))
		pub(eventbus.Publish(ctx, bus, events.OrganizationVerified, "tamarack/identity", "ver-sme", t0, events.OrganizationVerifiedV1{OrganizationID: "sme", Verified: true, At: t0}))
		pub(eventbus.Publish(ctx, bus, events.ListingPublished, "tamarack/marketplace", "lst-pub", t0, events.ListingChangedV1{ListingID: "lst-1", VendorOrgID: "ven", Kind: "compute", Title: "H100 hours", At: t0,
			Compute: &events.ComputeV1{PoolID: "pool-1", GPUModel: "H100", Region: "ca-east", PricePerGPUHour: int64(money.Credits(36))}}))
		waitFor(t, "projections", 20*time.Second, func() bool {
			var n int64
			_ = db.Model(&Org{}).Where("verified = ?", true).Count(&n).Error
			var p int64
			_ = db.Model(&Price{}).Count(&p).Error
			var m int64
			_ = db.Model(&Admin{}).Count(&m).Error
			// The verification may arrive before the creation (other subjects, other consumers): staff can
			// only grant to an organisation whose creation billing has seen.
			var k int64
			_ = db.Model(&Org{}).Where("kind <> ''").Count(&k).Error
			return n == 1 && p == 1 && m == 1 && k == 3
		})
		var prices struct{ Items []PriceRow }
		must(t, json.Unmarshal(a.expect(nobody, "GET", "/api/v1/billing/prices", nil, 200, ""), &prices))
		if len(prices.Items) != 1 || prices.Items[0].PerGPUHourMicro != 36_000_000 {
			t.Fatalf("prices %+v", prices)
		}

		// Outcomes other services would consume.
		var mu sync.Mutex
		var exhausted []events.WalletExhaustedV1
		var settled []events.OrderSettledV1
		go func() {
			_ = eventbus.Consume(ctx, bus, events.WalletExhausted, eventbus.ConsumeOptions{Durable: "test-exhausted"}, func(_ context.Context, ev eventbus.Event[events.WalletExhaustedV1]) error {
				mu.Lock()
				defer mu.Unlock()
				exhausted = append(exhausted, ev.Data)
				return nil
			})
		}()
		go func() {
			_ = eventbus.Consume(ctx, bus, events.OrderSettled, eventbus.ConsumeOptions{Durable: "test-settled"}, func(_ context.Context, ev eventbus.Event[events.OrderSettledV1]) error {
				mu.Lock()
				defer mu.Unlock()
				settled = append(settled, ev.Data)
				return nil
			})
		}()

		// 1. The partner buys 200 credits through Stripe Checkout and a signed webhook, then orders a 30-credit plan.
		buyThroughStripe(t, a, partner, 200)
		pub(eventbus.Publish(ctx, bus, events.OrderPlaced, "tamarack/marketplace", "ord-evt-1", t0, events.OrderPlacedV1{OrderID: "ord-1", BuyerOrgID: "partner",
			VendorOrgID: "ven", ListingID: "lst-model", PlanID: "plan-1", PlanKind: "one_time", Quantity: 1, AmountMicro: 30_000_000, At: t0}))

		// 2. Staff grant the SME 50 credits with 50% co-funding up to 20 credits.
		var g grantJSON
		must(t, json.Unmarshal(a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": 50_000_000,
			"expires_at": t0.Add(90 * 24 * time.Hour), "cofund_percent": 50, "cap_micro": 20_000_000, "note": "accelerator"}, 201, ""), &g))

		// 3. The testbed places a hold for an hour at 36 credits per GPU-hour and meters 130 one-minute intervals
		// (0.6 credits each): co-funding covers half of the first 40 credits, the grant runs out in interval 117.
		hold, err := eventbus.Call(ctx, bus, events.Hold, events.HoldRequestV1{Action: "place", SandboxID: "sb-1", OrganizationID: "sme", ListingID: "lst-1",
			VendorOrgID: "ven", PoolID: "pool-1", GPUModel: "H100", GPUCount: 1, PricePerGPUHour: 36_000_000, Seconds: 3600})
		must(t, err)
		if hold.AmountMicro != 36_000_000 {
			t.Fatalf("hold %+v", hold)
		}
		const intervals = 130
		at := t0.Add(time.Minute)
		for seq := uint64(1); seq <= intervals; seq++ {
			u := events.SandboxUsageV1{SandboxID: "sb-1", OrganizationID: "sme", ListingID: "lst-1", VendorOrgID: "ven", PoolID: "pool-1", GPUModel: "H100",
				DeviceCount: 1, Seq: seq, Start: at, End: at.Add(time.Minute), Millis: 60_000, Final: seq == intervals}
			pub(eventbus.Publish(ctx, bus, events.SandboxUsage, "tamarack/testbed", fmt.Sprintf("sb-1-%d", seq), u.End, u))
			at = u.End
		}
		waitFor(t, "wallet exhausted", 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(exhausted) > 0 })
		// The testbed stops the sandbox; its event says which sample was the last.
		pub(eventbus.Publish(ctx, bus, events.SandboxSubject("stopped"), "tamarack/testbed", "sb-1-stopped", at, events.SandboxChangedV1{SandboxID: "sb-1",
			OrganizationID: "sme", ListingID: "lst-1", VendorOrgID: "ven", PoolID: "pool-1", GPUModel: "H100", GPUCount: 1, State: "stopped",
			Reason: "wallet_exhausted", At: at, UsageMillis: intervals * 60_000, LastSeq: intervals}))
		waitFor(t, "hold released", 30*time.Second, func() bool {
			var h Hold
			return db.Take(&h, "sandbox_id = ?", "sb-1").Error == nil && h.Released
		})
		waitFor(t, "order settled", 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(settled) == 1 })

		// 4. Everything adds up to the micro-credit.
		var u struct{ C, F, S int64 }
		must(t, db.Model(&Usage{}).Select("SUM(charge) AS c, SUM(cofunded) AS f, SUM(shortfall) AS s").Scan(&u).Error)
		if u.C != 78_000_000 || u.F != 20_000_000 || u.S != 8_000_000 {
			t.Fatalf("usage charged %d cofunded %d shortfall %d", u.C, u.F, u.S)
		}
		mu.Lock()
		if len(exhausted) != 1 || exhausted[0].SandboxID != "sb-1" {
			t.Errorf("exhausted events %+v", exhausted)
		}
		mu.Unlock()
		var sme, prt Wallet
		must(t, json.Unmarshal(a.expect(smeAdmin, "GET", "/api/v1/billing/wallet", nil, 200, ""), &sme))
		must(t, json.Unmarshal(a.expect(partner, "GET", "/api/v1/billing/wallet", nil, 200, ""), &prt))
		if sme.GrantedMicro != 0 || sme.HeldMicro != 0 || sme.AvailableMicro != 0 || prt.PurchasedMicro != 170_000_000 {
			t.Fatalf("wallets sme %+v partner %+v", sme, prt)
		}
		// Vendor: 85% of what was collected from usage (70) and of the order (30).
		var pays struct{ Items []VendorPayable }
		must(t, json.Unmarshal(a.expect(staff, "GET", "/api/v1/billing/payouts", nil, 200, ""), &pays))
		if len(pays.Items) != 1 || pays.Items[0].PayableMicro != 59_500_000+25_500_000 || pays.Items[0].Name != "GPU Vendor" {
			t.Fatalf("payables %+v", pays.Items)
		}
		if r := f.revenue(); r != 10_500_000+4_500_000 {
			t.Fatalf("platform revenue %d", r)
		}
		var spend struct{ Items []ProgrammeSpend }
		must(t, json.Unmarshal(a.expect(staff, "GET", "/api/v1/billing/programme/spend", nil, 200, ""), &spend))
		if len(spend.Items) != 1 || spend.Items[0].SpentMicro != 50_000_000 || spend.Items[0].CofundedMicro != 20_000_000 || spend.Items[0].TotalMicro != 70_000_000 {
			t.Fatalf("programme spend %+v", spend.Items)
		}
		if fund := f.balance(AcctFund); fund != -70_000_000 {
			t.Fatalf("programme fund %d", fund)
		}
		if clearing := f.balance(AcctStripeClearing); clearing != -200_000_000 {
			t.Fatalf("stripe clearing %d", clearing)
		}
		var usage struct{ Items []UsageRow }
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/usage", nil, 200, ""), &usage))
		if len(usage.Items) != 1 || usage.Items[0].ChargeMicro != 78_000_000 || usage.Items[0].GPUModel != "H100" || usage.Items[0].Millis != intervals*60_000 {
			t.Fatalf("usage report %+v", usage.Items)
		}
		if len(f.mail.Sent()) < 2 { // grant 80% and 100%, co-funding 80% and 100%
			t.Errorf("%d threshold mails", len(f.mail.Sent()))
		}
		diffs, _, err := ledger.Verify(db)
		must(t, err)
		if len(diffs) != 0 {
			t.Fatalf("verify: %v", diffs)
		}
	})
}
