package testbed

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
)

// TestStoreReadsWithinTheCallersOrganisation checks the tenancy filters the store applies where data is read:
// another organisation's ID finds nothing, its own finds the row.
func TestStoreReadsWithinTheCallersOrganisation(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 1, 2, Options{})
		sb := f.launch(t, sme(), 1, 30)
		start := t0.Add(time.Hour)
		r, err := f.svc.Reserve(context.Background(), sme(), ReserveInput{ListingID: f.listing.ID, GPUCount: 1,
			StartsAt: start, EndsAt: start.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name      string
			own, them func() error
			want      error
		}{
			{"sandbox", func() error { _, err := sandboxOfOrg(db, smeOrg, sb.ID); return err },
				func() error { _, err := sandboxOfOrg(db, otherOrg, sb.ID); return err }, ErrSandboxNotFound},
			{"sandbox of an ssh key's organisations", func() error { _, err := sandboxOfOrgs(db, []string{otherOrg, smeOrg}, sb.ID); return err },
				func() error { _, err := sandboxOfOrgs(db, []string{otherOrg}, sb.ID); return err }, ErrSandboxNotFound},
			{"pool", func() error { _, err := poolOfVendor(db, vendorOrg, f.pool.ID, false); return err },
				func() error { _, err := poolOfVendor(db, otherOrg, f.pool.ID, false); return err }, ErrPoolNotFound},
			{"reservation", func() error { _, err := reservationOfOrg(db, smeOrg, r.ID); return err },
				func() error { _, err := reservationOfOrg(db, otherOrg, r.ID); return err }, ErrReservationNotFound},
		}
		for _, c := range cases {
			if err := c.own(); err != nil {
				t.Errorf("%s of its own organisation: %v", c.name, err)
			}
			if err := c.them(); !errors.Is(err, c.want) {
				t.Errorf("%s of another organisation: got %v, want %v", c.name, err, c.want)
			}
		}
		if _, err := sandboxOfOrgs(db, nil, sb.ID); !errors.Is(err, ErrSandboxNotFound) {
			t.Errorf("sandbox of no organisation: got %v, want not found", err)
		}
	})
}
