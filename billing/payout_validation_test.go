package billing

import (
	"context"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/services/events"
)

// TestPayoutNegativeAmountRefused: a negative amount_micro is a validation error, not "pay everything".
func TestPayoutNegativeAmountRefused(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		a := newAPI(t, f)
		f.org("sme", "sme", false)
		f.org("ven", "vendor", false)
		f.buy("sme", 10)
		must(t, f.s.SettleOrder(ctx, "ev-o1", events.OrderPlacedV1{OrderID: "o1", BuyerOrgID: "sme", VendorOrgID: "ven",
			Quantity: 1, AmountMicro: 10_000_000, At: t0}))
		before := f.balance(vendorAcct("ven"))
		if before != 8_500_000 {
			t.Fatalf("vendor payable %d", before)
		}
		out := a.expect(staff, "POST", "/api/v1/billing/payouts", map[string]any{"vendor_org_id": "ven", "amount_micro": -1}, 422, "validation_failed")
		if !strings.Contains(string(out), "amount_micro") {
			t.Fatalf("validation must name amount_micro: %s", out)
		}
		if got := f.balance(vendorAcct("ven")); got != before {
			t.Fatalf("a refused payout moved money: payable %d, was %d", got, before)
		}
		f.verify()
	})
}
