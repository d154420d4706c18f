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
	free, next := x.syncWindow(r, booked)
	if free >= r.GPUCount {
		return nil
	}
	p := ErrNoCapacity.WithDetailMsg("problem.no_capacity.window_free", problem.Args{"Free": max(free, 0), "Model": r.GPUModel})
	if !next.IsZero() {
		p = p.WithExtra("next_free_at", next.Format(time.RFC3339))
	}
	return p
}
