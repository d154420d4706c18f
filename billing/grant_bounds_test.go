package billing

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/money"
)

// TestGrantAmountsBounded: grant amounts and caps that would overflow the programme fund's int64 balance are
// refused, and a co-funding rule needs a cap (a rule without one never co-funds anything).
func TestGrantAmountsBounded(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		a := newAPI(t, f)
		f.org("sme", "sme", true)
		exp := t0.Add(24 * time.Hour)
		for range 2 {
			a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": int64(math.MaxInt64 / 2),
				"expires_at": exp}, 422, "validation_failed")
		}
		out := a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "cofund_percent": 50,
			"cap_micro": int64(math.MaxInt64), "expires_at": exp}, 422, "validation_failed")
		if !strings.Contains(string(out), "cap_micro") {
			t.Fatalf("validation must name cap_micro: %s", out)
		}
		out = a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "cofund_percent": 50,
			"expires_at": exp}, 422, "validation_failed")
		if !strings.Contains(string(out), "cap_micro") {
			t.Fatalf("co-funding without a cap must be refused on cap_micro: %s", out)
		}
		var g grantJSON
		must(t, json.Unmarshal(a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme",
			"amount_micro": int64(money.Credits(1_000_000_000)), "expires_at": exp}, 201, ""), &g))
		if f.balance(AcctFund) != -int64(money.Credits(1_000_000_000)) {
			t.Fatalf("fund %d", f.balance(AcctFund))
		}
		f.verify()
	})
}
