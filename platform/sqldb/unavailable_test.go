package sqldb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// closedPort returns a local TCP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// downPostgres opens, without a ping, a GORM DB as services have it, on a Postgres URL whose server is down.
func downPostgres(t *testing.T) (*gorm.DB, string) {
	t.Helper()
	dsn := "postgres://postgres@127.0.0.1:" + strconv.Itoa(closedPort(t)) + "/test?sslmode=disable&connect_timeout=5"
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{TranslateError: true, Logger: logger.Discard, DisableAutomaticPing: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqldb.Close(db) })
	return db, dsn
}

func TestUnreachablePostgresIsUnavailable(t *testing.T) {
	t.Parallel()
	db, dsn := downPostgres(t)
	ctx := context.Background()

	var n int
	query := db.WithContext(ctx).Raw(`SELECT 1`).Scan(&n).Error
	var row struct{ ID string }
	first := db.WithContext(ctx).Table("market_listing").Where("id = ?", "x").First(&row).Error
	tx := sqldb.Tx(ctx, db, func(tx *gorm.DB) error { return tx.Exec(`SELECT 1`).Error })
	_, open := sqldb.Open(ctx, dsn, sqldb.Options{})
	for name, err := range map[string]error{
		"query":   query,
		"first":   first,
		"tx":      tx,
		"open":    open,
		"wrapped": fmt.Errorf("list listings: %w", fmt.Errorf("store: %w", query)),
	} {
		if err == nil {
			t.Fatalf("%s on a closed port succeeded", name)
		}
		if !sqldb.IsUnavailable(err) {
			t.Errorf("%s: not unavailable: %T %v", name, err, err)
		}
		if sqldb.IsTransient(err) || sqldb.IsDuplicate(err) || sqldb.IsNotFound(err) {
			t.Errorf("%s: also classified as transient, duplicate or not found: %v", name, err)
		}
	}
}

func TestPoolExhaustedUntilTheDeadlineIsUnavailable(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, []sqldb.Migrations{testMigrations}, func(t *testing.T, db *gorm.DB) {
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(1)
		held, err := sqlDB.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = held.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		var n int
		err = db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM sqldbtest_account`).Scan(&n).Error
		if err == nil || !sqldb.IsUnavailable(fmt.Errorf("count: %w", err)) {
			t.Fatalf("query on an exhausted pool: %v, want unavailable", err)
		}
	})
}

func TestAnsweredErrorsAreNotUnavailable(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, []sqldb.Migrations{testMigrations}, func(t *testing.T, db *gorm.DB) {
		if err := db.Exec(`INSERT INTO sqldbtest_account (id, balance) VALUES ('a', 1)`).Error; err != nil {
			t.Fatal(err)
		}
		var row struct{ ID string }
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		for name, err := range map[string]error{
			"syntax":     db.Exec(`SELEKT 1`).Error,
			"duplicate":  db.Exec(`INSERT INTO sqldbtest_account (id, balance) VALUES ('a', 2)`).Error,
			"check":      db.Exec(`UPDATE sqldbtest_account SET balance = -1`).Error,
			"no table":   db.Exec(`SELECT * FROM sqldbtest_missing`).Error,
			"not found":  db.Table("sqldbtest_account").Where("id = ?", "missing").First(&row).Error,
			"canceled":   db.WithContext(canceled).Exec(`SELECT 1`).Error,
			"no problem": errors.New("anything else"),
		} {
			if err == nil {
				t.Fatalf("%s: no error", name)
			}
			if sqldb.IsUnavailable(err) {
				t.Errorf("%s: classified unavailable: %v", name, err)
			}
		}
	})
}

// SQLite's "database is locked" after the busy timeout is the database answering that it is busy, not a
// database that cannot be reached.
func TestSQLiteLockedIsNotUnavailable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "locked.db")
	open := func() *gorm.DB {
		db, err := gorm.Open(sqlite.Open("file:"+path+"?_pragma=busy_timeout(50)&_pragma=journal_mode(WAL)&_txlock=immediate"),
			&gorm.Config{Logger: logger.Discard, TranslateError: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sqldb.Close(db) })
		return db
	}
	a, b := open(), open()
	if err := a.Exec(`CREATE TABLE t (id INTEGER)`).Error; err != nil {
		t.Fatal(err)
	}
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`INSERT INTO t VALUES (1)`).Error; err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	err := b.Exec(`INSERT INTO t VALUES (2)`).Error
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err == nil || !sqldb.IsTransient(err) {
		t.Fatalf("second writer: %v, want database is locked", err)
	}
	if sqldb.IsUnavailable(err) {
		t.Errorf("locked classified unavailable: %v", err)
	}
}

// A connection that ends in the middle of a query (the server's process killed, the network or a proxy gone)
// is a database that could not be reached, and the statement, which may have run, is not run again.
func TestConnectionLostMidQueryIsUnavailable(t *testing.T) {
	t.Parallel()
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("needs Postgres (" + dbtest.EnvPostgres + ")")
	}
	dsn := dbtest.DSN(t, sqldb.Postgres, testMigrations)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startCuttableProxy(t, u.Host)
	u.Host = proxy.addr
	ctx := context.Background()
	db, err := sqldb.Open(ctx, u.String(), sqldb.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqldb.Close(db) })

	// Each statement is told apart by a comment: the server keeps running one whose client is gone.
	for _, c := range []struct {
		name, running string // running: the statement as Postgres shows it
		run           func(db *gorm.DB) error
	}{
		{"autocommit", "SELECT pg_sleep(30) -- autocommit", func(db *gorm.DB) error {
			return db.Exec("SELECT pg_sleep(30) -- autocommit").Error
		}},
		{"with arguments", "SELECT pg_sleep($1) -- with arguments", func(db *gorm.DB) error {
			var n []int
			return db.Raw("SELECT pg_sleep(?) -- with arguments", 30).Scan(&n).Error
		}},
		{"transaction", "SELECT pg_sleep(30) -- transaction", func(db *gorm.DB) error {
			return sqldb.Tx(ctx, db, func(tx *gorm.DB) error { return tx.Exec("SELECT pg_sleep(30) -- transaction").Error })
		}},
	} {
		done := make(chan error, 1)
		go func() { done <- c.run(db.WithContext(ctx)) }()
		proxy.cutWhenRunning(t, strings.TrimPrefix(u.Path, "/"), c.running)
		err := <-done
		if err == nil {
			// pgx before v5.13 reported this loss as safe to retry, and database/sql ran the statement again on a
			// new connection: a write could run twice.
			t.Fatalf("%s: a statement whose connection was cut succeeded: it was run again", c.name)
		}
		if !sqldb.IsUnavailable(fmt.Errorf("list: %w", err)) {
			t.Errorf("%s: connection lost mid-statement: not unavailable: %T %v", c.name, err, err)
		}
	}
}

// cuttableProxy forwards loopback TCP connections to a server until cut closes every one of them.
type cuttableProxy struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func startCuttableProxy(t *testing.T, target string) *cuttableProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttableProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); p.cut(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(s, c); _ = s.Close() })
			wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
		}
	})
	return p
}

func (p *cuttableProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// cutWhenRunning cuts the proxy's connections once Postgres runs query on database.
func (p *cuttableProxy) cutWhenRunning(t *testing.T, database, query string) {
	t.Helper()
	admin, err := sqldb.Open(context.Background(), os.Getenv(dbtest.EnvPostgres), sqldb.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sqldb.Close(admin) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := admin.Raw(`SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND datname = ? AND query = ?`, database, query).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the query never started")
		}
	}
	p.cut()
}
