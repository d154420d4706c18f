package marketplace

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// TestConcurrentDecisions: staff racing on one submitted version publish it exactly once; buyers racing on a
// free plan end with one entitlement per organisation; every loser gets a clean problem.
func TestConcurrentDecisions(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		in := CreateListingInput{Kind: KindModel, Slug: "race", Content: Content{Title: "Race", License: License{SPDX: "MIT"},
			Model: &ModelDetails{Framework: "jax", Task: "vision"}, Plans: []Plan{{Name: "Free", Kind: PlanFree}}}}
		l, err := e.svc.CreateListing(ctx, vendorAdmin, in)
		must(t, err)
		_, err = e.svc.Submit(ctx, vendorAdmin, l.Listing.ID)
		must(t, err)

		const n = 6
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := Decision{Decision: "approve"}
				if i%2 == 1 {
					d = Decision{Decision: "reject", Comment: "no"}
				}
				_, errs[i] = e.svc.Decide(ctx, web.Principal{UserID: "staff-" + string(rune('a'+i)), OrgID: orgProgramme, Staff: true}, l.Pending.Row.ID, d)
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrNotSubmitted):
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d decisions won", wins)
		}
		var decided int64
		must(t, e.db.Table("market_audit").Where("listing_id = ?", l.Listing.ID).Count(&decided).Error)
		if decided != 1 {
			t.Fatalf("%d audit entries", decided)
		}
		view, err := e.svc.Listing(ctx, staff, l.Listing.ID)
		must(t, err)
		if view.Listing.Status == StatusPublished {
			var outbox int64
			must(t, e.db.Table("market_outbox").Where("subject = ?", "tamarack.marketplace.listing.published.v1").Count(&outbox).Error)
			if outbox != 1 {
				t.Fatalf("%d published events", outbox)
			}
			plan := view.Published.Content.Plans[0].ID
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := e.svc.PlaceOrder(ctx, smeMember, OrderInput{ListingID: l.Listing.ID, PlanID: plan})
					if err != nil {
						if _, ok := problem.From(err); !ok {
							t.Errorf("order: %v", err)
						}
					}
				}()
			}
			wg.Wait()
			if c := count(t, e.db, "market_entitlements"); c != 1 {
				t.Fatalf("%d entitlements", c)
			}
		}
	})
}

// TestSubscriptionEntitlements: a settled subscription entitles for its months; a second one extends from the
// end of the first; a one-time purchase makes it perpetual and a later subscription never shortens it.
func TestSubscriptionEntitlements(t *testing.T) {
	t.Parallel()
	each(t, Config{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		m := modelListing("subscribed")
		m["plans"] = []map[string]any{{"name": "Monthly", "kind": "subscription", "price_micro": 1_000_000},
			{"name": "Forever", "kind": "one_time", "price_micro": 9_000_000}}
		l := e.publishListing(m, nil)
		monthly, forever := l.PublishedVersion.Plans[0].ID, l.PublishedVersion.Plans[1].ID
		expires := func() *time.Time {
			var ent entitlementRow
			must(t, e.db.Where("org_id = ? AND listing_id = ?", orgSME, l.ID).Take(&ent).Error)
			return ent.ExpiresAt
		}
		buy := func(plan string, qty int, event string) {
			o, err := e.svc.PlaceOrder(ctx, smeMember, OrderInput{ListingID: l.ID, PlanID: plan, Quantity: qty})
			must(t, err)
			if plan == monthly && o.AmountMicro != int64(qty)*1_000_000 {
				t.Fatalf("amount %d for %d months", o.AmountMicro, qty)
			}
			must(t, e.svc.settleOrder(ctx, event, "order-settled", o.ID, true, "", "tr"))
		}
		now := e.clock.Now()
		buy(monthly, 2, "s1")
		if got := expires(); got == nil || got.Sub(now.AddDate(0, 2, 0)).Abs() > time.Millisecond {
			t.Fatalf("after 2 months: %v", got)
		}
		buy(monthly, 1, "s2")
		if got := expires(); got == nil || got.Sub(now.AddDate(0, 3, 0)).Abs() > time.Millisecond {
			t.Fatalf("after 2+1 months: %v", got)
		}
		buy(forever, 1, "s3")
		buy(monthly, 1, "s4")
		if got := expires(); got != nil {
			t.Fatalf("perpetual entitlement shortened to %v", got)
		}
	})
}
