// Package inbox makes event consumers idempotent: a consumer records the event ID in the same transaction as the
// event's effect, and skips the event when the ID was recorded before (JetStream delivers at least once). It
// knows each service's table only by the names of its columns; it must not open transactions of its own.
package inbox

import (
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// batch bounds the rows of one INSERT (SQLite allows 32766 parameters, Postgres 65535).
const batch = 1000

// Table names one service's processed-events table. ID is its primary key.
type Table struct {
	Name     string
	ID       string // primary-key column holding the (consumer-scoped) event ID
	At       string // column of when the event was processed
	Millis   bool   // At holds Unix milliseconds rather than a timestamp
	Consumer string // optional column that also records the consumer's name
}

// Mark records id as processed by consumer inside tx; fresh is false when it was recorded before, and the caller
// then skips the event. A non-empty consumer scopes the ID (the stored key is "consumer:id"), so that two
// consumers of one event each process it once.
func (t Table) Mark(tx *gorm.DB, consumer, id string, at time.Time) (fresh bool, err error) {
	n, err := t.insert(tx, consumer, []string{id}, at, nil)
	return n == 1, err
}

// MarkMany is Mark for many IDs in one statement per thousand: it returns the IDs that were new (in no
// particular order), the ones the caller must process. Duplicates within ids count once.
func (t Table) MarkMany(tx *gorm.DB, consumer string, ids []string, at time.Time) (fresh []string, err error) {
	for start := 0; start < len(ids); start += batch {
		if _, err := t.insert(tx, consumer, ids[start:min(start+batch, len(ids))], at, &fresh); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

// insert adds ids, ignoring those already there; with returned set it collects the new ones (RETURNING, which
// both SQLite 3.35+ and Postgres support), else it only counts them.
func (t Table) insert(tx *gorm.DB, consumer string, ids []string, at time.Time, returned *[]string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	cols := []string{t.ID, t.At}
	if t.Consumer != "" {
		cols = append(cols, t.Consumer)
	}
	var when any = at
	if t.Millis {
		when = at.UnixMilli()
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	rows := make([]string, 0, len(ids))
	args := make([]any, 0, len(ids)*len(cols))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		key := id
		if consumer != "" {
			key = consumer + ":" + id
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		rows = append(rows, row)
		args = append(args, key, when)
		if t.Consumer != "" {
			args = append(args, consumer)
		}
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s ON CONFLICT (%s) DO NOTHING", t.Name, strings.Join(cols, ", "),
		strings.Join(rows, ", "), t.ID)
	if returned == nil {
		res := tx.Exec(q, args...)
		return res.RowsAffected, res.Error
	}
	var keys []string
	if err := tx.Raw(q+" RETURNING "+t.ID, args...).Scan(&keys).Error; err != nil {
		return 0, err
	}
	for _, k := range keys {
		if consumer != "" {
			k = strings.TrimPrefix(k, consumer+":")
		}
		*returned = append(*returned, k)
	}
	return int64(len(keys)), nil
}
