package testbed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestConsumers runs the service's JetStream consumers: a published compute listing becomes launchable, a
// retired one no longer is, and wallet.exhausted stops the organisation's sandboxes after the grace period
// with the reason recorded; the sandbox events reach JetStream through the outbox.
func TestConsumers(t *testing.T) {
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := bus.EnsureStreams(ctx, events.AllStreams()...); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, dbtestOpenSQLite(t), 1, 8, Options{})
		svc, err := New(Deps{DB: f.db, Bus: bus, Clock: f.clk, Holds: ApproveHolds{}, Backends: f.svc.backends,
			Options: Options{SuperviseInterval: 10 * time.Millisecond, WalletGrace: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		f.svc = svc
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = svc.Run(ctx) }()
		defer func() { cancel(); wg.Wait() }()

		pub := func(s eventbus.Subject[events.ListingChangedV1], id string, ev events.ListingChangedV1) {
			t.Helper()
			if err := eventbus.Publish(ctx, bus, s, "tamarack/marketplace", id, f.clk.Now(), ev); err != nil {
				t.Fatal(err)
			}
		}
		ev := events.ListingChangedV1{ListingID: "lst-new", Version: 1, VendorOrgID: vendorOrg, Kind: "compute", At: f.clk.Now(),
			Compute: &events.ComputeV1{PoolID: f.pool.ID, GPUModel: "h100-80gb", MaxDurationMinutes: 30, PricePerGPUHour: 1}}
		pub(events.ListingPublished, "lst-new-pub", ev)
		in := LaunchInput{ListingID: "lst-new", GPUModel: "h100-80gb", GPUCount: 1, Template: "shell", DurationMinutes: 20}
		var sb Sandbox
		eventually(t, "the published listing to be launchable", func() bool {
			sb, err = svc.Launch(ctx, sme(), in)
			return err == nil
		})
		eventually(t, "the sandbox to run", func() bool { return f.get(t, sb.ID).State == StateRunning })

		if err := eventbus.Publish(ctx, bus, events.WalletExhausted, "tamarack/billing", "wallet-1", f.clk.Now(),
			events.WalletExhaustedV1{OrganizationID: smeOrg, At: f.clk.Now()}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "wallet.exhausted to be consumed", func() bool { return f.get(t, sb.ID).WalletStopAt != nil })
		f.clk.Advance(61 * time.Second)
		eventually(t, "the sandbox to stop", func() bool { return f.get(t, sb.ID).State == StateStopped })
		if s := f.get(t, sb.ID); s.StopReason != ReasonWalletExhausted {
			t.Fatalf("reason %s", s.StopReason)
		}

		pub(events.ListingRetired, "lst-new-retired", ev)
		eventually(t, "the retired listing to be gone", func() bool {
			_, err := svc.Launch(ctx, sme(), in)
			return errors.Is(err, ErrListingNotFound)
		})
		// The stopped event went out through the outbox.
		eventually(t, "the outbox to drain", func() bool {
			n, err := svc.Outbox().Pending(ctx)
			return err == nil && n == 0
		})
		got := make(chan events.SandboxChangedV1, 1)
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		go func() {
			_ = eventbus.Consume(cctx, bus, events.SandboxSubject(StateStopped), eventbus.ConsumeOptions{Durable: "test-stopped", IdleWait: 50 * time.Millisecond},
				func(_ context.Context, e eventbus.Event[events.SandboxChangedV1]) error {
					if e.Data.SandboxID == sb.ID {
						got <- e.Data
					}
					return nil
				})
		}()
		select {
		case e := <-got:
			if e.Reason != ReasonWalletExhausted || e.UsageMillis != 61_000 || e.LastSeq == 0 {
				t.Fatalf("stopped event %+v", e)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no stopped event in JetStream")
		}
	})
}

var eventually = webtest.Eventually
