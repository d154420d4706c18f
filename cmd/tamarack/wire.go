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

// Each service's wiring lives in wire_<service>.go; these functions gather them for serve, migrate, seed and
// users, in dependency order (identity first: it provides token keys and the demo organisations).

// preRun runs before anything else (the sandbox shim re-executes this binary); true means it handled the run.
func preRun() bool { return testbedPreRun() }

// preflight checks host prerequisites of the configured services.
func preflight(c *config, log *slog.Logger) error {
	if c.runs("testbed") {
		return testbedPreflight(c, log)
	}
	return nil
}

// migrationsFor lists the migrations of the services this process runs.
func migrationsFor(c *config) []sqldb.Migrations {
	var out []sqldb.Migrations
	for _, s := range []struct {
		name string
		m    func() []sqldb.Migrations
	}{{"identity", identityMigrations}, {"marketplace", marketplaceMigrations}, {"testbed", testbedMigrations}, {"billing", billingMigrations}} {
		if c.runs(s.name) {
			out = append(out, s.m()...)
		}
	}
	return out
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
	for _, s := range []struct {
		name string
		fn   func(context.Context, *env, *demo) error
	}{{"identity", seedIdentity}, {"testbed", seedTestbed}, {"testbed", seedImages}, {"marketplace", seedMarketplace}, {"billing", seedBilling}} {
		if !c.runs(s.name) {
			continue
		}
		if err := s.fn(ctx, e, d); err != nil {
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
