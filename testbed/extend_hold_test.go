package testbed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/services/events"
)

// idemHolds behaves like billing's hold endpoint for extends: a request_id already applied reserves nothing
// again. lose makes the next call reserve and then fail as if the reply were lost; gate, when set, holds
// each call until it is closed.
type idemHolds struct {
	mu       sync.Mutex
	seen     map[string]bool
	reserved int64 // seconds reserved by extends
	lose     bool
	gate     chan struct{}
	arrived  chan struct{}
}

func (h *idemHolds) Hold(_ context.Context, req events.HoldRequestV1) (events.HoldReplyV1, error) {
	if req.Action == "extend" && h.gate != nil {
		h.arrived <- struct{}{}
		<-h.gate
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.Action == "extend" && !h.seen[req.RequestID] {
		h.seen[req.RequestID] = true
		h.reserved += req.Seconds
	}
	if h.lose {
		h.lose = false
		return events.HoldReplyV1{}, errors.New("no reply in time")
	}
	return events.HoldReplyV1{HoldID: req.SandboxID}, nil
}

// TestExtendReservesWhatItBooks: every minute added to a sandbox's booking is reserved by billing, also when
// a reply was lost and the user retries with another length, and when two extends race.
func TestExtendReservesWhatItBooks(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		h := &idemHolds{seen: map[string]bool{}}
		f.svc.holds = h
		sb := f.launch(t, sme(), 1, 30)
		booked := func() int64 { return int64(f.get(t, sb.ID).DurationMinutes-30) * 60 }

		// A lost reply, then a retry asking for a different length.
		h.lose = true
		if _, err := f.svc.Extend(ctx, sme(), sb.ID, 10); err == nil {
			t.Fatal("lost reply must fail the extend")
		}
		if _, err := f.svc.Extend(ctx, sme(), sb.ID, 20); err != nil {
			t.Fatal(err)
		}
		if h.reserved < booked() {
			t.Fatalf("after a retry: %d s booked, %d s reserved", booked(), h.reserved)
		}

		// Two identical extends racing.
		h.gate, h.arrived = make(chan struct{}), make(chan struct{}, 4)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = f.svc.Extend(ctx, sme(), sb.ID, 15)
			}()
		}
		<-h.arrived
		<-h.arrived
		close(h.gate)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if h.reserved < booked() {
			t.Fatalf("after racing extends: %d s booked, %d s reserved", booked(), h.reserved)
		}
	})
}

// TestExtendCancelsWalletStop: once billing has reserved an extension, a wallet-exhausted stop announced
// before it no longer applies to that sandbox (billing clears its exhaustion on extend); before, the sandbox
// was stopped at the end of the grace period anyway, with the time just paid for unused.
func TestExtendCancelsWalletStop(t *testing.T) {
	eachFixture(t, 1, 8, Options{UsageInterval: 15 * time.Second, WalletGrace: time.Minute}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		sb := f.launch(t, sme(), 1, 120)
		if err := f.svc.WalletExhausted(ctx, "wallet-ev-1", events.WalletExhaustedV1{OrganizationID: smeOrg, SandboxID: sb.ID, At: f.clk.Now()}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(30 * time.Second)
		if _, err := f.svc.Extend(ctx, sme(), sb.ID, 30); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(61 * time.Second)
		f.tick(t)
		if s := f.get(t, sb.ID); s.State != StateRunning {
			t.Fatalf("extended sandbox stopped for an exhaustion announced before the extend: %s %s", s.State, s.StopReason)
		}
	})
}
