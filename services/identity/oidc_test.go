package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// The OpenID provider of these tests is zitadel/oidc's example server: a real OP (discovery, JWKS, the code
// flow with PKCE, userinfo, a login form) with users read from a JSON file. The test builds it once from the
// module cache (go install …@version into the user's cache directory, keyed by version) so CI needs nothing
// extra, and runs it on a free loopback port.
const (
	exampleOPModule  = "github.com/zitadel/oidc/v3/example/server"
	exampleOPVersion = "v3.52.0"
	// The example server registers client "web" with secret "secret" and the redirect URIs in REDIRECT_URI.
	exampleOPClient, exampleOPSecret = "web", "secret"
	opPassword                       = "verysecure"
)

var buildOP sync.Mutex

// exampleOPBinary returns the example server's binary, building it when missing.
func exampleOPBinary(t *testing.T) string {
	t.Helper()
	buildOP.Lock()
	defer buildOP.Unlock()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "tamarack", "zitadel-oidc-example-server-"+exampleOPVersion)
	bin := filepath.Join(dir, "server")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", exampleOPModule+"@"+exampleOPVersion)
	cmd.Dir = tmp // outside this module: go install pkg@version resolves the example's own go.mod
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the example OpenID provider (%s@%s): %v\n%s", exampleOPModule, exampleOPVersion, err, out)
	}
	// Rename is atomic: a concurrent test run sees the whole binary or none.
	if err := os.Rename(filepath.Join(tmp, "server"), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// opUser is the example server's user record (its JSON has the Go field names).
type opUser struct {
	ID, Username, Password, FirstName, LastName, Email string
	EmailVerified                                      bool
	PreferredLanguage                                  string
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// startOP runs the example OP with users, admitting redirect, and returns its issuer URL.
func startOP(t *testing.T, redirect string, users []opUser) string {
	t.Helper()
	bin := exampleOPBinary(t)
	byID := map[string]opUser{}
	for _, u := range users {
		u.Password, u.PreferredLanguage = opPassword, "en"
		byID[u.ID] = u
	}
	usersFile := filepath.Join(t.TempDir(), "users.json")
	b, _ := json.Marshal(byID)
	if err := os.WriteFile(usersFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		issuer := "http://localhost:" + strconv.Itoa(port) + "/"
		logs := &syncLog{}
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "REDIRECT_URI="+redirect, "USERS_FILE="+usersFile)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() { _ = cmd.Process.Kill(); <-exited }
		if waitDiscovery(issuer, exited) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					logs.mu.Lock()
					t.Logf("example OP log:\n%s", logs.b.String())
					logs.mu.Unlock()
				}
			})
			return issuer
		}
		select {
		case <-exited: // the port was taken meanwhile: try another
		default:
			stop()
		}
		if attempt == 2 {
			logs.mu.Lock()
			defer logs.mu.Unlock()
			t.Fatalf("the example OP did not start:\n%s", logs.b.String())
		}
	}
}

// waitDiscovery polls the discovery document until it answers, the process exits, or 30 s pass.
func waitDiscovery(issuer string, exited <-chan error) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(issuer + ".well-known/openid-configuration")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == 200 {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// oidcEnv is identity with one OIDC provider ("test", the example OP) served on a real loopback listener,
// since the browser is redirected between the two servers.
type oidcEnv struct {
	*tenv
	base   string // our server
	issuer string
	orgID  string // where example.org's new users land
}

func newOIDCEnv(t *testing.T, db *gorm.DB, users []opUser) *oidcEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	redirect := base + api + "/oidc/test/callback"
	issuer := startOP(t, redirect, users)

	orgID := newID()
	if err := db.Create(&Organization{ID: orgID, Name: "Example Research", Kind: KindSME, CreatedAt: time.Now().UTC()}).Error; err != nil {
		t.Fatal(err)
	}
	e := &tenv{t: t, db: db, bus: natstest.Start(t), clk: clock.NewManual(time.Now().UTC().Truncate(time.Second)), logs: &webtest.Buffer{}, mail: &mail.Memory{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := New(Deps{DB: db, Bus: e.bus, Log: log, Clock: e.clk, Mailer: e.mail, AccessTTL: 15 * time.Minute,
		RefreshTTL: 24 * time.Hour, SignupPerMin: 1000, PublicURL: base, Argon2: cheapArgon,
		OIDC: []OIDCProvider{{ID: "test", Name: "Example OP", Issuer: issuer, ClientID: exampleOPClient, ClientSecret: exampleOPSecret,
			RedirectURL: redirect, Domains: map[string]string{"Example.org": orgID}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.app = web.New(web.Config{Logger: log})
	authn := web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: svc.Keys(), Now: e.clk.Now}}, APITokens: svc.APITokens()}
	svc.Routes(e.app.Group("/api/v1", web.Auth(authn)).Group("/identity"))
	e.app.Use(web.NotFound)
	go func() { _ = e.app.Listener(ln) }()
	t.Cleanup(func() { _ = e.app.Shutdown() })
	return &oidcEnv{tenv: e, base: base, issuer: issuer, orgID: orgID}
}

// browser is a user agent with its own cookies. It stops at the web UI's callback page (which this test server
// does not serve), and with stopAtCallback already at our callback, for the test to call.
func (o *oidcEnv) browser(stopAtCallback bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), o.base+OIDCCallbackPage+"?") ||
			(stopAtCallback && strings.HasPrefix(req.URL.String(), o.base+api+"/oidc/test/callback")) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return c
}

// exchange posts a sign-in code to /oidc/exchange from browser c (with its cookies).
func (o *oidcEnv) exchange(c *http.Client, code string) resp {
	o.t.Helper()
	b, _ := json.Marshal(map[string]string{"code": code})
	res, err := c.Post(o.base+api+"/oidc/exchange", "application/json", bytes.NewReader(b))
	if err != nil {
		o.t.Fatal(err)
	}
	return readResp(o.t, res)
}

// uiPage reads the web UI page a callback redirected to: its ?code= or ?error=.
func (o *oidcEnv) uiPage(r resp) (code, problemCode string) {
	o.t.Helper()
	loc, err := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || err != nil || loc.Path != OIDCCallbackPage {
		o.t.Fatalf("want a 303 to %s, got %d %q: %s", OIDCCallbackPage, r.status, r.header.Get("Location"), r.raw)
	}
	if loc.Query().Get("code") == "" && loc.Query().Get("error") == "" || strings.Contains(loc.RawQuery, "token") {
		o.t.Fatalf("callback page URL %s", loc)
	}
	return loc.Query().Get("code"), loc.Query().Get("error")
}

var loginFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signInAt starts at our login endpoint, fills the OP's login form as username and follows the redirects;
// it returns the last response (our callback's redirect to the web UI, or with stopAtCallback the OP's
// redirect to our callback).
func (o *oidcEnv) signInAt(c *http.Client, username string) resp {
	t := o.t
	t.Helper()
	res, err := c.Get(o.base + api + "/oidc/test/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	m := loginFormID.FindSubmatch(page)
	if res.StatusCode != 200 || m == nil {
		t.Fatalf("no login form at %s: %d %s", res.Request.URL, res.StatusCode, page)
	}
	if !strings.HasPrefix(res.Request.URL.String(), o.issuer) {
		t.Fatalf("login did not lead to the OP: %s", res.Request.URL)
	}
	res, err = c.PostForm(o.issuer+"login/username", url.Values{"id": {string(m[1])}, "username": {username}, "password": {opPassword}})
	if err != nil {
		t.Fatal(err)
	}
	return readResp(t, res)
}

func readResp(t *testing.T, res *http.Response) resp {
	t.Helper()
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &r.body)
	}
	return r
}

// signIn runs the web UI's flow in a new browser: sign in at the OP, then exchange the code of the callback's
// redirect. A refusal (?error=) answers a resp whose status is 303 and whose code is the problem's.
func (o *oidcEnv) signIn(username string) resp {
	o.t.Helper()
	c := o.browser(false)
	r := o.signInAt(c, username)
	code, refused := o.uiPage(r)
	if refused != "" {
		return resp{status: r.status, header: r.header, raw: []byte(r.header.Get("Location")), body: map[string]any{"code": refused}}
	}
	return o.exchange(c, code)
}

func (o *oidcEnv) me(access string) (userID, email string, memberships []any) {
	o.t.Helper()
	r := o.do("GET", api+"/me", access, nil)
	want(o.t, r, 200, "")
	u := r.body["user"].(map[string]any)
	return u["id"].(string), u["email"].(string), r.body["memberships"].([]any)
}

func (o *oidcEnv) audits(action string) []AuditEntry {
	o.t.Helper()
	var es []AuditEntry
	if err := o.db.Where("action = ?", action).Order("id").Find(&es).Error; err != nil {
		o.t.Fatal(err)
	}
	return es
}

var opUsers = []opUser{
	{ID: "u-ada", Username: "ada", FirstName: "Ada", LastName: "Lovelace", Email: "Ada@Example.org", EmailVerified: true},
	{ID: "u-grace", Username: "grace", FirstName: "Grace", LastName: "Hopper", Email: "grace@example.org", EmailVerified: true},
	{ID: "u-bob", Username: "bob", FirstName: "Bob", LastName: "Unverified", Email: "bob@example.org", EmailVerified: false},
	{ID: "u-eve", Username: "eve", FirstName: "Eve", LastName: "Elsewhere", Email: "eve@elsewhere.test", EmailVerified: true},
}

// TestOIDCSignInAgainstARealProvider runs the whole browser flow against the example OP: our login → the
// OP's form → our callback with a code → the platform's own tokens.
func TestOIDCSignInAgainstARealProvider(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		o := newOIDCEnv(t, db, opUsers)

		r := o.do("GET", api+"/oidc/providers", "", nil)
		want(t, r, 200, "")
		items := r.body["providers"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["login_url"] != api+"/oidc/test/login" || items[0].(map[string]any)["name"] != "Example OP" {
			t.Fatalf("providers: %s", r.raw)
		}

		// A new user from an admitted domain gets an account in the domain's organisation, with the default role.
		r = o.signIn("ada")
		want(t, r, 200, "")
		if r.str("token_type") != "Bearer" || r.str("refresh_token") == "" || r.body["expires_in"] != float64(15*60) {
			t.Fatalf("tokens: %s", r.raw)
		}
		adaID, email, ms := o.me(r.str("access_token"))
		if email != "ada@example.org" || len(ms) != 1 {
			t.Fatalf("me: %s %v", email, ms)
		}
		if m := ms[0].(map[string]any); m["role"] != RoleMember || m["organization"].(map[string]any)["id"] != o.orgID {
			t.Fatalf("membership: %v", m)
		}
		var claims jwtauth.Claims
		if _, _, err := jwtParser.ParseUnverified(r.str("access_token"), &claims); err != nil || claims.Org != o.orgID || claims.Role != RoleMember {
			t.Fatalf("access token claims %+v: %v", claims, err)
		}
		// The refresh token is a normal one.
		want(t, o.do("POST", api+"/refresh", "", map[string]any{"refresh_token": r.str("refresh_token")}), 200, "")
		// A passwordless account cannot sign in with an empty password.
		want(t, o.do("POST", api+"/login", "", map[string]any{"email": "ada@example.org", "password": "x"}), 401, "invalid_credentials")

		// The second sign-in finds the same account through the link.
		r = o.signIn("ada")
		want(t, r, 200, "")
		if id, _, _ := o.me(r.str("access_token")); id != adaID {
			t.Fatalf("second sign-in: user %s, want %s", id, adaID)
		}

		// An existing password account links by verified e-mail and keeps its own organisation.
		grace := o.signup("grace@example.org", "Grace's Lab", KindSME)
		r = o.signIn("grace")
		want(t, r, 200, "")
		id, _, ms := o.me(r.str("access_token"))
		if id != grace.userID || len(ms) != 1 || ms[0].(map[string]any)["organization"].(map[string]any)["id"] != grace.orgID {
			t.Fatalf("grace: user %s %v, want %s in %s", id, ms, grace.userID, grace.orgID)
		}

		// Unverified e-mail and a domain not admitted are refused, and create nothing.
		want(t, o.signIn("bob"), 303, "oidc_email_unverified")
		want(t, o.signIn("eve"), 303, "oidc_domain_not_allowed")
		for _, e := range []string{"bob@example.org", "eve@elsewhere.test"} {
			if _, err := userByEmail(db, e); !errors.Is(err, ErrUserNotFound) {
				t.Errorf("%s: account created (%v)", e, err)
			}
		}

		if n := len(o.audits(AuditOIDCSignup)); n != 1 {
			t.Errorf("oidc_signup entries: %d, want 1", n)
		}
		if links := o.audits(AuditOIDCLinked); len(links) != 2 || links[0].ActorUserID != adaID || links[1].ActorUserID != grace.userID {
			t.Errorf("oidc_linked entries: %+v", links)
		}
		oidcLogins := 0
		for _, e := range o.audits(AuditLoginOK) {
			if strings.Contains(e.Detail, `"method":"oidc"`) && strings.Contains(e.Detail, `"provider":"test"`) {
				oidcLogins++
			}
		}
		if oidcLogins != 3 {
			t.Errorf("oidc login_succeeded entries: %d, want 3", oidcLogins)
		}
		reasons := map[string]bool{}
		for _, e := range o.audits(AuditLoginFailed) {
			var d map[string]any
			_ = json.Unmarshal([]byte(e.Detail), &d)
			if reason, ok := d["reason"].(string); ok {
				reasons[reason+" "+e.ActorEmail] = true
			}
		}
		if !reasons["email_unverified bob@example.org"] || !reasons["domain_not_allowed eve@elsewhere.test"] {
			t.Errorf("login_failed reasons: %v", reasons)
		}
	})
}

// TestOIDCStateIsCheckedOnceInTheBrowserThatStarted: a forged or replayed state, or a callback carried to
// another browser, is refused; the genuine callback still works once.
func TestOIDCStateIsCheckedOnceInTheBrowserThatStarted(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		o := newOIDCEnv(t, db, opUsers)
		c := o.browser(true)
		r := o.signInAt(c, "ada")
		if r.status != http.StatusFound {
			t.Fatalf("want the OP's redirect to our callback, got %d %s", r.status, r.raw)
		}
		back, err := url.Parse(r.header.Get("Location"))
		if err != nil || back.Query().Get("code") == "" || back.Query().Get("state") == "" {
			t.Fatalf("callback URL %q: %v", r.header.Get("Location"), err)
		}
		// An API client asks for JSON: the callback answers the tokens or the problem itself.
		get := func(c *http.Client, u string) resp {
			t.Helper()
			req, _ := http.NewRequest("GET", u, nil)
			req.Header.Set("Accept", "application/json")
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return readResp(t, res)
		}
		forged := *back
		q := forged.Query()
		q.Set("state", "forged-"+q.Get("state"))
		forged.RawQuery = q.Encode()
		want(t, get(c, forged.String()), 400, "oidc_state_invalid")

		// The same callback in a browser without the cookie (login CSRF) is refused, and uses the state up.
		want(t, get(o.browser(false), back.String()), 400, "oidc_state_invalid")
		want(t, get(c, back.String()), 400, "oidc_state_invalid")

		// A fresh flow in the right browser succeeds once; its replay is refused.
		r = o.signInAt(c, "ada")
		back2 := r.header.Get("Location")
		want(t, get(c, back2), 200, "")
		want(t, get(c, back2), 400, "oidc_state_invalid")

		// The provider's error answer, the state checked first.
		r = o.signInAt(c, "ada")
		back3, _ := url.Parse(r.header.Get("Location"))
		q = url.Values{"state": {back3.Query().Get("state")}, "error": {"access_denied"}, "error_description": {"no"}}
		want(t, get(c, o.base+api+"/oidc/test/callback?"+q.Encode()), 401, "oidc_denied")

		if n := len(o.audits(AuditLoginFailed)); n < 4 {
			t.Errorf("login_failed entries: %d, want at least 4", n)
		}
	})
}

// TestOIDCSignInCodeIsSingleUseShortLivedAndBound: the browser's callback redirects to the web UI with a code
// and no token; the code works once, for 60 s, with the cookie of the browser that signed in; a refusal
// redirects with the problem's code.
func TestOIDCSignInCodeIsSingleUseShortLivedAndBound(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		o := newOIDCEnv(t, db, opUsers)
		c := o.browser(false)
		r := o.signInAt(c, "ada")
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("callback Cache-Control %q", cc)
		}
		code, _ := o.uiPage(r)
		var rows []oidcCode
		if err := db.Find(&rows).Error; err != nil || len(rows) != 1 || rows[0].ID == code || rows[0].ID != hashSecret(code) {
			t.Fatalf("stored codes %+v (%v): want one, hashed", rows, err)
		}
		// Another browser (no cookie) is refused, and that uses the code up.
		want(t, o.exchange(o.browser(false), code), 400, "oidc_code_invalid")
		want(t, o.exchange(c, code), 400, "oidc_code_invalid")

		// A fresh code works once, in the browser that signed in, and answers what /login answers.
		c = o.browser(false)
		code, _ = o.uiPage(o.signInAt(c, "ada"))
		r = o.exchange(c, code)
		want(t, r, 200, "")
		if r.str("token_type") != "Bearer" || r.str("refresh_token") == "" || r.body["expires_in"] != float64(15*60) || len(r.body) != 4 {
			t.Fatalf("tokens: %s", r.raw)
		}
		if _, email, _ := o.me(r.str("access_token")); email != "ada@example.org" {
			t.Fatalf("me: %s", email)
		}
		want(t, o.exchange(c, code), 400, "oidc_code_invalid")

		// An expired code is refused.
		c = o.browser(false)
		code, _ = o.uiPage(o.signInAt(c, "ada"))
		o.clk.Advance(oidcCodeTTL)
		want(t, o.exchange(c, code), 400, "oidc_code_invalid")
		want(t, o.exchange(c, "forged"), 400, "oidc_code_invalid")
		r = o.exchange(c, "")
		want(t, r, 422, "validation_failed")

		// A refusal redirects with the problem's code, and no code is stored.
		if _, refused := o.uiPage(o.signInAt(o.browser(false), "eve")); refused != "oidc_domain_not_allowed" {
			t.Fatalf("eve: %q", refused)
		}
		var n int64
		if err := db.Model(&oidcCode{}).Where("user_id NOT IN (?)", db.Model(&User{}).Select("id")).Count(&n).Error; err != nil || n != 0 {
			t.Fatalf("codes of no user: %d %v", n, err)
		}
		codeFailures := 0
		for _, e := range o.audits(AuditLoginFailed) {
			if strings.Contains(e.Detail, `"reason":"code"`) {
				codeFailures++
			}
		}
		if codeFailures != 5 {
			t.Errorf("login_failed entries for codes: %d, want 5", codeFailures)
		}
	})
}

// TestOIDCRequestsAreValidated: unknown providers, missing parameters and an unreachable provider answer
// problems with stable codes.
func TestOIDCRequestsAreValidated(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		want(t, e.do("GET", api+"/oidc/nope/login", "", nil), 404, "oidc_provider_not_found")
		asJSON := map[string]string{"Accept": "application/json"}
		want(t, e.doWith("GET", api+"/oidc/nope/callback?code=a&state=b", "", nil, asJSON), 404, "oidc_provider_not_found")
		// A browser is sent to the web UI's page with the problem's code.
		r := e.do("GET", api+"/oidc/nope/callback?code=a&state=b", "", nil)
		if r.status != 303 || r.header.Get("Location") != OIDCCallbackPage+"?error=oidc_provider_not_found" {
			t.Fatalf("browser callback: %d %q", r.status, r.header.Get("Location"))
		}
		r = e.do("GET", api+"/oidc/providers", "", nil)
		want(t, r, 200, "")
		if string(r.raw) != `{"providers":[]}` {
			t.Fatalf("providers without configuration: %s", r.raw)
		}
	})
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		// A provider whose issuer does not answer: a closed loopback port.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := "http://" + ln.Addr().String() + "/"
		_ = ln.Close()
		e := newEnv(t, db)
		svc, err := New(Deps{DB: db, Bus: e.bus, Log: slog.New(slog.DiscardHandler), Clock: e.clk, Mailer: e.mail,
			AccessTTL: time.Minute, RefreshTTL: time.Hour, SignupPerMin: 10, Argon2: cheapArgon,
			OIDC: []OIDCProvider{{ID: "dead", Issuer: dead, ClientID: "c", RedirectURL: "http://127.0.0.1/cb", Domains: map[string]string{"example.org": "o"}}}})
		if err != nil {
			t.Fatal(err)
		}
		e.svc = svc
		e.app = web.New(web.Config{Logger: slog.New(slog.DiscardHandler)})
		svc.Routes(e.app.Group("/api/v1", web.Auth(web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: svc.Keys(), Now: e.clk.Now}}})).Group("/identity"))
		e.app.Use(web.NotFound)
		want(t, e.do("GET", api+"/oidc/dead/login", "", nil), 502, "oidc_provider_unavailable")
		r := e.doWith("GET", api+"/oidc/dead/callback", "", nil, map[string]string{"Accept": "application/json"})
		want(t, r, 422, "validation_failed")
		if !strings.Contains(string(r.raw), `"state"`) || !strings.Contains(string(r.raw), `"code"`) {
			t.Fatalf("fields: %s", r.raw)
		}
	})
}

// TestOIDCProviderSettingsAreValidated lists every error of a bad configuration at once.
func TestOIDCProviderSettingsAreValidated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := `[{"id":"gc","name":"GCKey","issuer":"https://id.example.ca/","client_id":"tamarack","client_secret_file":"secret",
		"redirect_url":"https://tamarack.example.ca/api/v1/identity/oidc/gc/callback","domains":{"example.org":"org-1"},
		"default_role":"member","claims":{"email":"mail"}}]`
	write := func(s string) string {
		p := filepath.Join(dir, "providers.json")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ps, err := LoadOIDCProviders(write(good))
	if err != nil || len(ps) != 1 || ps[0].ClientSecret != "s3cret" {
		t.Fatalf("good file: %+v %v", ps, err)
	}
	_, err = LoadOIDCProviders(write(`[{"id":"Bad ID","issuer":"http://id.example.ca","redirect_url":"nope","scopes":["email"],
		"domains":{"@x":""},"default_role":"boss"},{"id":"gc","issuer":"https://a.example/","client_id":"c","redirect_url":"https://t/cb","domains":{"a.example":"o"}},
		{"id":"gc","issuer":"https://a.example/","client_id":"c","redirect_url":"https://t/cb","domains":{"a.example":"o"}}]`))
	if err == nil {
		t.Fatal("bad file accepted")
	}
	for _, w := range []string{"lower-case", "issuer", "client_id is required", "redirect_url", "openid", `domain "@x"`, "organisation ID is empty", "default_role", "listed twice"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if _, err := LoadOIDCProviders(write(`[{"id":"gc","surprise":1}]`)); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := New(Deps{OIDC: []OIDCProvider{{ID: "x"}}}); err == nil || !strings.Contains(err.Error(), "client_id") {
		t.Errorf("New with a bad provider: %v", err)
	}
}
