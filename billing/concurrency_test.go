package billing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestConcurrentHoldsOrdersUsage races holds, orders and usage batches of one organisation: holds never
// reserve more than the wallet holds, orders never spend held credits, nothing is overdrawn, the ledger verifies.
func TestConcurrentHoldsOrdersUsage(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		f.org("sme", "sme", false)
		f.buy("sme", 10)
		var placed, refused, settled atomic.Int64
		var wg sync.WaitGroup
		for i := range 20 { // 20 holds of 1 credit on a 10-credit wallet
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.hold(fmt.Sprintf("sb-%d", i), "sme", "ven", int64(money.Credits(1)), 1, 3600)
				switch {
				case err == nil:
					placed.Add(1)
				case errors.Is(err, ErrInsufficientCredits):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if placed.Load() != 10 || refused.Load() != 10 {
			t.Fatalf("placed %d refused %d", placed.Load(), refused.Load())
		}
		// Orders cannot take held credits; usage consumes the holds concurrently.
		for i := range 10 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				must(t, f.s.SettleOrder(ctx, fmt.Sprintf("o-%d", i), events.OrderPlacedV1{OrderID: fmt.Sprintf("o-%d", i), BuyerOrgID: "sme", VendorOrgID: "ven",
					ListingID: "l", PlanID: "p", Quantity: 1, AmountMicro: 500_000, At: t0}))
			}()
			go func() {
				defer wg.Done()
				var evs []eventbus.Event[events.SandboxUsageV1]
				for sb := range 20 {
					evs = append(evs, usageEv(fmt.Sprintf("sb-%d", sb), "sme", "ven", uint64(i+1), t0.Add(time.Duration(i)*time.Minute), 60_000, 1))
				}
				must(t, f.s.ChargeUsage(ctx, evs))
			}()
		}
		wg.Wait()
		var n int64
		must(t, f.db.Table("billing_outbox").Where("subject = ?", events.OrderSettled.Name).Count(&n).Error)
		settled.Store(n)
		// 10 holds × 10 minutes at 1 credit/h = 10 × 0.166666 credits charged; held credits shielded the orders.
		w, err := f.s.WalletOf(ctx, "sme")
		must(t, err)
		if settled.Load() != 0 || f.outboxCount(events.OrderFailed.Name) != 10 {
			t.Fatalf("orders must not spend held credits: %d settled", settled.Load())
		}
		if w.PurchasedMicro != 10_000_000-1_666_660 || w.HeldMicro != w.PurchasedMicro || w.AvailableMicro != 0 {
			t.Fatalf("wallet %+v", w)
		}
		f.verify()
	})
}
