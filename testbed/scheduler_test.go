package testbed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// TestConcurrentLaunchNeverDoubleBooks hammers placement from many goroutines through TWO service
// instances on the same database (two processes of a scaled-out testbed, each with its own in-memory
// index): the database claim is what must hold.
func TestConcurrentLaunchNeverDoubleBooks(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 4, 8, Options{})
		a := f.svc
		b, err := New(Deps{DB: db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": f.sim}})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		const workers = 48
		var wg sync.WaitGroup
		var mu sync.Mutex
		placed, refused := 0, 0
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := a
				if i%2 == 1 {
					svc = b
				}
				_, err := svc.Launch(context.Background(), sme(), LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb",
					GPUCount: 1 + i%3, Template: "shell", DurationMinutes: 30})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					placed++
				case errors.Is(err, ErrNoCapacity):
					refused++
				default:
					t.Errorf("launch %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		a.Wait()
		b.Wait()
		var boxes []Sandbox
		if err := db.Where("state NOT IN ?", []string{StateStopped, StateFailed}).Find(&boxes).Error; err != nil {
			t.Fatal(err)
		}
		owner := map[string]string{}
		used := 0
		for _, sb := range boxes {
			for _, d := range sb.DeviceList() {
				if o, dup := owner[d.ID]; dup {
					t.Fatalf("device %s booked by %s and %s", d.ID, o, sb.ID)
				}
				owner[d.ID] = sb.ID
				used++
			}
		}
		if placed != len(boxes) || used > 32 {
			t.Fatalf("placed %d, live %d, devices used %d", placed, len(boxes), used)
		}
		// 48 requests of 1-3 devices (96 devices) on 32: the pool must end up full or nearly so.
		if used < 30 {
			t.Fatalf("only %d of 32 devices used with %d refusals", used, refused)
		}
		t.Logf("placed %d, refused %d, devices used %d", placed, refused, used)
	})
}

// TestNoCapacityNextFree: a full pool answers 409 no_capacity with next_free_at at the earliest expiry.
func TestNoCapacityNextFree(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 1, 8, Options{})
		ctx := context.Background()
		f.launch(t, sme(), 4, 60)
		f.clk.Advance(10 * time.Minute)
		f.launch(t, sme(), 4, 30)
		_, err := f.svc.Launch(ctx, other(), LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb", GPUCount: 2, Template: "shell", DurationMinutes: 10})
		if !errors.Is(err, ErrNoCapacity) {
			t.Fatalf("want no_capacity, got %v", err)
		}
		p := asProblem(t, err)
		if want := t0.Add(40 * time.Minute).Format(time.RFC3339); p.Extra["next_free_at"] != want {
			t.Fatalf("next_free_at %v, want %s", p.Extra["next_free_at"], want)
		}
		// A reservation for the whole pool in an hour: accepted once, then the window is full.
		start := t0.Add(2 * time.Hour)
		r, err := f.svc.Reserve(ctx, other(), ReserveInput{ListingID: f.listing.ID, GPUCount: 8, StartsAt: start, EndsAt: start.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.Reserve(ctx, sme(), ReserveInput{ListingID: f.listing.ID, GPUCount: 1, StartsAt: start.Add(30 * time.Minute), EndsAt: start.Add(90 * time.Minute)})
		if p := asProblem(t, err); p.Code != "no_capacity" || p.Extra["next_free_at"] != start.Add(time.Hour).Format(time.RFC3339) {
			t.Fatalf("overlapping reservation: %v %v", err, p.Extra)
		}
		// A sandbox that would run into the reserved window is refused for another org...
		f.clk.Set(start.Add(-30 * time.Minute))
		f.tick(t) // the first two sandboxes expire
		_, err = f.svc.Launch(ctx, sme(), LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb", GPUCount: 1, Template: "shell", DurationMinutes: 60})
		if !errors.Is(err, ErrNoCapacity) {
			t.Fatalf("sandbox over a reservation: %v", err)
		}
		// ...but fits before it, and cannot be extended into it; the reserving org may use its own reservation.
		before := f.launch(t, sme(), 8, 30)
		if _, err := f.svc.Extend(ctx, sme(), before.ID, 10); !errors.Is(err, ErrNoCapacity) {
			t.Fatalf("extend into a reservation: %v", err)
		}
		if err := f.sim.Exit(before.ID, 0); err != nil {
			t.Fatal(err)
		}
		f.clk.Set(start)
		f.tick(t)
		f.launch(t, other(), 8, 60)
		if _, err := f.svc.CancelReservation(ctx, sme(), r.ID); !errors.Is(err, ErrReservationNotFound) {
			t.Fatalf("cancel another org's reservation: %v", err)
		}
		// Availability over the window shows it.
		av, err := f.svc.Availability(ctx, f.pool.ID, "h100-80gb", start.Add(-time.Hour), start.Add(2*time.Hour), time.Hour)
		if err != nil || len(av) != 3 {
			t.Fatalf("availability %v %v", av, err)
		}
		if av[1].Free != 0 || av[1].Total != 8 {
			t.Fatalf("reserved hour %+v", av[1])
		}
	})
}

func TestReservationLimits(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 2, 8, Options{MaxReservationsOrg: 2, MaxReservation: 4 * time.Hour})
		ctx := context.Background()
		at := t0.Add(time.Hour)
		if _, err := f.svc.Reserve(ctx, sme(), ReserveInput{ListingID: f.listing.ID, GPUCount: 1, StartsAt: at, EndsAt: at.Add(5 * time.Hour)}); !isField(err, "ends_at") {
			t.Fatalf("too long: %v", err)
		}
		for i := range 2 {
			if _, err := f.svc.Reserve(ctx, sme(), ReserveInput{ListingID: f.listing.ID, GPUCount: 1, StartsAt: at.Add(time.Duration(i) * time.Hour), EndsAt: at.Add(time.Duration(i+1) * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.svc.Reserve(ctx, sme(), ReserveInput{ListingID: f.listing.ID, GPUCount: 1, StartsAt: at, EndsAt: at.Add(time.Hour)}); !errors.Is(err, ErrReservationLimit) {
			t.Fatalf("third reservation: %v", err)
		}
		if _, err := f.svc.Reserve(ctx, sme(), ReserveInput{ListingID: "nope", GPUCount: 1, StartsAt: at, EndsAt: at.Add(time.Hour)}); !errors.Is(err, ErrListingNotFound) {
			t.Fatalf("unknown listing: %v", err)
		}
		// Completed reservations no longer count.
		f.clk.Set(at.Add(3 * time.Hour))
		f.tick(t)
		if _, err := f.svc.Reserve(ctx, sme(), ReserveInput{ListingID: f.listing.ID, GPUCount: 1, StartsAt: f.clk.Now(), EndsAt: f.clk.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkLaunch measures whole launches through the service on a real database (validation, capacity
// check, hold, the requested and scheduled transactions with device claims and outbox events, and the
// simulator start in the background) at 1,000 nodes × 8 GPUs. Run with -benchtime=2000x at most (8,000
// devices). Set TAMARACK_TEST_POSTGRES to measure Postgres too.
func BenchmarkLaunch(b *testing.B) {
	for _, d := range dbtest.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			db := dbtest.Open(b, d, migrations()...)
			f := newFixture(b, db, 1000, 8, Options{})
			in := LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb", GPUCount: 1, Template: "shell", DurationMinutes: 30}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := f.svc.Launch(context.Background(), sme(), in); err != nil {
					b.Fatal(err)
				}
			}
			f.svc.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "launches/s")
		})
	}
}

// Capacity added by another process (a second replica, or `tamarack seed` beside a running server) is found
// by a launch that would otherwise be refused, without a restart.
func TestLaunchSeesNodesAddedByAnotherProcess(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 1, 1, Options{})
		other, err := New(Deps{DB: db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": f.sim}})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The first process loaded its index before this; it has never seen the second node.
		in := AddNodeInput{Name: "node-added-elsewhere", CPUMillis: 1 << 40, MemoryBytes: 1 << 50}
		for i := range 4 {
			in.Devices = append(in.Devices, DeviceInput{Index: i, GPUModel: "h100-80gb"})
		}
		if _, _, err := other.AddNode(context.Background(), hostStaff(), f.pool.ID, in); err != nil {
			t.Fatal(err)
		}
		f.svc.mu.Lock()
		f.svc.loadedAt = time.Time{} // as if the last load were old: the reload is rate-limited to once a second
		f.svc.mu.Unlock()
		sb := f.launch(t, sme(), 4, 30)
		if got := f.get(t, sb.ID); got.State != StateRunning || got.NodeID == "" {
			t.Fatalf("sandbox = %s on %q, want running on the new node", got.State, got.NodeID)
		}
	})
}
