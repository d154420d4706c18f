package billing

import (
	"encoding/json"
	"testing"
	"time"

	"gorm.io/gorm"
)

// Edge cases of signed Stripe webhooks (issue 9, item 4): each needs the webhook secret, so each is about
// correctness, not forgery.

// checkoutOnly starts a checkout on stripe-mock without completing it.
func checkoutOnly(t testing.TB, a *api, w who, credits int64) Checkout {
	t.Helper()
	var co Checkout
	must(t, json.Unmarshal(a.expect(w, "POST", "/api/v1/billing/checkout", map[string]any{"credits": credits}, 201, ""), &co))
	return co
}

func (f *fx) purchase(id string) Purchase {
	f.t.Helper()
	var p Purchase
	must(f.t, f.db.Take(&p, "id = ?", id).Error)
	return p
}

func (f *fx) transfers() int64 {
	f.t.Helper()
	var n int64
	must(f.t, f.db.Table("billing_transfers").Count(&n).Error)
	return n
}

// audited reports the billing_audit actions recorded about target.
func (f *fx) audited(target string) []string {
	f.t.Helper()
	var actions []string
	must(f.t, f.db.Model(&audit{}).Where("target = ?", target).Order("created_at, id").Pluck("action", &actions).Error)
	return actions
}

func chargeRefunded(pi string, amount, refunded int64) map[string]any {
	return map[string]any{"id": "ch_" + pi, "object": "charge", "payment_intent": pi, "currency": "cad",
		"amount": amount, "amount_refunded": refunded, "refunded": refunded == amount}
}

// TestWebhookFutureTimestamp: a signature timestamped an hour ahead was accepted (stripe-go checks only the
// past). The same 5-minute tolerance now holds both ways; a clock a minute ahead is still fine.
func TestWebhookFutureTimestamp(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		co := checkoutOnly(t, a, partner, 10)
		ev := stripeEvent("evt_future", "checkout.session.completed", completed(co.SessionID, co.PurchaseID, "paid", co.CADCents))
		if code, r, pc := a.webhookPost(ev, whsec, time.Now().Add(time.Hour)); code != 400 || pc != "invalid_signature" {
			t.Fatalf("signature an hour in the future: %d %+v %q, want 400 invalid_signature", code, r, pc)
		}
		if w := f.balance(walletAcct("partner")); w != 0 {
			t.Fatalf("a refused event credited %d", w)
		}
		if code, r, _ := a.webhookPost(ev, whsec, time.Now().Add(time.Minute)); code != 200 || r.Outcome != "credited" {
			t.Fatalf("signature a minute ahead (clock skew): %d %+v", code, r)
		}
		f.verify()
	})
}

// TestWebhookPaymentIntentSetOnce: a second session event for a credited purchase with another payment intent
// replaced the purchase's, so the real refund of the first answered 409 refund_before_payment forever and was
// never applied. The payment intent is set once: another one is refused (200, nothing changed, audited), the
// same one is idempotent.
func TestWebhookPaymentIntentSetOnce(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		co := buyThroughStripe(t, a, partner, 100)
		first := "pi_" + co.PurchaseID

		other := completed(co.SessionID, co.PurchaseID, "paid", co.CADCents)
		other["payment_intent"] = "pi_other"
		code, r, _ := a.webhookPost(stripeEvent("evt_async_other", "checkout.session.async_payment_succeeded", other), whsec, time.Now())
		if code != 200 || r.Outcome != "payment_intent_conflict" {
			t.Fatalf("session with another payment intent: %d %+v", code, r)
		}
		same := completed(co.SessionID, co.PurchaseID, "paid", co.CADCents)
		code, r, _ = a.webhookPost(stripeEvent("evt_async_same", "checkout.session.async_payment_succeeded", same), whsec, time.Now())
		if code != 200 || r.Outcome != "credited" {
			t.Fatalf("session with the same payment intent: %d %+v", code, r)
		}
		if p := f.purchase(co.PurchaseID); p.PaymentIntent != first || p.Status != "paid" {
			t.Fatalf("purchase after a conflicting session: %+v", p)
		}
		if got := f.audited(co.PurchaseID); len(got) != 1 || got[0] != "stripe.payment_intent_conflict" {
			t.Fatalf("audit of %s: %v", co.PurchaseID, got)
		}
		if w := f.balance(walletAcct("partner")); w != 100_000_000 {
			t.Fatalf("wallet %d, want the purchase credited once", w)
		}

		code, r, pc := a.webhookPost(stripeEvent("evt_refund", "charge.refunded", chargeRefunded(first, co.CADCents, co.CADCents)), whsec, time.Now())
		if code != 200 || r.Outcome != "refunded" {
			t.Fatalf("refund of the first payment intent: %d %+v %q", code, r, pc)
		}
		if p := f.purchase(co.PurchaseID); f.balance(walletAcct("partner")) != 0 || p.Refunded != 100_000_000 || p.Status != "refunded" {
			t.Fatalf("after the refund: wallet %d purchase %+v", f.balance(walletAcct("partner")), p)
		}
		f.verify()
	})
}

// TestWebhookBadAmounts: a negative amount_refunded answered 500 (MulDiv takes non-negative operands), a
// refund larger than its charge refunded the whole purchase, one beyond int64 at the purchase's price answered
// 500. Every amount from Stripe is validated: a bad one answers 400 invalid_amount, unrecorded, nothing moved.
func TestWebhookBadAmounts(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		co := buyThroughStripe(t, a, partner, 100) // 10,000 cents
		pi := "pi_" + co.PurchaseID
		pending := checkoutOnly(t, a, partner, 10)
		negTotal := completed(pending.SessionID, pending.PurchaseID, "paid", -1)

		wallet, transfers := f.balance(walletAcct("partner")), f.transfers()
		cases := []struct {
			name    string
			typ     string
			obj     map[string]any
			touched string // the purchase that must be left as it was
		}{
			{"negative refund", "charge.refunded", chargeRefunded(pi, 10_000, -1), co.PurchaseID},
			{"refund larger than its charge", "charge.refunded", chargeRefunded(pi, 10_000, 10_001), co.PurchaseID},
			{"negative charge", "charge.refunded", chargeRefunded(pi, -10_000, 0), co.PurchaseID},
			{"refund larger than the purchase", "charge.refunded", chargeRefunded(pi, 20_000, 15_000), co.PurchaseID},
			{"refund beyond int64 at the purchase's price", "charge.refunded", chargeRefunded(pi, 1<<62, 1<<62), co.PurchaseID},
			{"negative session total", "checkout.session.completed", negTotal, pending.PurchaseID},
		}
		for i, c := range cases {
			before := f.purchase(c.touched)
			id := "evt_bad_" + string(rune('a'+i))
			code, r, pc := a.webhookPost(stripeEvent(id, c.typ, c.obj), whsec, time.Now())
			if code != 400 || pc != "invalid_amount" {
				t.Errorf("%s: %d %+v %q, want 400 invalid_amount", c.name, code, r, pc)
			}
			if after := f.purchase(c.touched); after != before {
				t.Errorf("%s: purchase changed from %+v to %+v", c.name, before, after)
			}
			var seen int64
			must(t, db.Model(&processed{}).Where("id = ?", "stripe:"+id).Count(&seen).Error)
			if seen != 0 {
				t.Errorf("%s: a refused event was recorded as processed", c.name)
			}
		}
		if w, n := f.balance(walletAcct("partner")), f.transfers(); w != wallet || n != transfers {
			t.Fatalf("bad amounts moved money: wallet %d→%d, transfers %d→%d", wallet, w, transfers, n)
		}
		// A valid partial refund still applies.
		code, r, _ := a.webhookPost(stripeEvent("evt_refund_ok", "charge.refunded", chargeRefunded(pi, 10_000, 2_500)), whsec, time.Now())
		if code != 200 || r.Outcome != "refunded" || f.balance(walletAcct("partner")) != 75_000_000 {
			t.Fatalf("valid refund: %d %+v wallet %d", code, r, f.balance(walletAcct("partner")))
		}
		f.verify()
	})
}

// TestWebhookAmountMismatch: a completed session whose amount_total or currency differs from the purchase
// credited the full purchase. Now nothing is credited; the purchase is flagged amount_mismatch and audited for
// staff, and the answer is 200 amount_mismatch (the session never changes: a retry could never succeed). A
// later session event does not credit a flagged purchase, and its refund moves nothing.
func TestWebhookAmountMismatch(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		buyThroughStripe(t, a, partner, 50) // credits of an honest purchase, which no mismatch may touch
		const wallet = 50_000_000

		cases := []struct {
			name     string
			edit     func(cs map[string]any)
			flagOnly bool
		}{
			{"one cent short", func(cs map[string]any) { cs["amount_total"] = cs["amount_total"].(int64) - 1 }, false},
			{"a cent more", func(cs map[string]any) { cs["amount_total"] = cs["amount_total"].(int64) + 1 }, false},
			{"another currency", func(cs map[string]any) { cs["currency"] = "usd" }, false},
			{"no total", func(cs map[string]any) { delete(cs, "amount_total") }, false},
			{"nothing paid", func(cs map[string]any) { cs["amount_total"] = int64(0) }, false},
		}
		var flagged []Checkout
		for i, c := range cases {
			co := checkoutOnly(t, a, partner, 100)
			cs := completed(co.SessionID, co.PurchaseID, "paid", co.CADCents)
			c.edit(cs)
			code, r, pc := a.webhookPost(stripeEvent("evt_mismatch_"+string(rune('a'+i)), "checkout.session.completed", cs), whsec, time.Now())
			if code != 200 || r.Outcome != "amount_mismatch" {
				t.Errorf("%s: %d %+v %q, want 200 amount_mismatch", c.name, code, r, pc)
				continue
			}
			if p := f.purchase(co.PurchaseID); p.Status != "amount_mismatch" {
				t.Errorf("%s: purchase %+v, want status amount_mismatch", c.name, p)
			}
			if got := f.audited(co.PurchaseID); len(got) != 1 || got[0] != "stripe.amount_mismatch" {
				t.Errorf("%s: audit %v", c.name, got)
			}
			flagged = append(flagged, co)
		}
		if w := f.balance(walletAcct("partner")); w != wallet {
			t.Fatalf("mismatched sessions credited %d", w-wallet)
		}
		if len(flagged) == 0 {
			t.FailNow()
		}

		// The async event of a flagged purchase credits nothing either; its refund (staff refund the card in
		// Stripe) is acknowledged and takes nothing from the credits of other purchases.
		co := flagged[0]
		code, r, _ := a.webhookPost(stripeEvent("evt_mismatch_async", "checkout.session.async_payment_succeeded",
			completed(co.SessionID, co.PurchaseID, "paid", co.CADCents)), whsec, time.Now())
		if code != 200 || r.Outcome != "amount_mismatch" {
			t.Fatalf("async event of a flagged purchase: %d %+v", code, r)
		}
		code, r, pc := a.webhookPost(stripeEvent("evt_mismatch_refund", "charge.refunded",
			chargeRefunded("pi_"+co.PurchaseID, co.CADCents-1, co.CADCents-1)), whsec, time.Now())
		if code != 200 || r.Outcome != "not_credited" {
			t.Fatalf("refund of a flagged purchase: %d %+v %q", code, r, pc)
		}
		if w, p := f.balance(walletAcct("partner")), f.purchase(co.PurchaseID); w != wallet || p.Status != "amount_mismatch" || p.Refunded != 0 || p.RefundUnrecovered != 0 {
			t.Fatalf("after the refund of a flagged purchase: wallet %d purchase %+v", w, p)
		}
		f.verify()
	})
}
