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
	"github.com/tamarack-ai/tamarack/platform/natstest"
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

// TestSeedBilling seeds twice: the SME grant and the partner's offline payment exist once. No identity event
// reaches billing here (as in a one-process seed): the seed projects the demo organisations itself, since
// billing's staff actions refuse organisations it has never heard of.
func TestSeedBilling(t *testing.T) {
	ctx := context.Background()
	c := newConfig("seed")
	if err := c.parse([]string{"--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(ctx, c.dsn(), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sqldb.Close(db) }()
	if err := sqldb.Migrate(ctx, db, nil, billing.Migrations()); err != nil {
		t.Fatal(err)
	}
	bus := natstest.Start(t)
	e := newToolEnv(c, newLogger(c), db, bus)
	d := &demo{SMEOrgID: "org-sme", PartnerOrgID: "org-partner", VendorOrgID: "org-vendor", ProgrammeOrgID: "org-programme", StaffUserID: "u-staff"}
	for range 2 {
		if err := seedBilling(ctx, e, d); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := newBilling(e)
	if err != nil {
		t.Fatal(err)
	}
	sme, err := svc.WalletOf(ctx, "org-sme")
	if err != nil {
		t.Fatal(err)
	}
	partner, err := svc.WalletOf(ctx, "org-partner")
	if err != nil {
		t.Fatal(err)
	}
	if len(sme.Grants) != 1 || sme.GrantedMicro != 500_000_000 || sme.Grants[0].CofundPercent != 50 || sme.Grants[0].CapMicro != 200_000_000 {
		t.Fatalf("sme wallet %+v", sme)
	}
	if partner.PurchasedMicro != 1_000_000_000 {
		t.Fatalf("partner wallet %+v", partner)
	}
	var orgs []billing.Org
	if err := db.Order("id").Find(&orgs).Error; err != nil {
		t.Fatal(err)
	}
	want := map[string]billing.Org{
		"org-programme": {Name: "AI Compute Programme", Kind: "programme", Verified: true},
		"org-vendor":    {Name: "Northern GPU Co.", Kind: "vendor", Verified: true},
		"org-sme":       {Name: "Maple Robotics", Kind: "sme", Verified: true},
		"org-partner":   {Name: "Laurentian Industries", Kind: "partner", Verified: false},
	}
	if len(orgs) != len(want) {
		t.Fatalf("projected organisations %+v", orgs)
	}
	for _, o := range orgs {
		w := want[o.ID]
		if o.Name != w.Name || o.Kind != w.Kind || o.Verified != w.Verified {
			t.Errorf("organisation %s projected as %q %q verified=%v, want %q %q verified=%v", o.ID, o.Name, o.Kind, o.Verified, w.Name, w.Kind, w.Verified)
		}
	}
	// The projected vendor is one staff can configure.
	if err := svc.SetConnectAccount(ctx, "u-staff", "org-vendor", "acct_demo"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := verifyLedger(db, &out); err != nil {
		t.Fatal(err, out.String())
	}
}
