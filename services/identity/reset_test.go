package identity

import (
	"testing"
	"time"
)

// TestPasswordReset: the request answers alike for known and unknown addresses; the link, read from a real
// SMTP delivery, sets a new password under the sign-up rules once, and ends every session.
func TestPasswordReset(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		sink := startSMTP(t)
		e.useSMTP(sink)
		a := e.signup("reset@example.com", "Reset Org", "sme")
		second := e.login("reset@example.com")

		known := e.do("POST", api+"/password/forgot", "", map[string]any{"email": "Reset@Example.com"})
		unknown := e.do("POST", api+"/password/forgot", "", map[string]any{"email": "nobody@example.com"})
		want(t, known, 202, "")
		if known.status != unknown.status || string(known.raw) != string(unknown.raw) {
			t.Fatalf("known %d %s, unknown %d %s", known.status, known.raw, unknown.status, unknown.raw)
		}
		want(t, e.do("POST", api+"/password/forgot", "", map[string]any{"email": "not an address"}), 422, "validation_failed")
		tok := sink.awaitLink(t, "reset@example.com", "reset-password", 1)
		e.svc.mailing.Wait()
		if n := len(sink.to("nobody@example.com")); n != 0 {
			t.Fatalf("%d mails to an unknown address", n)
		}

		const newPassword = "a brand new passphrase"
		for _, c := range []struct{ pw, code string }{{"short", "too_short"}, {"qwerty123456", "common_password"}, {"reset@example.com", "same_as_email"}} {
			r := e.do("POST", api+"/password/reset", "", map[string]any{"token": tok, "password": c.pw})
			want(t, r, 422, "validation_failed")
			if f := r.body["fields"].([]any)[0].(map[string]any); f["code"] != c.code {
				t.Fatalf("%q: %s", c.pw, r.raw)
			}
		}
		want(t, e.do("POST", api+"/password/reset", "", map[string]any{"token": "nope", "password": newPassword}), 400, "reset_token_invalid")
		want(t, e.do("POST", api+"/password/reset", "", map[string]any{"token": tok, "password": newPassword}), 204, "")
		want(t, e.do("POST", api+"/password/reset", "", map[string]any{"token": tok, "password": newPassword + "!"}), 400, "reset_token_invalid")

		for _, s := range []account{a, second} {
			want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": s.refresh}), 401, "invalid_refresh_token")
		}
		want(t, e.do("POST", api+"/login", "", map[string]any{"email": "reset@example.com", "password": testPassword}), 401, "invalid_credentials")
		in := e.do("POST", api+"/login", "", map[string]any{"email": "reset@example.com", "password": newPassword})
		want(t, in, 200, "")
		if !claimsOf(t, in.str("access_token")).EmailVerified {
			t.Fatal("the reset link proved the address, but the token says unverified")
		}
		// The sessions from before the reset ended (their access tokens are refused on every replica: see
		// TestRevocationReachesEveryVerifier); only the new sign-in's is left.
		if l := e.do("GET", api+"/sessions", in.str("access_token"), nil); len(l.body["items"].([]any)) != 1 {
			t.Fatalf("sessions after a reset: %s", l.raw)
		}
		if e.auditCount(AuditResetRequested) != 2 || e.auditCount(AuditPasswordReset) != 1 {
			t.Fatalf("audit: requested %d, reset %d", e.auditCount(AuditResetRequested), e.auditCount(AuditPasswordReset))
		}

		// A link expires after an hour; a newer one replaces an older one.
		e.clk.Advance(2 * time.Minute)
		want(t, e.do("POST", api+"/password/forgot", "", map[string]any{"email": "reset@example.com"}), 202, "")
		old := sink.awaitLink(t, "reset@example.com", "reset-password", 2)
		e.clk.Advance(2 * time.Minute)
		want(t, e.do("POST", api+"/password/forgot", "", map[string]any{"email": "reset@example.com"}), 202, "")
		fresh := sink.awaitLink(t, "reset@example.com", "reset-password", 3)
		want(t, e.do("POST", api+"/password/reset", "", map[string]any{"token": old, "password": newPassword}), 400, "reset_token_invalid")
		e.clk.Advance(ResetPasswordTTL + time.Second)
		want(t, e.do("POST", api+"/password/reset", "", map[string]any{"token": fresh, "password": newPassword}), 400, "reset_token_invalid")
	})
}
