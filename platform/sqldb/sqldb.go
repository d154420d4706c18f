// Package sqldb opens Tamarack's stores (SQLite for the embedded default, Postgres for scale-out) through GORM,
// runs each service's versioned SQL migrations, and runs transactions with retry on the transient conflicts
// both engines report under concurrency. It knows no table of any service.
package sqldb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// Dialect names the SQL engine behind a *gorm.DB.
type Dialect string

// The two supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DialectOf tells which engine db talks to.
func DialectOf(db *gorm.DB) Dialect {
	if db.Dialector.Name() == "postgres" {
		return Postgres
	}
	return SQLite
}

// IsPostgresDSN reports whether dsn names a Postgres server rather than a SQLite file.
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Options tune Open.
type Options struct {
	Logger *slog.Logger
	// MaxOpenConns bounds the Postgres pool; SQLite ignores it.
	MaxOpenConns int
}

// Open connects to dsn: a postgres:// URL, or a SQLite file path (its folder is created). SQLite runs in WAL
// mode with a busy timeout and immediate transactions, so concurrent writers queue instead of failing.
func Open(ctx context.Context, dsn string, opt Options) (*gorm.DB, error) {
	cfg := &gorm.Config{
		TranslateError: true,
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return time.Now().UTC() },
	}
	var (
		db  *gorm.DB
		err error
	)
	if IsPostgresDSN(dsn) {
		db, err = gorm.Open(postgres.Open(dsn), cfg)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		n := opt.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		if dsn == "" {
			return nil, errors.New("open sqlite: empty path")
		}
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("open sqlite: %w", err)
			}
		}
		if err := private(dsn); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Set("_txlock", "immediate")
		db, err = gorm.Open(sqlite.Open("file:"+uriPath(dsn)+"?"+q.Encode()), cfg)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		// One writer at a time is SQLite's model; a small pool keeps readers concurrent under WAL.
		sqlDB.SetMaxOpenConns(8)
	}
	sqlDB, _ := db.DB()
	if err := sqlDB.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return db, nil
}

// private creates the SQLite file readable by its owner and group only (SQLite gives its WAL and shared
// memory files the database's mode), and takes away others' access to an existing one and its companions:
// the file holds every service's data, and its directory may be traversable by others (tamarack serve
// makes its data directory o+x so that sandboxes reach the unpacked images inside it).
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	_ = f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if m := fi.Mode().Perm(); m&0o007 != 0 {
			if err := os.Chmod(p, m&^0o007); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the pool behind db.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks the database answers (for /readyz).
func Ping(ctx context.Context, db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Tx runs fn in a transaction on db, retrying a few times when the engine reports a transient conflict
// (Postgres serialization failure or deadlock, SQLite busy). fn must be safe to run again.
func Tx(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = db.WithContext(ctx).Transaction(fn)
		if err == nil || !IsTransient(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(time.Duration(attempt+1) * 5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return err
}

// IsTransient reports errors worth retrying the whole transaction for.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "SQLSTATE 40001") || strings.Contains(s, "SQLSTATE 40P01") ||
		strings.Contains(s, "database is locked") || strings.Contains(s, "SQLITE_BUSY")
}

// IsDuplicate reports a unique-constraint violation on either engine.
func IsDuplicate(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "SQLSTATE 23505") || strings.Contains(s, "UNIQUE constraint failed")
}

// IsNotFound reports GORM's record-not-found.
func IsNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }

// ForUpdate adds a row lock on Postgres; SQLite's immediate transactions already serialise writers.
func ForUpdate(tx *gorm.DB) *gorm.DB {
	if DialectOf(tx) == Postgres {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}

// uriPath escapes the characters that end or escape a path in an SQLite URI filename: a path holding '#' (a
// subtest's temporary directory, "sqlite#01") would otherwise open the file named by what comes before it.
func uriPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}
