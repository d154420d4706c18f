package billing

import (
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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
