package main

import (
	"context"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Billing's wiring. Replace these stubs when the billing service lands.

func billingMigrations() []sqldb.Migrations { return nil }

// wireBilling builds the billing service, mounts its routes on e.api, adds its OpenAPI operations to e.doc and
// its background loops with e.background.
func wireBilling(ctx context.Context, e *env) error { return nil }

func seedBilling(ctx context.Context, e *env, d *demo) error { return nil }
