package testbed

import (
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Reservations across replicas. Each testbed process keeps the reservations in its scheduling index, but
// another replica may have booked since: the index alone would let two replicas both take the last devices
// of a window. Reservations book GPU counts of a pool and model, not devices, so no exclusion constraint can
// say "overlapping counts stay within capacity"; instead Reserve takes the pool and model's row in
// testbed_reservation_locks for its transaction (Postgres: SELECT … FOR UPDATE; SQLite: the immediate
// transaction already holds the single write lock), reads the live reservations from the database under
// it, and inserts before the lock is released at commit.

type reservationLock struct {
	PoolID   string `gorm:"primaryKey"`
	GPUModel string `gorm:"primaryKey;column:gpu_model"`
}

func (reservationLock) TableName() string { return "testbed_reservation_locks" }

// checkWindow brings the index's reservations of r's pool and model that matter from r's start on up to date
// with booked (the database's, read under the lock), then answers no_capacity unless r fits.
func (x *index) checkWindow(r Reservation, booked []Reservation) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := x.group(r.PoolID, r.GPUModel)
	kept := g.res[:0:0]
	for _, v := range g.res {
		if v.toMS <= r.StartsMS {
			kept = append(kept, v)
		}
	}
	for _, b := range booked {
		kept = append(kept, resv{id: b.ID, org: b.OrgID, count: b.GPUCount, fromMS: b.StartsMS, toMS: b.EndsMS})
	}
	g.res = kept
	free := x.minFreeLocked(r.PoolID, r.GPUModel, r.StartsMS, r.EndsMS)
	if free >= r.GPUCount {
		return nil
	}
	p := ErrNoCapacity.WithDetailMsg("problem.no_capacity.window_free", problem.Args{"Free": max(free, 0), "Model": r.GPUModel})
	if t := x.nextWindowLocked(r.PoolID, r.GPUModel, r.GPUCount, r.StartsMS, r.EndsMS-r.StartsMS); t > 0 {
		p = p.WithExtra("next_free_at", fromMS(t).Format(time.RFC3339))
	}
	return p
}
