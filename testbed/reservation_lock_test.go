package testbed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Two testbed replicas (two Services, each on its own connection pool to one database, each with its own
// scheduling index) book one window concurrently: the pool is never overbooked, and every refusal is
// no_capacity.
func TestReservationsNeverOverbookAcrossReplicas(t *testing.T) {
	for _, d := range dbtest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			dsn := dbtest.DSN(t, d, migrations()...)
			db1, err := sqldb.Open(ctx, dsn, sqldb.Options{MaxOpenConns: 10})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sqldb.Close(db1) })
			if err := sqldb.Migrate(ctx, db1, nil, migrations()...); err != nil { // a SQLite file starts empty
				t.Fatal(err)
			}
			f := newFixture(t, db1, 2, 4, Options{MaxReservationsOrg: 100}) // 8 devices
			db2, err := sqldb.Open(ctx, dsn, sqldb.Options{MaxOpenConns: 10})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sqldb.Close(db2) })
			replica, err := New(Deps{DB: db2, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": f.sim},
				Options: Options{MaxReservationsOrg: 100}})
			if err != nil {
				t.Fatal(err)
			}
			if err := replica.Load(ctx); err != nil {
				t.Fatal(err)
			}

			start := t0.Add(time.Hour)
			const callers = 24
			var wg sync.WaitGroup
			errs := make([]error, callers)
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					svc := f.svc
					if i%2 == 1 {
						svc = replica
					}
					c := web.Principal{UserID: fmt.Sprintf("u-%d", i), OrgID: fmt.Sprintf("org-%d", i), OrgKind: "sme", Role: web.RoleAdmin}
					// Windows overlap in different ways so the check has to look at more than one moment.
					from := start.Add(time.Duration(i%3) * 15 * time.Minute)
					_, errs[i] = svc.Reserve(ctx, c, ReserveInput{ListingID: f.listing.ID, GPUCount: 1 + i%3,
						StartsAt: from, EndsAt: from.Add(time.Hour)})
				}()
			}
			wg.Wait()
			ok := 0
			for i, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, ErrNoCapacity):
					t.Fatalf("caller %d: %v", i, err)
				}
			}
			var rs []Reservation
			if err := db1.Where("state = ?", ResPending).Find(&rs).Error; err != nil {
				t.Fatal(err)
			}
			if ok == 0 || len(rs) != ok {
				t.Fatalf("%d accepted, %d rows", ok, len(rs))
			}
			// At every start of a reservation (where the booked count can only rise), at most 8 are booked.
			for _, at := range rs {
				n := 0
				for _, r := range rs {
					if !at.StartsAt.Before(r.StartsAt) && at.StartsAt.Before(r.EndsAt) {
						n += r.GPUCount
					}
				}
				if n > 8 {
					t.Fatalf("overbooked: %d devices booked at %v", n, at.StartsAt)
				}
			}
		})
	}
}
