// Package agent is the site agent's side and the testbed's side of the site agent protocol
// (services/events, agent.go): Server runs next to the GPUs, wraps a backend (the local runtime today; Slurm
// and Kubernetes inside it later), and serves the testbed's commands; Client is the testbed's backend.Backend
// for the nodes one agent runs.
//
// The agent connects out to the platform's NATS with credentials confined to its own subjects. It reports
// what its backend observes — starts and ends through its own durable outbox (delivered once the platform is
// reachable again), and which sandboxes run through heartbeats — and nothing from inside a sandbox. It keeps
// no state of the testbed's: its backend can rebuild everything after a restart, and the sandboxes it runs
// survive its restarts.
package agent

import (
	"embed"
	"io/fs"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations returns the agent database's migrations (service "agent").
func Migrations() sqldb.Migrations {
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		panic(err) // embedded at build time
	}
	return sqldb.Migrations{Service: "agent", FS: sub}
}
