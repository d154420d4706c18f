package marketplace

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// recorder collects events of some subjects from the real JetStream.
type recorder struct {
	mu  sync.Mutex
	got map[string][]events.ListingChangedV1
	ord []events.OrderPlacedV1
}

func (r *recorder) listing(subject string) []events.ListingChangedV1 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.ListingChangedV1(nil), r.got[subject]...)
}

func (r *recorder) orders() []events.OrderPlacedV1 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.OrderPlacedV1(nil), r.ord...)
}

// TestEventsThroughJetStream: projections are fed by identity and testbed events; every review transition
// and paid order goes out through the outbox; billing's settlement fulfils or fails orders exactly once.
func TestEventsThroughJetStream(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		db := dbtest.Open(t, sqldb.SQLite, migrations()...)
		e := newEnvBus(t, db, bus, Config{})
		ctx := e.run(t)

		rec := &recorder{got: map[string][]events.ListingChangedV1{}}
		for _, subj := range []eventbus.Subject[events.ListingChangedV1]{events.ListingSubmitted, events.ListingApproved,
			events.ListingPublished, events.ListingChangesRequested, events.ListingRejected, events.ListingSuspended, events.ListingRetired} {
			go func() {
				_ = eventbus.Consume(ctx, bus, subj, eventbus.ConsumeOptions{Durable: "test-" + subj.Name[len("tamarack.marketplace.listing."):len(subj.Name)-3], IdleWait: 200 * time.Millisecond},
					func(_ context.Context, ev eventbus.Event[events.ListingChangedV1]) error {
						rec.mu.Lock()
						rec.got[subj.Name] = append(rec.got[subj.Name], ev.Data)
						rec.mu.Unlock()
						return nil
					})
			}()
		}
		go func() {
			_ = eventbus.Consume(ctx, bus, events.OrderPlaced, eventbus.ConsumeOptions{Durable: "test-orders", IdleWait: 200 * time.Millisecond},
				func(_ context.Context, ev eventbus.Event[events.OrderPlacedV1]) error {
					rec.mu.Lock()
					rec.ord = append(rec.ord, ev.Data)
					rec.mu.Unlock()
					return nil
				})
		}()

		// Projections from events: a new vendor, verified, with a pool.
		now := time.Now().UTC()
		must(t, eventbus.Publish(ctx, bus, events.OrganizationCreated, "tamarack/identity", "ev-org-3", now,
			events.OrganizationCreatedV1{OrganizationID: "org_vendor_three", Name: "Cariboo Compute", Kind: "vendor", At: now}))
		must(t, eventbus.Publish(ctx, bus, events.OrganizationVerified, "tamarack/identity", "ev-ver-3", now,
			events.OrganizationVerifiedV1{OrganizationID: "org_vendor_three", Verified: true, At: now}))
		must(t, eventbus.Publish(ctx, bus, events.PoolChanged, "tamarack/testbed", "ev-pool-3", now,
			events.PoolChangedV1{PoolID: "pool_three", VendorOrgID: "org_vendor_three", Region: "ca-west", GPUModels: []string{"l40s-48gb"}, At: now}))
		eventually(t, "organisation and pool projections", func() bool {
			var o orgRow
			var p poolRow
			return db.Where("org_id = ? AND verified = ? AND name = ?", "org_vendor_three", true, "Cariboo Compute").Take(&o).Error == nil &&
				db.Where("pool_id = ?", "pool_three").Take(&p).Error == nil
		})
		v3 := web.Principal{UserID: "usr_v3", OrgID: "org_vendor_three", OrgKind: "vendor", Role: "owner"}

		// A compute listing through review: submitted, changes requested, submitted, approved, published.
		l := e.createListing(v3, computeListing("l40s-time", "pool_three", "l40s-48gb"))
		expect(t, e.do(v3, "POST", "listings/"+l.ID+"/submit", nil), 200, "")
		expect(t, e.do(staff, "POST", "reviews/"+l.PendingVersion.ID+"/decision", map[string]any{"decision": "request_changes", "comment": "Longer maximum?"}), 200, "")
		expect(t, e.do(v3, "POST", "listings/"+l.ID+"/submit", nil), 200, "")
		expect(t, e.do(staff, "POST", "reviews/"+l.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
		eventually(t, "listing events", func() bool {
			return len(rec.listing(events.ListingSubmitted.Name)) == 2 && len(rec.listing(events.ListingChangesRequested.Name)) == 1 &&
				len(rec.listing(events.ListingApproved.Name)) == 1 && len(rec.listing(events.ListingPublished.Name)) == 1
		})
		pub := rec.listing(events.ListingPublished.Name)[0]
		if pub.ListingID != l.ID || pub.VendorOrgID != "org_vendor_three" || pub.Kind != KindCompute || len(pub.Plans) != 1 || pub.Compute == nil {
			t.Fatalf("published event: %+v", pub)
		}
		if c := pub.Compute; c.PoolID != "pool_three" || c.GPUModel != "l40s-48gb" || c.Region != "ca-central" ||
			c.MinDurationMinutes != 15 || c.MaxDurationMinutes != 480 || c.PricePerGPUHour != 2_500_000 || c.PlanID != pub.Plans[0].PlanID {
			t.Fatalf("compute terms: %+v", c)
		}
		if cr := rec.listing(events.ListingChangesRequested.Name)[0]; cr.Comment != "Longer maximum?" || cr.ActorUserID != staff.UserID {
			t.Fatalf("changes_requested event: %+v", cr)
		}
		expect(t, e.do(v3, "POST", "listings/"+l.ID+"/retire", nil), 200, "")
		eventually(t, "retired event", func() bool { return len(rec.listing(events.ListingRetired.Name)) == 1 })

		// Paid orders: placed, then settled or failed by billing, idempotently.
		m := e.publishListing(modelListing("paid-model"), nil)
		paid := m.PublishedVersion.Plans[1]
		order := func() orderJSON {
			r := e.do(smeMember, "POST", "orders", map[string]any{"listing_id": m.ID, "plan_id": paid.ID})
			expect(t, r, 201, "")
			var o orderJSON
			r.JSON(t, &o)
			if o.State != OrderPending || o.AmountMicro != 25_000_000 {
				t.Fatalf("paid order: %+v", o)
			}
			return o
		}
		o1, o2 := order(), order()
		eventually(t, "order.placed events", func() bool { return len(rec.orders()) == 2 })
		if got := rec.orders()[0]; got.OrderID != o1.ID || got.AmountMicro != 25_000_000 || got.VendorOrgID != orgVendor || got.BuyerOrgID != orgSME {
			t.Fatalf("order.placed: %+v", got)
		}
		expect(t, e.do(smeMember, "GET", "artifacts/none/download", nil), 404, "artifact_not_found")
		var ent int64
		must(t, db.Model(&entitlementRow{}).Where("org_id = ? AND listing_id = ?", orgSME, m.ID).Count(&ent).Error)
		if ent != 0 {
			t.Fatal("a pending order grants nothing")
		}
		for i := 0; i < 2; i++ { // the same settlement twice (a redelivery) has one effect
			must(t, eventbus.Publish(ctx, bus, events.OrderSettled, "tamarack/billing", "ev-settle-1", now,
				events.OrderSettledV1{OrderID: o1.ID, TransferID: "tr_1", At: now}))
		}
		must(t, eventbus.Publish(ctx, bus, events.OrderFailed, "tamarack/billing", "ev-fail-2", now,
			events.OrderFailedV1{OrderID: o2.ID, Reason: "insufficient_credits", ShortfallMicro: 5, At: now}))
		eventually(t, "orders settled", func() bool {
			var a, b orderRow
			return db.Where("id = ?", o1.ID).Take(&a).Error == nil && a.State == OrderFulfilled &&
				db.Where("id = ?", o2.ID).Take(&b).Error == nil && b.State == OrderFailed && b.Reason == "insufficient_credits"
		})
		// A late settlement of a failed order changes nothing.
		must(t, e.svc.settleOrder(ctx, "ev-late", "order-settled", o2.ID, true, "", "tr_late"))
		var b orderRow
		must(t, db.Where("id = ?", o2.ID).Take(&b).Error)
		if b.State != OrderFailed {
			t.Fatalf("failed order became %s", b.State)
		}
		must(t, db.Model(&entitlementRow{}).Where("org_id = ? AND listing_id = ?", orgSME, m.ID).Count(&ent).Error)
		if ent != 1 {
			t.Fatalf("entitlements: %d", ent)
		}
		var processed int64
		must(t, db.Table("market_processed").Where("event_id = ?", "order-settled:ev-settle-1").Count(&processed).Error)
		if processed != 1 {
			t.Fatal("settlement not recorded once")
		}
		eventually(t, "outbox drained", func() bool { n, _ := e.svc.Outbox().Pending(ctx); return n == 0 })
	})
}

// TestReviewRules: a vendor cannot review its own listing even as staff; unverified vendors cannot submit;
// a compute listing must sell a pool its vendor owns with the declared GPU model.
func TestReviewRules(t *testing.T) {
	t.Parallel()
	// An unknown pool is waited for PoolWait.
	each(t, Config{PoolWait: 50 * time.Millisecond}, func(t *testing.T, e *env) {
		l := e.createListing(vendorAdmin, modelListing("own"))
		expect(t, e.do(vendorAdmin, "POST", "listings/"+l.ID+"/submit", nil), 200, "")
		staffVendor := web.Principal{UserID: "usr_staff_vendor", OrgID: orgVendor, OrgKind: "vendor", Role: "owner", Staff: true}
		expect(t, e.do(staffVendor, "POST", "reviews/"+l.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 403, "own_listing")
		expect(t, e.do(staff, "POST", "reviews/"+l.PendingVersion.ID+"/decision", map[string]any{"decision": "reject", "comment": "No."}), 200, "")
		expect(t, e.do(staff, "POST", "reviews/"+l.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 409, "version_not_submitted")

		must(t, e.svc.ApplyOrganizationVerified(context.Background(), "unverify", events.OrganizationVerifiedV1{OrganizationID: orgVendor2, Verified: false, At: time.Now()}))
		l2 := e.createListing(otherVendor, modelListing("unverified"))
		expect(t, e.do(otherVendor, "POST", "listings/"+l2.ID+"/submit", nil), 403, "vendor_not_verified")

		c := e.createListing(vendorAdmin, computeListing("foreign-pool", "pool_two", "a100-80gb"))
		expect(t, e.do(vendorAdmin, "POST", "listings/"+c.ID+"/submit", nil), 422, "pool_not_owned")
		c2 := e.createListing(vendorAdmin, computeListing("unknown-pool", "pool_nowhere", "h100-80gb"))
		expect(t, e.do(vendorAdmin, "POST", "listings/"+c2.ID+"/submit", nil), 422, "pool_not_owned")
		c3 := e.createListing(vendorAdmin, computeListing("wrong-gpu", "pool_one", "a100-80gb"))
		expect(t, e.do(vendorAdmin, "POST", "listings/"+c3.ID+"/submit", nil), 422, "pool_gpu_mismatch")
		c4 := e.createListing(vendorAdmin, computeListing("good-pool", "pool_one", "h100-80gb"))
		expect(t, e.do(vendorAdmin, "POST", "listings/"+c4.ID+"/submit", nil), 200, "")
		expect(t, e.do(staff, "POST", "reviews/"+c4.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
		pub := e.do(anon, "GET", "listings/"+c4.ID, nil)
		expect(t, pub, 200, "")
		var cl listingOut
		pub.JSON(t, &cl)
		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": c4.ID, "plan_id": cl.PublishedVersion.Plans[0].ID}), 422, "compute_not_orderable")

		// Gated listings: an order needs approved access; approval grants the entitlement.
		g := modelListing("gated")
		g["gated"] = true
		gl := e.publishListing(g, nil)
		free := gl.PublishedVersion.Plans[0].ID
		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": gl.ID, "plan_id": free}), 403, "access_request_required")
		r := e.do(smeMember, "POST", "listings/"+gl.ID+"/access-requests", map[string]any{"purpose": "Evaluate for a pilot"})
		expect(t, r, 201, "")
		var ar accessRequestJSON
		r.JSON(t, &ar)
		expect(t, e.do(vendorMem, "POST", "access-requests/"+ar.ID+"/decision", map[string]any{"decision": "approve"}), 403, "forbidden")
		expect(t, e.do(vendorAdmin, "POST", "access-requests/"+ar.ID+"/decision", map[string]any{"decision": "approve", "comment": "Welcome"}), 200, "")
		expect(t, e.do(smeMember, "POST", "access-requests/"+ar.ID+"/cancel", nil), 409, "access_request_decided")
		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": gl.ID, "plan_id": free}), 201, "")
		r = e.do(vendorAdmin, "GET", "access-requests", nil)
		if !strings.Contains(string(r.Body), `"state":"approved"`) {
			t.Fatalf("vendor sees the request: %s", r.Body)
		}

		// A listing retired while its version waits cannot be approved afterwards.
		w := e.createListing(vendorAdmin, modelListing("withdrawn"))
		expect(t, e.do(vendorAdmin, "POST", "listings/"+w.ID+"/submit", nil), 200, "")
		expect(t, e.do(vendorAdmin, "POST", "listings/"+w.ID+"/retire", nil), 200, "")
		expect(t, e.do(staff, "POST", "reviews/"+w.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 409, "listing_retired")
	})
}

// TestSubmitWaitsForPoolAnnouncement: a vendor who declares a pool in the testbed and submits a compute listing
// for it at once is not refused because the pool's event is still on its way: Submit waits for it.
func TestSubmitWaitsForPoolAnnouncement(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		c := e.createListing(vendorAdmin, computeListing("fresh-pool", "pool_fresh", "h100-80gb"))
		var once sync.Once
		e.svc.poolWaitHook = func() {
			// The event arrives while Submit waits.
			once.Do(func() {
				must(t, e.svc.ApplyPoolChanged(context.Background(), "p-fresh", events.PoolChangedV1{PoolID: "pool_fresh",
					VendorOrgID: orgVendor, Name: "fresh", Region: "ca-central", GPUModels: []string{"h100-80gb"}, At: time.Now()}))
			})
		}
		expect(t, e.do(vendorAdmin, "POST", "listings/"+c.ID+"/submit", nil), 200, "")
	})
}
