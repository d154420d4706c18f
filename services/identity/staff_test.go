package identity

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

func TestStaffOrganizationsAndVerification(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		st := e.staff()
		for i := 0; i < 3; i++ {
			e.signup(fmt.Sprintf("v%d@example.com", i), fmt.Sprintf("Vendor %d", i), "vendor")
		}
		sme := e.signup("sme@example.com", "Maple Robotics", "sme")

		all := e.do("GET", api+"/organizations", st.access, nil)
		want(t, all, 200, "")
		if n := len(all.body["items"].([]any)); n != 5 { // + the programme
			t.Fatalf("organisations: %d", n)
		}
		vendors := e.do("GET", api+"/organizations?kind=vendor&limit=2", st.access, nil)
		if len(vendors.body["items"].([]any)) != 2 || vendors.str("next_cursor") == "" {
			t.Fatalf("vendors page 1: %s", vendors.raw)
		}
		rest := e.do("GET", api+"/organizations?kind=vendor&limit=2&cursor="+vendors.str("next_cursor"), st.access, nil)
		if len(rest.body["items"].([]any)) != 1 || rest.str("next_cursor") != "" {
			t.Fatalf("vendors page 2: %s", rest.raw)
		}

		v := e.do("POST", api+"/organizations/"+sme.orgID+"/verify", st.access, map[string]any{"verified": true, "note": "Canadian-owned, checked"})
		want(t, v, 200, "")
		if v.body["verified"] != true || v.body["verification_note"] != "Canadian-owned, checked" {
			t.Fatalf("verify: %s", v.raw)
		}
		want(t, e.do("POST", api+"/organizations/missing/verify", st.access, map[string]any{"verified": true}), 404, "organization_not_found")
		// Un-verify, then verify with an empty body (the web UI's button).
		want(t, e.do("POST", api+"/organizations/"+sme.orgID+"/verify", st.access, map[string]any{"verified": false, "note": "oops"}), 200, "")
		ev := e.do("POST", api+"/organizations/"+sme.orgID+"/verify", st.access, nil)
		want(t, ev, 200, "")
		if ev.body["verified"] != true {
			t.Fatalf("empty-body verify: %s", ev.raw)
		}
		ver := e.do("GET", api+"/organizations?verified=true", st.access, nil)
		if n := len(ver.body["items"].([]any)); n != 2 { // programme + sme
			t.Fatalf("verified filter: %s", ver.raw)
		}
		// The SME's next session shows it verified.
		me := e.do("GET", api+"/me", e.login("sme@example.com").access, nil)
		if me.body["memberships"].([]any)[0].(map[string]any)["organization"].(map[string]any)["verified"] != true {
			t.Fatalf("me after verify: %s", me.raw)
		}

		// Staff read every audit entry and filter them.
		au := e.do("GET", api+"/audit?action=organization_verified&limit=1", st.access, nil)
		want(t, au, 200, "")
		items := au.body["items"].([]any)
		if d, _ := items[0].(map[string]any)["detail"].(map[string]any); d["verified"] != true || d["note"] != "" {
			t.Fatalf("audit detail: %s", au.raw)
		}
		if len(items) != 1 || items[0].(map[string]any)["actor_id"] != st.userID || items[0].(map[string]any)["organization_id"] != sme.orgID {
			t.Fatalf("audit: %s", au.raw)
		}
		// Pagination, newest first.
		p1 := e.do("GET", api+"/audit?limit=3", st.access, nil)
		p2 := e.do("GET", api+"/audit?limit=3&cursor="+p1.str("next_cursor"), st.access, nil)
		a1 := p1.body["items"].([]any)
		a2 := p2.body["items"].([]any)
		if len(a1) != 3 || len(a2) == 0 || a1[2].(map[string]any)["id"].(string) <= a2[0].(map[string]any)["id"].(string) {
			t.Fatalf("audit pages: %s / %s", p1.raw, p2.raw)
		}
		// Staff read another organisation's members.
		want(t, e.do("GET", api+"/organizations/"+sme.orgID+"/members", st.access, nil), 200, "")
	})
}

func TestPromote(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("p@example.com", "Org", "partner")
		want(t, e.do("GET", api+"/organizations", a.access, nil), 403, "forbidden")
		if _, err := e.svc.Promote(t.Context(), "P@example.com", "cli"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Promote(t.Context(), "nobody@example.com", "cli"); problemCode(err) != "user_not_found" {
			t.Fatalf("promote unknown: %v", err)
		}
		pwd := e.login("p@example.com")
		want(t, e.do("GET", api+"/organizations", pwd.access, nil), 403, "mfa_required") // staff act with MFA only
		secret, _ := e.enrolMFA(pwd.access)
		want(t, e.do("GET", api+"/organizations", e.loginMFA("p@example.com", secret).access, nil), 200, "")
		entries, _ := e.svc.Audit(t.Context(), Actor{Principal: web.Principal{Staff: true}}, AuditFilter{Action: AuditUserPromoted, Limit: 5})
		if len(entries) != 1 {
			t.Fatalf("promotion not audited: %+v", entries)
		}
	})
}

func TestAuditIsAppendOnly(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		e.signup("x@example.com", "Org", "sme")
		if err := e.db.Model(&AuditEntry{}).Where("1 = 1").Update("action", "nothing").Error; err == nil {
			t.Fatal("audit rows can be updated")
		}
		if err := e.db.Where("1 = 1").Delete(&AuditEntry{}).Error; err == nil {
			t.Fatal("audit rows can be deleted")
		}
	})
}

func TestSeedIsIdempotent(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		d := DemoAccount{Email: "sme@tamarack.demo", Name: "Sam", Password: testPassword, OrgName: "Maple Robotics", OrgKind: KindSME, Verified: true}
		u1, o1, err := e.svc.EnsureDemo(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		u2, o2, err := e.svc.EnsureDemo(t.Context(), d)
		if err != nil || u1 != u2 || o1 != o2 {
			t.Fatalf("second seed: %v %s/%s %s/%s", err, u1, u2, o1, o2)
		}
		var n int64
		e.db.Model(&Organization{}).Count(&n)
		if n != 1 {
			t.Fatalf("%d organisations after two seeds", n)
		}
		want(t, e.do("POST", api+"/login", "", map[string]any{"email": d.Email, "password": testPassword}), 200, "")
	})
}

// TestEvents: sign-up, invitation acceptance, role changes and verification reach JetStream through the
// outbox, on the embedded server and (when configured) the real one.
func TestEvents(t *testing.T) {
	t.Parallel()
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
			ctx := t.Context()
			if err := bus.EnsureStreams(ctx, events.IdentityStream); err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, db, opts{bus: bus})
			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.svc.Run(runCtx) }()
			defer func() { stop(); <-done }()

			var mu sync.Mutex
			var allCreated []events.OrganizationCreatedV1
			var allChanged []events.MembershipChangedV1
			var allVerified []events.OrganizationVerifiedV1
			suffix := newID()[24:] // a fresh durable per subtest: the bus is shared by both databases
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				_ = eventbus.Consume(cctx, bus, events.OrganizationCreated, eventbus.ConsumeOptions{Durable: "t-created-" + suffix},
					func(_ context.Context, ev eventbus.Event[events.OrganizationCreatedV1]) error {
						mu.Lock()
						allCreated = append(allCreated, ev.Data)
						mu.Unlock()
						return nil
					})
			}()
			go func() {
				_ = eventbus.Consume(cctx, bus, events.MembershipChanged, eventbus.ConsumeOptions{Durable: "t-changed-" + suffix},
					func(_ context.Context, ev eventbus.Event[events.MembershipChangedV1]) error {
						mu.Lock()
						allChanged = append(allChanged, ev.Data)
						mu.Unlock()
						return nil
					})
			}()
			go func() {
				_ = eventbus.Consume(cctx, bus, events.OrganizationVerified, eventbus.ConsumeOptions{Durable: "t-verified-" + suffix},
					func(_ context.Context, ev eventbus.Event[events.OrganizationVerifiedV1]) error {
						mu.Lock()
						allVerified = append(allVerified, ev.Data)
						mu.Unlock()
						return nil
					})
			}()

			st := e.staff() // programme org: created + owner added
			a := e.signup("owner@example.com", "Vendor", "vendor")
			want(t, e.do("POST", api+"/organizations/"+a.orgID+"/members", a.access, map[string]any{"email": "m@example.com", "role": "member"}), 201, "")
			acc := e.do("POST", api+"/invitations/"+e.inviteToken()+"/accept", "", map[string]any{"name": "M", "password": testPassword})
			want(t, acc, 200, "")
			mID := e.do("GET", api+"/me", acc.body["session"].(map[string]any)["access_token"].(string), nil).body["user"].(map[string]any)["id"].(string)
			want(t, e.do("PATCH", api+"/organizations/"+a.orgID+"/members/"+mID, a.access, map[string]any{"role": "admin"}), 200, "")
			want(t, e.do("DELETE", api+"/organizations/"+a.orgID+"/members/"+mID, a.access, nil), 204, "")
			want(t, e.do("POST", api+"/organizations/"+a.orgID+"/verify", st.access, map[string]any{"verified": true}), 200, "")

			// The stream may hold events of the other database's run: keep this run's organisations only.
			mine := map[string]bool{st.orgID: true, a.orgID: true}
			filter := func() (c []events.OrganizationCreatedV1, m []events.MembershipChangedV1, v []events.OrganizationVerifiedV1) {
				mu.Lock()
				defer mu.Unlock()
				for _, x := range allCreated {
					if mine[x.OrganizationID] {
						c = append(c, x)
					}
				}
				for _, x := range allChanged {
					if mine[x.OrganizationID] {
						m = append(m, x)
					}
				}
				for _, x := range allVerified {
					if mine[x.OrganizationID] {
						v = append(v, x)
					}
				}
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			var (
				created  []events.OrganizationCreatedV1
				changed  []events.MembershipChangedV1
				verified []events.OrganizationVerifiedV1
			)
			for {
				created, changed, verified = filter()
				if len(created) == 2 && len(changed) == 5 && len(verified) >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("events: created %d, changed %d, verified %d", len(created), len(changed), len(verified))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if created[1].OrganizationID != a.orgID || created[1].Kind != "vendor" || created[1].OwnerUserID != a.userID {
				t.Fatalf("created: %+v", created[1])
			}
			var kinds []string
			for _, c := range changed {
				kinds = append(kinds, c.Change+":"+c.Role)
			}
			if fmt.Sprint(kinds) != "[added:owner added:owner added:member role_changed:admin removed:]" {
				t.Fatalf("membership changes: %v", kinds)
			}
			last := verified[len(verified)-1]
			if last.OrganizationID != a.orgID || !last.Verified || last.ByUserID != st.userID {
				t.Fatalf("verified: %+v", last)
			}
		})
	})
}
