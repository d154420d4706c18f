package identity

import (
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
