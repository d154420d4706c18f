package identity

import (
	"strings"
	"testing"
	"time"
)

// TestSecretsNeverLogged captures every log line (service and access log, debug level) through sign-up,
// sign-in, refresh, token creation and use, invitation and acceptance, and looks for each secret.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("log@example.com", "Org", "sme")
		want(t, e.do("POST", api+"/login", "", map[string]any{"email": "log@example.com", "password": "a wrong password"}), 401, "invalid_credentials")
		l := e.login("log@example.com")
		r := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": l.refresh})
		want(t, r, 200, "")
		tok := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "ci", "scopes": []string{"read"},
			"expires_at": e.clk.Now().Add(time.Hour).Format(time.RFC3339)})
		want(t, tok, 201, "")
		want(t, e.do("GET", api+"/me", tok.str("token"), nil), 200, "")
		want(t, e.do("POST", api+"/organizations/"+a.orgID+"/members", a.access, map[string]any{"email": "inv@example.com", "role": "member"}), 201, "")
		inv := e.inviteToken()
		const invitePassword = "invitee password 123"
		want(t, e.do("POST", api+"/invitations/"+inv+"/accept", "", map[string]any{"name": "Inv", "password": invitePassword}), 200, "")
		want(t, e.do("POST", api+"/invitations/"+inv+"/accept", "", map[string]any{"name": "Inv", "password": invitePassword}), 404, "invitation_not_found")
		want(t, e.do("POST", api+"/logout", "", map[string]any{"refresh_token": r.str("refresh_token")}), 204, "")

		logs := e.logs.String()
		if !strings.Contains(logs, "status=201") || !strings.Contains(logs, "/invitations/:token/accept") {
			t.Fatalf("the capture missed the access log:\n%s", logs)
		}
		for name, secret := range map[string]string{
			"password": testPassword, "wrong password": "a wrong password", "invitee password": invitePassword,
			"access token": a.access, "refresh token": a.refresh, "login refresh": l.refresh, "rotated refresh": r.str("refresh_token"),
			"rotated access": r.str("access_token"), "api token": tok.str("token"), "invitation token": inv,
		} {
			if secret == "" {
				t.Fatalf("%s is empty", name)
			}
			if strings.Contains(logs, secret) {
				t.Errorf("the %s appears in the logs", name)
			}
		}
	})
}
