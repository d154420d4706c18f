package testbed

import (
	"sort"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/placement"
)

// The scheduler's in-memory index of free devices is testbed/placement, which does no I/O. This file speaks
// to it in the testbed's rows (nodes with a health, devices with their MIG profiles as stored, reservations)
// and instants (placement counts Unix milliseconds); loading it from the database is Load (inventory.go),
// committing the claims it hands out is schedule (lifecycle.go), and the database's claims stay the source of
// truth.

// PlaceRequest is what the scheduler places: a placement.Request with its window as instants.
type PlaceRequest struct {
	PoolID     string
	GPUModel   string
	GPUCount   int
	MIGProfile string
	CPUMillis  int64
	Memory     int64
	OrgID      string    // its own reservations do not block it
	From, To   time.Time // the window the devices are needed for
}

func (r PlaceRequest) placement() placement.Request {
	return placement.Request{PoolID: r.PoolID, GPUModel: r.GPUModel, GPUCount: r.GPUCount, MIGProfile: r.MIGProfile,
		CPUMillis: r.CPUMillis, Memory: r.Memory, OrgID: r.OrgID, FromMS: placementMS(r.From), ToMS: placementMS(r.To)}
}

// placementMS and placementTime convert at the index's edge: placement counts time in Unix milliseconds (the
// instants the testbed stores are whole milliseconds, so nothing is lost), 0 meaning none.
func placementMS(t time.Time) int64 { return t.UnixMilli() }

func placementTime(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// index is the placement index as the testbed calls it.
type index struct{ p *placement.Index }

func newIndex() *index { return &index{p: placement.New()} }

// addNode adds (or replaces) a node and its devices.
func (x *index) addNode(n Node, devs []Device) {
	pd := make([]placement.Device, len(devs))
	for i, d := range devs {
		pd[i] = placement.Device{ID: d.ID, Idx: d.Idx, GPUModel: d.GPUModel, MIG: d.MIG()}
	}
	x.p.AddNode(placement.Node{ID: n.ID, PoolID: n.PoolID, Ready: n.Health == NodeReady, CPUMillis: n.CPUMillis,
		MemoryBytes: n.MemoryBytes}, pd)
}

// setHealth marks a node placeable (ready) or not.
func (x *index) setHealth(nodeID, health string) { x.p.SetReady(nodeID, health == NodeReady) }

func toPlacementReservation(r Reservation) placement.Reservation {
	return placement.Reservation{ID: r.ID, OrgID: r.OrgID, PoolID: r.PoolID, GPUModel: r.GPUModel, GPUCount: r.GPUCount,
		FromMS: placementMS(r.StartsAt), ToMS: placementMS(r.EndsAt)}
}

// reserve adds or replaces a reservation; unreserve removes it.
func (x *index) reserve(r Reservation)   { x.p.Reserve(toPlacementReservation(r)) }
func (x *index) unreserve(r Reservation) { x.p.Unreserve(toPlacementReservation(r)) }

// claim records a claim loaded from or committed to the database.
func (x *index) claim(sandbox string, devIDs []string, expires time.Time, cpu, mem int64) {
	x.p.Claim(sandbox, devIDs, placementMS(expires), cpu, mem)
}

// release frees every device a sandbox holds.
func (x *index) release(sandbox string) { x.p.Release(sandbox) }

// extend moves a sandbox's claim expiry.
func (x *index) extend(sandbox string, expires time.Time) { x.p.Extend(sandbox, placementMS(expires)) }

// place chooses a node and devices for r and marks them claimed in memory. The caller must commit the claim
// to the database and call release on failure. ok is false when nothing fits now.
func (x *index) place(sandbox string, r PlaceRequest) (placement.Pick, bool) {
	return x.p.Place(sandbox, r.placement())
}

// fits reports whether r could be placed now, without claiming.
func (x *index) fits(r PlaceRequest) bool { return x.p.Fits(r.placement()) }

// largest: see placement.Index.Largest.
func (x *index) largest(r PlaceRequest) (cpu, mem int64, ok bool) { return x.p.Largest(r.placement()) }

// nextFree: see placement.Index.NextFree; ok is false when the pool has too few ready devices at all.
func (x *index) nextFree(r PlaceRequest, now time.Time) (at time.Time, ok bool) {
	at = placementTime(x.p.NextFree(r.placement(), placementMS(now)))
	return at, !at.IsZero()
}

// minFree: see placement.Index.MinFree.
func (x *index) minFree(pool, model string, from, to time.Time) int {
	return x.p.MinFree(pool, model, placementMS(from), placementMS(to))
}

// syncWindow: see placement.Index.SyncWindow; next is zero when no later window fits.
func (x *index) syncWindow(r Reservation, booked []Reservation) (free int, next time.Time) {
	pb := make([]placement.Reservation, len(booked))
	for i, b := range booked {
		pb[i] = toPlacementReservation(b)
	}
	free, n := x.p.SyncWindow(toPlacementReservation(r), pb)
	return free, placementTime(n)
}

// availabilities: see placement.Index.Availabilities, over the windows [starts[i], starts[i]+step).
func (x *index) availabilities(pool, model string, starts []time.Time, step time.Duration) []placement.Availability {
	windows := make([]placement.Window, len(starts))
	for i, t := range starts {
		windows[i] = placement.Window{FromMS: placementMS(t), ToMS: placementMS(t.Add(step))}
	}
	return x.p.Availabilities(pool, model, windows)
}

// countCapacity returns, for each GPU count a sandbox may ask (up to MaxGPUsPerSandbox) that a ready node of
// the pool can hold, how many sandboxes of that count fit on free devices now.
func (x *index) countCapacity(pool, model string) []placement.CountCapacity {
	return x.p.CountCapacities(pool, model, MaxGPUsPerSandbox)
}

// poolCounts returns per model (free now, total) on ready nodes of a pool.
func (x *index) poolCounts(pool string) map[string][2]int { return x.p.PoolCounts(pool) }

func sortBuckets(b []AvailabilityBucket) {
	sort.Slice(b, func(i, j int) bool {
		if b[i].PoolID != b[j].PoolID {
			return b[i].PoolID < b[j].PoolID
		}
		if b[i].GPUModel != b[j].GPUModel {
			return b[i].GPUModel < b[j].GPUModel
		}
		return b[i].Start.Before(b[j].Start)
	})
}
