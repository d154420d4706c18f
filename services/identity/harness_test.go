package identity

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"github.com/alexedwards/argon2id"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// cheapArgon keeps tests fast; production uses argon2id.DefaultParams.
var cheapArgon = &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

const testPassword = "correct horse battery staple"

// lastMail is the latest mail the service sent.
func (e *tenv) lastMail() mail.Message {
	e.t.Helper()
	m, ok := e.mail.Last()
	if !ok {
		e.t.Fatal("no mail sent")
	}
	return m
}

// tenv is a real identity service on a real database and bus, behind a real Fiber app.
type tenv struct {
	t    *testing.T
	db   *gorm.DB
	bus  *eventbus.Bus
	svc  *Service
	app  *fiber.App
	clk  *clock.Manual
	logs *webtest.Buffer
	mail *mail.Memory

	listenOnce sync.Once
	base       string
}

type opts struct {
	signupPerMin int
	secret       []byte
	bus          *eventbus.Bus
	throttle     LoginThrottle
	// trusted are the proxies whose X-Forwarded-For the app believes; app.Test's peer is 0.0.0.0.
	trusted string
}

func migrations() []sqldb.Migrations { return []sqldb.Migrations{Migrations()} }

func newEnv(t *testing.T, db *gorm.DB, o ...opts) *tenv {
	t.Helper()
	var op opts
	if len(o) > 0 {
		op = o[0]
	}
	if op.signupPerMin == 0 {
		op.signupPerMin = 1000
	}
	bus := op.bus
	if bus == nil {
		bus = natstest.Start(t)
	}
	e := &tenv{t: t, db: db, bus: bus, clk: clock.NewManual(time.Now().UTC().Truncate(time.Second)), logs: &webtest.Buffer{}, mail: &mail.Memory{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := New(Deps{DB: db, Bus: bus, Log: log, Clock: e.clk, Mailer: e.mail, AccessTTL: 15 * time.Minute,
		RefreshTTL: 24 * time.Hour, SignupPerMin: op.signupPerMin, LoginThrottle: op.throttle, PublicURL: "http://tamarack.test", KeySecret: op.secret, Argon2: cheapArgon})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	trusted, err := web.ParseTrustedProxies(op.trusted)
	if err != nil {
		t.Fatal(err)
	}
	e.app = web.New(web.Config{Logger: log, TrustedProxies: trusted})
	authn := web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: svc.Keys(), Now: e.clk.Now}}, APITokens: svc.APITokens()}
	api := e.app.Group("/api/v1", web.Auth(authn))
	svc.Routes(api.Group("/identity"))
	e.app.Use(web.NotFound)
	return e
}

// each runs fn on SQLite and (when configured) Postgres, with a fresh environment.
func each(t *testing.T, fn func(t *testing.T, e *tenv)) {
	t.Helper()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) { fn(t, newEnv(t, db)) })
}

type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r resp) code() string {
	c, _ := r.body["code"].(string)
	return c
}

func (r resp) str(key string) string {
	v, _ := r.body[key].(string)
	return v
}

// do sends a request; body is a string (sent as is) or a value encoded as JSON.
func (e *tenv) do(method, path, token string, body any) resp {
	e.t.Helper()
	return e.doWith(method, path, token, body, nil)
}

// doWith is do with extra request headers.
func (e *tenv) doWith(method, path, token string, body any, header map[string]string) resp {
	e.t.Helper()
	var pairs []string
	for k, v := range header {
		pairs = append(pairs, k, v)
	}
	w := webtest.Do(e.t, e.app, method, path, token, body, pairs...)
	r := resp{status: w.Status, header: w.Header, raw: w.Body}
	if len(w.Body) > 0 && w.Body[0] == '{' {
		_ = json.Unmarshal(w.Body, &r.body)
	}
	return r
}

// want fails unless r has status and (when not empty) problem code.
func want(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		t.Fatalf("got %d %s, want %d %s: %s", r.status, r.code(), status, code, r.raw)
	}
}

const api = "/api/v1/identity"

type account struct {
	userID, orgID, email string
	access, refresh      string
}

// signup creates a user and organisation over HTTP.
func (e *tenv) signup(email, org, kind string) account {
	e.t.Helper()
	r := e.do("POST", api+"/signup", "", map[string]any{"email": email, "password": testPassword, "name": "Test " + email,
		"organization": map[string]any{"name": org, "kind": kind}})
	want(e.t, r, 201, "")
	u := r.body["user"].(map[string]any)
	o := r.body["organization"].(map[string]any)
	return account{userID: u["id"].(string), orgID: o["id"].(string), email: email, access: r.str("access_token"), refresh: r.str("refresh_token")}
}

func (e *tenv) login(email string, orgID ...string) account {
	e.t.Helper()
	body := map[string]any{"email": email, "password": testPassword}
	if len(orgID) > 0 {
		body["organization_id"] = orgID[0]
	}
	r := e.do("POST", api+"/login", "", body)
	want(e.t, r, 200, "")
	return account{email: email, access: r.str("access_token"), refresh: r.str("refresh_token")}
}

// staff makes a staff user and signs them in.
func (e *tenv) staff() account {
	e.t.Helper()
	uid, oid, err := e.svc.EnsureDemo(context.Background(), DemoAccount{Email: "staff@test.example", Name: "Staff", Password: testPassword,
		OrgName: "Programme", OrgKind: KindProgramme, Verified: true, Staff: true})
	if err != nil {
		e.t.Fatal(err)
	}
	// Staff act as staff only with MFA: enrol, then sign in with a code (mfa_test.go).
	secret, _ := e.enrolMFA(e.login("staff@test.example").access)
	a := e.loginMFA("staff@test.example", secret)
	a.userID, a.orgID = uid, oid
	return a
}

// inviteToken extracts the invitation token from the last mail.
func (e *tenv) inviteToken() string {
	e.t.Helper()
	body := e.lastMail().Body
	i := strings.Index(body, "/invitations/")
	if i < 0 {
		e.t.Fatalf("no invitation link in %q", body)
	}
	tok := body[i+len("/invitations/"):]
	if j := strings.IndexAny(tok, "/\n "); j >= 0 {
		tok = tok[:j]
	}
	return tok
}

// dbtestEach is each with options.
func dbtestEach(t *testing.T, fn func(t *testing.T, e *tenv), o opts) {
	t.Helper()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) { fn(t, newEnv(t, db, o)) })
}

func problemCode(err error) string {
	if p, ok := problem.From(err); ok {
		return p.Code
	}
	return fmt.Sprint(err)
}

// overHTTP sends one request's headers through a real listener, announcing len(body) bytes but sending
// none: fasthttp refuses an oversized body from its Content-Length before the app runs (app.Test reports that
// as an error, not the 413 a client receives), and sending nothing keeps the server's close clean.
func (e *tenv) overHTTP(method, path, token, body string) resp {
	e.t.Helper()
	e.listenOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.t.Fatal(err)
		}
		go func() { _ = e.app.Listener(ln) }()
		e.t.Cleanup(func() { _ = e.app.Shutdown() })
		e.base = ln.Addr().String()
	})
	conn, err := net.DialTimeout("tcp", e.base, 10*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, len(body))
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := conn.Write([]byte(head + "\r\n")); err != nil {
		e.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

var jwtParser = jwt.NewParser()
