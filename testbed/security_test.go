package testbed

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// scoped signs a token for c limited to scopes (as an API token would be).
func (s signer) scoped(t testing.TB, c Caller, scopes ...string) string {
	t.Helper()
	role := web.RoleMember
	if c.Admin {
		role = web.RoleAdmin
	}
	now := time.Now()
	tok, err := jwtauth.Sign(jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: c.UserID, Issuer: jwtauth.Issuer,
		Audience: jwt.ClaimStrings{jwtauth.Audience}, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		ID: "jti-" + c.UserID}, Org: c.OrgID, OrgKind: c.OrgKind, Role: role, Staff: c.Staff, Scopes: scopes}, "k1", s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSandboxAccessIsTheOrganisations: the sandbox's shell, output, ports, tokens and time belong to its
// organisation. Staff of another organisation may read and stop it (audited) but not get into it or charge
// it more time; a read-only token may read logs but not type into a shell or drive a port; what a sandbox
// serves through the proxy cannot run as the platform's origin (where the web UI keeps its tokens).
func TestSandboxAccessIsTheOrganisations(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 1, 8, Options{})
		app, sign := newApp(t, f.svc)
		type answer struct {
			status int
			header map[string]string
			body   map[string]any
		}
		do := func(method, path, token, body string) answer {
			t.Helper()
			var r io.Reader
			if body != "" {
				r = strings.NewReader(body)
			}
			req := httptest.NewRequest(method, "/api/v1/testbed"+path, r)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			out := answer{status: res.StatusCode, header: map[string]string{}, body: map[string]any{}}
			for k := range res.Header {
				out.header[k] = res.Header.Get(k)
			}
			raw, _ := io.ReadAll(res.Body)
			_ = json.Unmarshal(raw, &out.body)
			f.svc.Wait()
			return out
		}
		want := func(a answer, status int, code string) {
			t.Helper()
			if a.status != status || (code != "" && a.body["code"] != code) {
				t.Fatalf("got %d %v, want %d %s", a.status, a.body, status, code)
			}
		}
		me := sign.token(t, sme())
		staff := sign.token(t, Caller{UserID: "u-staff", OrgID: "org-programme", OrgKind: "partner", Staff: true})
		readOnly := sign.scoped(t, sme(), "read")

		launched := do("POST", "/sandboxes", me, `{"listing_id":"lst-h100","gpu_model":"h100-80gb","gpu_count":1,"template":"jupyterlab","duration_minutes":30}`)
		want(launched, 202, "")
		id := launched.body["id"].(string)
		if got := do("GET", "/sandboxes/"+id, me, ""); got.body["state"] != "running" {
			t.Fatalf("sandbox %v", got.body)
		}

		// Staff of another organisation: no shell, output, port, token or extension of its sandbox.
		want(do("GET", "/sandboxes/"+id+"/terminal", staff, ""), 404, "sandbox_not_found")
		want(do("GET", "/sandboxes/"+id+"/logs?follow=false", staff, ""), 404, "sandbox_not_found")
		want(do("GET", "/sandboxes/"+id+"/proxy/8888/", staff, ""), 404, "sandbox_not_found")
		want(do("POST", "/sandboxes/"+id+"/token", staff, ""), 404, "sandbox_not_found")
		want(do("POST", "/sandboxes/"+id+"/extend", staff, `{"minutes":5}`), 404, "sandbox_not_found")

		// A read-only token reads the logs but opens neither the shell nor a port.
		want(do("GET", "/sandboxes/"+id+"/logs?follow=false", readOnly, ""), 200, "")
		want(do("GET", "/sandboxes/"+id+"/terminal", readOnly, ""), 403, "forbidden")
		want(do("GET", "/sandboxes/"+id+"/proxy/8888/", readOnly, ""), 403, "forbidden")

		// The organisation's own access still works, and the proxied page runs in a sandboxed origin.
		want(do("GET", "/sandboxes/"+id+"/terminal", me, ""), 426, "upgrade_required")
		page := do("GET", "/sandboxes/"+id+"/proxy/8888/", me, "")
		want(page, 200, "")
		csp := page.header["Content-Security-Policy"]
		if !strings.Contains(csp, "sandbox") || strings.Contains(csp, "allow-same-origin") {
			t.Fatalf("proxied page served as the platform's origin: Content-Security-Policy %q", csp)
		}
		tok := do("POST", "/sandboxes/"+id+"/token", me, "")
		want(tok, 201, "")
		want(do("GET", "/sandboxes/"+id+"/proxy/8888/?token="+tok.body["token"].(string), "", ""), 200, "")

		// Staff may still stop it (audited, reason staff).
		want(do("POST", "/sandboxes/"+id+"/stop", staff, ""), 202, "")
	})
}
