package marketplace

import (
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// fixture is a small marketplace: a published model with an artifact (the SME is entitled and has reviewed
// it), a draft, a submitted version waiting for review, a gated published dataset with the SME's pending
// access request, and the SME's order.
type fixture struct {
	pub, draft, gated, artifact, queued, order, access string
	freePlan                                           string
}

func (e *env) fixture(n int) fixture {
	e.t.Helper()
	var f fixture
	pub := e.publishListing(modelListing(fmt.Sprintf("pub-%d", n)), map[string]string{"weights.bin": "0123456789"})
	f.pub, f.artifact, f.freePlan = pub.ID, pub.PublishedVersion.Artifacts[0].ID, pub.PublishedVersion.Plans[0].ID
	f.draft = e.createListing(vendorAdmin, modelListing(fmt.Sprintf("draft-%d", n))).ID
	q := e.createListing(vendorAdmin, modelListing(fmt.Sprintf("queued-%d", n)))
	expect(e.t, e.do(vendorAdmin, "POST", "listings/"+q.ID+"/submit", nil), 200, "")
	f.queued = q.PendingVersion.ID
	gated := modelListing(fmt.Sprintf("gated-%d", n))
	gated["gated"] = true
	f.gated = e.publishListing(gated, nil).ID
	r := e.do(smeMember, "POST", "orders", map[string]any{"listing_id": f.pub, "plan_id": f.freePlan})
	expect(e.t, r, 201, "")
	var o orderJSON
	r.JSON(e.t, &o)
	f.order = o.ID
	expect(e.t, e.do(smeMember, "POST", "listings/"+f.pub+"/reviews", map[string]any{"stars": 3}), 201, "")
	r = e.do(smeMember, "POST", "listings/"+f.gated+"/access-requests", map[string]any{"purpose": "research"})
	expect(e.t, r, 201, "")
	var ar accessRequestJSON
	r.JSON(e.t, &ar)
	f.access = ar.ID
	return f
}

// TestAuthorizationMatrix calls every marketplace route as each persona on a fresh fixture and checks the
// status: anonymous, SME member, member of another vendor, the owning vendor's admin, programme staff.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	personas := []struct {
		name string
		a    web.Principal
	}{{"anonymous", anon}, {"sme", smeMember}, {"other_vendor", otherVendor}, {"owner_admin", vendorAdmin}, {"staff", staff}}
	type route struct {
		method, path string
		body         func(f fixture, n int) any
		want         [5]int // by persona, in the order above
	}
	newListing := func(_ fixture, n int) any { return modelListing(fmt.Sprintf("new-%d", n)) }
	routes := []route{
		{"GET", "listings", nil, [5]int{200, 200, 200, 200, 200}},
		{"POST", "listings", newListing, [5]int{401, 403, 201, 201, 403}},
		{"GET", "listings/{pub}", nil, [5]int{200, 200, 200, 200, 200}},
		{"GET", "listings/{draft}", nil, [5]int{404, 404, 404, 200, 200}},
		{"PATCH", "listings/{draft}", func(fixture, int) any { return map[string]any{"title": "New title"} }, [5]int{401, 404, 404, 200, 403}},
		{"GET", "listings/{pub}/versions", nil, [5]int{401, 403, 403, 200, 200}},
		{"POST", "listings/{pub}/versions", nil, [5]int{401, 403, 403, 201, 403}},
		{"PUT", "listings/{draft}/versions/1/artifacts/data.bin", func(fixture, int) any { return []byte("abc") }, [5]int{401, 404, 404, 201, 403}},
		{"POST", "listings/{draft}/submit", nil, [5]int{401, 404, 404, 200, 403}},
		{"POST", "listings/{pub}/retire", nil, [5]int{401, 403, 403, 200, 403}},
		{"POST", "listings/{pub}/suspend", func(fixture, int) any { return map[string]any{"reason": "spam"} }, [5]int{401, 403, 403, 403, 200}},
		{"GET", "listings/{pub}/reviews", nil, [5]int{200, 200, 200, 200, 200}},
		{"POST", "listings/{pub}/reviews", func(fixture, int) any { return map[string]any{"stars": 5} }, [5]int{401, 409, 403, 403, 403}},
		{"PATCH", "listings/{pub}/reviews", func(fixture, int) any { return map[string]any{"stars": 5} }, [5]int{401, 200, 404, 404, 404}},
		{"POST", "listings/{gated}/access-requests", func(fixture, int) any { return map[string]any{"purpose": "evaluation"} }, [5]int{401, 409, 201, 403, 201}},
		{"GET", "my/listings", nil, [5]int{401, 403, 200, 200, 403}},
		{"GET", "reviews", nil, [5]int{401, 403, 403, 403, 200}},
		{"POST", "reviews/{queued}/decision", func(fixture, int) any { return map[string]any{"decision": "approve"} }, [5]int{401, 403, 403, 403, 200}},
		{"GET", "audit", nil, [5]int{401, 403, 403, 403, 200}},
		{"POST", "orders", func(f fixture, _ int) any { return map[string]any{"listing_id": f.pub, "plan_id": f.freePlan} }, [5]int{401, 201, 201, 403, 201}},
		{"GET", "orders", nil, [5]int{401, 200, 200, 200, 200}},
		{"GET", "orders/{order}", nil, [5]int{401, 200, 404, 200, 404}},
		{"GET", "access-requests", nil, [5]int{401, 200, 200, 200, 200}},
		{"POST", "access-requests/{access}/decision", func(fixture, int) any { return map[string]any{"decision": "approve"} }, [5]int{401, 404, 404, 200, 404}},
		{"POST", "access-requests/{access}/cancel", nil, [5]int{401, 200, 404, 404, 404}},
		{"GET", "entitlements", nil, [5]int{401, 200, 200, 200, 200}},
		{"GET", "artifacts/{artifact}/download", nil, [5]int{401, 302, 404, 302, 302}},
		{"GET", "artifacts/{artifact}/blob?exp=9999999999&org=x&g=e&sig=forged", nil, [5]int{403, 403, 403, 403, 403}},
	}
	each(t, Config{}, func(t *testing.T, e *env) {
		n := 0
		for _, rt := range routes {
			for i, p := range personas {
				n++
				f := e.fixture(n)
				path := rt.path
				for k, v := range map[string]string{"{pub}": f.pub, "{draft}": f.draft, "{gated}": f.gated, "{queued}": f.queued,
					"{order}": f.order, "{access}": f.access, "{artifact}": f.artifact} {
					path = strings.ReplaceAll(path, k, v)
				}
				var body any
				if rt.body != nil {
					body = rt.body(f, n)
				}
				r := e.do(p.a, rt.method, path, body)
				if r.Status != rt.want[i] {
					t.Errorf("%s %s as %s: got %d (%s), want %d", rt.method, rt.path, p.name, r.Status, r.Code(), rt.want[i])
				}
			}
		}
	})
}

// TestNoOrganisationCreatesNothing: a signed-in caller acting for no organisation (a new account, staff outside
// one) may not order or ask for access: 403 forbidden, and no order or access request of no organisation is
// recorded (an order answered 500, an access request was recorded for the vendor to review).
func TestNoOrganisationCreatesNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, Config{})
		f := e.fixture(1)
		for _, lone := range []web.Principal{{UserID: "usr_lone", Role: "admin", EmailVerified: true}, {UserID: "usr_host", Staff: true, EmailVerified: true}} {
			expect(t, e.do(lone, "POST", "orders", map[string]any{"listing_id": f.pub, "plan_id": f.freePlan}), 403, "forbidden")
			expect(t, e.do(lone, "POST", "listings/"+f.gated+"/access-requests", map[string]any{"purpose": "research"}), 403, "forbidden")
		}
		for _, q := range []struct {
			model  any
			column string
		}{{&orderRow{}, "buyer_org_id"}, {&accessRequestRow{}, "org_id"}} {
			var n int64
			must(t, db.Model(q.model).Where(q.column+" = ?", "").Count(&n).Error)
			if n != 0 {
				t.Fatalf("%d %T rows of no organisation", n, q.model)
			}
		}
	})
}
