package marketplace

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func migrations() []sqldb.Migrations { return []sqldb.Migrations{Migrations()} }

// Personas of the tests.
const (
	orgVendor    = "org_vendor_one"
	orgVendor2   = "org_vendor_two"
	orgSME       = "org_sme"
	orgProgramme = "org_programme"
)

var (
	anon        = Actor{}
	vendorAdmin = Actor{UserID: "usr_vadmin", OrgID: orgVendor, OrgKind: "vendor", Role: "admin"}
	vendorMem   = Actor{UserID: "usr_vmember", OrgID: orgVendor, OrgKind: "vendor", Role: "member"}
	otherVendor = Actor{UserID: "usr_v2member", OrgID: orgVendor2, OrgKind: "vendor", Role: "member"}
	smeMember   = Actor{UserID: "usr_sme", OrgID: orgSME, OrgKind: "sme", Role: "member"}
	staff       = Actor{UserID: "usr_staff", OrgID: orgProgramme, OrgKind: "programme", Role: "member", Staff: true}
)

type keySource struct{ pub ed25519.PublicKey }

func (k keySource) PublicKey(context.Context, string) (crypto.PublicKey, error) { return k.pub, nil }

// env is one marketplace on a real database and a real (embedded) JetStream, served by a real Fiber app.
type env struct {
	t     testing.TB
	db    *gorm.DB
	bus   *eventbus.Bus
	svc   *Service
	app   *fiber.App
	clock *clock.Manual
	priv  ed25519.PrivateKey
	blobs string
}

func newEnv(t testing.TB, db *gorm.DB, cfg Config) *env {
	return newEnvBus(t, db, natstest.Start(t), cfg)
}

func newEnvBus(t testing.TB, db *gorm.DB, bus *eventbus.Bus, cfg Config) *env {
	t.Helper()
	if err := bus.EnsureStreams(context.Background(), events.AllStreams()...); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "blobs")
	blobs, err := NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Now())
	svc, err := New(Deps{DB: db, Bus: bus, Blobs: blobs, Clock: clk, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	app := web.New(web.Config{StreamRequestBody: true, BodyLimit: 1 << 20})
	authn := web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: keySource{pub}}}
	api := app.Group("/api/v1", web.Auth(authn))
	svc.Routes(api.Group("/marketplace"))
	svc.HFRoutes(app, authn)
	app.Use(web.NotFound)
	e := &env{t: t, db: db, bus: bus, svc: svc, app: app, clock: clk, priv: priv, blobs: dir}
	ctx := context.Background()
	for _, o := range []struct {
		id, name, kind string
		verified       bool
	}{{orgVendor, "Aurora AI", "vendor", true}, {orgVendor2, "Borealis Labs", "vendor", true}, {orgSME, "Small Co", "sme", false},
		{orgProgramme, "Programme", "programme", true}} {
		must(t, svc.ApplyOrganizationCreated(ctx, "c-"+o.id, events.OrganizationCreatedV1{OrganizationID: o.id, Name: o.name, Kind: o.kind, At: clk.Now()}))
		must(t, svc.ApplyOrganizationVerified(ctx, "v-"+o.id, events.OrganizationVerifiedV1{OrganizationID: o.id, Verified: o.verified, At: clk.Now()}))
	}
	must(t, svc.ApplyPoolChanged(ctx, "p-1", events.PoolChangedV1{PoolID: "pool_one", VendorOrgID: orgVendor, Name: "one",
		Region: "ca-central", GPUModels: []string{"h100-80gb"}, At: clk.Now()}))
	must(t, svc.ApplyPoolChanged(ctx, "p-2", events.PoolChangedV1{PoolID: "pool_two", VendorOrgID: orgVendor2, Name: "two",
		Region: "ca-east", GPUModels: []string{"a100-80gb"}, At: clk.Now()}))
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) token(a Actor) string {
	if !a.Authenticated() {
		return ""
	}
	now := time.Now()
	tok, err := jwtauth.Sign(jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: a.UserID, Issuer: jwtauth.Issuer,
		Audience: jwt.ClaimStrings{jwtauth.Audience}, IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), ID: "jti-" + a.UserID},
		Org: a.OrgID, OrgKind: a.OrgKind, Role: a.Role, AMR: mfaAMR, Staff: a.Staff, Email: a.UserID + "@example.com", EmailVerified: true}, "k1", e.priv)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type resp struct {
	method string
	status int
	header http.Header
	body   []byte
}

func (r resp) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request as a; body is JSON-encoded unless it is an io.Reader or []byte.
func (e *env) do(a Actor, method, path string, body any, headers ...string) resp {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	case []byte:
		r = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	if !strings.HasPrefix(path, "/") {
		path = BasePath + "/" + path
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		if _, raw := body.(io.Reader); !raw {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if tok := e.token(a); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if cl := req.Header.Get("Content-Length"); cl == "-1" {
		req.Header.Del("Content-Length")
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	res, err := e.app.Test(req, -1)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{method, res.StatusCode, res.Header, b}
}

// expect fails unless r has status (and, for problems, code).
func expect(t testing.TB, r resp, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		t.Fatalf("got %d %s, want %d %s: %s", r.status, r.code(), status, code, r.body)
	}
}

// A model listing with a free and a paid plan.
func modelListing(slug string) map[string]any {
	return map[string]any{
		"kind": "model", "slug": slug, "title": "Maple " + slug, "summary": "A bilingual language model",
		"card_markdown": "# Maple\n\n**Bold** claims, [docs](https://example.com).",
		"tags":          []string{"llm", "bilingual"}, "license": map[string]any{"spdx": "apache-2.0"},
		"residency": "ca", "jurisdiction": "CA", "canadian_owned_ip": true, "visibility": "public",
		"model": map[string]any{"framework": "pytorch", "task": "text-generation", "parameters": 7000000000},
		"plans": []map[string]any{{"name": "Research", "kind": "free", "price_micro": 0},
			{"name": "Commercial", "kind": "one_time", "price_micro": 25000000}},
	}
}

func computeListing(slug, pool, gpu string) map[string]any {
	return map[string]any{
		"kind": "compute", "slug": slug, "title": "GPU time " + slug, "summary": "Accelerator time",
		"license": map[string]any{"spdx": "custom", "url": "https://example.com/terms"}, "residency": "CA",
		"compute": map[string]any{"pool_id": pool, "gpu_model": gpu, "devices_per_node": 8, "region": "ca-central",
			"min_duration_minutes": 15, "max_duration_minutes": 480},
		"plans": []map[string]any{{"name": "Per GPU-hour", "kind": "per_gpu_hour", "price_micro": 2500000}},
	}
}

type listingOut struct {
	ID               string         `json:"id"`
	Status           string         `json:"status"`
	PublishedVersion *versionOut    `json:"published_version"`
	PendingVersion   *versionOut    `json:"pending_version"`
	Rating           map[string]any `json:"rating"`
}

type versionOut struct {
	ID        string         `json:"id"`
	Version   int            `json:"version"`
	State     string         `json:"state"`
	Title     string         `json:"title"`
	CardHTML  string         `json:"card_html"`
	Plans     []planJSON     `json:"plans"`
	Artifacts []artifactJSON `json:"artifacts"`
}

// createListing creates through HTTP as a and returns the listing.
func (e *env) createListing(a Actor, body map[string]any) listingOut {
	e.t.Helper()
	r := e.do(a, "POST", "listings", body)
	expect(e.t, r, 201, "")
	var l listingOut
	r.json(e.t, &l)
	return l
}

// publishListing creates, submits and approves a listing, returning it as published.
func (e *env) publishListing(body map[string]any, files map[string]string) listingOut {
	e.t.Helper()
	l := e.createListing(vendorAdmin, body)
	for name, content := range files {
		expect(e.t, e.do(vendorAdmin, "PUT", fmt.Sprintf("listings/%s/versions/1/artifacts/%s", l.ID, name), []byte(content)), 201, "")
	}
	expect(e.t, e.do(vendorAdmin, "POST", "listings/"+l.ID+"/submit", nil), 200, "")
	expect(e.t, e.do(staff, "POST", "reviews/"+l.PendingVersion.ID+"/decision", map[string]any{"decision": "approve"}), 200, "")
	r := e.do(vendorAdmin, "GET", "listings/"+l.ID, nil)
	expect(e.t, r, 200, "")
	var out listingOut
	r.json(e.t, &out)
	return out
}

func count(t testing.TB, db *gorm.DB, table string) int64 {
	t.Helper()
	var n int64
	must(t, db.Table(table).Count(&n).Error)
	return n
}

func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// Golden files: volatile members (IDs, times, signatures) are replaced by placeholders first.
var (
	volatileKey = regexp.MustCompile(`^(id|.*_id|created_at|updated_at|submitted_at|decided_at|published_at|at|expires_at|created_by|decided_by|download_url|next_cursor|score|age_seconds|request_id)$`)
)

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if volatileKey.MatchString(k) && val != nil && val != "" {
				x[k] = "<" + k + ">"
				continue
			}
			x[k] = normalize(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	}
	return v
}

func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	must(t, enc.Encode(normalize(v)))
	got := buf.Bytes()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("golden %s differs (run go test -update to accept):\n%s", name, lineDiff(string(want), string(got)))
	}
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("-%s\n+%s", x, y))
		}
	}
	sort.Strings(out[:0])
	return strings.Join(out, "\n")
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type clockSystem struct{}

func (clockSystem) Now() time.Time { return time.Now().UTC() }
