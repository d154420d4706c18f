package billing

import (
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

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

// Purchases.

func insertPurchase(tx *gorm.DB, p *Purchase) error { return tx.Create(p).Error }

// setPurchaseStatus and setPurchaseSession change one column (GORM also sets updated_at).
func setPurchaseStatus(db *gorm.DB, id, status string) error {
	return db.Model(&Purchase{}).Where("id = ?", id).Update("status", status).Error
}

func setPurchaseSession(db *gorm.DB, id, sessionID string) error {
	return db.Model(&Purchase{}).Where("id = ?", id).Update("session_id", sessionID).Error
}
