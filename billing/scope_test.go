package billing

import (
	"testing"
	"time"
)

// TestReadOnlyTokenMovesNoMoney: a staff member's read-only API token reads the programme's books but
// cannot grant credits, record payments, pay vendors or change where payouts go.
func TestReadOnlyTokenMovesNoMoney(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		a := newAPI(t, f)
		f.org("sme", "sme", true)
		reader := staff
		reader.scopes = []string{"read"}
		a.expect(reader, "GET", "/api/v1/billing/grants", nil, 200, "")
		a.expect(reader, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": 5_000_000,
			"expires_at": t0.Add(time.Hour), "cofund_percent": 50, "cap_micro": 1_000_000, "note": "pilot"}, 403, "forbidden")
		a.expect(reader, "POST", "/api/v1/billing/offline-payments", map[string]any{"organization_id": "sme", "credits": 3, "reference": "PO-1"}, 403, "forbidden")
		a.expect(reader, "POST", "/api/v1/billing/payouts", map[string]any{"vendor_org_id": "ven"}, 403, "forbidden")
		a.expect(reader, "PUT", "/api/v1/billing/vendors/ven/connect-account", map[string]any{"stripe_account_id": "acct_x"}, 403, "forbidden")
		writer := staff
		writer.scopes = []string{"read", "write"}
		a.expect(writer, "POST", "/api/v1/billing/offline-payments", map[string]any{"organization_id": "sme", "credits": 3, "reference": "PO-1"}, 201, "")
	})
}
