package billing

import (
	"context"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestHugeBudgetNoSpuriousThreshold: a very large monthly budget is not reported 80% used after one small
// charge (limit × 8 overflowed int64).
func TestHugeBudgetNoSpuriousThreshold(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.buy("sme", 100)
		must(t, f.s.SetBudget(ctx, "sme", "u1", 2_000_000_000_000_000_000))
		_, err := f.hold("sb", "sme", "ven", int64(money.Credits(60)), 1, 600)
		must(t, err)
		must(t, f.s.ChargeUsage(ctx, []eventbus.Event[events.SandboxUsageV1]{usageEv("sb", "sme", "ven", 1, t0, 60_000, 1)}))
		if n := f.outboxCount(events.BudgetThreshold.Name); n != 0 {
			t.Fatalf("%d budget threshold events after spending 1 credit of a 2e12-credit budget", n)
		}
	})
}
