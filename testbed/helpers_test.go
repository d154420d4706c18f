package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

func TestMain(m *testing.M) {
	local.MaybeRunShim() // the local backend re-executes this test binary as its shim
	os.Exit(m.Run())
}

var (
	vendorOrg = "org-vendor"
	smeOrg    = "org-sme"
	otherOrg  = "org-other"
	t0        = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
)

func sme() web.Principal {
	return web.Principal{UserID: "u-sme", OrgID: smeOrg, OrgKind: "sme", Role: web.RoleAdmin}
}
func other() web.Principal {
	return web.Principal{UserID: "u-other", OrgID: otherOrg, OrgKind: "sme", Role: web.RoleAdmin}
}
func vendor() web.Principal {
	return web.Principal{UserID: "u-vendor", OrgID: vendorOrg, OrgKind: "vendor", Role: web.RoleAdmin}
}

// hostStaff is programme staff declaring platform-host capacity (local and simulator pools) for the vendor.
func hostStaff() web.Principal { return web.Principal{UserID: "u-staff", Staff: true} }

func migrations() []sqldb.Migrations { return []sqldb.Migrations{Migrations()} }

type fixture struct {
	svc     *Service
	db      *gorm.DB
	clk     *clock.Manual
	sim     *sim.Backend
	pool    Pool
	listing Listing
}

// eachFixture runs fn on every engine (dbtest.Each), with a fixture of newFixture(nodes, perNode, opts) on each.
func eachFixture(t *testing.T, nodes, perNode int, opts Options, fn func(t *testing.T, f *fixture)) {
	t.Helper()
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) { fn(t, newFixture(t, db, nodes, perNode, opts)) })
}

// newFixture builds the service on db with the simulator, a pool of nodes×perNode h100 devices and a
// published listing (max 240 minutes).
func newFixture(t testing.TB, db *gorm.DB, nodes, perNode int, opts Options) *fixture {
	t.Helper()
	clk := clock.NewManual(t0)
	sb := sim.New(clk)
	f := &fixture{db: db, clk: clk, sim: sb}
	f.svc = f.restart(t, opts)
	ctx := context.Background()
	p, err := f.svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "Test pool", Region: "ca-montreal", Backend: "simulator"})
	if err != nil {
		t.Fatal(err)
	}
	f.pool = p
	for n := range nodes {
		in := AddNodeInput{Name: fmt.Sprintf("node-%03d", n), CPUMillis: 1 << 40, MemoryBytes: 1 << 50}
		for i := range perNode {
			in.Devices = append(in.Devices, DeviceInput{Index: i, GPUModel: "h100-80gb"})
		}
		if _, _, err := f.svc.AddNode(ctx, hostStaff(), p.ID, in); err != nil {
			t.Fatal(err)
		}
	}
	// Staff declared the pool above (platform-host capacity is theirs to declare); the tests that read the
	// audit log look at what they do themselves, so the set-up's entries go.
	if err := db.Exec("DELETE FROM testbed_audit").Error; err != nil {
		t.Fatal(err)
	}
	f.publish(t, "lst-h100", p.ID, 1, 240)
	if err := db.First(&f.listing, "id = ?", "lst-h100").Error; err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) publish(t testing.TB, id, pool string, minM, maxM int) {
	t.Helper()
	err := f.svc.ApplyListing(context.Background(), "ev-"+id, "published", events.ListingChangedV1{ListingID: id,
		VersionID: "v1", Version: 1, VendorOrgID: vendorOrg, Kind: "compute", Title: "H100 by the hour", At: t0,
		Compute: &events.ComputeV1{PoolID: pool, GPUModel: "h100-80gb", Region: "ca-montreal", MinDurationMinutes: minM,
			MaxDurationMinutes: maxM, PricePerGPUHour: 2_500_000, PlanID: "plan-1"}})
	if err != nil {
		t.Fatal(err)
	}
}

// restart builds a new Service on the same database and backend, as a restarted process would.
func (f *fixture) restart(t testing.TB, opts Options) *Service {
	t.Helper()
	svc, err := New(Deps{DB: f.db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": f.sim}, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return svc
}

func (f *fixture) launch(t testing.TB, c web.Principal, count, minutes int) Sandbox {
	t.Helper()
	sb, err := f.svc.Launch(context.Background(), c, LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb",
		GPUCount: count, Template: "shell", DurationMinutes: minutes})
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	f.svc.Wait()
	return sb
}

func (f *fixture) get(t testing.TB, id string) Sandbox {
	t.Helper()
	var sb Sandbox
	if err := f.db.First(&sb, "id = ?", id).Error; err != nil {
		t.Fatal(err)
	}
	return sb
}

func (f *fixture) tick(t testing.TB) {
	t.Helper()
	if err := f.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
}

type outboxRow struct {
	ID      string
	Subject string
	Payload string
}

// outbox returns the events written (tests run without a bus, so nothing is relayed), in order.
func outbox(t testing.TB, db *gorm.DB, subject string) []outboxRow {
	t.Helper()
	var rows []outboxRow
	if err := db.Table("testbed_outbox").Where("subject = ?", subject).Order("created_at, id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

func usageOf(t testing.TB, db *gorm.DB, sandbox string) []events.SandboxUsageV1 {
	t.Helper()
	var out []events.SandboxUsageV1
	for _, r := range outbox(t, db, events.SandboxUsage.Name) {
		var u events.SandboxUsageV1
		if err := json.Unmarshal([]byte(r.Payload), &u); err != nil {
			t.Fatal(err)
		}
		if u.SandboxID == sandbox {
			if r.ID != fmt.Sprintf("%s-%d", sandbox, u.Seq) {
				t.Fatalf("usage event id %s for seq %d", r.ID, u.Seq)
			}
			out = append(out, u)
		}
	}
	return out
}

// checkUsage asserts the samples are contiguous from the backend-observed start, numbered 1..n, end with
// one final sample, and sum to the recorded running time exactly.
func checkUsage(t testing.TB, db *gorm.DB, sb Sandbox) int64 {
	t.Helper()
	us := usageOf(t, db, sb.ID)
	if len(us) == 0 {
		t.Fatalf("no usage samples for %s", sb.ID)
	}
	var sum int64
	prev := *sb.StartedAt
	for i, u := range us {
		if u.Seq != uint64(i+1) || !u.Start.Equal(prev) || u.Millis != u.End.Sub(u.Start).Milliseconds() {
			t.Fatalf("sample %d: seq %d start %v (want %v) millis %d", i, u.Seq, u.Start, prev, u.Millis)
		}
		if u.Final != (i == len(us)-1) {
			t.Fatalf("sample %d final=%v", i, u.Final)
		}
		sum += u.Millis
		prev = u.End
	}
	if want := sb.EndedAt.Sub(*sb.StartedAt).Milliseconds(); sum != want {
		t.Fatalf("usage sum %d ms, running time %d ms", sum, want)
	}
	return sum
}

func stateOf(t testing.TB, db *gorm.DB, sandbox string) []string {
	t.Helper()
	var states []string
	for _, st := range events.SandboxStates {
		for _, r := range outbox(t, db, events.SandboxSubject(st).Name) {
			if strings.HasPrefix(r.ID, sandbox+"-") {
				states = append(states, st)
			}
		}
	}
	return states
}

// HTTP harness: a real app with the platform middleware and a test token signer.

// signer signs tokens for callers.
type signer struct{ *webtest.Signer }

func newApp(t testing.TB, svc *Service) (*fiber.App, signer) {
	t.Helper()
	sign := webtest.NewSigner()
	app := web.New(web.Config{StreamRequestBody: true}) // as serve builds it
	svc.Routes(app.Group("/api/v1", web.Auth(sign.Authenticator())).Group("/testbed"))
	app.Use(web.NotFound)
	return app, signer{sign}
}

func (s signer) token(t testing.TB, c web.Principal) string { return s.scoped(t, c) }

// scoped signs a token for c limited to scopes (as an API token would be); none is a session.
func (s signer) scoped(t testing.TB, c web.Principal, scopes ...string) string {
	t.Helper()
	role := web.RoleMember
	if c.IsOrgAdmin() {
		role = web.RoleAdmin
	}
	return s.Token(t, webtest.Principal{User: c.UserID, Org: c.OrgID, OrgKind: c.OrgKind, Role: role, Staff: c.Staff, Scopes: scopes})
}

var _ = eventbus.Write[events.PoolChangedV1]

func asProblem(t testing.TB, err error) *problem.Problem {
	t.Helper()
	p, ok := problem.From(err)
	if !ok {
		t.Fatalf("not a problem: %v", err)
	}
	return p
}

func dbtestOpenSQLite(t testing.TB) *gorm.DB {
	t.Helper()
	return dbtest.Open(t, sqldb.SQLite, migrations()...)
}

// equalAt reports whether an optional instant is set and is want, to the millisecond the testbed stores.
func equalAt(got *time.Time, want time.Time) bool { return got != nil && got.Equal(stamp(want)) }
