// Package migrations embeds billing's SQL migrations (goose files; every table is prefixed billing_).
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
