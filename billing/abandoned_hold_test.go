package billing

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestHoldAfterAbandonedLaunch: the testbed gave up on a launch (no hold reply in time) and announced the
// sandbox failed; the hold request still reaches billing afterwards. Nothing stays held for a sandbox that
// never ran (it stayed held forever: no later event releases it).
func TestHoldAfterAbandonedLaunch(t *testing.T) {
	eachBusDB(t, func(t *testing.T, bus *eventbus.Bus, db *gorm.DB) {
		f := newFx(t, db, bus)
		f.org("sme", "sme", false)
		f.buy("sme", 10)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = f.s.consumeEnded(ctx, "failed") }()
		must(t, eventbus.Publish(ctx, bus, events.SandboxSubject("failed"), "testbed", "sb-1-failed", t0, events.SandboxChangedV1{
			SandboxID: "sb-1", OrganizationID: "sme", ListingID: "lst-1", VendorOrgID: "ven", GPUModel: "H100", GPUCount: 1,
			State: "failed", Reason: "billing_unavailable", At: t0}))
		waitFor(t, "failed event processed", 10*time.Second, func() bool {
			var n int64
			must(t, db.Table("billing_events").Where("id = ?", "sb-1-failed").Count(&n).Error)
			return n == 1
		})
		go func() { _ = f.s.serveHolds(ctx) }()
		req := events.HoldRequestV1{Action: "place", SandboxID: "sb-1", OrganizationID: "sme", ListingID: "lst-1", VendorOrgID: "ven",
			PoolID: "pool-1", GPUModel: "H100", GPUCount: 1, PricePerGPUHour: int64(money.Credits(2)), Seconds: 3600}
		waitFor(t, "hold endpoint", 10*time.Second, func() bool {
			_, err := eventbus.Call(ctx, bus, events.Hold, req)
			return err == nil
		})
		w, err := f.s.WalletOf(ctx, "sme")
		must(t, err)
		if w.HeldMicro != 0 || w.AvailableMicro != int64(money.Credits(10)) {
			t.Fatalf("a late hold for an abandoned sandbox stays held: %+v", w)
		}
		f.verify()
	})
}
