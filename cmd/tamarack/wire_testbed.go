package main

import (
	"context"
	"log/slog"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Testbed's wiring. Replace these stubs when the testbed service lands.

func testbedMigrations() []sqldb.Migrations { return nil }

// wireTestbed builds the testbed service, mounts its routes on e.api, adds its OpenAPI operations to e.doc and
// its background loops with e.background.
func wireTestbed(ctx context.Context, e *env) error { return nil }

func seedTestbed(ctx context.Context, e *env, d *demo) error { return nil }

// testbedPreRun lets the local sandbox backend's shim take over a re-executed binary.
func testbedPreRun() bool { return false }

// testbedPreflight checks the host can run the configured sandbox backend.
func testbedPreflight(c *config, log *slog.Logger) error { return nil }
