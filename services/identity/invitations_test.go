package identity

import (
	"testing"
	"time"
)

// TestInvitationManagement: admins list invitations with their state (paginated, filtered), resend one (the
// old token stops working) and revoke one; members may not; the account made by accepting is verified.
func TestInvitationManagement(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		owner := e.signup("owner@example.com", "Invite Org", "vendor")
		members := api + "/organizations/" + owner.orgID + "/members"
		base := api + "/organizations/" + owner.orgID + "/invitations"
		invite := func(email, role string) (id, token string) {
			t.Helper()
			r := e.do("POST", members, owner.access, map[string]any{"email": email, "role": role})
			want(t, r, 201, "")
			return r.str("id"), e.inviteToken()
		}
		aID, aTok := invite("a@example.com", "member")
		bID, bTok := invite("b@example.com", "admin")
		_, cTok := invite("c@example.com", "member")

		l := e.do("GET", base+"?limit=2", owner.access, nil)
		want(t, l, 200, "")
		items := l.body["items"].([]any)
		if len(items) != 2 || l.str("next_cursor") == "" || items[0].(map[string]any)["state"] != "pending" {
			t.Fatalf("page 1: %s", l.raw)
		}
		l2 := e.do("GET", base+"?limit=2&cursor="+l.str("next_cursor"), owner.access, nil)
		if len(l2.body["items"].([]any)) != 1 || l2.str("next_cursor") != "" {
			t.Fatalf("page 2: %s", l2.raw)
		}
		want(t, e.do("GET", base+"?state=nope", owner.access, nil), 422, "validation_failed")

		// Resend: a new token in a new mail; the old one is dead.
		r := e.do("POST", base+"/"+aID+"/resend", owner.access, nil)
		want(t, r, 200, "")
		aNew := e.inviteToken()
		if aNew == aTok || r.str("state") != "pending" || e.lastMail().To[0] != "a@example.com" {
			t.Fatalf("resend: %s", r.raw)
		}
		want(t, e.do("POST", api+"/invitations/"+aTok+"/accept", "", map[string]any{"name": "A", "password": testPassword}), 404, "invitation_not_found")

		// Revoke: the token is dead, the row stays as revoked; revoking twice is a conflict.
		want(t, e.do("DELETE", base+"/"+bID, owner.access, nil), 204, "")
		want(t, e.do("DELETE", base+"/"+bID, owner.access, nil), 409, "invitation_not_pending")
		want(t, e.do("POST", base+"/"+bID+"/resend", owner.access, nil), 409, "invitation_not_pending")
		want(t, e.do("POST", api+"/invitations/"+bTok+"/accept", "", map[string]any{"name": "B", "password": testPassword}), 404, "invitation_not_found")
		rv := e.do("GET", base+"?state=revoked", owner.access, nil)
		if it := rv.body["items"].([]any); len(it) != 1 || it[0].(map[string]any)["id"] != bID || it[0].(map[string]any)["revoked_by"] != owner.userID {
			t.Fatalf("revoked: %s", rv.raw)
		}

		// Accepting by e-mail link creates a verified account.
		acc := e.do("POST", api+"/invitations/"+aNew+"/accept", "", map[string]any{"name": "A", "password": testPassword})
		want(t, acc, 200, "")
		if !claimsOf(t, acc.body["session"].(map[string]any)["access_token"].(string)).EmailVerified {
			t.Fatal("the account made from an invitation link is not verified")
		}
		if it := e.do("GET", base+"?state=accepted", owner.access, nil).body["items"].([]any); len(it) != 1 {
			t.Fatalf("accepted: %v", it)
		}
		aUser := e.login("a@example.com")
		want(t, e.do("GET", base, aUser.access, nil), 403, "forbidden")
		want(t, e.do("DELETE", base+"/"+bID, aUser.access, nil), 403, "forbidden")

		// Expired invitations list as expired and can be resent.
		e.clk.Advance(8 * 24 * time.Hour)
		owner = e.login("owner@example.com")
		ex := e.do("GET", base+"?state=expired", owner.access, nil)
		if it := ex.body["items"].([]any); len(it) != 1 {
			t.Fatalf("expired: %s", ex.raw)
		}
		cID := ex.body["items"].([]any)[0].(map[string]any)["id"].(string)
		want(t, e.do("POST", api+"/invitations/"+cTok+"/accept", "", map[string]any{"name": "C", "password": testPassword}), 410, "invitation_expired")
		want(t, e.do("POST", base+"/"+cID+"/resend", owner.access, nil), 200, "")
		want(t, e.do("POST", api+"/invitations/"+e.inviteToken()+"/accept", "", map[string]any{"name": "C", "password": testPassword}), 200, "")

		// Another organisation's invitation is not found; another organisation's admin sees nothing.
		other := e.signup("other@example.com", "Other Org", "sme")
		want(t, e.do("GET", base, other.access, nil), 404, "organization_not_found")
		want(t, e.do("DELETE", api+"/organizations/"+other.orgID+"/invitations/"+bID, other.access, nil), 404, "invitation_not_found")

		if e.auditCount(AuditInvitationResent) != 2 || e.auditCount(AuditInvitationRevoked) != 1 {
			t.Fatalf("audit: resent %d, revoked %d", e.auditCount(AuditInvitationResent), e.auditCount(AuditInvitationRevoked))
		}
	})
}

// TestInvitationOwnerRole: only owners resend or revoke an invitation to the owner role.
func TestInvitationOwnerRole(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		owner := e.signup("boss@example.com", "Owned Org", "sme")
		members := api + "/organizations/" + owner.orgID + "/members"
		base := api + "/organizations/" + owner.orgID + "/invitations"
		r := e.do("POST", members, owner.access, map[string]any{"email": "co@example.com", "role": "owner"})
		want(t, r, 201, "")
		ownerInv := r.str("id")
		want(t, e.do("POST", members, owner.access, map[string]any{"email": "adm@example.com", "role": "admin"}), 201, "")
		adm := e.do("POST", api+"/invitations/"+e.inviteToken()+"/accept", "", map[string]any{"name": "Adm", "password": testPassword})
		want(t, adm, 200, "")
		admAccess := adm.body["session"].(map[string]any)["access_token"].(string)
		want(t, e.do("POST", base+"/"+ownerInv+"/resend", admAccess, nil), 403, "owners_only")
		want(t, e.do("DELETE", base+"/"+ownerInv, admAccess, nil), 403, "owners_only")
		want(t, e.do("DELETE", base+"/"+ownerInv, owner.access, nil), 204, "")
	})
}
