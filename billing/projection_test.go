package billing

import (
	"context"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/services/events"
)

func TestProjections(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		l := events.ListingChangedV1{ListingID: "l1", VendorOrgID: "ven", Kind: "compute", Title: "A100", At: t0,
			Compute: &events.ComputeV1{PoolID: "p1", GPUModel: "A100", PricePerGPUHour: 3_000_000}}
		must(t, f.s.ProjectListing(ctx, l, true))
		must(t, f.s.ProjectListing(ctx, events.ListingChangedV1{ListingID: "m1", VendorOrgID: "ven", Kind: "model", At: t0}, true))
		ps, err := f.s.Prices(ctx)
		must(t, err)
		if len(ps) != 1 || ps[0].PerGPUHourMicro != 3_000_000 || ps[0].GPUModel != "A100" {
			t.Fatalf("prices %+v", ps)
		}
		must(t, f.s.ProjectListing(ctx, l, false)) // suspended or retired
		ps, err = f.s.Prices(ctx)
		must(t, err)
		if len(ps) != 0 {
			t.Fatalf("prices after suspension %+v", ps)
		}
		m := events.MembershipChangedV1{OrganizationID: "o", UserID: "u", Email: "u@o.test", Role: "admin", Change: "added", At: t0}
		must(t, f.s.projectMembership(ctx, m))
		if got := f.s.adminEmails(ctx, "o"); len(got) != 1 {
			t.Fatalf("admins %v", got)
		}
		m.Role, m.Change = "member", "role_changed"
		must(t, f.s.projectMembership(ctx, m))
		if got := f.s.adminEmails(ctx, "o"); len(got) != 0 {
			t.Fatalf("admins after demotion %v", got)
		}
	})
}

// TestStatementOpeningBalance: a purchase in February is the opening balance of March's statement.
func TestStatementOpeningBalance(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("o", "partner", false)
		f.clk.Set(time.Date(2026, 2, 20, 12, 0, 0, 0, time.UTC))
		f.buy("o", 5)
		f.clk.Set(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
		f.buy("o", 2)
		f.clk.Advance(time.Minute)
		must(t, f.s.SettleOrder(ctx, "e", events.OrderPlacedV1{OrderID: "o1", BuyerOrgID: "o", VendorOrgID: "v", ListingID: "l", PlanID: "p", Quantity: 1, AmountMicro: 1_500_000, At: t0}))
		st, err := f.s.StatementOf(ctx, "o", "2026-03")
		must(t, err)
		if st.OpeningMicro != 5_000_000 || st.CreditsMicro != 2_000_000 || st.DebitsMicro != 1_500_000 || st.ClosingMicro != 5_500_000 || len(st.Lines) != 2 {
			t.Fatalf("statement %+v", st)
		}
		if st.Lines[0].Kind != "purchase" || st.Lines[1].Kind != "order" {
			t.Fatalf("lines must be oldest first: %+v", st.Lines)
		}
	})
}
