package billing

import (
	"errors"
	"testing"

	"gorm.io/gorm"
)

// The store filters by the caller's organisation where it reads: another organisation's ID finds nothing.
func TestStoreReadsOnlyTheCallersOrganisation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB) {
		must(t, insertHold(db, &Hold{SandboxID: "sb-a", OrgID: "org-a", ListingID: "lst-1", GPUCount: 1, CreatedAt: t0, UpdatedAt: t0}))
		must(t, insertHold(db, &Hold{SandboxID: "sb-b", OrgID: "org-b", ListingID: "lst-1", GPUCount: 1, CreatedAt: t0, UpdatedAt: t0}))

		hs, err := holdsOf(db, "org-a", []string{"sb-a", "sb-b"})
		must(t, err)
		if len(hs) != 1 || hs[0].SandboxID != "sb-a" {
			t.Fatalf("holds of org-a = %+v, want sb-a only", hs)
		}
		if hs, err = holdsOf(db, "org-c", []string{"sb-a", "sb-b"}); err != nil || len(hs) != 0 {
			t.Fatalf("holds of org-c = %+v, %v; want none", hs, err)
		}

		h, exists, err := lockHoldOf(db, "org-a", "sb-a")
		if err != nil || !exists || h.OrgID != "org-a" {
			t.Fatalf("own hold: %+v %v %v", h, exists, err)
		}
		if _, _, err := lockHoldOf(db, "org-b", "sb-a"); !errors.Is(err, ErrHoldNotFound) {
			t.Fatalf("another organisation's hold: %v, want hold_not_found", err)
		}
		if _, exists, err := lockHoldOf(db, "org-a", "sb-none"); err != nil || exists {
			t.Fatalf("no hold: exists=%v err=%v", exists, err)
		}

		must(t, insertPurchase(db, &Purchase{ID: "pur-a", OrgID: "org-a", Status: "paid", CreatedAt: t0, UpdatedAt: t0}))
		if _, err := purchaseOf(db, "org-a", "pur-a"); err != nil {
			t.Fatal(err)
		}
		if _, err := purchaseOf(db, "org-b", "pur-a"); !errors.Is(err, ErrPurchaseNotFound) {
			t.Fatalf("another organisation's purchase: %v, want purchase_not_found", err)
		}
		if ps, err := purchasesByID(db, "org-b", []string{"pur-a"}); err != nil || len(ps) != 0 {
			t.Fatalf("another organisation's purchases by ID = %+v, %v; want none", ps, err)
		}
	})
}
