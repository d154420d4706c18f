package billing

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
)

// The SME (verified, 50% co-funding) runs sb-1 for an hour on 9 March and sb-2 for half an hour on 10 March, on
// the vendor's listing at 10 credits per GPU-hour.
func TestChartsAggregates(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", true)
		f.org("ven", "vendor", false)
		must(t, f.s.ProjectListing(ctx, events.ListingChangedV1{ListingID: "lst-1", VendorOrgID: "ven", Kind: "compute", Title: "H100 Montréal",
			Compute: &events.ComputeV1{PoolID: "pool-1", GPUModel: "H100", PricePerGPUHour: 10_000_000}}, true))
		f.buy("sme", 100)
		must(t, f.s.SetBudget(ctx, "sme", "u", 50_000_000))
		_, err := f.s.CreateGrant(ctx, GrantInput{OrganizationID: "sme", AmountMicro: 2_000_000, ExpiresAt: t0.AddDate(0, 1, 0), CofundPercent: 50,
			CapMicro: 100_000_000, ActorUserID: "staff"})
		must(t, err)
		f.clk.Set(t0.Add(-24 * time.Hour))
		_, err = f.hold("sb-1", "sme", "ven", 10_000_000, 1, 7200)
		must(t, err)
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb-1", "sme", "ven", 1, t0.Add(-24*time.Hour), 3_600_000, 1)}))
		f.clk.Set(t0)
		_, err = f.hold("sb-2", "sme", "ven", 10_000_000, 1, 3600)
		must(t, err)
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb-2", "sme", "ven", 1, t0, 1_800_000, 1)}))
		a := newAPI(t, f)

		var sc SpendChart
		var ec0 EarningsChart
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?from=2026-03-08&to=2026-03-10", nil, 200, ""), &sc))
		if sc.MonthlyBudgetMicro != 50_000_000 || len(sc.Days) != 3 {
			t.Fatalf("spend chart: %+v", sc)
		}
		want := []SpendDay{
			{Day: "2026-03-08"},
			{Day: "2026-03-09", ChargeMicro: 10_000_000, CofundedMicro: 5_000_000, PaidMicro: 5_000_000, MonthToDate: 5_000_000},
			{Day: "2026-03-10", ChargeMicro: 5_000_000, CofundedMicro: 2_500_000, PaidMicro: 2_500_000, MonthToDate: 7_500_000},
		}
		for i, d := range want {
			if sc.Days[i] != d {
				t.Errorf("day %d: %+v, want %+v", i, sc.Days[i], d)
			}
		}
		if len(sc.BySandbox) != 2 || sc.BySandbox[0].SandboxID != "sb-1" || sc.BySandbox[0].ListingTitle != "H100 Montréal" || sc.BySandbox[1].PaidMicro != 2_500_000 {
			t.Errorf("by sandbox: %+v", sc.BySandbox)
		}
		if len(sc.ByListing) != 1 || sc.ByListing[0].ChargeMicro != 15_000_000 || sc.ByListing[0].Millis != 5_400_000 {
			t.Errorf("by listing: %+v", sc.ByListing)
		}
		// In the viewer's zone: Honolulu (UTC−10) sees sb-1's hour on 8 March and sb-2's on 9 March.
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?from=2026-03-08&to=2026-03-10&tz=Pacific/Honolulu", nil, 200, ""), &sc))
		wantHNL := []SpendDay{
			{Day: "2026-03-08", ChargeMicro: 10_000_000, CofundedMicro: 5_000_000, PaidMicro: 5_000_000, MonthToDate: 5_000_000},
			{Day: "2026-03-09", ChargeMicro: 5_000_000, CofundedMicro: 2_500_000, PaidMicro: 2_500_000, MonthToDate: 7_500_000},
			{Day: "2026-03-10", MonthToDate: 7_500_000},
		}
		if len(sc.Days) != 3 {
			t.Fatalf("spend chart in Honolulu: %+v", sc.Days)
		}
		for i, d := range wantHNL {
			if sc.Days[i] != d {
				t.Errorf("Honolulu day %d: %+v, want %+v", i, sc.Days[i], d)
			}
		}
		if len(sc.BySandbox) != 2 {
			t.Errorf("by sandbox in Honolulu: %+v", sc.BySandbox)
		}
		must(t, json.Unmarshal(a.expect(vendorAd, "GET", "/api/v1/billing/orgs/ven/charts/earnings?from=2026-03-08&to=2026-03-09&tz=Pacific/Honolulu", nil, 200, ""), &ec0))
		if len(ec0.Days) != 2 || ec0.Days[0].UsageMicro != 8_500_000 || ec0.Days[1].UsageMicro != 4_250_000 {
			t.Errorf("earnings in Honolulu: %+v", ec0.Days)
		}
		a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?tz=Mars/Olympus", nil, 422, "validation_failed")
		a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?tz=Local", nil, 422, "validation_failed")

		// Month to date counts days before the range too.
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?from=2026-03-10&to=2026-03-10", nil, 200, ""), &sc))
		if len(sc.Days) != 1 || sc.Days[0].MonthToDate != 7_500_000 {
			t.Errorf("month to date: %+v", sc.Days)
		}

		// The vendor's earnings: 85% of what was collected (15 credits gross, all collected).
		var ec EarningsChart
		must(t, json.Unmarshal(a.expect(vendorAd, "GET", "/api/v1/billing/orgs/ven/charts/earnings?from=2026-03-09&to=2026-03-10", nil, 200, ""), &ec))
		if len(ec.Days) != 2 || ec.Days[0].UsageMicro != 8_500_000 || ec.Days[1].UsageMicro != 4_250_000 {
			t.Errorf("earnings: %+v", ec.Days)
		}

		// The programme: a 2-credit grant on 10 March; co-funding 5 + 2.5; grant credits spent on 9 March (2: the
		// grant's whole balance, the rest from purchased credits).
		var pc ProgrammeChart
		must(t, json.Unmarshal(a.expect(staff, "GET", "/api/v1/billing/programme/charts?from=2026-03-09&to=2026-03-10", nil, 200, ""), &pc))
		wantP := []ProgrammeDay{{Day: "2026-03-09", GrantSpent: 2_000_000, CofundedMicro: 5_000_000}, {Day: "2026-03-10", GrantedMicro: 2_000_000, CofundedMicro: 2_500_000}}
		for i, d := range wantP {
			if len(pc.Days) != 2 || pc.Days[i] != d {
				t.Errorf("programme day %d: %+v, want %+v", i, pc.Days, d)
				break
			}
		}

		// Guards and ranges.
		a.expect(partner, "GET", "/api/v1/billing/orgs/sme/charts/spend", nil, 404, "organization_not_found")
		a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?from=2026-03-10&to=2026-03-01", nil, 422, "validation_failed")
		a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?from=2020-01-01", nil, 422, "validation_failed")
		a.expect(smeDev, "GET", "/api/v1/billing/orgs/sme/charts/spend?from=yesterday", nil, 422, "validation_failed")
		a.expect(smeDev, "GET", "/api/v1/billing/programme/charts", nil, 403, "")
		a.expect(staff, "GET", "/api/v1/billing/orgs/sme/charts/spend", nil, 200, "")
	})
}
