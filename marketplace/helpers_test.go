package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

func migrations() []sqldb.Migrations { return []sqldb.Migrations{Migrations()} }

// Personas of the tests.
const (
	orgVendor    = "org_vendor_one"
	orgVendor2   = "org_vendor_two"
	orgSME       = "org_sme"
	orgProgramme = "org_programme"
)

var (
	anon        = web.Principal{}
	vendorAdmin = web.Principal{UserID: "usr_vadmin", OrgID: orgVendor, OrgKind: "vendor", Role: "admin"}
	vendorMem   = web.Principal{UserID: "usr_vmember", OrgID: orgVendor, OrgKind: "vendor", Role: "member"}
	otherVendor = web.Principal{UserID: "usr_v2member", OrgID: orgVendor2, OrgKind: "vendor", Role: "member"}
	smeMember   = web.Principal{UserID: "usr_sme", OrgID: orgSME, OrgKind: "sme", Role: "member"}
	staff       = web.Principal{UserID: "usr_staff", OrgID: orgProgramme, OrgKind: "programme", Role: "member", Staff: true}
)

// env is one marketplace on a real database and a real (embedded) JetStream, served by a real Fiber app.
type env struct {
	t     testing.TB
	db    *gorm.DB
	bus   *eventbus.Bus
	svc   *Service
	app   *fiber.App
	clock *clock.Manual
	sign  *webtest.Signer
	blobs string
}

// each runs fn on every engine (dbtest.Each), with a marketplace of cfg on each.
func each(t *testing.T, cfg Config, fn func(t *testing.T, e *env)) {
	t.Helper()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) { fn(t, newEnv(t, db, cfg)) })
}

// newSQLiteEnv is a marketplace of cfg on SQLite alone, for tests whose subject is not the store.
func newSQLiteEnv(t testing.TB, cfg Config) *env {
	return newEnv(t, dbtest.Open(t, sqldb.SQLite, migrations()...), cfg)
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
	sign := webtest.NewSigner()
	app := web.New(web.Config{StreamRequestBody: true, BodyLimit: 1 << 20})
	authn := web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: sign}}
	api := app.Group("/api/v1", web.Auth(authn))
	svc.Routes(api.Group("/marketplace"))
	svc.HFRoutes(app, authn)
	app.Use(web.NotFound)
	e := &env{t: t, db: db, bus: bus, svc: svc, app: app, clock: clk, sign: sign, blobs: dir}
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

// run runs the marketplace's loops (consumers, outbox relay) until the test ends, and returns a context that
// ends then too.
func (e *env) run(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) token(a web.Principal) string {
	return e.sign.Token(e.t, webtest.Principal{User: a.UserID, Org: a.OrgID, OrgKind: a.OrgKind, Role: a.Role, Staff: a.Staff})
}

type resp = webtest.Response

// do sends a request as a; a path without a leading slash is under BasePath.
func (e *env) do(a web.Principal, method, path string, body any, headers ...string) resp {
	e.t.Helper()
	if !strings.HasPrefix(path, "/") {
		path = BasePath + "/" + path
	}
	return webtest.Do(e.t, e.app, method, path, e.token(a), body, headers...)
}

var expect = webtest.Expect

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
func (e *env) createListing(a web.Principal, body map[string]any) listingOut {
	e.t.Helper()
	r := e.do(a, "POST", "listings", body)
	expect(e.t, r, 201, "")
	var l listingOut
	r.JSON(e.t, &l)
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
	r.JSON(e.t, &out)
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
	webtest.Golden(t, name, buf.Bytes())
}

var eventually = webtest.Eventually

type clockSystem struct{}

func (clockSystem) Now() time.Time { return time.Now().UTC() }
