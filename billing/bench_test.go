package billing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
)

// BenchmarkChargeUsage measures the database side of metering alone: batches of 2,000 usage events over 200
// sandboxes of 10 organisations, charged by direct calls (no NATS). Reported as events/s.
func BenchmarkChargeUsage(b *testing.B) {
	for _, d := range dbtest.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			f := newFx(b, dbtest.Open(b, d, sets...), nil)
			const orgs, sandboxes, batch = 10, 200, 2000
			for o := range orgs {
				f.org(fmt.Sprintf("org%d", o), "sme", false)
				f.buy(fmt.Sprintf("org%d", o), 10_000_000)
			}
			for sb := range sandboxes {
				_, err := f.hold(fmt.Sprintf("sb%d", sb), fmt.Sprintf("org%d", sb%orgs), "ven", 2_500_000, 1, 3600)
				must(b, err)
			}
			seq := make([]uint64, sandboxes)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				evs := make([]eventbus.Event[events.SandboxUsageV1], batch)
				for k := range evs {
					sb := k % sandboxes
					seq[sb]++
					evs[k] = usageEv(fmt.Sprintf("sb%d", sb), fmt.Sprintf("org%d", sb%orgs), "ven", seq[sb], t0.Add(time.Duration(seq[sb])*time.Second), 1000, 1)
					evs[k].Delivered = 1
				}
				must(b, f.s.ChargeUsage(ctx, evs))
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
