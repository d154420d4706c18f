package identity

import (
	"strings"
	"testing"
	"time"
)

func TestInvitationsAndRoles(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		owner := e.signup("owner@example.com", "Northern GPU Co.", "vendor")
		base := api + "/organizations/" + owner.orgID + "/members"

		// Invite an existing user as admin; the e-mail carries the token, the answer does not.
		bob := e.signup("bob@example.com", "Bob's", "sme")
		r := e.do("POST", base, owner.access, map[string]any{"email": "Bob@Example.com", "role": "admin"})
		want(t, r, 201, "")
		tok := e.inviteToken()
		if strings.Contains(string(r.raw), tok) || e.lastMail().To[0] != "bob@example.com" {
			t.Fatalf("invite answer or mail: %s", r.raw)
		}

		// Someone else signed in cannot use it; Bob can, once.
		eve := e.signup("eve@example.com", "Eve's", "sme")
		want(t, e.do("POST", api+"/invitations/"+tok+"/accept", eve.access, nil), 403, "invitation_email_mismatch")
		acc := e.do("POST", api+"/invitations/"+tok+"/accept", bob.access, nil)
		want(t, acc, 200, "")
		if acc.body["role"] != "admin" || acc.body["organization"].(map[string]any)["id"] != owner.orgID || acc.body["session"] != nil {
			t.Fatalf("accept: %s", acc.raw)
		}
		want(t, e.do("POST", api+"/invitations/"+tok+"/accept", bob.access, nil), 404, "invitation_not_found")
		want(t, e.do("POST", base, owner.access, map[string]any{"email": "bob@example.com", "role": "member"}), 409, "already_member")

		// A newcomer accepts without an account: it is created, with a session.
		want(t, e.do("POST", base, owner.access, map[string]any{"email": "new@example.com", "role": "member"}), 201, "")
		ntok := e.inviteToken()
		want(t, e.do("POST", api+"/invitations/"+ntok+"/accept", "", nil), 422, "validation_failed")
		want(t, e.do("POST", api+"/invitations/"+ntok+"/accept", "", map[string]any{"name": "New", "password": "short"}), 422, "validation_failed")
		n := e.do("POST", api+"/invitations/"+ntok+"/accept", "", map[string]any{"name": "New", "password": testPassword})
		want(t, n, 200, "")
		sess := n.body["session"].(map[string]any)
		me := e.do("GET", api+"/me", sess["access_token"].(string), nil)
		want(t, me, 200, "")
		if me.str("active_organization_id") != owner.orgID {
			t.Fatalf("newcomer: %s", me.raw)
		}
		newcomer := e.login("new@example.com")

		// Expired invitations.
		want(t, e.do("POST", base, owner.access, map[string]any{"email": "late@example.com", "role": "member"}), 201, "")
		ltok := e.inviteToken()
		e.clk.Advance(8 * 24 * time.Hour)
		want(t, e.do("POST", api+"/invitations/"+ltok+"/accept", "", map[string]any{"name": "Late", "password": testPassword}), 410, "invitation_expired")
		e.clk.Advance(-8 * 24 * time.Hour)

		// Listing: admins yes, members no.
		l := e.do("GET", base, owner.access, nil)
		want(t, l, 200, "")
		if len(l.body["items"].([]any)) != 3 {
			t.Fatalf("members: %s", l.raw)
		}
		want(t, e.do("GET", base, newcomer.access, nil), 403, "forbidden")
		page := e.do("GET", base+"?limit=2", owner.access, nil)
		if len(page.body["items"].([]any)) != 2 || page.str("next_cursor") == "" {
			t.Fatalf("page 1: %s", page.raw)
		}
		page2 := e.do("GET", base+"?limit=2&cursor="+page.str("next_cursor"), owner.access, nil)
		if len(page2.body["items"].([]any)) != 1 || page2.str("next_cursor") != "" {
			t.Fatalf("page 2: %s", page2.raw)
		}

		// Roles: an admin cannot grant or take the owner role; the last owner stays.
		bobNow := e.login("bob@example.com", owner.orgID)
		want(t, e.do("POST", base, bobNow.access, map[string]any{"email": "x@example.com", "role": "owner"}), 403, "owners_only")
		want(t, e.do("PATCH", base+"/"+owner.userID, bobNow.access, map[string]any{"role": "member"}), 403, "owners_only")
		want(t, e.do("PATCH", base+"/"+owner.userID, owner.access, map[string]any{"role": "admin"}), 409, "last_owner")
		want(t, e.do("DELETE", base+"/"+owner.userID, owner.access, nil), 409, "last_owner")
		want(t, e.do("PATCH", base+"/"+bob.userID, owner.access, map[string]any{"role": "boss"}), 422, "validation_failed")
		want(t, e.do("PATCH", base+"/nobody", owner.access, map[string]any{"role": "member"}), 404, "member_not_found")
		p := e.do("PATCH", base+"/"+bob.userID, owner.access, map[string]any{"role": "owner"})
		want(t, p, 200, "")
		if p.body["role"] != "owner" {
			t.Fatalf("patch: %s", p.raw)
		}
		// Now two owners: the first may step down.
		want(t, e.do("PATCH", base+"/"+owner.userID, owner.access, map[string]any{"role": "admin"}), 200, "")
		// Removing: a member may leave; an admin removes others.
		want(t, e.do("DELETE", base+"/"+eve.userID, bobNow.access, nil), 404, "member_not_found")
		newcomerID := me.body["user"].(map[string]any)["id"].(string)
		want(t, e.do("DELETE", base+"/"+newcomerID, newcomer.access, nil), 204, "")
		want(t, e.do("GET", base, newcomer.access, nil), 404, "organization_not_found") // no longer a member

		// Every step is in the organisation's audit log.
		au := e.do("GET", api+"/audit?limit=200", bobNow.access, nil)
		want(t, au, 200, "")
		seen := map[string]bool{}
		for _, it := range au.body["items"].([]any) {
			seen[it.(map[string]any)["action"].(string)] = true
		}
		for _, a := range []string{AuditMemberInvited, AuditInvitationAccepted, AuditRoleChanged, AuditMemberRemoved, AuditSignup} {
			if !seen[a] {
				t.Errorf("audit lacks %s: %v", a, seen)
			}
		}
	})
}

// TestTenancy: another organisation's members, tokens and audit answer 404 like missing ones.
func TestTenancy(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("a@example.com", "A", "sme")
		b := e.signup("b@example.com", "B", "vendor")
		bt := e.do("POST", api+"/tokens", b.access, map[string]any{"name": "ci", "scopes": []string{"read"},
			"expires_at": e.clk.Now().Add(time.Hour).Format(time.RFC3339)})
		want(t, bt, 201, "")
		bTokenID := bt.str("id")

		for _, c := range []struct{ method, path string }{
			{"GET", api + "/organizations/" + b.orgID + "/members"},
			{"POST", api + "/organizations/" + b.orgID + "/members"},
			{"PATCH", api + "/organizations/" + b.orgID + "/members/" + b.userID},
			{"DELETE", api + "/organizations/" + b.orgID + "/members/" + b.userID},
			{"GET", api + "/organizations/missing/members"},
			{"GET", api + "/audit?organization_id=" + b.orgID},
		} {
			var body any
			if c.method == "POST" {
				body = map[string]any{"email": "x@example.com", "role": "member"}
			} else if c.method == "PATCH" {
				body = map[string]any{"role": "member"}
			}
			want(t, e.do(c.method, c.path, a.access, body), 404, "organization_not_found")
		}
		want(t, e.do("DELETE", api+"/tokens/"+bTokenID, a.access, nil), 404, "token_not_found")
		want(t, e.do("DELETE", api+"/tokens/missing", a.access, nil), 404, "token_not_found")
		l := e.do("GET", api+"/tokens", a.access, nil)
		if len(l.body["items"].([]any)) != 0 {
			t.Fatalf("a sees b's tokens: %s", l.raw)
		}
		au := e.do("GET", api+"/audit", a.access, nil)
		for _, it := range au.body["items"].([]any) {
			if it.(map[string]any)["organization_id"] != a.orgID {
				t.Fatalf("a sees another organisation's audit: %s", au.raw)
			}
		}
		// Staff-only routes.
		want(t, e.do("GET", api+"/organizations", a.access, nil), 403, "forbidden")
		want(t, e.do("POST", api+"/organizations/"+b.orgID+"/verify", a.access, map[string]any{"verified": true}), 403, "forbidden")
	})
}

func TestInviteMailFailure(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("a@example.com", "A", "sme")
		e.mail.Fail = true
		want(t, e.do("POST", api+"/organizations/"+a.orgID+"/members", a.access, map[string]any{"email": "x@example.com", "role": "member"}), 502, "mail_failed")
	})
}
