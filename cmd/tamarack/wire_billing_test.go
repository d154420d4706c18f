package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/billing"
	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

func TestBillingVerify(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sqldb.Close(db) }()
	if err := sqldb.Migrate(ctx, db, nil, billing.Migrations()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := ledger.EnsureAccounts(db, now, ledger.Account{ID: "a"}, ledger.Account{ID: "b", NoOverdraft: true}); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Apply(db, now, ledger.Transfer{ID: "t1", DebitAccount: "a", CreditAccount: "b", Amount: 7}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := verifyLedger(db, &out); err != nil || !strings.Contains(out.String(), "2 accounts") {
		t.Fatalf("clean ledger: %v %s", err, out.String())
	}
	// Tamper with a stored balance: verify must report it and fail.
	if err := db.Exec("UPDATE billing_accounts SET balance = balance + 1 WHERE id = 'b'").Error; err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := verifyLedger(db, &out); err == nil || !strings.Contains(out.String(), "DIFFERENCE b balance: stored 8, from transfers 7") {
		t.Fatalf("tampered ledger: %v %s", err, out.String())
	}
}
