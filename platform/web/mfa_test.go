package web_test

import (
	"testing"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
)

func TestMFAGuards(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pwd := []string{jwtauth.AMRPassword}
	mfa := []string{jwtauth.AMRPassword, jwtauth.AMRMFA, jwtauth.AMROTP}
	staffNoMFA := f.token(t, func(c *jwtauth.Claims) { c.Staff, c.AMR = true, pwd })
	staffMFA := f.token(t, func(c *jwtauth.Claims) { c.Staff, c.AMR = true, mfa })
	orgNoMFA := f.token(t, func(c *jwtauth.Claims) { c.OrgMFA, c.AMR = true, pwd })
	orgMFA := f.token(t, func(c *jwtauth.Claims) { c.OrgMFA, c.AMR = true, mfa })
	plain := f.token(t, func(c *jwtauth.Claims) { c.AMR = pwd })
	for _, c := range []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"staff without mfa", "GET", "/api/staff", staffNoMFA, 403, "mfa_required"},
		{"staff with mfa", "GET", "/api/staff", staffMFA, 204, ""},
		{"org requires mfa, none", "POST", "/api/write", orgNoMFA, 403, "mfa_required"},
		{"org requires mfa, has it", "POST", "/api/write", orgMFA, 204, ""},
		{"org does not require it", "POST", "/api/write", plain, 204, ""},
		{"reads stay open", "GET", "/api/me", orgNoMFA, 200, ""},
	} {
		a := f.do(t, c.method, c.path, "", c.token)
		if a.status != c.status || (c.code != "" && a.body["code"] != c.code) {
			t.Errorf("%s: %d %v, want %d %s", c.name, a.status, a.body, c.status, c.code)
		}
	}
}
