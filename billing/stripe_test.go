package billing

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
)

const whsec = "whsec_test_secret"

func withStripe(url string) func(*Deps) {
	return func(d *Deps) { d.Stripe = StripeConfig{Key: "sk_test_123", WebhookSecret: whsec, APIBase: url} }
}

// stripeEvent builds a webhook payload of type typ around obj, as Stripe sends it.
func stripeEvent(id, typ string, obj map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": stripe.APIVersion, "type": typ,
		"created": time.Now().Unix(), "data": map[string]any{"object": obj}})
	return b
}

// completed is a checkout session as Stripe sends it: amount_total is what the buyer paid, in CAD cents.
func completed(sessionID, purchaseID, paymentStatus string, cents int64) map[string]any {
	return map[string]any{"id": sessionID, "object": "checkout.session", "client_reference_id": purchaseID,
		"payment_status": paymentStatus, "payment_intent": "pi_" + purchaseID, "mode": "payment", "currency": "cad",
		"amount_total": cents, "amount_subtotal": cents}
}

// webhookPost signs payload (at ts, with secret) and posts it.
func (a *api) webhookPost(payload []byte, secret string, ts time.Time) (int, WebhookResult, string) {
	a.t.Helper()
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts})
	code, out := a.do(nobody, "POST", "/api/v1/billing/stripe/webhook", payload, "Stripe-Signature", sp.Header)
	var r WebhookResult
	_ = json.Unmarshal(out, &r)
	var p struct{ Code string }
	_ = json.Unmarshal(out, &p)
	return code, r, p.Code
}

// buyThroughStripe runs checkout against stripe-mock and a signed completed webhook; it returns the purchase.
func buyThroughStripe(t testing.TB, a *api, w who, credits int64) Checkout {
	t.Helper()
	var co Checkout
	must(t, json.Unmarshal(a.expect(w, "POST", "/api/v1/billing/checkout", map[string]any{"credits": credits}, 201, ""), &co))
	if co.SessionID == "" || co.CheckoutURL == "" || co.CADCents != credits*100 {
		t.Fatalf("checkout %+v", co)
	}
	code, r, _ := a.webhookPost(stripeEvent("evt_done_"+co.PurchaseID, "checkout.session.completed", completed(co.SessionID, co.PurchaseID, "paid", co.CADCents)), whsec, time.Now())
	if code != 200 || r.Outcome != "credited" {
		t.Fatalf("completed webhook: %d %+v", code, r)
	}
	return co
}

func TestStripeCheckoutAndWebhooks(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		co := buyThroughStripe(t, a, partner, 250)
		var p Purchase
		must(t, db.Take(&p, "id = ?", co.PurchaseID).Error)
		if p.Status != "paid" || p.SessionID != co.SessionID || p.CADCents != 25_000 {
			t.Fatalf("purchase %+v", p)
		}
		wallet := func() int64 { return f.balance(walletAcct("partner")) }
		if wallet() != 250_000_000 {
			t.Fatalf("wallet %d", wallet())
		}
		done := stripeEvent("evt_done_"+co.PurchaseID, "checkout.session.completed", completed(co.SessionID, co.PurchaseID, "paid", co.CADCents))
		cases := []struct {
			name    string
			payload []byte
			secret  string
			at      time.Time
			status  int
			outcome string
			code    string
		}{
			{"replayed event", done, whsec, time.Now(), 200, "duplicate", ""},
			{"async success after completed", stripeEvent("evt_async", "checkout.session.async_payment_succeeded", completed(co.SessionID, co.PurchaseID, "paid", co.CADCents)), whsec, time.Now(), 200, "credited", ""},
			{"bad signature", stripeEvent("evt_bad", "checkout.session.completed", completed("cs_x", co.PurchaseID, "paid", co.CADCents)), "whsec_wrong", time.Now(), 400, "", "invalid_signature"},
			{"stale timestamp", stripeEvent("evt_old", "checkout.session.completed", completed("cs_x", co.PurchaseID, "paid", co.CADCents)), whsec, time.Now().Add(-time.Hour), 400, "", "invalid_signature"},
			{"unknown event type", stripeEvent("evt_unknown", "customer.created", map[string]any{"id": "cus_1", "object": "customer"}), whsec, time.Now(), 200, "ignored", ""},
			{"completed session for an unknown purchase", stripeEvent("evt_stranger", "checkout.session.completed", completed("cs_y", "pur_nope", "paid", 100)), whsec, time.Now(), 200, "unknown_purchase", ""},
			{"unpaid completion waits for async", stripeEvent("evt_unpaid", "checkout.session.completed", completed("cs_z", co.PurchaseID, "unpaid", co.CADCents)), whsec, time.Now(), 200, "pending_payment", ""},
		}
		for _, c := range cases {
			code, r, pc := a.webhookPost(c.payload, c.secret, c.at)
			if code != c.status || r.Outcome != c.outcome || pc != c.code {
				t.Errorf("%s: got %d %q %q, want %d %q %q", c.name, code, r.Outcome, pc, c.status, c.outcome, c.code)
			}
		}
		if wallet() != 250_000_000 {
			t.Fatalf("wallet after replays %d", wallet())
		}

		// Refunds: 100 credits (10,000 cents) refunded while unspent come back out; then the partner spends
		// 140 of the remaining 150 and the whole purchase is refunded: 10 are recovered, 140 flagged.
		refund := func(id string, cents int64, want string) {
			ch := map[string]any{"id": "ch_1", "object": "charge", "payment_intent": "pi_" + co.PurchaseID, "amount": 25_000, "amount_refunded": cents, "refunded": cents == 25_000}
			code, r, _ := a.webhookPost(stripeEvent(id, "charge.refunded", ch), whsec, time.Now())
			if code != 200 || r.Outcome != want {
				t.Fatalf("refund %s: %d %+v", id, code, r)
			}
		}
		refund("evt_refund_1", 10_000, "refunded")
		refund("evt_refund_1", 10_000, "duplicate")
		if wallet() != 150_000_000 {
			t.Fatalf("after partial refund %d", wallet())
		}
		must(t, f.s.SettleOrder(t.Context(), "order-evt", events.OrderPlacedV1{OrderID: "o1", BuyerOrgID: "partner", VendorOrgID: "ven",
			ListingID: "l", PlanID: "p", Quantity: 1, AmountMicro: 140_000_000, At: t0}))
		refund("evt_refund_2", 25_000, "refunded")
		must(t, db.Take(&p, "id = ?", co.PurchaseID).Error)
		if wallet() != 0 || p.Refunded != 110_000_000 || p.RefundUnrecovered != 140_000_000 || p.Status != "refunded" {
			t.Fatalf("after full refund: wallet %d purchase %+v", wallet(), p)
		}
		f.verify()
	})
}

// TestStripeCheckoutWithTax: prices include the programme's tax, so Checkout charges what it charges without
// one (credits × cents per credit, with the tax named in the line's description) and the session paying that
// amount credits the purchase; the purchase records the tax in its price.
func TestStripeCheckoutWithTax(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url), func(d *Deps) { d.Tax = Tax{RateBP: 500, Name: "GST"} })
		a := newAPI(t, f)
		f.org("partner", "partner", false)
		co := buyThroughStripe(t, a, partner, 21) // 2,100 cents, 5 % included: 100
		var p Purchase
		must(t, db.Take(&p, "id = ?", co.PurchaseID).Error)
		if co.TaxCents != 100 || p.Status != "paid" || p.CADCents != 2100 || p.TaxCents != 100 || p.TaxRateBP != 500 || p.TaxName != "GST" {
			t.Fatalf("checkout %+v, purchase %+v", co, p)
		}
		if got := f.balance(walletAcct("partner")); got != 21_000_000 {
			t.Fatalf("wallet %d", got)
		}
		if d := taxDescription(p); d == nil || *d != "Price includes GST 5%" {
			t.Fatalf("description %v", d)
		}
	})
}

// TestStripeConnectPayout pays a vendor's payable balance through a Connect transfer on stripe-mock.
func TestStripeConnectPayout(t *testing.T) {
	url := startStripeMock(t)
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		f := newFx(t, db, nil, withStripe(url))
		a := newAPI(t, f)
		f.org("buyer", "partner", false)
		f.org("ven", "vendor", true)
		f.buy("buyer", 100)
		must(t, f.s.SettleOrder(t.Context(), "e1", events.OrderPlacedV1{OrderID: "o1", BuyerOrgID: "buyer", VendorOrgID: "ven", ListingID: "l",
			PlanID: "p", Quantity: 1, AmountMicro: 20_000_000, At: t0}))
		a.expect(staff, "PUT", "/api/v1/billing/vendors/ven/connect-account", map[string]any{"stripe_account_id": "acct_123"}, 204, "")
		var po Payout
		must(t, json.Unmarshal(a.expect(staff, "POST", "/api/v1/billing/payouts", map[string]any{"vendor_org_id": "ven"}, 201, ""), &po))
		if po.Method != "stripe_connect" || po.AmountMicro != 17_000_000 || po.CADCents != 1700 || po.StripeTransferID == "" {
			t.Fatalf("payout %+v", po)
		}
		a.expect(staff, "POST", "/api/v1/billing/payouts", map[string]any{"vendor_org_id": "ven"}, 422, "nothing_to_pay")
		var pays struct{ Items []VendorPayable }
		must(t, json.Unmarshal(a.expect(vendorAd, "GET", "/api/v1/billing/payouts", nil, 200, ""), &pays))
		if len(pays.Items) != 1 || pays.Items[0].EarnedMicro != 17_000_000 || pays.Items[0].PaidOutMicro != 17_000_000 || pays.Items[0].PayableMicro != 0 {
			t.Fatalf("payables %+v", pays)
		}
		f.verify()
	})
}

var _ = fmt.Sprint
var _ eventbus.Bus
