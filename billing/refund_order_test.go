package billing

import (
	"encoding/json"
	"testing"
	"time"

	"gorm.io/gorm"
)

// TestRefundBeforeCompletion: Stripe does not deliver events in order, and retries a failed delivery for days.
// A charge.refunded that arrives before the completed session it refunds must not be dropped: it is refused
// (Stripe retries it) until the purchase is credited, then reverses it. Before, it answered 200
// unknown_purchase and was recorded as processed, and the late completion credited the refunded purchase.
func TestRefundBeforeCompletion(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		var co Checkout
		must(t, json.Unmarshal(a.expect(partner, "POST", "/api/v1/billing/checkout", map[string]any{"credits": 250}, 201, ""), &co))
		ch := map[string]any{"id": "ch_1", "object": "charge", "payment_intent": "pi_" + co.PurchaseID, "amount": 25_000, "amount_refunded": 25_000, "refunded": true}
		refund := stripeEvent("evt_refund_early", "charge.refunded", ch)
		if code, r, pc := a.webhookPost(refund, whsec, time.Now()); code < 300 {
			t.Fatalf("refund of a purchase not credited yet must be retried by Stripe: %d %+v %q", code, r, pc)
		}
		code, r, _ := a.webhookPost(stripeEvent("evt_done", "checkout.session.completed", completed(co.SessionID, co.PurchaseID, "paid", co.CADCents)), whsec, time.Now())
		if code != 200 || r.Outcome != "credited" {
			t.Fatalf("completed: %d %+v", code, r)
		}
		code, r, _ = a.webhookPost(refund, whsec, time.Now()) // Stripe's retry
		if code != 200 || r.Outcome != "refunded" {
			t.Fatalf("retried refund: %d %+v", code, r)
		}
		if w := f.balance(walletAcct("partner")); w != 0 {
			t.Fatalf("a refunded purchase left %d micro-credits in the wallet", w)
		}
		// A refund of a charge without a payment intent can never match a purchase: acknowledged.
		code, r, _ = a.webhookPost(stripeEvent("evt_refund_stranger", "charge.refunded", map[string]any{"id": "ch_2", "object": "charge",
			"amount": 100, "amount_refunded": 100}), whsec, time.Now())
		if code != 200 || r.Outcome != "unknown_purchase" {
			t.Fatalf("stranger refund: %d %+v", code, r)
		}
		f.verify()
	})
}

// TestRefundAtPurchasePrice: a refund is converted to credits at the price the purchase was made at, not at
// today's credit price (a full refund after a price rise left part of the refunded credits in the wallet).
func TestRefundAtPurchasePrice(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		co := buyThroughStripe(t, a, partner, 100) // 10,000 cents at 100 cents per credit
		f.s.cfg.CADCentsPerCredit = 125            // the credit price rises later
		ch := map[string]any{"id": "ch_1", "object": "charge", "payment_intent": "pi_" + co.PurchaseID, "amount": 10_000, "amount_refunded": 10_000, "refunded": true}
		code, r, _ := a.webhookPost(stripeEvent("evt_refund_all", "charge.refunded", ch), whsec, time.Now())
		if code != 200 || r.Outcome != "refunded" {
			t.Fatalf("refund: %d %+v", code, r)
		}
		if w := f.balance(walletAcct("partner")); w != 0 {
			t.Fatalf("a fully refunded, unspent purchase left %d micro-credits in the wallet", w)
		}
		f.verify()
	})
}
