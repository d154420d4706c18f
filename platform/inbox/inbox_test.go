package inbox_test

import (
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/inbox"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Two tables in the shapes the services use: a timestamp with a consumer column, and Unix milliseconds.
var sets = []sqldb.Migrations{{Service: "inboxtest", FS: fstest.MapFS{"00001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE inboxtest_scoped (event_id TEXT PRIMARY KEY, consumer TEXT NOT NULL, processed_at TIMESTAMP NOT NULL);
CREATE TABLE inboxtest_ms (id TEXT PRIMARY KEY, processed_ms BIGINT NOT NULL);
-- +goose Down
DROP TABLE inboxtest_ms;
DROP TABLE inboxtest_scoped;
`)}}}}

var (
	scoped = inbox.Table{Name: "inboxtest_scoped", ID: "event_id", At: "processed_at", Consumer: "consumer"}
	millis = inbox.Table{Name: "inboxtest_ms", ID: "id", At: "processed_ms", Millis: true}
)

func TestMark(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	dbtest.Each(t, sets, func(t *testing.T, db *gorm.DB) {
		for _, c := range []struct {
			table        inbox.Table
			consumer, id string
			fresh        bool
		}{
			{scoped, "orders", "ev-1", true},
			{scoped, "orders", "ev-1", false},
			{scoped, "pools", "ev-1", true}, // another consumer of the same event
			{millis, "", "ev-1", true},
			{millis, "", "ev-1", false},
		} {
			fresh, err := c.table.Mark(db, c.consumer, c.id, at)
			if err != nil || fresh != c.fresh {
				t.Fatalf("%s %s/%s: fresh %v, %v; want %v", c.table.Name, c.consumer, c.id, fresh, err, c.fresh)
			}
		}
		var ms int64
		if err := db.Raw("SELECT processed_ms FROM inboxtest_ms WHERE id = ?", "ev-1").Scan(&ms).Error; err != nil || ms != at.UnixMilli() {
			t.Fatalf("processed_ms %d, %v", ms, err)
		}
		var consumer string
		if err := db.Raw("SELECT consumer FROM inboxtest_scoped WHERE event_id = ?", "pools:ev-1").Scan(&consumer).Error; err != nil || consumer != "pools" {
			t.Fatalf("consumer %q, %v", consumer, err)
		}
	})
}

func TestMarkManyReturnsOnlyTheNewIDs(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	dbtest.Each(t, sets, func(t *testing.T, db *gorm.DB) {
		for _, table := range []inbox.Table{scoped, millis} {
			if _, err := table.Mark(db, "c", "b", at); err != nil {
				t.Fatal(err)
			}
			// More than one statement's worth, with a repeat and one seen before.
			ids := []string{"a", "b", "a"}
			for i := range 2500 {
				ids = append(ids, "n"+time.Duration(i).String())
			}
			fresh, err := table.MarkMany(db, "c", ids, at)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(fresh)
			if len(fresh) != 2501 || fresh[0] != "a" || slices.Contains(fresh, "b") {
				t.Fatalf("%s: %d fresh, first %q", table.Name, len(fresh), fresh[0])
			}
			if again, err := table.MarkMany(db, "c", ids, at); err != nil || len(again) != 0 {
				t.Fatalf("%s: second pass fresh %v, %v", table.Name, again, err)
			}
		}
	})
}
