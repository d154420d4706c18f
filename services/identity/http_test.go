package identity

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/web"
)

func TestSignupLoginMe(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		r := e.do("POST", api+"/signup", "", map[string]any{"email": "Ann@Example.com", "password": testPassword, "name": "Ann",
			"organization": map[string]any{"name": "Maple Robotics", "kind": "sme"}})
		want(t, r, 201, "")
		for _, k := range []string{"access_token", "refresh_token", "token_type", "expires_in", "user", "organization"} {
			if _, ok := r.body[k]; !ok {
				t.Fatalf("signup answer lacks %s: %s", k, r.raw)
			}
		}
		if r.str("token_type") != "Bearer" || r.body["expires_in"].(float64) != 900 {
			t.Fatalf("token_type/expires_in: %s", r.raw)
		}
		u := r.body["user"].(map[string]any)
		o := r.body["organization"].(map[string]any)
		if u["email"] != "ann@example.com" || u["is_staff"] != false || o["kind"] != "sme" || o["verified"] != false {
			t.Fatalf("signup shapes: %s", r.raw)
		}
		access := r.str("access_token")

		me := e.do("GET", api+"/me", access, nil)
		want(t, me, 200, "")
		if me.str("active_organization_id") != o["id"] {
			t.Fatalf("active org: %s", me.raw)
		}
		ms := me.body["memberships"].([]any)
		if len(ms) != 1 || ms[0].(map[string]any)["role"] != "owner" {
			t.Fatalf("memberships: %s", me.raw)
		}
		if me.body["user"].(map[string]any)["created_at"] == nil {
			t.Fatalf("me lacks created_at: %s", me.raw)
		}

		// Login (e-mail is case-insensitive) with and without an organisation.
		l := e.do("POST", api+"/login", "", map[string]any{"email": "ANN@example.com", "password": testPassword})
		want(t, l, 200, "")
		if l.str("access_token") == "" || l.str("refresh_token") == "" || l.str("token_type") != "Bearer" {
			t.Fatalf("login: %s", l.raw)
		}
		want(t, e.do("POST", api+"/login", "", map[string]any{"email": "ann@example.com", "password": testPassword,
			"organization_id": "nope"}), 404, "organization_not_found")

		// Duplicate e-mail.
		want(t, e.do("POST", api+"/signup", "", map[string]any{"email": "ann@example.com", "password": testPassword, "name": "Ann",
			"organization": map[string]any{"name": "Other", "kind": "vendor"}}), 409, "email_taken")

		// Anonymous /me.
		want(t, e.do("GET", api+"/me", "", nil), 401, "unauthorized")
	})
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		for _, tc := range []struct{ email, password, code string }{
			{"a@example.com", "short", "too_short"},
			{"longaddress12@example.com", "longaddress12@example.com", "same_as_email"},
			{"longaddress12@example.com", "LongAddress12", "same_as_email"},
			{"a@example.com", strings.Repeat("x", 300), "too_long"},
		} {
			r := e.do("POST", api+"/signup", "", map[string]any{"email": tc.email, "password": tc.password, "name": "A",
				"organization": map[string]any{"name": "O", "kind": "sme"}})
			want(t, r, 422, "validation_failed")
			f := r.body["fields"].([]any)[0].(map[string]any)
			if f["field"] != "password" || f["code"] != tc.code {
				t.Fatalf("%q: fields %s", tc.password, r.raw)
			}
		}
	})
}

// TestBadInput covers every body-taking route: malformed JSON, unknown fields, missing fields (all listed at
// once), oversized bodies, and unknown routes.
func TestBadInput(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("owner@example.com", "Org", "vendor")
		st := e.staff()
		routes := []struct {
			method, path, token string
			missing             []string
		}{
			{"POST", api + "/signup", "", []string{"email", "name", "organization.kind", "organization.name", "password"}},
			{"POST", api + "/login", "", []string{"email", "password"}},
			{"POST", api + "/refresh", "", []string{"refresh_token"}},
			{"POST", api + "/logout", "", []string{"refresh_token"}},
			{"POST", api + "/organizations/" + a.orgID + "/members", a.access, []string{"email", "role"}},
			{"PATCH", api + "/organizations/" + a.orgID + "/members/" + a.userID, a.access, []string{"role"}},
			{"POST", api + "/organizations/" + a.orgID + "/verify", st.access, []string{"verified"}},
			{"POST", api + "/tokens", a.access, []string{"expires_at", "name", "scopes"}},
		}
		for _, rt := range routes {
			name := rt.method + " " + rt.path
			want(t, e.do(rt.method, rt.path, rt.token, `{"email": `), 400, "malformed_json")
			want(t, e.do(rt.method, rt.path, rt.token, `{} {}`), 400, "malformed_json")
			want(t, e.do(rt.method, rt.path, rt.token, `{"no_such_field": 1}`), 422, "validation_failed")
			r := e.do(rt.method, rt.path, rt.token, `{}`)
			want(t, r, 422, "validation_failed")
			var got []string
			for _, f := range r.body["fields"].([]any) {
				got = append(got, f.(map[string]any)["field"].(string))
			}
			if fmt.Sprint(got) != fmt.Sprint(rt.missing) {
				t.Errorf("%s: missing fields %v, want %v", name, got, rt.missing)
			}
			// Over identity's own limit (below the server's default), and over the server's.
			want(t, e.do(rt.method, rt.path, rt.token, `{"email":"`+strings.Repeat("a", MaxBody)+`"}`), 413, "payload_too_large")
			big := `{"email":"` + strings.Repeat("a", 2<<20) + `"}`
			want(t, e.overHTTP(rt.method, rt.path, rt.token, big), 413, "payload_too_large")
		}
		// Wrong types are field errors.
		r := e.do("POST", api+"/login", "", `{"email": 5, "password": "x"}`)
		want(t, r, 422, "validation_failed")
		// Bad token expiry format.
		r = e.do("POST", api+"/tokens", a.access, map[string]any{"name": "ci", "scopes": []string{"read"}, "expires_at": "tomorrow"})
		want(t, r, 422, "validation_failed")
		// Unknown routes and bad query parameters.
		want(t, e.do("GET", api+"/nope", "", nil), 404, "route_not_found")
		want(t, e.do("GET", api+"/organizations?limit=0", st.access, nil), 422, "validation_failed")
		want(t, e.do("GET", api+"/organizations?verified=maybe", st.access, nil), 422, "validation_failed")
		want(t, e.do("GET", api+"/organizations?cursor=%%%", st.access, nil), 400, "invalid_cursor")
		want(t, e.do("GET", api+"/audit?cursor=!!", a.access, nil), 400, "invalid_cursor")
	})
}

// TestLoginSameAnswer: an unknown e-mail and a wrong password answer byte-for-byte alike (but the request ID).
func TestLoginSameAnswer(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		e.signup("known@example.com", "Org", "sme")
		unknown := e.do("POST", api+"/login", "", map[string]any{"email": "unknown@example.com", "password": testPassword})
		wrong := e.do("POST", api+"/login", "", map[string]any{"email": "known@example.com", "password": testPassword + "x"})
		want(t, unknown, 401, "invalid_credentials")
		want(t, wrong, 401, "invalid_credentials")
		delete(unknown.body, "request_id")
		delete(wrong.body, "request_id")
		if fmt.Sprint(unknown.body) != fmt.Sprint(wrong.body) || unknown.header.Get("Content-Type") != wrong.header.Get("Content-Type") {
			t.Fatalf("answers differ:\n%v\n%v", unknown.body, wrong.body)
		}
	})
}

// TestSignupRateLimit: sign-ups from one address are limited (in process; sign-ins: throttle_test.go).
func TestSignupRateLimit(t *testing.T) {
	t.Parallel()
	dbtestEach(t, func(t *testing.T, e *tenv) {
		signup := func(i int) resp {
			return e.do("POST", api+"/signup", "", map[string]any{"email": fmt.Sprintf("s%d@example.com", i), "password": testPassword,
				"name": "S", "organization": map[string]any{"name": "O", "kind": "sme"}})
		}
		for i := 0; i < 3; i++ {
			want(t, signup(i), 201, "")
		}
		r := signup(9)
		want(t, r, 429, "rate_limited")
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After = %q", ra)
		}
		e.clk.Advance(time.Minute)
		want(t, signup(9), 201, "")
	}, opts{signupPerMin: 3})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("r@example.com", "Org", "partner")
		r1 := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh})
		want(t, r1, 200, "")
		next := r1.str("refresh_token")
		if next == a.refresh || r1.str("access_token") == "" {
			t.Fatalf("refresh did not rotate: %s", r1.raw)
		}
		want(t, e.do("GET", api+"/me", r1.str("access_token"), nil), 200, "")

		// Replaying the first token revokes the family: the newest token dies with it.
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh}), 401, "refresh_reused")
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": next}), 401, "invalid_refresh_token")
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": "made-up"}), 401, "invalid_refresh_token")

		// The reuse is audited.
		entries, err := e.svc.Audit(t.Context(), Actor{Principal: web.Principal{Staff: true}}, AuditFilter{Action: AuditRefreshReused, Limit: 10})
		if err != nil || len(entries) != 1 || entries[0].ActorUserID != a.userID {
			t.Fatalf("audit: %v %+v", err, entries)
		}

		// Logout revokes a session; logging out twice or with an unknown token is fine.
		b := e.login("r@example.com")
		want(t, e.do("POST", api+"/logout", "", map[string]any{"refresh_token": b.refresh}), 204, "")
		want(t, e.do("POST", api+"/logout", "", map[string]any{"refresh_token": b.refresh}), 204, "")
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": b.refresh}), 401, "invalid_refresh_token")

		// Expired refresh tokens are refused.
		c := e.login("r@example.com")
		e.clk.Advance(25 * time.Hour)
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": c.refresh}), 401, "invalid_refresh_token")
	})
}

func TestRefreshSwitchesOrganization(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("a@example.com", "A", "sme")
		b := e.signup("b@example.com", "B", "vendor")
		want(t, e.do("POST", api+"/organizations/"+b.orgID+"/members", b.access, map[string]any{"email": a.email, "role": "member"}), 201, "")
		want(t, e.do("POST", api+"/invitations/"+e.inviteToken()+"/accept", a.access, nil), 200, "")
		r := e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh, "organization_id": b.orgID})
		want(t, r, 200, "")
		me := e.do("GET", api+"/me", r.str("access_token"), nil)
		if me.str("active_organization_id") != b.orgID || len(me.body["memberships"].([]any)) != 2 {
			t.Fatalf("after switch: %s", me.raw)
		}
		// Not a member: 404, and the token stays usable.
		c := e.signup("c@example.com", "C", "sme")
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": r.str("refresh_token"), "organization_id": c.orgID}), 404, "organization_not_found")
		want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": r.str("refresh_token")}), 200, "")
	})
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		e.signup("k@example.com", "Org", "sme")
		r := e.do("GET", api+"/.well-known/jwks.json", "", nil)
		want(t, r, 200, "")
		keys := r.body["keys"].([]any)
		if len(keys) != 1 {
			t.Fatalf("jwks: %s", r.raw)
		}
		k := keys[0].(map[string]any)
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["kid"] == "" {
			t.Fatalf("jwk: %v", k)
		}
		if bytes.Contains(r.raw, []byte(`"d"`)) {
			t.Fatal("private key material in the JWKS")
		}
	})
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		d := openapi.New("test", "dev")
		e.svc.OpenAPI(d)
		if missing := openapi.Missing(e.app, d); len(missing) > 0 {
			t.Fatalf("routes missing from the OpenAPI document: %v", missing)
		}
		if _, err := d.JSON(); err != nil {
			t.Fatal(err)
		}
	})
}
