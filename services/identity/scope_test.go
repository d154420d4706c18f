package identity

import (
	"strings"
	"testing"
	"time"
)

// TestReadOnlyTokenChangesNothing: an API token with only the read scope can neither revoke the user's
// other tokens nor make the user join another organisation.
func TestReadOnlyTokenChangesNothing(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("ro@example.com", "A", "sme")
		b := e.signup("inviter@example.com", "B", "vendor")
		exp := e.clk.Now().Add(30 * 24 * time.Hour).Format(time.RFC3339)
		ci := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "ci", "scopes": []string{"read", "write"}, "expires_at": exp})
		want(t, ci, 201, "")
		r := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "dash", "scopes": []string{"read"}, "expires_at": exp})
		want(t, r, 201, "")
		ro := r.str("token")

		want(t, e.do("DELETE", api+"/tokens/"+ci.str("id"), ro, nil), 403, "forbidden")
		want(t, e.do("POST", api+"/organizations/"+b.orgID+"/members", b.access, map[string]any{"email": a.email, "role": "member"}), 201, "")
		inv := e.inviteToken()
		want(t, e.do("POST", api+"/invitations/"+inv+"/accept", ro, nil), 403, "forbidden")

		// The session still does both.
		want(t, e.do("POST", api+"/invitations/"+inv+"/accept", a.access, nil), 200, "")
		want(t, e.do("DELETE", api+"/tokens/"+ci.str("id"), a.access, nil), 204, "")
	})
}

// TestInvitationTokenNotLoggedOnEarlyRefusal: an invitee whose session expired clicks the link; the auth
// middleware refuses before the handler runs, and the access log must still not carry the token.
func TestInvitationTokenNotLoggedOnEarlyRefusal(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("owner@example.com", "Org", "sme")
		want(t, e.do("POST", api+"/organizations/"+a.orgID+"/members", a.access, map[string]any{"email": "late@example.com", "role": "member"}), 201, "")
		inv := e.inviteToken()
		want(t, e.do("POST", api+"/invitations/"+inv+"/accept", "expired.or.forged", nil), 401, "invalid_token")
		if strings.Contains(e.logs.String(), inv) {
			t.Fatalf("the invitation token appears in the logs:\n%s", e.logs.String())
		}
	})
}
