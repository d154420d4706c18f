package testbed

import (
	"sort"

	"github.com/tamarack-ai/tamarack/testbed/placement"
)

// The scheduler's in-memory index of free devices is testbed/placement, which does no I/O. This file speaks
// to it in the testbed's rows (nodes with a health, devices with their MIG profiles as stored, reservations);
// loading it from the database is Load (inventory.go), committing the claims it hands out is schedule
// (lifecycle.go), and the database's claims stay the source of truth.

// PlaceRequest is what the scheduler places.
type PlaceRequest = placement.Request

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
		FromMS: r.StartsMS, ToMS: r.EndsMS}
}

// reserve adds or replaces a reservation; unreserve removes it.
func (x *index) reserve(r Reservation)   { x.p.Reserve(toPlacementReservation(r)) }
func (x *index) unreserve(r Reservation) { x.p.Unreserve(toPlacementReservation(r)) }

// claim records a claim loaded from or committed to the database.
func (x *index) claim(sandbox string, devIDs []string, expires int64, cpu, mem int64) {
	x.p.Claim(sandbox, devIDs, expires, cpu, mem)
}

// release frees every device a sandbox holds.
func (x *index) release(sandbox string) { x.p.Release(sandbox) }

// extend moves a sandbox's claim expiry.
func (x *index) extend(sandbox string, expires int64) { x.p.Extend(sandbox, expires) }

// place chooses a node and devices for r and marks them claimed in memory. The caller must commit the claim
// to the database and call release on failure. ok is false when nothing fits now.
func (x *index) place(sandbox string, r PlaceRequest) (placement.Pick, bool) {
	return x.p.Place(sandbox, r)
}

// fits reports whether r could be placed now, without claiming.
func (x *index) fits(r PlaceRequest) bool { return x.p.Fits(r) }

// largest: see placement.Index.Largest.
func (x *index) largest(r PlaceRequest) (cpu, mem int64, ok bool) { return x.p.Largest(r) }

// nextFree: see placement.Index.NextFree.
func (x *index) nextFree(r PlaceRequest, nowMS int64) int64 { return x.p.NextFree(r, nowMS) }

// minFree: see placement.Index.MinFree.
func (x *index) minFree(pool, model string, from, to int64) int {
	return x.p.MinFree(pool, model, from, to)
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
