package ledger_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
)

// TestOverflowRefused: a transfer that would take a balance or a pending sum past int64 is refused with
// ErrInvalid and changes nothing (SQLite turned the overflowing sum into a REAL, Postgres answered a 500).
func TestOverflowRefused(t *testing.T) {
	dbtest.Each(t, sets, func(t *testing.T, db *gorm.DB) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := ledger.EnsureAccounts(db, now, ledger.Account{ID: "open", Kind: "test"}, ledger.Account{ID: "a", Kind: "test"},
			ledger.Account{ID: "b", Kind: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := ledger.Apply(db, now, ledger.Transfer{ID: "t1", DebitAccount: "open", CreditAccount: "a", Amount: math.MaxInt64 - 5, Kind: "x"}); err != nil {
			t.Fatal(err)
		}
		for _, ts := range [][]ledger.Transfer{
			{{ID: "t2", DebitAccount: "open", CreditAccount: "b", Amount: 10, Kind: "x"}}, // open: -MaxInt64+5-10
			{{ID: "t3", DebitAccount: "b", CreditAccount: "a", Amount: 10, Kind: "x"}},    // a: MaxInt64-5+10
			{{ID: "t4", Phase: ledger.PhasePending, DebitAccount: "b", CreditAccount: "a", Amount: math.MaxInt64, Kind: "x"}, // pending sums
				{ID: "t5", Phase: ledger.PhasePending, DebitAccount: "b", CreditAccount: "a", Amount: math.MaxInt64, Kind: "x"}},
			{{ID: "t6", DebitAccount: "b", CreditAccount: "open", Amount: math.MaxInt64, Kind: "x"}, // deltas of one call
				{ID: "t7", DebitAccount: "b", CreditAccount: "open", Amount: math.MaxInt64, Kind: "x"}},
		} {
			err := db.Transaction(func(tx *gorm.DB) error { return ledger.Apply(tx, now, ts...) })
			if !errors.Is(err, ledger.ErrInvalid) {
				t.Fatalf("%s: %v, want ErrInvalid", ts[0].ID, err)
			}
		}
		diffs, _, err := ledger.Verify(db)
		if err != nil || len(diffs) > 0 {
			t.Fatalf("verify: %v %v", diffs, err)
		}
	})
}
