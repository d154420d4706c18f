package agent

import (
	"context"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// TestAnnouncedAtMigration: an announcement recorded in milliseconds reads back as the same UTC instant after
// 00002, and as the same milliseconds after its Down.
func TestAnnouncedAtMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Open(t, sqldb.SQLite) // the agent's database is SQLite only
	files, err := Migrations().Files(sqldb.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, sqlDB, files, goose.WithTableName("agent_schema_migrations"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const ms = 1764579548120
	if err := db.Exec(`INSERT INTO agent_announced (id, at_ms) VALUES ('sb-1-running', ?)`, ms).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var a announced
	if err := db.Where("id = ?", "sb-1-running").Take(&a).Error; err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMilli(ms).UTC(); !a.At.Equal(want) || a.At.Location() != time.UTC {
		t.Fatalf("at = %v, want %v", a.At, want)
	}
	if _, err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	var back int64
	if err := db.Raw(`SELECT at_ms FROM agent_announced WHERE id = 'sb-1-running'`).Scan(&back).Error; err != nil || back != ms {
		t.Fatalf("down: at_ms = %d, %v; want %d", back, err, ms)
	}
}
