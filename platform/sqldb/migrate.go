package sqldb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/gorm"
)

// Migrations are one service's versioned SQL files (goose format: NNNNN_name.sql with "-- +goose Up").
// Files at the root of FS run on both engines; files under a "sqlite/" or "postgres/" folder run only on that
// engine (full-text search, for example). Versions are unique across the three places.
type Migrations struct {
	Service string // table prefix of the service: its history lives in <service>_schema_migrations
	FS      fs.FS
}

// EmbeddedMigrations is a service's migrations as every service keeps them: a migrations/ folder beside its
// code (shared files, with sqlite/ and postgres/ subfolders for what differs), embedded with
// `//go:embed migrations`.
func EmbeddedMigrations(service string, embedded fs.FS) Migrations {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the folder is embedded at compile time
	}
	return Migrations{Service: service, FS: sub}
}

// Files returns the migration files for one engine, merged into one flat FS.
func (m Migrations) Files(d Dialect) (fs.FS, error) {
	out := fstest.MapFS{}
	add := func(dir string) error {
		entries, err := fs.ReadDir(m.FS, dir)
		if err != nil {
			if dir != "." {
				return nil // the engine-specific folder is optional
			}
			return err
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
				continue
			}
			b, err := fs.ReadFile(m.FS, path.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if _, dup := out[e.Name()]; dup {
				return fmt.Errorf("migration %s exists twice", e.Name())
			}
			out[e.Name()] = &fstest.MapFile{Data: b}
		}
		return nil
	}
	if err := add("."); err != nil {
		return nil, err
	}
	if err := add(string(d)); err != nil {
		return nil, err
	}
	return out, nil
}

// Hash identifies the migrations' content for one engine (test templates are cached by it).
func (m Migrations) Hash(d Dialect) (string, error) {
	files, err := m.Files(d)
	if err != nil {
		return "", err
	}
	mf := files.(fstest.MapFS)
	names := make([]string, 0, len(mf))
	for n := range mf {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", m.Service, d)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", n, mf[n].Data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Migrate applies every pending migration of each set. On Postgres a session advisory lock per service keeps
// several processes starting at once from racing.
func Migrate(ctx context.Context, db *gorm.DB, log *slog.Logger, sets ...Migrations) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	d := DialectOf(db)
	for _, m := range sets {
		files, err := m.Files(d)
		if err != nil {
			return fmt.Errorf("migrations of %s: %w", m.Service, err)
		}
		opts := []goose.ProviderOption{
			goose.WithTableName(m.Service + "_schema_migrations"),
			goose.WithDisableGlobalRegistry(true),
		}
		gd := goose.DialectSQLite3
		if d == Postgres {
			gd = goose.DialectPostgres
			h := fnv.New64a()
			h.Write([]byte("tamarack-migrate-" + m.Service))
			locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
			if err != nil {
				return err
			}
			opts = append(opts, goose.WithSessionLocker(locker))
		}
		p, err := goose.NewProvider(gd, sqlDB, files, opts...)
		if err != nil {
			return fmt.Errorf("migrations of %s: %w", m.Service, err)
		}
		res, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.Service, err)
		}
		if log != nil && len(res) > 0 {
			log.Info("migrated", "service", m.Service, "applied", len(res))
		}
	}
	return nil
}
