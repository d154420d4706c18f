package billing

import (
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Queries. Every function takes the *gorm.DB (or transaction) to run on and maps not-found to the service's
// problems. A query that reads data on behalf of an organisation takes the organisation's ID and filters by it
// here, where the data is read; the transfer queries take an orgLedger, the accounts read under that ID. Reads
// across every organisation (staff reports, the grant-expiry sweep) are named …AllOrgs and say why. The
// ledger's own queries (accounts, transfers, balances) stay in package ledger. The metering batch's writes
// (insertUsage, updateHeld, insertHolds, updateHoldMeters) cost a fixed number of statements per batch.

// Projections (consumers of identity and marketplace events).

// setOrgNameKind records an organisation's name and kind (organization.created).
func setOrgNameKind(tx *gorm.DB, orgID, name, kind string, now time.Time) error {
	return tx.Model(&Org{}).Where("id = ?", orgID).Updates(map[string]any{"name": name, "kind": kind, "updated_at": now}).Error
}

// setOrgVerified records an organisation's verification (organization.verified).
func setOrgVerified(tx *gorm.DB, orgID string, verified bool, now time.Time) error {
	return tx.Model(&Org{}).Where("id = ?", orgID).Updates(map[string]any{"verified": verified, "updated_at": now}).Error
}

func deleteAdmin(db *gorm.DB, orgID, userID string) error {
	return db.Where("org_id = ? AND user_id = ?", orgID, userID).Delete(&Admin{}).Error
}

func upsertAdmin(db *gorm.DB, a Admin) error {
	return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&a).Error
}

func deletePrice(db *gorm.DB, listingID string) error {
	return db.Where("listing_id = ?", listingID).Delete(&Price{}).Error
}

func upsertPrice(db *gorm.DB, p Price) error {
	return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&p).Error
}

// Organisations.

// getOrg reads an organisation's row by its ID; a missing one is ErrOrgNotFound.
func getOrg(db *gorm.DB, orgID string) (Org, error) {
	var org Org
	err := db.Where("id = ?", orgID).Take(&org).Error
	if sqldb.IsNotFound(err) {
		return org, fmt.Errorf("organisation %s: %w", orgID, ErrOrgNotFound)
	}
	return org, err
}

// setStripeAccount records a vendor's Stripe Connect account.
func setStripeAccount(tx *gorm.DB, orgID, account string) error {
	return tx.Model(&Org{}).Where("id = ?", orgID).Update("stripe_account", account).Error
}

// insertOrgIfMissing creates an organisation's row when it has none (events may arrive in any order).
func insertOrgIfMissing(tx *gorm.DB, orgID string, now time.Time) error {
	return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Org{ID: orgID, UpdatedAt: now}).Error
}

// knownOrg reads an organisation billing has heard of from identity (its organization.created event set the
// kind; a row created only by ensureOrg or a verification event has none). Staff actions naming an
// organisation go through it, so a mistyped ID credits nobody: organization_not_found.
func knownOrg(tx *gorm.DB, orgID string) (Org, error) {
	var org Org
	err := tx.Where("id = ? AND kind <> ''", orgID).Take(&org).Error
	if sqldb.IsNotFound(err) {
		return org, ErrOrgNotFound.WithDetailMsg("problem.organization_not_found.billing", problem.Args{"Org": orgID})
	}
	return org, err
}

// lockOrgs row-locks organisations in id order; every change of Held goes through it.
func lockOrgs(tx *gorm.DB, ids ...string) (map[string]*Org, error) {
	ids = uniqSorted(ids)
	var orgs []Org
	if err := sqldb.ForUpdate(tx).Where("id IN ?", ids).Order("id").Find(&orgs).Error; err != nil {
		return nil, err
	}
	out := map[string]*Org{}
	for i := range orgs {
		out[orgs[i].ID] = &orgs[i]
	}
	return out, nil
}

// setBudget sets an organisation's monthly budget and forgets the thresholds announced.
func setBudget(tx *gorm.DB, orgID string, budget int64) error {
	return tx.Model(&Org{}).Where("id = ?", orgID).Updates(map[string]any{"budget_micro": budget, "budget_notified": ""}).Error
}

// addHeld changes an organisation's held amount by delta (one organisation; the batch uses updateHeld).
func addHeld(tx *gorm.DB, orgID string, delta int64) error {
	return tx.Model(&Org{}).Where("id = ?", orgID).Update("held", gorm.Expr("held + ?", delta)).Error
}

// adminEmailsOf lists the e-mails of an organisation's owners and admins.
func adminEmailsOf(db *gorm.DB, orgID string) ([]string, error) {
	var emails []string
	err := db.Model(&Admin{}).Where("org_id = ? AND role IN ?", orgID, []string{"owner", "admin"}).Order("email").Pluck("email", &emails).Error
	return emails, err
}

func writeAudit(tx *gorm.DB, actor, action, target, detail string, now time.Time) error {
	return tx.Create(&audit{ID: newID("aud"), ActorUserID: actor, Action: action, Target: target, Detail: detail, CreatedAt: now}).Error
}

// Holds.

// lockHold row-locks the hold of a sandbox; exists is false when it has none. By sandbox alone: the testbed's
// events name the sandbox, and its hold says which organisation pays.
func lockHold(tx *gorm.DB, sandboxID string) (h Hold, exists bool, err error) {
	err = sqldb.ForUpdate(tx).Where("sandbox_id = ?", sandboxID).Take(&h).Error
	if sqldb.IsNotFound(err) {
		return Hold{}, false, nil
	}
	return h, err == nil, err
}

// lockHoldOf row-locks an organisation's hold of a sandbox; exists is false when the sandbox has none, and a
// hold of another organisation is ErrHoldNotFound.
func lockHoldOf(tx *gorm.DB, orgID, sandboxID string) (Hold, bool, error) {
	h, exists, err := lockHold(tx, sandboxID)
	if err == nil && exists && h.OrgID != orgID {
		return Hold{}, false, ErrHoldNotFound
	}
	return h, exists, err
}

func insertHold(tx *gorm.DB, h *Hold) error { return tx.Create(h).Error }

func saveHold(tx *gorm.DB, h *Hold) error { return tx.Save(h).Error }

// priceOf reads a listing's projected price; found is false when billing has none.
func priceOf(tx *gorm.DB, listingID string) (p Price, found bool, err error) {
	err = tx.Where("listing_id = ?", listingID).Take(&p).Error
	if sqldb.IsNotFound(err) {
		return Price{}, false, nil
	}
	return p, err == nil, err
}

// Grants.

func insertGrant(tx *gorm.DB, g *Grant) error { return tx.Create(g).Error }

// lockUsableGrants row-locks an organisation's unexpired grants, nearest expiry first.
func lockUsableGrants(tx *gorm.DB, orgID string, now time.Time) ([]Grant, error) {
	var grants []Grant
	err := sqldb.ForUpdate(tx).Where("org_id = ? AND expired = ? AND expires_at > ?", orgID, false, now).
		Order("expires_at, id").Find(&grants).Error
	return grants, err
}

// lockUsableGrantsOf is lockUsableGrants for several organisations with one statement (the usage batch).
func lockUsableGrantsOf(tx *gorm.DB, orgIDs []string, now time.Time) ([]Grant, error) {
	var grants []Grant
	err := sqldb.ForUpdate(tx).Where("org_id IN ? AND expired = ? AND expires_at > ?", orgIDs, false, now).
		Order("org_id, expires_at, id").Find(&grants).Error
	return grants, err
}

// dueGrantsAllOrgs lists the grants past their expiry not yet swept, of every organisation: the expiry sweep is
// the programme's, not an organisation's.
func dueGrantsAllOrgs(db *gorm.DB, now time.Time) ([]Grant, error) {
	var due []Grant
	err := db.Where("expired = ? AND expires_at <= ?", false, now).Find(&due).Error
	return due, err
}

// lockGrant row-locks a grant by its ID (the sweep, which listed it); a missing one is ErrGrantNotFound.
func lockGrant(tx *gorm.DB, id string) (Grant, error) {
	var g Grant
	err := sqldb.ForUpdate(tx).Where("id = ?", id).Take(&g).Error
	if sqldb.IsNotFound(err) {
		return g, fmt.Errorf("grant %s: %w", id, ErrGrantNotFound)
	}
	return g, err
}

func markGrantExpired(tx *gorm.DB, id string) error {
	return tx.Model(&Grant{}).Where("id = ?", id).Update("expired", true).Error
}

// Purchases.

func insertPurchase(tx *gorm.DB, p *Purchase) error { return tx.Create(p).Error }

// setPurchaseStatus and setPurchaseSession change one column (GORM also sets updated_at).
func setPurchaseStatus(db *gorm.DB, id, status string) error {
	return db.Model(&Purchase{}).Where("id = ?", id).Update("status", status).Error
}

func setPurchaseSession(db *gorm.DB, id, sessionID string) error {
	return db.Model(&Purchase{}).Where("id = ?", id).Update("session_id", sessionID).Error
}

func updatePurchase(tx *gorm.DB, id string, updates map[string]any) error {
	return tx.Model(&Purchase{}).Where("id = ?", id).Updates(updates).Error
}

// lockPurchase row-locks a purchase by its ID, as a Stripe event names it (signed by Stripe, for no
// organisation's caller); a missing one is ErrPurchaseNotFound.
func lockPurchase(tx *gorm.DB, id string) (Purchase, error) {
	var p Purchase
	err := sqldb.ForUpdate(tx).Where("id = ?", id).Take(&p).Error
	if sqldb.IsNotFound(err) {
		return p, fmt.Errorf("purchase %s: %w", id, ErrPurchaseNotFound)
	}
	return p, err
}

// lockPurchaseByPaymentIntent row-locks the purchase a Stripe refund names by its payment intent; a missing
// one is ErrPurchaseNotFound.
func lockPurchaseByPaymentIntent(tx *gorm.DB, paymentIntent string) (Purchase, error) {
	var p Purchase
	err := sqldb.ForUpdate(tx).Where("payment_intent = ? AND payment_intent <> ''", paymentIntent).Take(&p).Error
	if sqldb.IsNotFound(err) {
		return p, fmt.Errorf("purchase with payment intent %s: %w", paymentIntent, ErrPurchaseNotFound)
	}
	return p, err
}
