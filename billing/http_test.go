package billing

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// api is a real Fiber app with billing's routes and JWT authentication by a test key.
type api struct {
	t    testing.TB
	app  *fiber.App
	sign *webtest.Signer
}

func newAPI(t testing.TB, f *fx) *api {
	sign := webtest.NewSigner()
	app := web.New(web.Config{StreamRequestBody: true}) // as serve builds it
	f.s.Routes(app.Group("/api/v1/billing", web.Auth(sign.Authenticator())))
	return &api{t: t, app: app, sign: sign}
}

type who struct {
	user, org, kind, role string
	staff                 bool
	scopes                []string // an API token's scopes; none = a session
}

var (
	staff    = who{user: "u-staff", org: "programme", kind: "programme", role: "owner", staff: true}
	smeAdmin = who{user: "u-sme", org: "sme", kind: "sme", role: "admin"}
	smeDev   = who{user: "u-dev", org: "sme", kind: "sme", role: "member"}
	partner  = who{user: "u-partner", org: "partner", kind: "partner", role: "owner"}
	vendorAd = who{user: "u-ven", org: "ven", kind: "vendor", role: "owner"}
	nobody   = who{}
)

func (a *api) token(w who) string {
	return a.sign.Token(a.t, webtest.Principal{User: w.user, Org: w.org, OrgKind: w.kind, Role: w.role, Staff: w.staff,
		Email: w.user + "@test", Scopes: w.scopes})
}

// do sends a request (labelled JSON unless hdr says otherwise) and returns the status and the body.
func (a *api) do(w who, method, path string, body any, hdr ...string) (int, []byte) {
	a.t.Helper()
	r := webtest.Do(a.t, a.app, method, path, a.token(w), body, append([]string{"Content-Type", "application/json"}, hdr...)...)
	return r.Status, r.Body
}

func (a *api) expect(w who, method, path string, body any, status int, code string) []byte {
	a.t.Helper()
	st, out := a.do(w, method, path, body)
	if st != status {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, status, out)
	}
	if code != "" {
		var p struct{ Code string }
		_ = json.Unmarshal(out, &p)
		if p.Code != code {
			a.t.Fatalf("%s %s: code %q, want %q: %s", method, path, p.Code, code, out)
		}
	}
	return out
}

// stripeMock is one stripe-mock process shared by the package's tests, stopped by TestMain.
var stripeMock struct {
	once sync.Once
	cmd  *exec.Cmd
	url  string
	err  error
}

// startStripeMock returns the URL of stripe-mock, starting it on free loopback ports (HTTP and HTTPS, so that
// it never collides with another instance) the first time. A missing stripe-mock fails the test.
func startStripeMock(t testing.TB) string {
	t.Helper()
	stripeMock.once.Do(func() { stripeMock.url, stripeMock.err = runStripeMock() })
	if stripeMock.err != nil {
		t.Fatal(stripeMock.err)
	}
	return stripeMock.url
}

// stripeMockModule is the stripe-mock that CI installs and that tests install for themselves when missing.
const stripeMockModule = "github.com/stripe/stripe-mock@v0.203.0"

// findStripeMock finds stripe-mock on PATH or in GOPATH/bin, and otherwise installs it with the Go toolchain
// into the user's cache, so that `make test` works on a machine with only Go.
func findStripeMock() (string, error) {
	if bin, err := exec.LookPath("stripe-mock"); err == nil {
		return bin, nil
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	if cand := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "stripe-mock"); fileExists(cand) {
		return cand, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	gobin := filepath.Join(cache, "tamarack", "bin")
	cand := filepath.Join(gobin, "stripe-mock")
	if fileExists(cand) {
		return cand, nil
	}
	install := exec.Command("go", "install", stripeMockModule)
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("stripe-mock is not installed and `go install %s` failed: %v\n%s", stripeMockModule, err, out)
	}
	return cand, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func runStripeMock() (string, error) {
	bin, err := findStripeMock()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start stripe-mock: %w", err)
	}
	stripeMock.cmd = cmd
	found := make(chan string, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if addr, ok := strings.CutPrefix(line, "Listening for HTTP at address: "); ok {
				found <- "http://" + strings.TrimSpace(addr)
			}
		}
		close(found)
	}()
	select {
	case url, ok := <-found:
		if !ok {
			return "", fmt.Errorf("stripe-mock exited: %s", log.String())
		}
		// Answering means routing is loaded.
		deadline := time.Now().Add(60 * time.Second)
		for {
			req, _ := http.NewRequest("GET", url+"/v1/customers", nil)
			req.Header.Set("Authorization", "Bearer sk_test_123")
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				_ = res.Body.Close()
				if res.StatusCode == 200 {
					return url, nil
				}
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("stripe-mock at %s does not answer: %v", url, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	case <-time.After(60 * time.Second):
		return "", fmt.Errorf("stripe-mock did not start: %s", log.String())
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if stripeMock.cmd != nil && stripeMock.cmd.Process != nil {
		_ = stripeMock.cmd.Process.Kill()
		_ = stripeMock.cmd.Wait()
	}
	os.Exit(code)
}

func TestHTTPAuthAndValidation(t *testing.T) {
	eachFx(t, func(t *testing.T, f *fx) {
		a := newAPI(t, f)
		f.org("sme", "sme", true)
		// No Stripe key: purchases disabled with a clear message.
		a.expect(smeAdmin, "POST", "/api/v1/billing/checkout", map[string]any{"credits": 10}, 503, "payments_disabled")
		a.expect(smeDev, "POST", "/api/v1/billing/checkout", map[string]any{"credits": 10}, 403, "forbidden")
		a.expect(nobody, "GET", "/api/v1/billing/wallet", nil, 401, "unauthorized")
		a.expect(smeAdmin, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme"}, 403, "forbidden")
		out := a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": -1, "cofund_percent": 101}, 422, "validation_failed")
		for _, field := range []string{"amount_micro", "expires_at", "cofund_percent"} {
			if !strings.Contains(string(out), field) {
				t.Errorf("validation must list %s: %s", field, out)
			}
		}
		a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "nope", "amount_micro": 5,
			"expires_at": t0.Add(time.Hour)}, 404, "organization_not_found")
		f.org("unverified", "partner", false)
		a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "unverified", "amount_micro": 5,
			"expires_at": t0.Add(time.Hour)}, 422, "organization_not_verified")
		a.expect(staff, "POST", "/api/v1/billing/grants", map[string]any{"organization_id": "sme", "amount_micro": 5_000_000,
			"expires_at": t0.Add(time.Hour), "cofund_percent": 50, "cap_micro": 1_000_000, "note": "pilot"}, 201, "")
		a.expect(staff, "POST", "/api/v1/billing/offline-payments", map[string]any{"organization_id": "sme", "credits": 3, "reference": "PO-1"}, 201, "")
		var w Wallet
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/wallet", nil, 200, ""), &w))
		if w.PurchasedMicro != 3_000_000 || w.GrantedMicro != 5_000_000 || w.AvailableMicro != 8_000_000 || len(w.Grants) != 1 {
			t.Fatalf("wallet %+v", w)
		}
		var lines web.List[Line]
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/transactions?limit=1", nil, 200, ""), &lines))
		if len(lines.Items) != 1 || lines.NextCursor == "" {
			t.Fatalf("page 1 %+v", lines)
		}
		cur := lines.NextCursor
		lines = web.List[Line]{}
		must(t, json.Unmarshal(a.expect(smeDev, "GET", "/api/v1/billing/transactions?limit=1&cursor="+cur, nil, 200, ""), &lines))
		if len(lines.Items) != 1 || lines.NextCursor != "" {
			t.Fatalf("page 2 %+v", lines)
		}
		a.expect(smeDev, "GET", "/api/v1/billing/transactions?cursor=zzz", nil, 400, "invalid_cursor")
		a.expect(smeAdmin, "GET", "/api/v1/billing/statements/2026-13", nil, 400, "invalid_month")
		var st Statement
		must(t, json.Unmarshal(a.expect(smeAdmin, "GET", "/api/v1/billing/statements/2026-03", nil, 200, ""), &st))
		if st.OpeningMicro != 0 || st.ClosingMicro != 8_000_000 || len(st.Lines) != 2 {
			t.Fatalf("statement %+v", st)
		}
		code, csv := a.do(smeAdmin, "GET", "/api/v1/billing/statements/2026-03", nil, "Accept", "text/csv")
		if code != 200 || !strings.HasPrefix(string(csv), "date,transfer_id") || !strings.Contains(string(csv), "closing_balance,,,8.00,8000000") {
			t.Fatalf("csv %d %s", code, csv)
		}
		a.expect(smeAdmin, "GET", "/api/v1/billing/payouts", nil, 403, "forbidden")
		a.expect(vendorAd, "GET", "/api/v1/billing/payouts", nil, 200, "")
		a.expect(smeAdmin, "GET", "/api/v1/billing/programme/spend", nil, 403, "forbidden")
		a.expect(staff, "GET", "/api/v1/billing/programme/spend", nil, 200, "")
		a.expect(nobody, "GET", "/api/v1/billing/prices", nil, 200, "")
		a.expect(staff, "POST", "/api/v1/billing/payouts", map[string]any{"vendor_org_id": "ven"}, 404, "vendor_not_found")
	})
}
