package main

import (
	"context"
	"io"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Identity's wiring. Replace these stubs when the identity service lands.

func identityMigrations() []sqldb.Migrations { return nil }

// wireIdentity builds identity before the auth middleware exists: it sets e.keys and e.apiTokens.
func wireIdentity(ctx context.Context, e *env) error { return nil }

// mountIdentity mounts identity's routes on e.api and adds its OpenAPI operations and background loops.
func mountIdentity(ctx context.Context, e *env) error { return nil }

func seedIdentity(ctx context.Context, e *env, d *demo) error { return nil }

func promote(ctx context.Context, c *config, email string, stdout io.Writer) error { return nil }
