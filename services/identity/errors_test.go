package identity

import (
	"testing"

	"github.com/tamarack-ai/tamarack/platform/problem/problemtest"
)

// Every sentinel identity declares tells the caller what to do next.
func TestProblemsHaveDetails(t *testing.T) {
	t.Parallel()
	problemtest.RequireDetails(t, "errors.go")
}

// The answers a caller meets most when signing in carry a detail over HTTP (they had none: issue 9, item 10).
func TestAuthProblemsReachCallersWithDetails(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("detail@example.com", "Detail Org", "sme")
		next := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh})
		want(t, next, 200, "")
		for _, c := range []struct {
			name, code string
			r          resp
		}{
			{"no token", "unauthorized", e.do("GET", api+"/me", "", nil)},
			{"forged token", "invalid_token", e.do("GET", api+"/me", "not.a.jwt", nil)},
			{"wrong password", "invalid_credentials", e.do("POST", api+"/login", "", map[string]any{"email": a.email, "password": "a wrong password"})},
			{"unknown e-mail", "invalid_credentials", e.do("POST", api+"/login", "", map[string]any{"email": "nobody@example.com", "password": testPassword})},
			{"replayed refresh", "refresh_reused", e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh})},
			{"revoked refresh", "invalid_refresh_token", e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": next.str("refresh_token")})},
		} {
			if c.r.code() != c.code || c.r.str("detail") == "" {
				t.Errorf("%s: want %s with a detail, got %d %s", c.name, c.code, c.r.status, c.r.raw)
			}
		}
	})
}
