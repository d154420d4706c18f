// Package dbtest gives tests real databases: a fresh SQLite file always, and a fresh Postgres database when
// TAMARACK_TEST_POSTGRES names a server. Each Postgres database is cloned from a template migrated once per
// migrations hash, so tests start fast and never share state. An unreachable Postgres fails the test; it is
// never skipped silently.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// EnvPostgres names the variable holding the Postgres DSN of the test server.
const EnvPostgres = "TAMARACK_TEST_POSTGRES"

// Dialects lists the engines tests run on in this environment: SQLite always, Postgres when configured.
func Dialects() []sqldb.Dialect {
	if os.Getenv(EnvPostgres) != "" {
		return []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres}
	}
	return []sqldb.Dialect{sqldb.SQLite}
}

// Each runs fn as a subtest on every engine of Dialects, each with a freshly migrated database.
func Each(t *testing.T, sets []sqldb.Migrations, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d, sets...))
		})
	}
}

// Open returns a migrated, empty database of dialect d, removed when the test ends.
func Open(t testing.TB, d sqldb.Dialect, sets ...sqldb.Migrations) *gorm.DB {
	t.Helper()
	dsn := DSN(t, d, sets...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, dsn, sqldb.Options{MaxOpenConns: 10})
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { _ = sqldb.Close(db) })
	if d == sqldb.SQLite {
		if err := sqldb.Migrate(ctx, db, nil, sets...); err != nil {
			t.Fatalf("dbtest: %v", err)
		}
	}
	return db
}

// DSN returns the DSN of a fresh database of dialect d (migrated when d is Postgres; a SQLite file is
// migrated by Open). Useful for tests that start a second process on the same database.
func DSN(t testing.TB, d sqldb.Dialect, sets ...sqldb.Migrations) string {
	t.Helper()
	if d == sqldb.SQLite {
		return filepath.Join(t.TempDir(), "test.db")
	}
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		t.Fatalf("dbtest: Postgres requested but %s is not set", EnvPostgres)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adb, err := sqldb.Open(ctx, admin, sqldb.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatalf("dbtest: Postgres at %s is unreachable: %v", redact(admin), err)
	}
	defer func() { _ = sqldb.Close(adb) }()

	tmpl, err := template(ctx, adb, admin, sets)
	if err != nil {
		t.Fatalf("dbtest: template: %v", err)
	}
	name := "t_" + randomHex(8)
	// Cloning needs the template idle; the advisory lock orders clones across parallel test processes.
	if err := withLock(ctx, adb, "clone", func() error {
		return adb.Exec(fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, tmpl)).Error
	}); err != nil {
		t.Fatalf("dbtest: clone %s: %v", tmpl, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sqldb.Open(ctx, admin, sqldb.Options{MaxOpenConns: 1})
		if err != nil {
			t.Errorf("dbtest: drop %s: %v", name, err)
			return
		}
		defer func() { _ = sqldb.Close(db) }()
		if err := db.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)).Error; err != nil {
			t.Errorf("dbtest: drop %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

func template(ctx context.Context, adb *gorm.DB, admin string, sets []sqldb.Migrations) (string, error) {
	h := fnv.New64a()
	keys := make([]string, 0, len(sets))
	for _, s := range sets {
		k, err := s.Hash(sqldb.Postgres)
		if err != nil {
			return "", err
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h.Write([]byte(strings.Join(keys, ",")))
	name := fmt.Sprintf("tmpl_%x", h.Sum64())
	err := withLock(ctx, adb, "template", func() error {
		var n int64
		if err := adb.Raw(`SELECT count(*) FROM pg_database WHERE datname = ?`, name).Scan(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		building := name + "_building"
		if err := adb.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, building)).Error; err != nil {
			return err
		}
		if err := adb.Exec(fmt.Sprintf(`CREATE DATABASE %q`, building)).Error; err != nil {
			return err
		}
		db, err := sqldb.Open(ctx, withDatabase(admin, building), sqldb.Options{MaxOpenConns: 1})
		if err != nil {
			return err
		}
		merr := sqldb.Migrate(ctx, db, nil, sets...)
		_ = sqldb.Close(db)
		if merr != nil {
			return merr
		}
		// Renamed only when complete, so a crashed build never leaves a half-migrated template behind.
		return adb.Exec(fmt.Sprintf(`ALTER DATABASE %q RENAME TO %q`, building, name)).Error
	})
	return name, err
}

// withLock holds a Postgres advisory lock for fn on one pinned connection, serialising template builds
// and clones across the parallel processes of `go test ./...`.
func withLock(ctx context.Context, adb *gorm.DB, key string, fn func() error) error {
	sqlDB, err := adb.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	h := fnv.New64a()
	h.Write([]byte("tamarack-dbtest-" + key))
	id := int64(h.Sum64() >> 1)
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, id); err != nil {
		return err
	}
	defer func() { _, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, id) }()
	return fn()
}

func withDatabase(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Path = "/" + name
	return u.String()
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
