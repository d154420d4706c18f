package sqldb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

var testMigrations = sqldb.Migrations{Service: "sqldbtest", FS: fstest.MapFS{
	"00001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE sqldbtest_account (id TEXT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0));
-- +goose Down
DROP TABLE sqldbtest_account;
`)},
	"sqlite/00002_engine.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE sqldbtest_engine (name TEXT); INSERT INTO sqldbtest_engine VALUES ('sqlite');\n")},
	"postgres/00002_engine.sql": {Data: []byte("-- +goose Up\nCREATE TABLE sqldbtest_engine (name TEXT); INSERT INTO sqldbtest_engine VALUES ('postgres');\n")},
}}

func TestMigrationsPickTheEngineFolderAndAreIdempotent(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, []sqldb.Migrations{testMigrations}, func(t *testing.T, db *gorm.DB) {
		var name string
		if err := db.Raw(`SELECT name FROM sqldbtest_engine`).Scan(&name).Error; err != nil {
			t.Fatal(err)
		}
		if name != string(sqldb.DialectOf(db)) {
			t.Fatalf("engine migration = %q on %s", name, sqldb.DialectOf(db))
		}
		if err := sqldb.Migrate(context.Background(), db, nil, testMigrations); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
	})
}

func TestDuplicateAndNotFoundAreRecognised(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, []sqldb.Migrations{testMigrations}, func(t *testing.T, db *gorm.DB) {
		if err := db.Exec(`INSERT INTO sqldbtest_account (id, balance) VALUES ('a', 1)`).Error; err != nil {
			t.Fatal(err)
		}
		err := db.Exec(`INSERT INTO sqldbtest_account (id, balance) VALUES ('a', 2)`).Error
		if !sqldb.IsDuplicate(err) {
			t.Fatalf("duplicate not recognised: %v", err)
		}
		var row struct{ ID string }
		err = db.Table("sqldbtest_account").Where("id = ?", "missing").First(&row).Error
		if !sqldb.IsNotFound(err) {
			t.Fatalf("not found not recognised: %v", err)
		}
	})
}

// Concurrent read-modify-write transactions must not lose updates on either engine.
func TestTxSerialisesConcurrentWriters(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, []sqldb.Migrations{testMigrations}, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		if err := db.Exec(`INSERT INTO sqldbtest_account (id, balance) VALUES ('a', 0)`).Error; err != nil {
			t.Fatal(err)
		}
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					err := sqldb.Tx(ctx, db, func(tx *gorm.DB) error {
						var bal int64
						if err := sqldb.ForUpdate(tx.Table("sqldbtest_account")).Select("balance").Where("id = ?", "a").Scan(&bal).Error; err != nil {
							return err
						}
						return tx.Exec(`UPDATE sqldbtest_account SET balance = ? WHERE id = 'a'`, bal+1).Error
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var bal int64
		if err := db.Raw(`SELECT balance FROM sqldbtest_account WHERE id = 'a'`).Scan(&bal).Error; err != nil {
			t.Fatal(err)
		}
		if bal != workers*each {
			t.Fatalf("balance = %d, want %d (lost updates)", bal, workers*each)
		}
	})
}

func TestTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, []sqldb.Migrations{testMigrations}, func(t *testing.T, db *gorm.DB) {
		boom := errors.New("boom")
		err := sqldb.Tx(context.Background(), db, func(tx *gorm.DB) error {
			if err := tx.Exec(`INSERT INTO sqldbtest_account (id, balance) VALUES ('x', 5)`).Error; err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		var n int64
		db.Table("sqldbtest_account").Count(&n)
		if n != 0 {
			t.Fatalf("partial write kept: %d rows", n)
		}
	})
}

// The SQLite file holds every service's data: others get no access to it or its WAL, new or existing.
func TestSQLiteFileIsNotForOthers(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"new.db", "old.db"} {
		path := filepath.Join(dir, name)
		if name == "old.db" {
			for _, p := range []string{path, path + "-wal"} {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, 0o644); err != nil { // whatever the umask
					t.Fatal(err)
				}
			}
		}
		db, err := sqldb.Open(context.Background(), path, sqldb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Exec(`CREATE TABLE t (x INTEGER)`).Error; err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o007 != 0 {
				t.Errorf("%s: mode %04o, others may use it", filepath.Base(p), fi.Mode().Perm())
			}
		}
		if err := sqldb.Close(db); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSQLitePathWithURICharacters: a path holding '#', '?' or '%' opens that very file, not the one named by
// the part before the character (SQLite reads the DSN as a URI).
func TestSQLitePathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a#1", "b?x=1", "c%41"} {
		path := filepath.Join(dir, name, "test.db")
		db, err := sqldb.Open(context.Background(), path, sqldb.Options{})
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		if err := db.Exec("CREATE TABLE t (x int)").Error; err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		sqldb.Close(db)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s was not created: %v", path, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("files beside the three directories: %v", entries)
	}
}
