package billing

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/services/events"
)

func TestHoldPlaceRefuseExtend(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		f.org("sme", "sme", false)
		f.buy("sme", 10)
		// Over NATS, as the testbed calls it.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = f.s.serveHolds(ctx) }()
		req := events.HoldRequestV1{Action: "place", SandboxID: "sb-1", OrganizationID: "sme", ListingID: "lst-1", VendorOrgID: "ven",
			PoolID: "pool-1", GPUModel: "H100", GPUCount: 2, PricePerGPUHour: int64(money.Credits(2)), Seconds: 3600}
		var rep events.HoldReplyV1
		waitFor(t, "hold endpoint", 5*time.Second, func() bool {
			var err error
			rep, err = eventbus.Call(ctx, f.bus, events.Hold, req)
			return err == nil
		})
		if rep.AmountMicro != int64(money.Credits(4)) {
			t.Fatalf("hold %d", rep.AmountMicro)
		}
		req.SandboxID, req.Seconds = "sb-2", 4*3600 // 16 credits, 6 available
		_, err := eventbus.Call(ctx, f.bus, events.Hold, req)
		p, ok := problem.From(err)
		if !ok || p.Code != "insufficient_credits" || p.Status != 402 {
			t.Fatalf("refusal: %v", err)
		}
		if sf, _ := p.Extra["shortfall_micro"].(float64); int64(sf) != int64(money.Credits(10)) {
			t.Fatalf("shortfall %v", p.Extra)
		}
		req.Action, req.SandboxID, req.Seconds = "extend", "sb-1", 1800 // +2 credits
		rep, err = eventbus.Call(ctx, f.bus, events.Hold, req)
		must(t, err)
		if rep.AmountMicro != int64(money.Credits(6)) {
			t.Fatalf("extended hold %d", rep.AmountMicro)
		}
		w, err := f.s.WalletOf(context.Background(), "sme")
		must(t, err)
		if w.HeldMicro != int64(money.Credits(6)) || w.AvailableMicro != int64(money.Credits(4)) {
			t.Fatalf("wallet %+v", w)
		}
		req.SandboxID = "sb-unknown"
		if _, err := eventbus.Call(ctx, f.bus, events.Hold, req); !errors.Is(err, ErrHoldNotFound) {
			if p, ok := problem.From(err); !ok || p.Code != "hold_not_found" {
				t.Fatalf("extend of unknown hold: %v", err)
			}
		}
	})
}

// TestCumulativeRounding charges random intervals (with duplicates and arbitrary batch splits) and checks that
// the total equals floor(price × devices × time / 1h) exactly, and that vendor + platform = total.
func TestCumulativeRounding(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		f.org("sme", "sme", false)
		f.buy("sme", 100_000)
		price := int64(1_234_567) // micro-credits per GPU-hour: nothing divides evenly
		_, err := f.hold("sb", "sme", "ven", price, 3, 3600*24)
		must(t, err)
		rng := rand.New(rand.NewPCG(1, 2))
		var evs []eventbus.Event[events.SandboxUsageV1]
		at, total := t0, int64(0)
		for seq := uint64(1); seq <= 700; seq++ {
			ms := rng.Int64N(20_000) + 1
			evs = append(evs, usageEv("sb", "sme", "ven", seq, at, ms, 3))
			at = at.Add(time.Duration(ms) * time.Millisecond)
			total += ms
		}
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		for len(evs) > 0 {
			n := min(len(evs), rng.IntN(50)+1)
			batch := append([]eventbus.Event[events.SandboxUsageV1]{}, evs[:n]...)
			batch = append(batch, evs[rng.IntN(n)]) // a duplicate inside the batch
			must(t, f.s.ChargeUsage(context.Background(), batch))
			must(t, f.s.ChargeUsage(context.Background(), evs[:n])) // and a redelivery of the whole batch
			evs = evs[n:]
		}
		want, err := money.PerGPUHour(money.Micro(price), 3, total)
		must(t, err)
		var got struct{ S int64 }
		must(t, f.db.Model(&Usage{}).Select("SUM(charge) AS s").Scan(&got).Error)
		if got.S != int64(want) {
			t.Fatalf("charged %d, want %d", got.S, want)
		}
		spent := int64(money.Credits(100_000)) - f.balance(walletAcct("sme"))
		if spent != int64(want) || f.balance(vendorAcct("ven"))+f.revenue() != int64(want) {
			t.Fatalf("spent %d vendor %d revenue %d want %d", spent, f.balance(vendorAcct("ven")), f.revenue(), want)
		}
		vendor, err := money.MulDiv(want, 85, 100)
		must(t, err)
		if d := f.balance(vendorAcct("ven")) - int64(vendor); d < -700 || d > 0 {
			t.Fatalf("vendor share %d vs %d", f.balance(vendorAcct("ven")), vendor)
		}
		f.verify()
	})
}

// TestCofundAcrossCap: a verified SME with a 50% co-funding grant capped at 3.5 credits runs six 10-minute
// intervals at 12 credits per GPU-hour (2 credits each).
func TestCofundAcrossCap(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", true)
		f.org("unverified", "sme", false)
		must(t, f.s.projectMembership(ctx, events.MembershipChangedV1{OrganizationID: "sme", UserID: "u1", Email: "boss@sme.test", Role: "owner", Change: "added", At: t0}))
		must(t, f.s.projectMembership(ctx, events.MembershipChangedV1{OrganizationID: "sme", UserID: "u2", Email: "dev@sme.test", Role: "member", Change: "added", At: t0}))
		g, err := f.s.CreateGrant(ctx, GrantInput{OrganizationID: "sme", AmountMicro: int64(money.Credits(100)), ExpiresAt: t0.Add(90 * 24 * time.Hour),
			CofundPercent: 50, CapMicro: 3_500_000, Note: "accelerator", ActorUserID: "staff"})
		must(t, err)
		if _, err := f.s.CreateGrant(ctx, GrantInput{OrganizationID: "unverified", AmountMicro: 1, ExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, ErrOrgNotVerified) {
			t.Fatalf("grant to an unverified org: %v", err)
		}
		_, err = f.hold("sb", "sme", "ven", int64(money.Credits(12)), 1, 3600)
		must(t, err)
		for i := range 6 {
			ev := usageEv("sb", "sme", "ven", uint64(i+1), t0.Add(time.Duration(i)*10*time.Minute), 600_000, 1)
			must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{ev}))
		}
		var rows []Usage
		must(t, f.db.Order("seq").Find(&rows).Error)
		wantCofund := []int64{1_000_000, 1_000_000, 1_000_000, 500_000, 0, 0}
		for i, r := range rows {
			if r.Charge != 2_000_000 || r.Cofunded != wantCofund[i] {
				t.Errorf("interval %d: charge %d cofunded %d, want 2000000 and %d", i+1, r.Charge, r.Cofunded, wantCofund[i])
			}
		}
		if b := f.balance(grantAcct(g.ID)); b != 100_000_000-8_500_000 {
			t.Fatalf("grant balance %d", b)
		}
		if b := f.balance(AcctFund); b != -100_000_000-3_500_000 {
			t.Fatalf("fund %d", b)
		}
		if v, r := f.balance(vendorAcct("ven")), f.revenue(); v != 10_200_000 || r != 1_800_000 {
			t.Fatalf("vendor %d revenue %d", v, r)
		}
		// Co-funding crossed 80% at interval 3 (3 of 3.5) and 100% at interval 4.
		if n := f.outboxCount(events.BudgetThreshold.Name); n != 2 {
			t.Fatalf("%d threshold events", n)
		}
		if m := f.mail.Sent(); len(m) != 2 || m[0].To[0] != "boss@sme.test" || len(m[0].To) != 1 {
			t.Fatalf("mails %+v", m)
		}
		spend, err := f.s.ProgrammeSpendByOrg(ctx)
		must(t, err)
		if len(spend) != 1 || spend[0].CofundedMicro != 3_500_000 || spend[0].SpentMicro != 8_500_000 || spend[0].TotalMicro != 12_000_000 {
			t.Fatalf("programme spend %+v", spend)
		}
		f.verify()
	})
}

// TestSettleEitherOrder releases the hold once every sample up to LastSeq is charged, whether the stop event
// comes before or after the last samples.
func TestSettleEitherOrder(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.buy("sme", 100)
		stop := func(sb string, last uint64) {
			must(t, f.s.SandboxEnded(ctx, "stop-"+sb, events.SandboxChangedV1{SandboxID: sb, OrganizationID: "sme", State: "stopped", LastSeq: last, UsageMillis: 1, At: t0}))
		}
		for _, sb := range []string{"early", "late"} {
			_, err := f.hold(sb, "sme", "ven", int64(money.Credits(6)), 1, 3600)
			must(t, err)
		}
		stop("early", 2)
		for _, sb := range []string{"early", "late"} {
			must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv(sb, "sme", "ven", 1, t0, 60_000, 1)}))
		}
		w, _ := f.s.WalletOf(ctx, "sme")
		if w.HeldMicro != 2*(6_000_000-100_000) {
			t.Fatalf("held %d", w.HeldMicro)
		}
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("early", "sme", "ven", 2, t0.Add(time.Minute), 60_000, 1)}))
		stop("late", 1)
		stop("late", 1) // redelivered
		w, _ = f.s.WalletOf(ctx, "sme")
		if w.HeldMicro != 0 || w.AvailableMicro != 100_000_000-300_000 {
			t.Fatalf("after settlement %+v", w)
		}
		f.verify()
	})
}

// TestWalletExhausted: usage beyond what the wallet holds records a shortfall, never overdraws, and announces
// the exhaustion once.
func TestWalletExhausted(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.buy("sme", 1)
		_, err := f.hold("sb", "sme", "ven", int64(money.Credits(36)), 1, 100) // 1 credit
		must(t, err)
		for i := range 4 { // 60 s each = 0.6 credits
			must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb", "sme", "ven", uint64(i+1), t0.Add(time.Duration(i)*time.Minute), 60_000, 1)}))
		}
		if b := f.balance(walletAcct("sme")); b != 0 {
			t.Fatalf("wallet %d", b)
		}
		var h Hold
		must(t, f.db.Take(&h, "sandbox_id = ?", "sb").Error)
		if h.Charged != 2_400_000 || h.Shortfall != 1_400_000 {
			t.Fatalf("hold %+v", h)
		}
		if n := f.outboxCount(events.WalletExhausted.Name); n != 1 {
			t.Fatalf("%d exhausted events", n)
		}
		if v, r := f.balance(vendorAcct("ven")), f.revenue(); v+r != 1_000_000 {
			t.Fatalf("vendor %d + revenue %d must be what was collected", v, r)
		}
		f.verify()
	})
}

func TestOrders(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("buyer", "partner", false)
		f.buy("buyer", 10)
		o := events.OrderPlacedV1{OrderID: "ord-1", BuyerOrgID: "buyer", VendorOrgID: "ven", ListingID: "l", PlanID: "p", Quantity: 1, AmountMicro: 4_000_000, At: t0}
		must(t, f.s.SettleOrder(ctx, "evt-1", o))
		must(t, f.s.SettleOrder(ctx, "evt-1", o)) // redelivery
		o.OrderID, o.AmountMicro = "ord-2", 7_000_000
		must(t, f.s.SettleOrder(ctx, "evt-2", o))
		if f.balance(walletAcct("buyer")) != 6_000_000 || f.balance(vendorAcct("ven")) != 3_400_000 || f.revenue() != 600_000 {
			t.Fatalf("balances wallet %d vendor %d revenue %d", f.balance(walletAcct("buyer")), f.balance(vendorAcct("ven")), f.revenue())
		}
		if f.outboxCount(events.OrderSettled.Name) != 1 || f.outboxCount(events.OrderFailed.Name) != 1 {
			t.Fatal("expected one settled and one failed event")
		}
		var row struct{ Payload string }
		must(t, f.db.Table("billing_outbox").Select("payload").Where("subject = ?", events.OrderFailed.Name).Take(&row).Error)
		if want := `"shortfall_micro":1000000`; !contains(row.Payload, want) {
			t.Fatalf("failed payload %s", row.Payload)
		}
		f.verify()
	})
}

func TestGrantExpiry(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", true)
		g, err := f.s.CreateGrant(ctx, GrantInput{OrganizationID: "sme", AmountMicro: 5_000_000, ExpiresAt: t0.Add(time.Hour)})
		must(t, err)
		_, err = f.hold("sb", "sme", "ven", int64(money.Credits(2)), 1, 3600)
		must(t, err)
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb", "sme", "ven", 1, t0, 1_800_000, 1)}))
		n, err := f.s.ExpireGrants(ctx)
		must(t, err)
		if n != 0 {
			t.Fatal("nothing is due yet")
		}
		f.clk.Advance(2 * time.Hour)
		n, err = f.s.ExpireGrants(ctx)
		must(t, err)
		n2, err := f.s.ExpireGrants(ctx)
		must(t, err)
		if n != 1 || n2 != 0 || f.balance(grantAcct(g.ID)) != 0 || f.balance(AcctFund) != -1_000_000 {
			t.Fatalf("expiry %d %d grant %d fund %d", n, n2, f.balance(grantAcct(g.ID)), f.balance(AcctFund))
		}
		f.verify()
	})
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestMonthlyBudget(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.buy("sme", 100)
		must(t, f.s.projectMembership(ctx, events.MembershipChangedV1{OrganizationID: "sme", UserID: "u1", Email: "boss@sme.test", Role: "owner", Change: "added", At: t0}))
		must(t, f.s.SetBudget(ctx, "sme", "u1", 10_000_000))
		_, err := f.hold("sb", "sme", "ven", int64(money.Credits(60)), 1, 600) // 1 credit per minute
		must(t, err)
		for i := range 12 {
			must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb", "sme", "ven", uint64(i+1), t0.Add(time.Duration(i)*time.Minute), 60_000, 1)}))
		}
		if n := f.outboxCount(events.BudgetThreshold.Name); n != 2 {
			t.Fatalf("%d budget events, want 80%% and 100%%", n)
		}
		if m := f.mail.Sent(); len(m) != 2 || !contains(m[1].Body, "monthly compute budget has reached 100%") {
			t.Fatalf("mails %+v", m)
		}
		w, err := f.s.WalletOf(ctx, "sme")
		must(t, err)
		if w.MonthSpentMicro != 12_000_000 || w.BudgetMicro != 10_000_000 {
			t.Fatalf("wallet %+v", w)
		}
	})
}

func TestExtendIdempotent(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.buy("sme", 10)
		_, err := f.hold("sb", "sme", "ven", int64(money.Credits(1)), 1, 3600)
		must(t, err)
		req := events.HoldRequestV1{Action: "extend", SandboxID: "sb", OrganizationID: "sme", GPUCount: 1, PricePerGPUHour: int64(money.Credits(1)), Seconds: 3600, RequestID: "ext-1"}
		for range 3 {
			rep, err := f.s.ServeHold(ctx, req)
			must(t, err)
			if rep.AmountMicro != 2_000_000 {
				t.Fatalf("hold after retried extend %d", rep.AmountMicro)
			}
		}
		w, err := f.s.WalletOf(ctx, "sme")
		must(t, err)
		if w.HeldMicro != 2_000_000 {
			t.Fatalf("held %d", w.HeldMicro)
		}
	})
}
