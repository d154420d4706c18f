package identity

import (
	"testing"
	"time"
)

// TestEmailVerification: sign-up mails a link through real SMTP; the token says unverified until the link is
// used; resending is limited and invalidates the older link; a link works once and expires.
func TestEmailVerification(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		sink := startSMTP(t)
		e.useSMTP(sink)
		a := e.signup("verify@example.com", "Verify Org", "sme")
		first := sink.awaitLink(t, "verify@example.com", "verify-email", 1)
		if c := claimsOf(t, a.access); c.EmailVerified {
			t.Fatal("a new account's token says verified")
		}
		me := e.do("GET", api+"/me", a.access, nil)
		if me.body["user"].(map[string]any)["email_verified"] != false {
			t.Fatalf("me: %s", me.raw)
		}

		// Resending within a minute is refused with Retry-After; later it sends a new link.
		r := e.do("POST", api+"/email/verify/resend", a.access, nil)
		want(t, r, 429, "too_many_emails")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("no Retry-After: %v", r.header)
		}
		e.clk.Advance(2 * time.Minute)
		want(t, e.do("POST", api+"/email/verify/resend", a.access, nil), 202, "")
		second := sink.awaitLink(t, "verify@example.com", "verify-email", 2)
		if second == first {
			t.Fatal("resend reused the token")
		}

		want(t, e.do("POST", api+"/email/verify", "", map[string]any{"token": first}), 400, "verification_token_invalid")
		want(t, e.do("POST", api+"/email/verify", "", map[string]any{}), 422, "validation_failed")
		ok := e.do("POST", api+"/email/verify", "", map[string]any{"token": second})
		want(t, ok, 200, "")
		if ok.body["email_verified"] != true || ok.str("email") != "verify@example.com" {
			t.Fatalf("verify: %s", ok.raw)
		}
		want(t, e.do("POST", api+"/email/verify", "", map[string]any{"token": second}), 400, "verification_token_invalid")

		// A refreshed session carries the claim; asking again is pointless.
		rf := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh})
		want(t, rf, 200, "")
		if c := claimsOf(t, rf.str("access_token")); !c.EmailVerified {
			t.Fatal("the refreshed token does not say verified")
		}
		want(t, e.do("POST", api+"/email/verify/resend", rf.str("access_token"), nil), 409, "email_already_verified")
		if e.auditCount(AuditVerificationSent) != 2 || e.auditCount(AuditEmailVerified) != 1 {
			t.Fatalf("audit: sent %d, verified %d", e.auditCount(AuditVerificationSent), e.auditCount(AuditEmailVerified))
		}

		// Links expire.
		b := e.signup("late@example.com", "Late Org", "sme")
		late := sink.awaitLink(t, "late@example.com", "verify-email", 1)
		e.clk.Advance(VerifyEmailTTL + time.Second)
		want(t, e.do("POST", api+"/email/verify", "", map[string]any{"token": late}), 400, "verification_token_invalid")
		want(t, e.do("POST", api+"/email/verify/resend", "", nil), 401, "")
		_ = b
	})
}

// TestEmailVerificationLimits: at most five links an hour.
func TestEmailVerificationLimits(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("limits@example.com", "Limits Org", "sme") // link 1
		for range mailLinksPerHour - 1 {
			e.clk.Advance(time.Minute + time.Second)
			want(t, e.do("POST", api+"/email/verify/resend", a.access, nil), 202, "")
		}
		e.clk.Advance(time.Minute + time.Second)
		want(t, e.do("POST", api+"/email/verify/resend", a.access, nil), 429, "too_many_emails")
		e.clk.Advance(time.Hour)
		want(t, e.do("POST", api+"/email/verify/resend", e.login("limits@example.com").access, nil), 202, "")
	})
}

// TestCommonPasswordRefused: passwords on the shipped list are refused at sign-up, case aside.
func TestCommonPasswordRefused(t *testing.T) {
	t.Parallel()
	if !isCommonPassword("qwerty123456") || !isCommonPassword("QWERTY123456") || isCommonPassword(testPassword) {
		t.Fatal("list lookup")
	}
	each(t, func(t *testing.T, e *tenv) {
		r := e.do("POST", api+"/signup", "", map[string]any{"email": "common@example.com", "password": "Qwerty123456", "name": "C",
			"organization": map[string]any{"name": "Common", "kind": "sme"}})
		want(t, r, 422, "validation_failed")
		if f := r.body["fields"].([]any)[0].(map[string]any); f["field"] != "password" || f["code"] != "common_password" {
			t.Fatalf("fields: %s", r.raw)
		}
	})
}
