package billing

import (
	"context"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestUsageWithoutHoldFailsOnDatabaseError: usage of a sandbox without a hold is priced from the listing
// projection; when that read fails (here: the price table is gone) the batch fails and is retried later,
// instead of charging the interval at 0 as if the listing were unknown.
func TestUsageWithoutHoldFailsOnDatabaseError(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.buy("sme", 100)
		f.listing()
		must(t, f.db.Exec("ALTER TABLE billing_prices RENAME TO billing_prices_gone").Error)
		err := f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb", "sme", "ven", 1, t0, 60_000, 1)})
		if err == nil {
			t.Fatal("usage charged although its price could not be read")
		}
		if n, _ := usageTotals(t, f.db); n != 0 {
			t.Fatalf("%d usage rows written by a failed batch", n)
		}
		must(t, f.db.Exec("ALTER TABLE billing_prices_gone RENAME TO billing_prices").Error)
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb", "sme", "ven", 1, t0, 60_000, 1)}))
		if n, sum := usageTotals(t, f.db); n != 1 || sum != eoPrice/60 {
			t.Fatalf("after the retry: %d rows charging %d, want 1 charging %d", n, sum, eoPrice/60)
		}
	})
}

// TestUsageNamingAnotherOrganisationIsNotCharged: a sandbox's usage is charged to the organisation holding it.
// An event that names another organisation (a bug or a forged event) is dropped, not charged to either, and
// does not stop the batch's other events.
func TestUsageNamingAnotherOrganisationIsNotCharged(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.org("other", "sme", false)
		f.buy("sme", 100)
		f.buy("other", 100)
		f.listing()
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb", "sme", "ven", 1, t0, 60_000, 1)}))
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{
			usageEv("sb", "other", "ven", 2, t0.Add(time.Minute), 60_000, 1),
			usageEv("sb2", "other", "ven", 1, t0, 60_000, 1),
		}))
		var rows []Usage
		must(t, f.db.Order("sandbox_id, seq").Find(&rows).Error)
		if len(rows) != 2 || rows[0].SandboxID != "sb" || rows[0].OrgID != "sme" || rows[1].SandboxID != "sb2" || rows[1].OrgID != "other" {
			t.Fatalf("usage rows %+v, want sb charged to sme and sb2 to other, the mismatched event dropped", rows)
		}
	})
}
