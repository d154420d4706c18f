package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// service is one row of the composition root's table: what serve, migrate and seed do for one service. Each
// row's functions live in wire_<service>.go; serve, migrate, seed and preflight only walk the table.
type service struct {
	name string
	// migrations of the service's tables (migrate, serve and the one-shot commands apply them).
	migrations func() []sqldb.Migrations
	// preRun runs before anything else, configured or not (the sandbox shim re-executes this binary); true means
	// it handled the run. Optional.
	preRun func() bool
	// preflight checks host prerequisites before anything is opened. Optional.
	preflight func(*config, *slog.Logger) error
	// provide runs before the auth middleware exists and sets what every service's routes need (identity: the
	// token keys and API tokens on env). Optional.
	provide func(context.Context, *env) error
	// wire builds the service, mounts its routes on e.api (or e.app), adds its OpenAPI operations to e.doc and its
	// background loops with e.background.
	wire func(context.Context, *env) error
	// seed adds the service's demo data idempotently and hands what it made to the next row's seed. Optional.
	seed func(context.Context, *env, *demo) error
}

// services is the table, in dependency order: identity first (token keys, the demo organisations), the testbed
// before the marketplace (the demo pool the catalogue sells), billing last (it projects the organisations). The
// web UI is not a row: it is mounted after every route, as the fallback (build).
func services() []service {
	return []service{
		{name: "identity", migrations: identityMigrations, provide: wireIdentity, wire: mountIdentity, seed: seedIdentity},
		{name: "testbed", migrations: testbedMigrations, preRun: testbedPreRun, preflight: testbedPreflight,
			wire: wireTestbed, seed: seedTestbedAndImages},
		{name: "marketplace", migrations: marketplaceMigrations, wire: wireMarketplace, seed: seedMarketplace},
		{name: "billing", migrations: billingMigrations, wire: wireBilling, seed: seedBilling},
	}
}

// serviceNames are the names --only takes: the table's rows and the web UI.
func serviceNames() []string {
	var out []string
	for _, s := range services() {
		out = append(out, s.name)
	}
	return append(out, "ui")
}

// configured is the table's rows this process runs, in the table's order.
func configured(c *config) []service {
	var out []service
	for _, s := range services() {
		if c.runs(s.name) {
			out = append(out, s)
		}
	}
	return out
}

// preRun runs each service's pre-run hook; true means one handled the run.
func preRun() bool {
	for _, s := range services() {
		if s.preRun != nil && s.preRun() {
			return true
		}
	}
	return false
}

// preflight checks host prerequisites of the configured services.
func preflight(c *config, log *slog.Logger) error {
	for _, s := range configured(c) {
		if s.preflight == nil {
			continue
		}
		if err := s.preflight(c, log); err != nil {
			return err
		}
	}
	return nil
}

// migrationsFor lists the migrations of the services this process runs.
func migrationsFor(c *config) []sqldb.Migrations {
	var out []sqldb.Migrations
	for _, s := range configured(c) {
		out = append(out, s.migrations()...)
	}
	return out
}

// provideAll runs the configured services' provide steps (before the auth middleware exists).
func provideAll(ctx context.Context, e *env) error {
	for _, s := range configured(e.cfg) {
		if s.provide == nil {
			continue
		}
		if err := s.provide(ctx, e); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// wireAll wires the configured services, in the table's order.
func wireAll(ctx context.Context, e *env) error {
	for _, s := range configured(e.cfg) {
		if err := s.wire(ctx, e); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// demo carries what one service's demo seed made to the next.
type demo struct {
	StaffEmail, VendorEmail, SMEEmail, PartnerEmail, Password string
	StaffUserID, VendorUserID, SMEUserID, PartnerUserID       string
	ProgrammeOrgID, VendorOrgID, SMEOrgID, PartnerOrgID       string
	PoolID, PoolName, PoolRegion, ComputeListingID            string
	Notes                                                     []string
}

// toolEnv opens what a one-shot command needs: the database and the bus of a running server when there is
// one (its embedded NATS URL is in <data>/nats.url, its credentials in <data>/nats-auth/platform.creds), else
// an embedded bus of its own.
func toolEnv(ctx context.Context, c *config) (*env, func(), error) {
	log := newLogger(c)
	if c.NATS == "" {
		if b, err := os.ReadFile(filepath.Join(c.Data, "nats.url")); err == nil {
			c.NATS, c.NATSCreds = strings.TrimSpace(string(b)), runningCreds(c)
			if db, bus, err := open(ctx, c, nil, log, nil); err == nil {
				return newToolEnv(c, log, db, bus), func() { bus.Drain(ctx); _ = sqldb.Close(db) }, nil
			}
			c.NATS, c.NATSCreds = "", "" // stale file: the server is not running
		}
		c.NATSListen = ""
	}
	keys, err := natsKeys(c, log)
	if err != nil {
		return nil, nil, err
	}
	db, bus, err := open(ctx, c, keys, log, nil)
	if err != nil {
		return nil, nil, err
	}
	return newToolEnv(c, log, db, bus), func() { bus.Drain(ctx); _ = sqldb.Close(db) }, nil
}

func newToolEnv(c *config, log *slog.Logger, db *gorm.DB, bus *eventbus.Bus) *env {
	return &env{cfg: c, log: log, db: db, bus: bus, clock: clock.System{}, registry: prometheus.NewRegistry(),
		doc: openapi.New("tool", version), probes: map[string]web.Probe{}}
}

func seed(ctx context.Context, c *config, stdout io.Writer) error {
	e, done, err := toolEnv(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	d := &demo{Password: "tamarack-demo-2026"}
	for _, s := range configured(c) {
		if s.seed == nil {
			continue
		}
		if err := s.seed(ctx, e, d); err != nil {
			return fmt.Errorf("seed %s: %w", s.name, err)
		}
	}
	fmt.Fprintf(stdout, "Demo data is ready. Sign in at %s with password %q as:\n", c.PublicURL, d.Password)
	for _, u := range []struct{ who, email string }{
		{"programme staff", d.StaffEmail}, {"vendor (GPU pool and listings)", d.VendorEmail},
		{"SME", d.SMEEmail}, {"industry partner", d.PartnerEmail},
	} {
		if u.email != "" {
			fmt.Fprintf(stdout, "  %-32s %s\n", u.who, u.email)
		}
	}
	if d.StaffEmail != "" {
		// Staff act as staff only in sessions signed in with a second factor; the seed enrols no authenticator
		// (a secret printed here would be nobody's second factor), so the first staff sign-in enrols one.
		fmt.Fprintf(stdout, "Staff need two-step sign-in: signed in as %s, open %s/account/security and scan the QR code with an authenticator app.\n",
			d.StaffEmail, c.PublicURL)
	}
	for _, n := range d.Notes {
		fmt.Fprintln(stdout, n)
	}
	fmt.Fprintf(stdout, "API: curl -s %s/api/v1/identity/login -H 'content-type: application/json' -d '{\"email\":\"%s\",\"password\":\"%s\"}'\n",
		c.PublicURL, d.SMEEmail, d.Password)
	return nil
}
