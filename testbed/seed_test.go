package testbed

import (
	"context"
	"testing"
)

// TestSeedDemo: the demo pool is declared through the ordinary path (its events in the outbox), with 8 declared
// h100-80gb devices, and a second run finds it and changes nothing.
func TestSeedDemo(t *testing.T) {
	t.Parallel()
	eachFixture(t, 0, 0, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		if _, err := f.svc.SeedDemo(ctx, SeedInput{}); err == nil {
			t.Fatal("seed without a vendor succeeded")
		}
		var before int64
		if err := f.db.Table("testbed_outbox").Count(&before).Error; err != nil {
			t.Fatal(err)
		}
		first, err := f.svc.SeedDemo(ctx, SeedInput{VendorOrgID: vendorOrg, StaffUserID: "u-staff"})
		if err != nil {
			t.Fatal(err)
		}
		if !first.Created || first.PoolID == "" || first.PoolName != DemoPoolName || first.PoolRegion != "ca-montreal" {
			t.Fatalf("first seed: %+v", first)
		}
		var afterFirst int64
		f.db.Table("testbed_outbox").Count(&afterFirst)
		if afterFirst == before {
			t.Fatal("the seed wrote no events: the marketplace and billing would never hear of the pool")
		}
		again, err := f.svc.SeedDemo(ctx, SeedInput{VendorOrgID: vendorOrg, StaffUserID: "u-staff"})
		if err != nil {
			t.Fatal(err)
		}
		if again.Created || again.PoolID != first.PoolID || again.PoolRegion != first.PoolRegion {
			t.Fatalf("second seed %+v, first %+v", again, first)
		}
		var afterAgain int64
		f.db.Table("testbed_outbox").Count(&afterAgain)
		if afterAgain != afterFirst {
			t.Fatalf("second seed wrote %d more events", afterAgain-afterFirst)
		}
		var devs []Device
		if err := f.db.Where("pool_id = ?", first.PoolID).Find(&devs).Error; err != nil {
			t.Fatal(err)
		}
		if len(devs) != 8 {
			t.Fatalf("%d devices, want 8", len(devs))
		}
		for _, d := range devs {
			if !d.Declared || d.GPUModel != "h100-80gb" {
				t.Fatalf("device %+v", d)
			}
		}
	})
}
