package web_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

type signupRequest struct {
	Email        string `json:"email" validate:"required,email"`
	Name         string `json:"name" validate:"required,max=10"`
	Organization struct {
		Kind string `json:"kind" validate:"oneof=sme vendor partner"`
	} `json:"organization"`
	Age int `json:"age"`
}

func (r signupRequest) Validate() error {
	var f problem.Fields
	f.Check(r.Age >= 0, "age", "negative", "must not be negative")
	return f.Err()
}

type keys map[string]ed25519.PublicKey

func (k keys) PublicKey(_ context.Context, kid string) (crypto.PublicKey, error) {
	if pub, ok := k[kid]; ok {
		return pub, nil
	}
	return nil, jwtauth.ErrUnknownKey
}

type fixture struct {
	app  *fiber.App
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	logs *bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app := web.New(web.Config{Logger: log, BodyLimit: 4096})
	authn := web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: keys{"k1": pub}}}}
	api := app.Group("/api", web.Auth(authn))
	api.Post("/signup", func(c *fiber.Ctx) error {
		var req signupRequest
		if err := web.Bind(c, &req); err != nil {
			return err
		}
		return c.Status(201).JSON(req)
	})
	api.Get("/me", web.RequireAuth, func(c *fiber.Ctx) error {
		p := web.PrincipalOf(c)
		return c.JSON(fiber.Map{"user": p.UserID, "org": p.OrgID, "role": p.Role})
	})
	api.Get("/staff", web.RequireStaff, func(c *fiber.Ctx) error { return c.SendStatus(204) })
	api.Post("/write", web.RequireAuth, web.RequireScope("write"), func(c *fiber.Ctx) error { return c.SendStatus(204) })
	api.Get("/spend", web.RequireVerifiedEmail, func(c *fiber.Ctx) error { return c.SendStatus(204) })
	api.Get("/admin", web.RequireOrgAdmin, func(c *fiber.Ctx) error { return c.SendStatus(204) })
	api.Get("/vendor", web.RequireOrgKind("vendor"), func(c *fiber.Ctx) error { return c.SendStatus(204) })
	api.Get("/boom", func(c *fiber.Ctx) error { return errors.New("database password=hunter2 exploded") })
	api.Get("/panic", func(c *fiber.Ctx) error { panic("kaboom") })
	api.Get("/dbdown", func(c *fiber.Ctx) error {
		// What a store returns when Postgres refuses the connection (sqldb's tests use the real one).
		refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		return fmt.Errorf("list listings: %w", refused)
	})
	api.Get("/items", func(c *fiber.Ctx) error {
		p, err := web.PageOf(c)
		if err != nil {
			return err
		}
		start := 0
		if p.Cursor != "" {
			if err := web.DecodeCursor(p.Cursor, &start); err != nil {
				return err
			}
		}
		var items []int
		for i := start; i < 7 && len(items) <= p.Limit; i++ {
			items = append(items, i)
		}
		return c.JSON(web.NewList(items, p.Limit, func(last int) any { return last + 1 }))
	})
	app.All("/api/*", web.NotFound)
	app.Use(web.NotFound)
	return &fixture{app: app, priv: priv, pub: pub, logs: &logs}
}

func (f *fixture) token(t *testing.T, mutate func(*jwtauth.Claims)) string {
	t.Helper()
	now := time.Now()
	c := jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: jwtauth.Issuer, Audience: jwt.ClaimStrings{jwtauth.Audience}, Subject: "u1",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), ID: "j1",
	}, Org: "o1", OrgKind: "sme", Role: "member"}
	if mutate != nil {
		mutate(&c)
	}
	if c.Staff && c.AMR == nil {
		c.AMR = []string{jwtauth.AMRPassword, jwtauth.AMRMFA} // staff sign in with MFA; tests of its absence set AMR
	}
	s, err := jwtauth.Sign(c, "k1", f.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type answer struct {
	status int
	body   map[string]any
	header http.Header
	close  bool // the server closes the connection after this answer
}

func (f *fixture) do(t *testing.T, method, path, body, token string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &a.body)
	}
	return a
}

func TestBadInputAnswersProblemsWithStableCodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cases := []struct {
		name, body string
		status     int
		code       string
		fields     []string
	}{
		{"empty", "", 400, "malformed_json", nil},
		{"syntax", `{"email":`, 400, "malformed_json", nil},
		{"trailing", `{"email":"a@b.c","name":"x","organization":{"kind":"sme"}} {}`, 400, "malformed_json", nil},
		{"unknown field", `{"email":"a@b.c","nmae":"x"}`, 422, "validation_failed", []string{"nmae"}},
		{"wrong type", `{"email":"a@b.c","name":5}`, 422, "validation_failed", []string{"name"}},
		{"all invalid at once", `{"email":"nope","name":"far too long a name","organization":{"kind":"x"},"age":-1}`, 422,
			"validation_failed", []string{"age", "email", "name", "organization.kind"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.do(t, "POST", "/api/signup", c.body, "")
			if a.status != c.status || a.body["code"] != c.code {
				t.Fatalf("got %d %v", a.status, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			var got []string
			fs, _ := a.body["fields"].([]any)
			for _, x := range fs {
				got = append(got, x.(map[string]any)["field"].(string))
			}
			if strings.Join(got, ",") != strings.Join(c.fields, ",") {
				t.Fatalf("fields = %v, want %v", got, c.fields)
			}
		})
	}
	ok := f.do(t, "POST", "/api/signup", `{"email":"a@b.c","name":"Ann","organization":{"kind":"sme"}}`, "")
	if ok.status != 201 {
		t.Fatalf("valid input refused: %d %v", ok.status, ok.body)
	}
}

// Fasthttp refuses an oversized body before any handler runs; it must still answer problem JSON.
func TestOversizedBodyOverRealConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.app.Listener(ln) }()
	t.Cleanup(func() { _ = f.app.Shutdown() })
	resp, err := http.Post("http://"+ln.Addr().String()+"/api/signup", "application/json",
		strings.NewReader(`{"name":"`+strings.Repeat("x", 5000)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 413 || body["code"] != "payload_too_large" {
		t.Fatalf("got %d %v", resp.StatusCode, body)
	}
}

func TestUnknownRoutesAndInternalErrorsSayNothingOfInternals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if a := f.do(t, "GET", "/api/nowhere", "", ""); a.status != 404 || a.body["code"] != "route_not_found" {
		t.Fatalf("unknown api route: %d %v", a.status, a.body)
	}
	if a := f.do(t, "GET", "/elsewhere", "", ""); a.status != 404 || a.body["code"] != "route_not_found" {
		t.Fatalf("unknown route: %d %v", a.status, a.body)
	}
	a := f.do(t, "GET", "/api/boom", "", "")
	if a.status != 500 || a.body["code"] != "internal" || strings.Contains(fmt.Sprint(a.body), "hunter2") {
		t.Fatalf("internal error leaked: %d %v", a.status, a.body)
	}
	if !strings.Contains(f.logs.String(), "exploded") {
		t.Fatal("internal error not logged")
	}
	if a := f.do(t, "GET", "/api/panic", "", ""); a.status != 500 || a.body["code"] != "internal" {
		t.Fatalf("panic: %d %v", a.status, a.body)
	}
}

func TestUnreachableDatabaseAnswersUnavailable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.do(t, "GET", "/api/dbdown", "", "")
	if a.status != 503 || a.body["code"] != "unavailable" || a.header.Get("Retry-After") != "5" {
		t.Fatalf("database down: %d %v Retry-After=%q, want 503 unavailable with Retry-After", a.status, a.body, a.header.Get("Retry-After"))
	}
	if strings.Contains(fmt.Sprint(a.body), "connection refused") {
		t.Fatalf("cause leaked: %v", a.body)
	}
	logs := f.logs.String()
	if strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "level=WARN msg=\"dependency unavailable\"") ||
		!strings.Contains(logs, "connection refused") || !strings.Contains(logs, "level=WARN msg=http") {
		t.Fatalf("want warn lines with the cause and no error line, got:\n%s", logs)
	}
}

func TestTokensAreVerifiedStrictly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := f.token(t, nil)
	if a := f.do(t, "GET", "/api/me", "", good); a.status != 200 || a.body["user"] != "u1" || a.body["org"] != "o1" {
		t.Fatalf("good token: %d %v", a.status, a.body)
	}
	if a := f.do(t, "GET", "/api/me", "", ""); a.status != 401 || a.body["code"] != "unauthorized" {
		t.Fatalf("anonymous: %d %v", a.status, a.body)
	}
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"member"`), []byte(`"owner"`), 1)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + parts[1] + "."
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u1", "iss": jwtauth.Issuer, "aud": jwtauth.Audience,
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix()})
	hs.Header["kid"] = "k1"
	hsToken, _ := hs.SignedString([]byte(f.pub)) // the classic key-confusion attack
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	wrongKey, _ := jwtauth.Sign(jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: jwtauth.Issuer, Subject: "u1",
		Audience: jwt.ClaimStrings{jwtauth.Audience}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}, "k1", otherPriv)
	unknownKid, _ := jwtauth.Sign(jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: jwtauth.Issuer, Subject: "u1",
		Audience: jwt.ClaimStrings{jwtauth.Audience}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}, "k9", f.priv)
	bad := map[string]string{
		"tampered":     tampered,
		"alg none":     none,
		"hs256":        hsToken,
		"wrong key":    wrongKey,
		"unknown kid":  unknownKid,
		"expired":      f.token(t, func(c *jwtauth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }),
		"wrong issuer": f.token(t, func(c *jwtauth.Claims) { c.Issuer = "evil" }),
		"wrong aud":    f.token(t, func(c *jwtauth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }),
		"no subject":   f.token(t, func(c *jwtauth.Claims) { c.Subject = "" }),
		"garbage":      "not.a.jwt",
	}
	for name, tok := range bad {
		a := f.do(t, "GET", "/api/me", "", tok)
		if a.status != 401 || a.body["code"] != "invalid_token" {
			t.Errorf("%s: %d %v", name, a.status, a.body)
		}
	}
	req := httptest.NewRequest("GET", "/api/me", nil)
	req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	if resp, _ := f.app.Test(req); resp.StatusCode != 401 {
		t.Errorf("basic auth accepted: %d", resp.StatusCode)
	}
}

func TestGuards(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	member := f.token(t, nil)
	staffAdminVendor := f.token(t, func(c *jwtauth.Claims) { c.Staff, c.Role, c.OrgKind = true, "admin", "vendor" })
	verified := f.token(t, func(c *jwtauth.Claims) { c.EmailVerified = true })
	if a := f.do(t, "GET", "/api/spend", "", member); a.body["code"] != "email_unverified" {
		t.Errorf("unverified: %v", a.body)
	}
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/api/staff", member, 403}, {"/api/staff", staffAdminVendor, 204}, {"/api/staff", "", 401},
		{"/api/admin", member, 403}, {"/api/admin", staffAdminVendor, 204},
		{"/api/vendor", member, 403}, {"/api/vendor", staffAdminVendor, 204},
		{"/api/spend", member, 403}, {"/api/spend", verified, 204}, {"/api/spend", "", 401},
	} {
		if a := f.do(t, "GET", c.path, "", c.token); a.status != c.status {
			t.Errorf("%s: %d, want %d (%v)", c.path, a.status, c.status, a.body)
		}
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var all []float64
	path := "/api/items?limit=3"
	for i := 0; i < 5; i++ {
		a := f.do(t, "GET", path, "", "")
		if a.status != 200 {
			t.Fatalf("%d %v", a.status, a.body)
		}
		for _, x := range a.body["items"].([]any) {
			all = append(all, x.(float64))
		}
		next, _ := a.body["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/api/items?limit=3&cursor=" + next
	}
	if len(all) != 7 || all[6] != 6 {
		t.Fatalf("paged items = %v", all)
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x"} {
		if a := f.do(t, "GET", "/api/items?"+q, "", ""); a.status != 422 || a.body["code"] != "validation_failed" {
			t.Errorf("%s: %d %v", q, a.status, a.body)
		}
	}
	if a := f.do(t, "GET", "/api/items?cursor=%%%", "", ""); a.status != 400 || a.body["code"] != "invalid_cursor" {
		t.Errorf("bad cursor: %d %v", a.status, a.body)
	}
}

// FuzzDecode: the request decoder never panics and only ever answers a problem or success.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"email":"a@b.c"}`, `{"organization":{"kind":"sme"}}`, `[`, `{"age":1e400}`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req signupRequest
		err := web.Decode(body, &req)
		if err == nil {
			err = web.Check(&req)
		}
		if err != nil {
			if _, ok := problem.From(err); !ok {
				t.Fatalf("non-problem error %v for %q", err, body)
			}
		}
	})
}

func TestSlicePagesInMemoryLists(t *testing.T) {
	t.Parallel()
	items := []int{0, 1, 2, 3, 4, 5, 6}
	var got []int
	p := web.Page{Limit: 3}
	for pages := 0; pages < 5; pages++ {
		l, err := web.Slice(items, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Items...)
		if l.NextCursor == "" {
			break
		}
		p.Cursor = l.NextCursor
	}
	if fmt.Sprint(got) != fmt.Sprint(items) {
		t.Fatalf("paged %v", got)
	}
	if l, err := web.Slice([]int(nil), web.Page{Limit: 3}); err != nil || l.Items == nil || l.NextCursor != "" {
		t.Fatalf("empty list: %+v %v", l, err)
	}
	if _, err := web.Slice(items, web.Page{Limit: 3, Cursor: "%%%"}); err == nil {
		t.Fatal("forged cursor accepted")
	}
}

// TestQueryTokenOnlyOnStreamPaths: ?access_token= is for the streams browsers cannot set headers on (logs,
// terminal, proxy); elsewhere a token in the URL is ignored, whatever Accept or Upgrade the request claims.
func TestQueryTokenOnlyOnStreamPaths(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := f.token(t, nil)
	ok := func(c *fiber.Ctx) error { return c.SendStatus(204) }
	app := web.New(web.Config{})
	authn := web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: keys{"k1": f.pub}}}}
	api := app.Group("/api", web.Auth(authn))
	api.Get("/me", web.RequireAuth, ok)
	api.Post("/grants", web.RequireAuth, ok)
	api.Get("/sandboxes/:id/logs", web.RequireAuth, ok)
	api.Get("/sandboxes/:id/terminal", web.RequireAuth, ok)
	api.All("/sandboxes/:id/proxy/:port/*", web.RequireAuth, ok)
	for _, c := range []struct {
		method, path string
		header       [2]string
		status       int
	}{
		{"GET", "/api/me", [2]string{}, 401},
		{"GET", "/api/me", [2]string{"Accept", "text/event-stream"}, 401},
		{"POST", "/api/grants", [2]string{"Accept", "text/event-stream"}, 401},
		{"POST", "/api/grants", [2]string{"Upgrade", "websocket"}, 401},
		{"GET", "/api/sandboxes/sb1/logs", [2]string{"Accept", "text/event-stream"}, 204},
		{"GET", "/api/sandboxes/sb1/terminal", [2]string{"Upgrade", "websocket"}, 204},
		{"GET", "/api/sandboxes/sb1/proxy/8888/index.html", [2]string{}, 204},
	} {
		req := httptest.NewRequest(c.method, c.path+"?access_token="+good, nil)
		if c.header[0] != "" {
			req.Header.Set(c.header[0], c.header[1])
		}
		res, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("%s %s with %v: %d, want %d", c.method, c.path, c.header, res.StatusCode, c.status)
		}
	}
}

// TestSecretPathsStayOutOfLogs: a request matching a SecretPath is logged by its pattern even when a
// middleware (here: a bad token) refuses it before any handler runs.
func TestSecretPathsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	web.SecretPath("/api/secret-links/:token/open")
	if a := f.do(t, "POST", "/api/secret-links/s3cr3t-t0ken/open", "", "forged"); a.status != 401 {
		t.Fatalf("status %d", a.status)
	}
	if a := f.do(t, "GET", "/api/secret-links/s3cr3t-t0ken/other", "", ""); a.status != 404 {
		t.Fatalf("status %d", a.status)
	}
	logs := f.logs.String()
	if strings.Contains(logs, "s3cr3t-t0ken/open") || !strings.Contains(logs, "/api/secret-links/:token/open") {
		t.Fatalf("logs:\n%s", logs)
	}
	if !strings.Contains(logs, "/api/secret-links/s3cr3t-t0ken/other") {
		t.Fatalf("a path not matching the pattern lost its detail:\n%s", logs)
	}
}
