package identity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
)

func TestAPITokens(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("tok@example.com", "Org", "vendor")
		exp := e.clk.Now().Add(30 * 24 * time.Hour).Format(time.RFC3339)

		// Validation: scopes, expiry bounds.
		for _, body := range []map[string]any{
			{"name": "x", "scopes": []string{"admin"}, "expires_at": exp},
			{"name": "x", "scopes": []string{"read"}, "expires_at": e.clk.Now().Add(-time.Hour).Format(time.RFC3339)},
			{"name": "x", "scopes": []string{"read"}, "expires_at": e.clk.Now().Add(400 * 24 * time.Hour).Format(time.RFC3339)},
		} {
			want(t, e.do("POST", api+"/tokens", a.access, body), 422, "validation_failed")
		}

		for _, body := range []map[string]any{
			{"name": "x", "scopes": []string{"read"}, "expires_in_days": 0},
			{"name": "x", "scopes": []string{"read"}, "expires_in_days": 367},
			{"name": "x", "scopes": []string{"read"}, "expires_in_days": 30, "expires_at": exp},
		} {
			want(t, e.do("POST", api+"/tokens", a.access, body), 422, "validation_failed")
		}
		days := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "days", "scopes": []string{"read", "write"}, "expires_in_days": 366})
		want(t, days, 201, "")
		want(t, e.do("DELETE", api+"/tokens/"+days.str("id"), a.access, nil), 204, "")

		r := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "ci", "scopes": []string{"read"}, "expires_at": exp})
		want(t, r, 201, "")
		ro := r.str("token")
		if !strings.HasPrefix(ro, "tmk_") || !strings.HasPrefix(ro, r.str("hint")) {
			t.Fatalf("token: %s", r.raw)
		}
		// Stored hashed: the secret is nowhere in the table.
		var n int64
		e.db.Model(&APIToken{}).Where("token_hash = ? OR hint = ?", ro, ro).Count(&n)
		if n != 0 {
			t.Fatal("the token is stored in clear")
		}

		// It authenticates, with its scopes: read yes, write no.
		me := e.do("GET", api+"/me", ro, nil)
		want(t, me, 200, "")
		if me.str("active_organization_id") != a.orgID {
			t.Fatalf("me via token: %s", me.raw)
		}
		want(t, e.do("POST", api+"/organizations/"+a.orgID+"/members", ro, map[string]any{"email": "x@example.com", "role": "member"}), 403, "forbidden")
		// Tokens cannot mint tokens.
		want(t, e.do("POST", api+"/tokens", ro, map[string]any{"name": "x", "scopes": []string{"read"}, "expires_at": exp}), 403, "session_required")

		// Listing shows the hint and last use, never the secret.
		e.clk.Advance(2 * time.Minute)
		want(t, e.do("GET", api+"/me", ro, nil), 200, "")
		l := e.do("GET", api+"/tokens", a.access, nil)
		want(t, l, 200, "")
		if strings.Contains(string(l.raw), ro) {
			t.Fatal("list shows the secret")
		}
		items := l.body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["last_used_at"] == nil {
			t.Fatalf("list: %s", l.raw)
		}

		// Over NATS, for services in other processes.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.svc.Run(runCtx) }()
		defer func() { stop(); <-done }()
		var p events.TokenPrincipalV1
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if p, err = eventbus.Call(ctx, e.bus, events.TokenVerify, events.TokenVerifyV1{Token: ro}); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // the responder subscribes asynchronously
		}
		if err != nil || p.OrgID != a.orgID || p.UserID != a.userID || len(p.Scopes) != 1 || p.Scopes[0] != "read" {
			t.Fatalf("token verify over NATS: %+v %v", p, err)
		}
		if _, err := eventbus.Call(ctx, e.bus, events.TokenVerify, events.TokenVerifyV1{Token: "tmk_forged"}); problemCode(err) != "invalid_token" {
			t.Fatalf("forged token over NATS: %v", err)
		}

		// Revoked tokens stop working; expired ones too.
		want(t, e.do("DELETE", api+"/tokens/"+r.str("id"), a.access, nil), 204, "")
		want(t, e.do("DELETE", api+"/tokens/"+r.str("id"), a.access, nil), 404, "token_not_found")
		want(t, e.do("GET", api+"/me", ro, nil), 401, "invalid_token")
		rw := e.do("POST", api+"/tokens", a.access, map[string]any{"name": "rw", "scopes": []string{"read", "write"},
			"expires_at": e.clk.Now().Add(time.Hour).Format(time.RFC3339)})
		want(t, rw, 201, "")
		want(t, e.do("GET", api+"/me", rw.str("token"), nil), 200, "")
		e.clk.Advance(61 * time.Minute)
		want(t, e.do("GET", api+"/me", rw.str("token"), nil), 401, "invalid_token")
	})
}
