package marketplace

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/services/events"
)

// TestSeedDemo: the demo catalogue is published with its events, is searchable and orderable, and a second
// run changes nothing.
func TestSeedDemo(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		// The testbed's pool event arrived first: the seed sells what it declares.
		must(t, e.svc.ApplyPoolChanged(ctx, "pool-demo-1", events.PoolChangedV1{PoolID: "pool_demo", VendorOrgID: "org_demo_vendor",
			Region: "ca-west", GPUModels: []string{"l40s-48gb"}, At: time.Now()}))
		in := SeedInput{VendorOrgID: "org_demo_vendor", VendorUserID: "usr_demo", PoolID: "pool_demo", GPUModel: "h100-80gb"}
		first, err := e.svc.SeedDemo(ctx, in)
		must(t, err)
		if first.ComputeListingID == "" || first.ModelListingID == "" || first.DatasetListingID == "" {
			t.Fatalf("seed: %+v", first)
		}
		again, err := e.svc.SeedDemo(ctx, in)
		must(t, err)
		if again != first {
			t.Fatalf("second seed made %+v, first %+v", again, first)
		}
		if first.PendingListingID == "" {
			t.Fatalf("no listing left for review: %+v", first)
		}
		var queue struct {
			Items []struct {
				ListingID string `json:"listing_id"`
			} `json:"items"`
		}
		e.do(staff, "GET", "reviews", nil).JSON(t, &queue)
		if len(queue.Items) != 1 || queue.Items[0].ListingID != first.PendingListingID {
			t.Fatalf("review queue after the seed: %+v", queue.Items)
		}
		if n := count(t, e.db, "market_listings"); n != 4 {
			t.Fatalf("%d listings", n)
		}
		var s searchJSON
		e.do(anon, "GET", "listings?gpu_model=l40s-48gb", nil).JSON(t, &s)
		if len(s.Items) != 1 || s.Items[0].ID != first.ComputeListingID || s.Items[0].PriceFromMicro != 2_500_000 {
			t.Fatalf("compute listing in catalogue: %+v", s.Items)
		}
		var cl listingOut
		e.do(anon, "GET", "listings/"+first.ComputeListingID, nil).JSON(t, &cl)
		var v versionRow
		must(t, e.db.Where("id = ?", cl.PublishedVersion.ID).Take(&v).Error)
		if !strings.Contains(v.Content, `"region":"ca-west"`) {
			t.Fatalf("compute terms ignore the pool projection: %s", v.Content)
		}
		// The published events went out through the outbox (flushed by the seed).
		if n, err := e.svc.Outbox().Pending(ctx); err != nil || n != 0 {
			t.Fatalf("outbox pending %d, %v", n, err)
		}
		var ds listingOut
		e.do(smeMember, "GET", "listings/"+first.DatasetListingID, nil).JSON(t, &ds)
		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": ds.ID, "plan_id": ds.PublishedVersion.Plans[0].ID}), 201, "")
		r := e.do(smeMember, "GET", "artifacts/"+ds.PublishedVersion.Artifacts[0].ID+"/download", nil)
		expect(t, r, 302, "")
		expect(t, e.do(smeMember, "GET", r.Header.Get("Location"), nil), 200, "")
		// The free order's entitlement.granted waits for the relay (not running in this test).
		if n, err := e.svc.Outbox().Pending(ctx); err != nil || n != 1 {
			t.Fatalf("outbox pending %d after the free order, %v", n, err)
		}
	})
}
