package main

import (
	"io"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// newStaff signs up email in a partner organisation, makes it staff (`tamarack promote`) and signs it in with MFA.
func (j journey) newStaff(email string) string {
	j.t.Helper()
	j.signup(email, "Programme Office", "partner")
	if err := promote(j.t.Context(), j.s.e.cfg, email, io.Discard); err != nil {
		j.t.Fatal(err)
	}
	return j.staffLogin(email)
}

// staffLogin turns on two-step sign-in for a staff account and signs in with it: staff act as staff only with
// MFA. The confirming code is the current step's and the sign-in code the next step's, both within the skew
// the server accepts, so the test never waits for the clock.
func (j journey) staffLogin(email string) string {
	j.t.Helper()
	pwd := j.login(email)
	secret := j.must(201, "POST", "/api/v1/identity/mfa/totp", pwd, map[string]any{"password": "correct-horse-battery-staple"}).str("secret")
	j.must(200, "POST", "/api/v1/identity/mfa/totp/confirm", pwd, map[string]any{"code": totpCode(j.t, secret, time.Now())})
	challenge := j.must(200, "POST", "/api/v1/identity/login", "", map[string]any{
		"email": email, "password": "correct-horse-battery-staple"}).str("mfa_token")
	return j.must(200, "POST", "/api/v1/identity/login/mfa", "", map[string]any{"mfa_token": challenge,
		"code": totpCode(j.t, secret, time.Now().Add(30*time.Second))}).str("access_token")
}

func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
