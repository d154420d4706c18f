package testbed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// TestSchedulerProperty drives the index with random placements, releases, reservations and health
// changes and checks after every step: no device is ever booked twice, a placement is on one ready node
// with devices of the right model, and a request that fits is never refused.
func TestSchedulerProperty(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 7))
			x := newIndex()
			models := []string{"h100-80gb", "l4-24gb"}
			var nodes []Node
			for n := range 12 {
				node := Node{ID: fmt.Sprintf("n%02d", n), PoolID: "p", Health: NodeReady, CPUMillis: 16000, MemoryBytes: 64 << 30}
				var devs []Device
				per := 1 + r.IntN(8)
				for i := range per {
					d := Device{ID: fmt.Sprintf("n%02d-d%d", n, i), NodeID: node.ID, PoolID: "p", Idx: i, GPUModel: models[n%2]}
					if r.IntN(3) == 0 {
						d.MIGProfiles = "1g.10gb,3g.40gb"
					}
					devs = append(devs, d)
				}
				x.addNode(node, devs)
				nodes = append(nodes, node)
			}
			live := map[string]PlaceRequest{}
			var liveIDs []string
			var res []Reservation
			now := int64(1_000_000)
			for step := range 2000 {
				switch op := r.IntN(10); {
				case op < 5:
					req := PlaceRequest{PoolID: "p", GPUModel: models[r.IntN(2)], GPUCount: 1 + r.IntN(8),
						CPUMillis: int64(r.IntN(6000)), Memory: int64(r.IntN(24)) << 30, OrgID: fmt.Sprintf("o%d", r.IntN(3)),
						FromMS: now, ToMS: now + int64(1+r.IntN(100))*1000}
					if r.IntN(5) == 0 {
						req.MIGProfile = "3g.40gb"
					}
					id := fmt.Sprintf("s%d", step)
					fits := bruteFits(x, req)
					p, ok := x.place(id, req)
					if ok != fits {
						t.Fatalf("step %d: place=%v brute force=%v for %+v", step, ok, fits, req)
					}
					if ok {
						checkPlacement(t, x, p, req)
						live[id] = req
						liveIDs = append(liveIDs, id)
					}
				case op < 8 && len(liveIDs) > 0:
					i := r.IntN(len(liveIDs))
					x.release(liveIDs[i])
					delete(live, liveIDs[i])
					liveIDs = append(liveIDs[:i], liveIDs[i+1:]...)
				case op == 8:
					if len(res) > 0 && r.IntN(2) == 0 {
						x.unreserve(res[0])
						res = res[1:]
					} else {
						rv := Reservation{ID: fmt.Sprintf("r%d", step), OrgID: fmt.Sprintf("o%d", r.IntN(3)), PoolID: "p",
							GPUModel: models[r.IntN(2)], GPUCount: 1 + r.IntN(4), StartsMS: now + int64(r.IntN(50))*1000}
						rv.EndsMS = rv.StartsMS + int64(1+r.IntN(50))*1000
						x.reserve(rv)
						res = append(res, rv)
					}
				default:
					n := nodes[r.IntN(len(nodes))]
					h := NodeReady
					if r.IntN(3) == 0 {
						h = NodeDraining
					}
					x.setHealth(n.ID, h)
				}
				checkIndex(t, x, live)
			}
		})
	}
}

// bruteFits answers "does r fit now?" by looking at every node, ignoring the buckets.
func bruteFits(x *index, r PlaceRequest) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.groups[groupKey{r.PoolID, r.GPUModel}]
	if g == nil {
		return false
	}
	free, _ := x.countsLocked(g, r.GPUModel)
	if free-g.reservedLocked(r.OrgID, r.FromMS, r.ToMS) < r.GPUCount {
		return false
	}
	for _, n := range x.nodes {
		if !n.ready || n.cpuFree < r.CPUMillis || n.memFree < r.Memory {
			continue
		}
		c := 0
		for _, d := range n.devs {
			if d.model == r.GPUModel && !d.claimed && migOK(d, r.MIGProfile) {
				c++
			}
		}
		if c >= r.GPUCount {
			return true
		}
	}
	return false
}

func checkPlacement(t *testing.T, x *index, p Placement, r PlaceRequest) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(p.Devices) != r.GPUCount {
		t.Fatalf("placed %d devices for %d", len(p.Devices), r.GPUCount)
	}
	for _, id := range p.Devices {
		d := x.devs[id]
		if d.node.id != p.NodeID || d.model != r.GPUModel || !migOK(d, r.MIGProfile) || !d.node.ready {
			t.Fatalf("device %s does not match %+v", id, r)
		}
	}
}

func checkIndex(t *testing.T, x *index, live map[string]PlaceRequest) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	owner := map[string]string{}
	for sb, ids := range x.claims {
		if _, ok := live[sb]; !ok {
			t.Fatalf("claim of released sandbox %s", sb)
		}
		for _, id := range ids {
			if o, dup := owner[id]; dup {
				t.Fatalf("device %s double-booked by %s and %s", id, o, sb)
			}
			owner[id] = sb
			if d := x.devs[id]; !d.claimed || d.sandbox != sb {
				t.Fatalf("device %s state inconsistent", id)
			}
		}
	}
	for _, n := range x.nodes {
		var cpu, mem int64
		for sb, req := range live {
			if ids := x.claims[sb]; len(ids) > 0 && x.devs[ids[0]].node == n {
				cpu += req.CPUMillis
				mem += req.Memory
			}
		}
		if n.cpuFree != 16000-cpu || n.memFree != 64<<30-mem {
			t.Fatalf("node %s cpu/mem accounting off", n.id)
		}
		for model, s := range n.slots {
			free := 0
			for _, d := range n.devs {
				if d.model == model && !d.claimed {
					free++
				}
			}
			if len(s.free) != free {
				t.Fatalf("node %s free list %d, want %d", n.id, len(s.free), free)
			}
			if n.ready && (s.bucket != len(s.free) || x.group(n.pool, model).buckets[s.bucket][s.pos] != s) {
				t.Fatalf("node %s bucket %d for %d free", n.id, s.bucket, len(s.free))
			}
			if !n.ready && s.bucket != -1 {
				t.Fatalf("node %s not ready but bucketed", n.id)
			}
		}
	}
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

// BenchmarkSchedule measures placements per second of the in-memory index at 1,000 nodes × 8 GPUs with
// 10,000 requests of 1, 2, 4 or 8 devices; when the pool is full the oldest sandboxes are released.
func BenchmarkSchedule(b *testing.B) {
	x := newIndex()
	for n := range 1000 {
		node := Node{ID: fmt.Sprintf("n%04d", n), PoolID: "p", Health: NodeReady, CPUMillis: 1 << 40, MemoryBytes: 1 << 50}
		devs := make([]Device, 8)
		for i := range devs {
			devs[i] = Device{ID: fmt.Sprintf("n%04d-%d", n, i), NodeID: node.ID, PoolID: "p", Idx: i, GPUModel: "h100-80gb"}
		}
		x.addNode(node, devs)
	}
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 1, 1, 2, 2, 4, 8}
	reqs := make([]PlaceRequest, 10_000)
	for i := range reqs {
		reqs[i] = PlaceRequest{PoolID: "p", GPUModel: "h100-80gb", GPUCount: sizes[r.IntN(len(sizes))], CPUMillis: 1000, Memory: 1 << 30, FromMS: 0, ToMS: 3_600_000}
	}
	ids := make([]string, len(reqs))
	for i := range ids {
		ids[i] = fmt.Sprintf("s%05d", i)
	}
	b.ResetTimer()
	placed := 0
	start := time.Now()
	for range b.N {
		var fifo []string
		for i, req := range reqs {
			for {
				if _, ok := x.place(ids[i], req); ok {
					fifo = append(fifo, ids[i])
					placed++
					break
				}
				x.release(fifo[0])
				fifo = fifo[1:]
			}
		}
		for _, id := range fifo {
			x.release(id)
		}
	}
	b.ReportMetric(float64(placed)/time.Since(start).Seconds(), "placements/s")
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
