package testbed

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// migrateProvider is goose over the testbed's migrations for db's engine, so that a test can stop at a version.
func migrateProvider(t *testing.T, db *gorm.DB) *goose.Provider {
	t.Helper()
	d := sqldb.DialectOf(db)
	files, err := Migrations().Files(d)
	if err != nil {
		t.Fatal(err)
	}
	gd := goose.DialectSQLite3
	if d == sqldb.Postgres {
		gd = goose.DialectPostgres
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(gd, sqlDB, files, goose.WithTableName("testbed_schema_migrations"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// row is the one row of T where where holds.
func row[T any](t *testing.T, db *gorm.DB, where string, args ...any) T {
	t.Helper()
	var v T
	if err := db.Where(where, args...).Take(&v).Error; err != nil {
		t.Fatalf("%T %v: %v", v, args, err)
	}
	return v
}

// Instants as 00012 stored them (Unix ms), with fractions of every shape the text form has on SQLite: none,
// one digit, two, three, a leading zero.
var msShapes = []int64{1764579548000, 1764579548100, 1764579548120, 1764579548123, 1764579548005, 1764579548999}

func fromUnixMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// TestTimesMigration: rows written as milliseconds under 00012 read back through the models, after 00013, as
// the same instants, nil where 0 meant "not yet"; down again, the milliseconds are what they were.
func TestTimesMigration(t *testing.T) {
	t.Parallel()
	for _, d := range dbtest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := dbtest.Open(t, d) // no migrations: this test applies them
			p := migrateProvider(t, db)
			if _, err := p.UpTo(ctx, 12); err != nil {
				t.Fatal(err)
			}
			a, b, c := msShapes[3], msShapes[0], msShapes[4] // .123, whole, .005
			exec := func(q string, args ...any) {
				t.Helper()
				if err := db.Exec(q, args...).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`INSERT INTO testbed_pools (id, vendor_org_id, name, region, backend, created_ms, updated_ms)
				VALUES ('pool-1', 'v', 'p', 'r', 'local', ?, ?)`, a, b)
			exec(`INSERT INTO testbed_nodes (id, pool_id, name, health, cpu_millis, memory_bytes, heartbeat_ms, created_ms)
				VALUES ('node-1', 'pool-1', 'n', 'ready', 1000, 1, ?, ?)`, c, a)
			exec(`INSERT INTO testbed_agents (id, pool_id, name, created_ms, heartbeat_ms, revoked_ms)
				VALUES ('agent-new', 'pool-1', 'a', ?, 0, 0), ('agent-old', 'pool-1', 'b', ?, ?, ?)`, a, a, b, c)
			exec(`INSERT INTO testbed_agent_tokens (id, pool_id, token_hash, created_ms, expires_ms, used_ms, revoked_ms)
				VALUES ('tok-1', 'pool-1', 'h1', ?, ?, 0, 0), ('tok-2', 'pool-1', 'h2', ?, ?, ?, ?)`, a, b, a, b, c, a)
			exec(`INSERT INTO testbed_device_claims (device_id, sandbox_id, node_id, pool_id, gpu_model, expires_ms, created_ms)
				VALUES ('dev-1', 'sb-run', 'node-1', 'pool-1', 'H100', ?, ?)`, b, a)
			exec(`INSERT INTO testbed_listings (id, vendor_org_id, title, pool_id, gpu_model, region, min_minutes, max_minutes,
				price_per_gpu_hour, plan_id, version, updated_ms) VALUES ('lst-1', 'v', 't', 'pool-1', 'H100', 'r', 1, 60, 1, 'plan', 1, ?)`, a)
			exec(`INSERT INTO testbed_image_listings (id, vendor_org_id, kind, version, updated_ms)
				VALUES ('lst-2', 'v', 'model', 1, ?)`, c)
			exec(`INSERT INTO testbed_entitlements (org_id, listing_id, entitlement_id, active, expires_ms, at_ms, updated_ms)
				VALUES ('org', 'lst-1', 'ent-1', TRUE, 0, ?, ?), ('org', 'lst-2', 'ent-2', TRUE, ?, ?, ?)`, a, b, c, a, b)
			sandbox := `INSERT INTO testbed_sandboxes (id, org_id, user_id, listing_id, vendor_org_id, pool_id, backend,
				gpu_model, gpu_count, template, cpu_millis, memory_bytes, duration_minutes, price_per_gpu_hour, state,
				created_ms, updated_ms, started_ms, expires_ms, ended_ms, activity_ms, wallet_stop_ms, usage_seq,
				usage_end_ms, unreachable_ms) VALUES (?, 'org', 'u', 'lst-1', 'v', 'pool-1', 'local', 'H100', 1, 'shell',
				1000, 1, 60, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
			exec(sandbox, "sb-new", StateRequested, a, b, 0, 0, 0, a, 0, 0, 0, 0)
			exec(sandbox, "sb-run", StateStopped, msShapes[0], msShapes[1], msShapes[2], msShapes[3], msShapes[4],
				msShapes[5], msShapes[1], 7, msShapes[2], msShapes[3])
			exec(`INSERT INTO testbed_sandbox_tokens (token_hash, sandbox_id, expires_ms) VALUES ('th', 'sb-run', ?)`, c)
			exec(`INSERT INTO testbed_reservations (id, org_id, user_id, listing_id, pool_id, gpu_model, gpu_count, starts_ms,
				ends_ms, state, created_ms) VALUES ('res-1', 'org', 'u', 'lst-1', 'pool-1', 'H100', 1, ?, ?, 'pending', ?)`, a, c, b)
			exec(`INSERT INTO testbed_audit (id, at_ms, actor_user_id, actor_org_id, action, target) VALUES ('aud-1', ?, 'u', 'o', 'x', 'y')`, a)
			exec(`INSERT INTO testbed_processed_events (id, processed_ms) VALUES ('ev-1', ?)`, b)
			for _, v := range msShapes {
				exec(`INSERT INTO testbed_gpu_samples (sandbox_id, at_ms, utilization_pct, memory_used_mib, memory_total_mib)
					VALUES ('sb-run', ?, 1, 2, 3)`, v)
			}

			if _, err := p.UpTo(ctx, 13); err != nil {
				t.Fatal(err)
			}

			at := func(name string, got time.Time, want int64) {
				t.Helper()
				if !got.Equal(fromUnixMS(want)) || got.Location() != time.UTC {
					t.Errorf("%s = %v, want %v (UTC)", name, got, fromUnixMS(want))
				}
			}
			opt := func(name string, got *time.Time, want int64) {
				t.Helper()
				switch {
				case want == 0 && got != nil:
					t.Errorf("%s = %v, want nil (0 was unset)", name, *got)
				case want != 0 && got == nil:
					t.Errorf("%s = nil, want %v", name, fromUnixMS(want))
				case want != 0:
					at(name, *got, want)
				}
			}

			pool := row[Pool](t, db, "id = ?", "pool-1")
			at("pool created", pool.CreatedAt, a)
			at("pool updated", pool.UpdatedAt, b)
			node := row[Node](t, db, "id = ?", "node-1")
			at("node heartbeat", node.HeartbeatAt, c)
			at("node created", node.CreatedAt, a)
			ag := row[Agent](t, db, "id = ?", "agent-new")
			at("agent created", ag.CreatedAt, a)
			opt("new agent heartbeat", ag.HeartbeatAt, 0)
			opt("new agent revoked", ag.RevokedAt, 0)
			ag = row[Agent](t, db, "id = ?", "agent-old")
			opt("old agent heartbeat", ag.HeartbeatAt, b)
			opt("old agent revoked", ag.RevokedAt, c)
			tok := row[AgentToken](t, db, "id = ?", "tok-1")
			at("token created", tok.CreatedAt, a)
			at("token expires", tok.ExpiresAt, b)
			opt("token used", tok.UsedAt, 0)
			opt("token revoked", tok.RevokedAt, 0)
			tok = row[AgentToken](t, db, "id = ?", "tok-2")
			opt("spent token used", tok.UsedAt, c)
			opt("spent token revoked", tok.RevokedAt, a)
			claim := row[DeviceClaim](t, db, "device_id = ?", "dev-1")
			at("claim expires", claim.ExpiresAt, b)
			at("claim created", claim.CreatedAt, a)
			l := row[Listing](t, db, "id = ?", "lst-1")
			at("listing updated", l.UpdatedAt, a)
			il := row[ImageListing](t, db, "id = ?", "lst-2")
			at("image listing updated", il.UpdatedAt, c)
			e := row[Entitlement](t, db, "listing_id = ?", "lst-1")
			opt("entitlement expires (never)", e.ExpiresAt, 0)
			at("entitlement at", e.At, a)
			at("entitlement updated", e.UpdatedAt, b)
			e = row[Entitlement](t, db, "listing_id = ?", "lst-2")
			opt("entitlement expires", e.ExpiresAt, c)
			sb := row[Sandbox](t, db, "id = ?", "sb-new")
			at("new sandbox created", sb.CreatedAt, a)
			at("new sandbox updated", sb.UpdatedAt, b)
			at("new sandbox activity", sb.ActivityAt, a)
			for name, v := range map[string]*time.Time{"started": sb.StartedAt, "expires": sb.ExpiresAt, "ended": sb.EndedAt,
				"wallet stop": sb.WalletStopAt, "usage end": sb.UsageEndAt, "unreachable": sb.UnreachableAt} {
				opt("new sandbox "+name, v, 0)
			}
			sb = row[Sandbox](t, db, "id = ?", "sb-run")
			at("sandbox created", sb.CreatedAt, msShapes[0])
			at("sandbox updated", sb.UpdatedAt, msShapes[1])
			opt("sandbox started", sb.StartedAt, msShapes[2])
			opt("sandbox expires", sb.ExpiresAt, msShapes[3])
			opt("sandbox ended", sb.EndedAt, msShapes[4])
			at("sandbox activity", sb.ActivityAt, msShapes[5])
			opt("sandbox wallet stop", sb.WalletStopAt, msShapes[1])
			opt("sandbox usage end", sb.UsageEndAt, msShapes[2])
			opt("sandbox unreachable", sb.UnreachableAt, msShapes[3])
			if sb.UsageSeq != 7 {
				t.Errorf("usage_seq = %d, want 7 (not an instant: unchanged)", sb.UsageSeq)
			}
			st := row[SandboxToken](t, db, "token_hash = ?", "th")
			at("sandbox token expires", st.ExpiresAt, c)
			r := row[Reservation](t, db, "id = ?", "res-1")
			at("reservation starts", r.StartsAt, a)
			at("reservation ends", r.EndsAt, c)
			at("reservation created", r.CreatedAt, b)
			au := row[AuditEntry](t, db, "id = ?", "aud-1")
			at("audit at", au.At, a)
			var processedAt time.Time
			if err := db.Raw(`SELECT processed_at FROM testbed_processed_events WHERE id = 'ev-1'`).Scan(&processedAt).Error; err != nil {
				t.Fatal(err)
			}
			at("processed at", processedAt, b)
			samples, err := recentGPUSamples(db, "sb-run", 100)
			if err != nil || len(samples) != len(msShapes) {
				t.Fatalf("gpu samples: %d, %v", len(samples), err)
			}
			byTime := slices.Sorted(slices.Values(msShapes))
			for i, s := range samples { // newest first: ORDER BY at DESC holds on SQLite's text as on Postgres
				at("gpu sample", s.At, byTime[len(byTime)-1-i])
			}

			// The queries find migrated rows as they find rows the service writes.
			if ids, err := staleNodeIDs(db, nil, fromUnixMS(c).Add(time.Millisecond)); err != nil || len(ids) != 1 {
				t.Errorf("stale nodes after the heartbeat: %v %v", ids, err)
			}
			if ids, err := staleNodeIDs(db, nil, fromUnixMS(c)); err != nil || len(ids) != 0 {
				t.Errorf("stale nodes at the heartbeat: %v %v", ids, err)
			}
			if ok, err := entitled(db, "org", "lst-2", fromUnixMS(c).Add(-time.Millisecond)); err != nil || !ok {
				t.Errorf("entitled before expiry: %v %v", ok, err)
			}
			if ok, err := entitled(db, "org", "lst-2", fromUnixMS(c)); err != nil || ok {
				t.Errorf("entitled at expiry: %v %v", ok, err)
			}
			if active, err := activeAgents(db); err != nil || len(active) != 1 || active[0].ID != "agent-new" {
				t.Errorf("active agents: %+v %v", active, err)
			}

			if _, err := p.Down(ctx); err != nil {
				t.Fatal(err)
			}
			var back struct{ CreatedMS, UpdatedMS, StartedMS, ExpiresMS, EndedMS, ActivityMS, WalletStopMS, UsageEndMS, UnreachableMS int64 }
			if err := db.Raw(`SELECT created_ms, updated_ms, started_ms, expires_ms, ended_ms, activity_ms, wallet_stop_ms,
				usage_end_ms, unreachable_ms FROM testbed_sandboxes WHERE id = 'sb-run'`).Scan(&back).Error; err != nil {
				t.Fatal(err)
			}
			want := struct{ CreatedMS, UpdatedMS, StartedMS, ExpiresMS, EndedMS, ActivityMS, WalletStopMS, UsageEndMS, UnreachableMS int64 }{
				msShapes[0], msShapes[1], msShapes[2], msShapes[3], msShapes[4], msShapes[5], msShapes[1], msShapes[2], msShapes[3]}
			if back != want {
				t.Errorf("down: sandbox %+v, want %+v", back, want)
			}
			var unset [3]int64
			if err := db.Raw(`SELECT started_ms, ended_ms, unreachable_ms FROM testbed_sandboxes WHERE id = 'sb-new'`).
				Row().Scan(&unset[0], &unset[1], &unset[2]); err != nil || unset != [3]int64{} {
				t.Errorf("down: unset instants %v, %v; want 0", unset, err)
			}
		})
	}
}

// TestTimesMigrationWritesWhatGORMWrites: on SQLite, where a TIMESTAMP is text, the migration writes each
// instant in exactly the text GORM (glebarez/go-sqlite) writes for it, so that migrated rows and new ones read
// back, compare and sort as one.
func TestTimesMigrationWritesWhatGORMWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Open(t, sqldb.SQLite)
	p := migrateProvider(t, db)
	if _, err := p.UpTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	for i, v := range msShapes {
		if err := db.Exec(`INSERT INTO testbed_audit (id, at_ms, actor_user_id, actor_org_id, action, target)
			VALUES (?, ?, 'u', 'o', 'migrated', '')`, fmt.Sprintf("m%d", i), v).Error; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.UpTo(ctx, 13); err != nil {
		t.Fatal(err)
	}
	for i, v := range msShapes {
		if err := createAudit(db, &AuditEntry{ID: fmt.Sprintf("g%d", i), At: stamp(fromUnixMS(v)), Action: "gorm"}); err != nil {
			t.Fatal(err)
		}
	}
	var rows []struct {
		ID   string
		Text string
	}
	// CAST: read the stored text itself, not the time.Time the driver parses it into.
	if err := db.Raw(`SELECT id, CAST(at AS TEXT) AS text FROM testbed_audit ORDER BY id`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*len(msShapes) {
		t.Fatalf("%d rows", len(rows))
	}
	written, migrated := rows[:len(msShapes)], rows[len(msShapes):]
	for i := range msShapes {
		if migrated[i].Text != written[i].Text {
			t.Errorf("%d ms: the migration wrote %q, GORM writes %q", msShapes[i], migrated[i].Text, written[i].Text)
		}
	}
	// Text order is time order, across migrated and new rows alike (by instant: .000 .005 .100 .120 .123 .999).
	var order []string
	if err := db.Model(&AuditEntry{}).Order("at, action DESC").Pluck("id", &order).Error; err != nil {
		t.Fatal(err)
	}
	want := []string{"m0", "g0", "m4", "g4", "m1", "g1", "m2", "g2", "m3", "g3", "m5", "g5"}
	if !slices.Equal(order, want) {
		t.Errorf("ORDER BY at: %v, want %v", order, want)
	}
}
