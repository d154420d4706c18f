package main

import (
	"context"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Marketplace's wiring. Replace these stubs when the marketplace service lands.

func marketplaceMigrations() []sqldb.Migrations { return nil }

// wireMarketplace builds the marketplace service, mounts its routes on e.api, adds its OpenAPI operations to e.doc and
// its background loops with e.background.
func wireMarketplace(ctx context.Context, e *env) error { return nil }

func seedMarketplace(ctx context.Context, e *env, d *demo) error { return nil }
