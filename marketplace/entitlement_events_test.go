package marketplace

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

// grantsInOutbox returns the entitlement.granted events waiting in the outbox, by event ID.
func grantsInOutbox(t testing.TB, db *gorm.DB) map[string]events.EntitlementChangedV1 {
	t.Helper()
	var rows []struct{ ID, Payload string }
	must(t, db.Table("market_outbox").Select("id, payload").Where("subject = ?", events.EntitlementGranted.Name).Find(&rows).Error)
	out := map[string]events.EntitlementChangedV1{}
	for _, r := range rows {
		var ev events.EntitlementChangedV1
		must(t, json.Unmarshal([]byte(r.Payload), &ev))
		out[r.ID] = ev
	}
	return out
}

// gatedCompute publishes a gated compute listing of pool_one.
func (e *env) gatedCompute(slug string) listingOut {
	e.t.Helper()
	body := computeListing(slug, "pool_one", "h100-80gb")
	body["gated"] = true
	return e.publishListing(body, nil)
}

// approveAccess has smeMember ask for access to l and vendorAdmin approve it; it returns the request.
func (e *env) approveAccess(l listingOut) accessRequestJSON {
	e.t.Helper()
	r := e.do(smeMember, "POST", "listings/"+l.ID+"/access-requests", map[string]any{"purpose": "Fine-tune a model"})
	expect(e.t, r, 201, "")
	var ar accessRequestJSON
	r.JSON(e.t, &ar)
	expect(e.t, e.do(vendorAdmin, "POST", "access-requests/"+ar.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
	return ar
}

// TestEntitlementEventsInOutbox: a gated compute listing's published event says it is gated; every way an
// entitlement is granted (access-request approval, free order, paid order settled by billing) writes one
// entitlement.granted event in the same transaction, named after what granted it; a denial, a pending paid
// order and a redelivered settlement write none.
func TestEntitlementEventsInOutbox(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		e := newEnv(t, db, Config{})
		g := e.gatedCompute("gated-h100")
		open := e.publishListing(computeListing("open-h100", "pool_one", "h100-80gb"), nil)
		var payloads []string
		must(t, db.Table("market_outbox").Where("subject = ?", events.ListingPublished.Name).Pluck("payload", &payloads).Error)
		gated := map[string]bool{}
		for _, p := range payloads {
			var ev events.ListingChangedV1
			must(t, json.Unmarshal([]byte(p), &ev))
			if ev.Compute == nil {
				t.Fatalf("compute listing published without compute terms: %+v", ev)
			}
			gated[ev.ListingID] = ev.Compute.Gated
		}
		if !gated[g.ID] || gated[open.ID] {
			t.Fatalf("gated flags on published events: %v", gated)
		}

		// A denied request grants nothing.
		r := e.do(smeMember, "POST", "listings/"+g.ID+"/access-requests", map[string]any{"purpose": "Try it"})
		expect(t, r, 201, "")
		var denied accessRequestJSON
		r.JSON(t, &denied)
		expect(t, e.do(vendorAdmin, "POST", "access-requests/"+denied.ID+"/decision", map[string]any{"decision": "deny"}), 200, "")
		if got := grantsInOutbox(t, db); len(got) != 0 {
			t.Fatalf("denial granted: %+v", got)
		}

		// Approval: one event naming the entitlement row.
		ar := e.approveAccess(g)
		var ent entitlementRow
		must(t, db.Where("org_id = ? AND listing_id = ?", orgSME, g.ID).Take(&ent).Error)
		got := grantsInOutbox(t, db)
		ev, ok := got["evt_ent_granted_"+ar.ID]
		if len(got) != 1 || !ok {
			t.Fatalf("grants after approval: %+v", got)
		}
		if ev.EntitlementID != ent.ID || ev.ListingID != g.ID || ev.OrganizationID != orgSME || ev.VendorOrgID != orgVendor ||
			ev.Source != "access_request" || ev.SourceID != ar.ID || ev.ExpiresAt != nil || ev.At.IsZero() {
			t.Fatalf("granted event %+v (entitlement %+v)", ev, ent)
		}

		// A second approval (the upsert path) announces the same entitlement again, under its own event ID.
		ar2 := e.approveAccess(g)
		if ev2, ok := grantsInOutbox(t, db)["evt_ent_granted_"+ar2.ID]; !ok || ev2.EntitlementID != ent.ID || ev2.SourceID != ar2.ID || ev2.ExpiresAt != nil {
			t.Fatalf("second approval's grant: %+v (entitlement %s)", ev2, ent.ID)
		}

		// A free order: granted at once.
		m := e.publishListing(modelListing("free-model"), nil)
		r = e.do(smeMember, "POST", "orders", map[string]any{"listing_id": m.ID, "plan_id": m.PublishedVersion.Plans[0].ID})
		expect(t, r, 201, "")
		var free orderJSON
		r.JSON(t, &free)
		if ev, ok := grantsInOutbox(t, db)["evt_ent_granted_"+free.ID]; !ok || ev.ListingID != m.ID || ev.Source != "order" || ev.SourceID != free.ID {
			t.Fatalf("free order's grant: %+v", ev)
		}

		// A paid order: nothing until billing settles it; a redelivered settlement adds nothing.
		p := e.publishListing(modelListing("paid-model"), nil)
		r = e.do(smeMember, "POST", "orders", map[string]any{"listing_id": p.ID, "plan_id": p.PublishedVersion.Plans[1].ID})
		expect(t, r, 201, "")
		var paid orderJSON
		r.JSON(t, &paid)
		if _, ok := grantsInOutbox(t, db)["evt_ent_granted_"+paid.ID]; ok {
			t.Fatal("a pending order granted")
		}
		for range 2 {
			must(t, e.svc.settleOrder(ctx, "ev-settled-"+paid.ID, "order-settled", paid.ID, true, "", "tr_1"))
		}
		got = grantsInOutbox(t, db)
		if ev, ok := got["evt_ent_granted_"+paid.ID]; !ok || ev.ListingID != p.ID || ev.OrganizationID != orgSME {
			t.Fatalf("settled order's grant: %+v", ev)
		}
		if len(got) != 4 {
			t.Fatalf("%d grants, want 4: %+v", len(got), got)
		}
	})
}

// TestEntitlementEventsThroughJetStream: approval of an access request to a gated compute listing and a free
// order reach JetStream as entitlement.granted, with the gated flag on the listing's published event.
func TestEntitlementEventsThroughJetStream(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		db := dbtest.Open(t, sqldb.SQLite, migrations()...)
		e := newEnvBus(t, db, bus, Config{})
		ctx := e.run(t)

		var mu sync.Mutex
		grants := map[string]events.EntitlementChangedV1{} // by listing (IDs are new each run; the server's stream is not)
		gated := map[string]bool{}
		durable := "test-entitlement-granted"
		go func() {
			_ = eventbus.Consume(ctx, bus, events.EntitlementGranted, eventbus.ConsumeOptions{Durable: durable, IdleWait: 100 * time.Millisecond},
				func(_ context.Context, ev eventbus.Event[events.EntitlementChangedV1]) error {
					mu.Lock()
					grants[ev.Data.ListingID] = ev.Data
					mu.Unlock()
					return nil
				})
		}()
		go func() {
			_ = eventbus.Consume(ctx, bus, events.ListingPublished, eventbus.ConsumeOptions{Durable: durable + "-pub", IdleWait: 100 * time.Millisecond},
				func(_ context.Context, ev eventbus.Event[events.ListingChangedV1]) error {
					mu.Lock()
					gated[ev.Data.ListingID] = ev.Data.Compute != nil && ev.Data.Compute.Gated
					mu.Unlock()
					return nil
				})
		}()

		g := e.gatedCompute("gated-js")
		ar := e.approveAccess(g)
		m := e.publishListing(modelListing("free-js"), nil)
		expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": m.ID, "plan_id": m.PublishedVersion.Plans[0].ID}), 201, "")
		eventually(t, "entitlement.granted events", func() bool {
			mu.Lock()
			defer mu.Unlock()
			_, a := grants[g.ID]
			_, b := grants[m.ID]
			return a && b && gated[g.ID]
		})
		mu.Lock()
		ev := grants[g.ID]
		mu.Unlock()
		if ev.OrganizationID != orgSME || ev.Source != "access_request" || ev.SourceID != ar.ID {
			t.Fatalf("granted event %+v", ev)
		}
		eventually(t, "outbox drained", func() bool { n, _ := e.svc.Outbox().Pending(ctx); return n == 0 })
	})
}
