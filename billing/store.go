package billing

import (
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/dayrange"
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

// auditEntries lists the audit log newest first (instant, then ID), of one action when action is set, before
// the cursor after (when set), limit of them. Staff: the programme's log, across organisations.
func auditEntries(db *gorm.DB, action string, after *lineCursor, limit int) ([]audit, error) {
	q := db.Order("created_at DESC, id DESC").Limit(limit)
	if action != "" {
		q = q.Where("action = ?", action)
	}
	if after != nil {
		q = q.Where("created_at < ? OR (created_at = ? AND id < ?)", after.At, after.At, after.ID)
	}
	var out []audit
	return out, q.Find(&out).Error
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

// Grants in the wallet and in staff's reports.

// grantsOf lists an organisation's grants, nearest expiry first.
func grantsOf(db *gorm.DB, orgID string) ([]Grant, error) {
	var gs []Grant
	err := db.Where("org_id = ?", orgID).Order("expires_at, id").Find(&gs).Error
	return gs, err
}

// grantsNewestFirst lists an organisation's grants, newest first.
func grantsNewestFirst(db *gorm.DB, orgID string) ([]Grant, error) {
	var gs []Grant
	err := db.Order("created_at DESC, id DESC").Where("org_id = ?", orgID).Find(&gs).Error
	return gs, err
}

// grantsAllOrgsNewestFirst lists the grants of every organisation, newest first: staff's list of the
// programme's grants.
func grantsAllOrgsNewestFirst(db *gorm.DB) ([]Grant, error) {
	var gs []Grant
	err := db.Order("created_at DESC, id DESC").Find(&gs).Error
	return gs, err
}

// grantsAllOrgs lists the grants of every organisation by organisation: staff's report of the programme's spend.
func grantsAllOrgs(db *gorm.DB) ([]Grant, error) {
	var gs []Grant
	err := db.Order("org_id, id").Find(&gs).Error
	return gs, err
}

// grantAccount reads the ledger account of a grant (read by grantsAllOrgs, for staff).
func grantAccount(db *gorm.DB, grantID string) (ledger.Account, error) {
	var a ledger.Account
	err := db.Where("id = ?", grantAcct(grantID)).Take(&a).Error
	return a, err
}

// grantReturned is what a grant's expiry returned to the programme fund (0 before it expired).
func grantReturned(db *gorm.DB, grantID string) (int64, error) {
	var ret struct{ S int64 }
	err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("id = ?", "grant-expiry:"+grantID).Scan(&ret).Error
	return ret.S, err
}

// Reports: the ledger of an organisation, usage, payables, prices.

// orgLedger is an organisation's own ledger accounts, read under its ID by orgLedgerOf. The queries of
// transfers take it rather than loose account IDs, so they read only lines of the organisation's accounts.
type orgLedger struct {
	orgID string
	accts []ledger.Account // by id
}

func (l orgLedger) empty() bool { return len(l.accts) == 0 }

func (l orgLedger) ids() []string { return accountIDs(l.accts) }

// orgLedgerOf reads an organisation's ledger accounts (its wallet, grants, vendor account), by id.
func orgLedgerOf(db *gorm.DB, orgID string) (orgLedger, error) {
	l := orgLedger{orgID: orgID}
	err := db.Where("org_id = ?", orgID).Order("id").Find(&l.accts).Error
	return l, err
}

// transfersNewestFirst lists the non-pending transfers of an organisation's accounts, newest first: those
// before the cursor after (when set), created in [from, to) (when from is set), limit of them (0: all).
func transfersNewestFirst(db *gorm.DB, l orgLedger, after *lineCursor, from, to time.Time, limit int) ([]ledger.Transfer, error) {
	ids := l.ids()
	q := db.Model(&ledger.Transfer{}).Where("(debit_account IN ? OR credit_account IN ?) AND phase <> ?", ids, ids, ledger.PhasePending)
	if after != nil {
		q = q.Where("created_at < ? OR (created_at = ? AND id < ?)", after.At, after.At, after.ID)
	}
	if !from.IsZero() {
		q = q.Where("created_at >= ? AND created_at < ?", from, to)
	}
	if limit > 0 {
		q = q.Limit(limit)
	}
	var ts []ledger.Transfer
	err := q.Order("created_at DESC, id DESC").Find(&ts).Error
	return ts, err
}

// balanceBefore is the posted balance of an organisation's accounts before start.
func balanceBefore(db *gorm.DB, l orgLedger, start time.Time) (int64, error) {
	ids := l.ids()
	var in, out struct{ S int64 }
	posted := []string{ledger.PhasePosted, ledger.PhasePostPending}
	if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("credit_account IN ? AND phase IN ? AND created_at < ?", ids, posted, start).Scan(&in).Error; err != nil {
		return 0, err
	}
	if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("debit_account IN ? AND phase IN ? AND created_at < ?", ids, posted, start).Scan(&out).Error; err != nil {
		return 0, err
	}
	return in.S - out.S, nil
}

// usageRowsOf groups an organisation's usage (asVendor: the usage it sold) by day, GPU model and sandbox, on
// the days from..to (yyyy-mm-dd, inclusive; empty: unbounded).
func usageRowsOf(db *gorm.DB, orgID string, asVendor bool, from, to string) ([]UsageRow, error) {
	col := "org_id"
	if asVendor {
		col = "vendor_org_id"
	}
	q := db.Model(&Usage{}).Select("day, gpu_model, sandbox_id, SUM(millis) AS millis, SUM(charge) AS charge_micro, "+
		"SUM(cofunded) AS cofunded_micro, SUM(shortfall) AS shortfall_micro").Where(col+" = ?", orgID)
	if from != "" {
		q = q.Where("day >= ?", from)
	}
	if to != "" {
		q = q.Where("day <= ?", to)
	}
	var rows []UsageRow
	err := q.Group("day, gpu_model, sandbox_id").Order("day DESC, gpu_model, sandbox_id").Scan(&rows).Error
	return rows, err
}

// vendorAccountsOf reads a vendor organisation's payable account (none when it has earned nothing yet).
func vendorAccountsOf(db *gorm.DB, vendorOrgID string) ([]ledger.Account, error) {
	var accts []ledger.Account
	err := db.Where("kind = ?", KindVendor).Where("org_id = ?", vendorOrgID).Order("id").Find(&accts).Error
	return accts, err
}

// vendorAccountsAllOrgs reads every vendor's payable account: staff's list of payouts due.
func vendorAccountsAllOrgs(db *gorm.DB) ([]ledger.Account, error) {
	var accts []ledger.Account
	err := db.Where("kind = ?", KindVendor).Order("id").Find(&accts).Error
	return accts, err
}

// vendorTotals sums what a vendor's payable account a (read by vendorAccountsOf or …AllOrgs) was credited and
// paid out.
func vendorTotals(db *gorm.DB, a ledger.Account) (earned, paid int64, err error) {
	var e, p struct{ S int64 }
	if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("credit_account = ? AND phase = ?", a.ID, ledger.PhasePosted).Scan(&e).Error; err != nil {
		return 0, 0, err
	}
	if err := db.Model(&ledger.Transfer{}).Select("COALESCE(SUM(amount),0) AS s").Where("debit_account = ? AND phase IN ?", a.ID,
		[]string{ledger.PhasePosted, ledger.PhasePostPending}).Scan(&p).Error; err != nil {
		return 0, 0, err
	}
	return e.S, p.S, nil
}

// priceList lists the published compute prices by GPU model and pool: a public price list, no organisation's.
func priceList(db *gorm.DB) ([]Price, error) {
	var ps []Price
	err := db.Order("gpu_model, pool_id, listing_id").Find(&ps).Error
	return ps, err
}

// hasPurchaseRef reports whether an organisation has a purchase with this reference.
func hasPurchaseRef(db *gorm.DB, orgID, reference string) (bool, error) {
	var n int64
	err := db.Model(&Purchase{}).Where("org_id = ? AND reference = ?", orgID, reference).Count(&n).Error
	return n > 0, err
}

// Receipts and statements (documents.go).

// purchasesOf lists an organisation's purchases, newest first (at most 500).
func purchasesOf(db *gorm.DB, orgID string) ([]Purchase, error) {
	var ps []Purchase
	err := db.Where("org_id = ?", orgID).Order("created_at DESC, id DESC").Limit(500).Find(&ps).Error
	return ps, err
}

// purchaseOf reads a purchase of an organisation; a missing or foreign one is ErrPurchaseNotFound.
func purchaseOf(db *gorm.DB, orgID, id string) (Purchase, error) {
	var p Purchase
	err := db.Where("id = ? AND org_id = ?", id, orgID).Take(&p).Error
	if sqldb.IsNotFound(err) {
		return p, fmt.Errorf("purchase %s: %w", id, ErrPurchaseNotFound)
	}
	return p, err
}

// purchasesByID reads the purchases of an organisation among ids, oldest first.
func purchasesByID(db *gorm.DB, orgID string, ids []string) ([]Purchase, error) {
	var ps []Purchase
	err := db.Where("org_id = ? AND id IN ?", orgID, ids).Order("created_at, id").Find(&ps).Error
	return ps, err
}

// purchaseCreditedAt is when the ledger credited purchase p (read by purchaseOf); ok is false before it did.
func purchaseCreditedAt(db *gorm.DB, p Purchase) (at time.Time, ok bool, err error) {
	var t ledger.Transfer
	err = db.Where("id = ?", purchaseTransfer(p.ID)).Take(&t).Error
	if sqldb.IsNotFound(err) {
		return time.Time{}, false, nil
	}
	return t.CreatedAt, err == nil, err
}

// orgExists reports whether billing has a row for the organisation: staff read any organisation's documents,
// and a mistyped ID is organization_not_found rather than empty documents.
func orgExists(db *gorm.DB, orgID string) (bool, error) {
	var n int64
	err := db.Model(&Org{}).Where("id = ?", orgID).Count(&n).Error
	return n > 0, err
}

// firstTransfer reads the oldest non-pending transfer of an organisation's accounts; ok is false when it has none.
func firstTransfer(db *gorm.DB, l orgLedger) (t ledger.Transfer, ok bool, err error) {
	ids := l.ids()
	err = db.Where("(debit_account IN ? OR credit_account IN ?) AND phase <> ?", ids, ids, ledger.PhasePending).Order("created_at").Take(&t).Error
	if sqldb.IsNotFound(err) {
		return t, false, nil
	}
	return t, err == nil, err
}

// sandboxUsageOnDays sums an organisation's usage of the days [from, to) (yyyy-mm-dd) per sandbox, with each
// sandbox's listing (from its hold) and the listing's title (from the price projection).
func sandboxUsageOnDays(db *gorm.DB, orgID, from, to string) ([]SandboxUsage, error) {
	return sandboxUsage(db, "u.org_id = ? AND u.day >= ? AND u.day < ?", orgID, from, to)
}

// sandboxUsageBetween is sandboxUsageOnDays for the usage metered in [start, end).
func sandboxUsageBetween(db *gorm.DB, orgID string, start, end time.Time) ([]SandboxUsage, error) {
	return sandboxUsage(db, "u.org_id = ? AND u.created_at >= ? AND u.created_at < ?", orgID, start, end)
}

// sandboxUsage sums the usage rows that where selects (on billing_usage AS u) per sandbox; where names the
// organisation (its callers above).
func sandboxUsage(db *gorm.DB, where string, args ...any) ([]SandboxUsage, error) {
	var rows []SandboxUsage
	err := db.Table("billing_usage AS u").
		Select("u.sandbox_id AS sandbox_id, COALESCE(MAX(h.listing_id), '') AS listing_id, COALESCE(MAX(p.title), '') AS listing_title, "+
			"MAX(u.gpu_model) AS gpu_model, SUM(u.millis) AS millis, SUM(u.charge) AS charge_micro, SUM(u.cofunded) AS cofunded_micro, "+
			"SUM(u.shortfall) AS shortfall_micro").
		Joins("LEFT JOIN billing_holds h ON h.sandbox_id = u.sandbox_id").
		Joins("LEFT JOIN billing_prices p ON p.listing_id = h.listing_id").
		Where(where, args...).
		Group("u.sandbox_id").Order("charge_micro DESC, sandbox_id").Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	for i := range rows {
		rows[i].PaidMicro = rows[i].ChargeMicro - rows[i].CofundedMicro - rows[i].ShortfallMicro
	}
	if rows == nil {
		rows = []SandboxUsage{}
	}
	return rows, nil
}

// Activity (activity.go): an organisation's readable lines and the entries behind them.

// activityUsage is an organisation's usage of one sandbox on one UTC day.
type activityUsage struct {
	SandboxID string
	Day       string
	GPUModel  string `gorm:"column:gpu_model"`
	Millis    int64
	Charge    int64
	Cofunded  int64
	Shortfall int64
	N         int
	Last      dbTime
}

// usageBySandboxDay rolls an organisation's usage up per sandbox and day (one sandbox when sandboxID is set).
func usageBySandboxDay(db *gorm.DB, orgID, sandboxID string) ([]activityUsage, error) {
	q := db.Model(&Usage{}).Select("sandbox_id, day, MAX(gpu_model) AS gpu_model, SUM(millis) AS millis, SUM(charge) AS charge, "+
		"SUM(cofunded) AS cofunded, SUM(shortfall) AS shortfall, COUNT(*) AS n, MAX(created_at) AS last").
		Where("org_id = ?", orgID).Group("sandbox_id, day")
	if sandboxID != "" {
		q = q.Where("sandbox_id = ?", sandboxID)
	}
	var rows []activityUsage
	err := q.Scan(&rows).Error
	return rows, err
}

// holdsOf reads an organisation's holds of sandboxIDs (another organisation's are left out).
func holdsOf(db *gorm.DB, orgID string, sandboxIDs []string) ([]Hold, error) {
	var hs []Hold
	err := db.Where("org_id = ? AND sandbox_id IN ?", orgID, sandboxIDs).Find(&hs).Error
	return hs, err
}

// pricesOf reads the projected prices of listingIDs: the price list is public, no organisation's.
func pricesOf(db *gorm.DB, listingIDs []string) ([]Price, error) {
	var ps []Price
	err := db.Where("listing_id IN ?", append(listingIDs, "")).Find(&ps).Error
	return ps, err
}

// settledTransfers lists the posted and post-pending transfers of an organisation's accounts, oldest first.
func settledTransfers(db *gorm.DB, l orgLedger) ([]ledger.Transfer, error) {
	ids := l.ids()
	var ts []ledger.Transfer
	err := db.Where("(debit_account IN ? OR credit_account IN ?) AND phase NOT IN ?", ids, ids,
		[]string{ledger.PhasePending, ledger.PhaseVoidPending}).Order("created_at, id").Find(&ts).Error
	return ts, err
}

// usageEntries lists an organisation's usage rows of one sandbox on one day (yyyy-mm-dd), in sequence.
func usageEntries(db *gorm.DB, orgID, sandboxID, day string) ([]Usage, error) {
	var us []Usage
	err := db.Where("org_id = ? AND sandbox_id = ? AND day = ?", orgID, sandboxID, day).Order("seq, event_id").Find(&us).Error
	return us, err
}

// lineTransfers lists the settled transfers of one kind and reference (or, without a reference, ID) that
// touch an organisation's accounts, oldest first.
func lineTransfers(db *gorm.DB, l orgLedger, kind, ref string) ([]ledger.Transfer, error) {
	ids := l.ids()
	var ts []ledger.Transfer
	err := db.Where("kind = ? AND (ref = ? OR (ref = '' AND id = ?)) AND (debit_account IN ? OR credit_account IN ?) AND phase NOT IN ?",
		kind, ref, ref, ids, ids, []string{ledger.PhasePending, ledger.PhaseVoidPending}).Order("created_at, id").Find(&ts).Error
	return ts, err
}

// earningTransfers lists the settled usage transfers credited to an organisation's vendor account on the UTC
// day that starts at day, oldest first.
func earningTransfers(db *gorm.DB, l orgLedger, day time.Time) ([]ledger.Transfer, error) {
	var vendor []string
	for _, id := range l.ids() {
		if strings.HasPrefix(id, "vendor:") {
			vendor = append(vendor, id)
		}
	}
	var ts []ledger.Transfer
	err := db.Where("kind = ? AND credit_account IN ? AND created_at >= ? AND created_at < ? AND phase NOT IN ?", "usage", append(vendor, ""),
		day, day.AddDate(0, 0, 1), []string{ledger.PhasePending, ledger.PhaseVoidPending}).Order("created_at, id").Find(&ts).Error
	return ts, err
}

// Charts (charts.go): day-bucketed sums over a bounded range.

// eachUsageBetween calls fn with the time and amounts of each usage row of an organisation metered in
// [start, end), row by row (a chart in a time zone other than UTC buckets them by local day).
func eachUsageBetween(db *gorm.DB, orgID string, start, end time.Time, fn func(Usage)) error {
	rows, err := db.Model(&Usage{}).Select("created_at, charge, cofunded, shortfall").
		Where("org_id = ? AND created_at >= ? AND created_at < ?", orgID, start, end).Rows()
	if err != nil {
		return err
	}
	for rows.Next() {
		var u Usage
		if err := db.ScanRows(rows, &u); err != nil {
			rows.Close()
			return err
		}
		fn(u)
	}
	return rows.Close()
}

// usageDaySums sums an organisation's usage per UTC day of the days [from, to) (yyyy-mm-dd).
func usageDaySums(db *gorm.DB, orgID, from, to string) ([]daySums, error) {
	var sums []daySums
	err := db.Model(&Usage{}).Select("day, SUM(charge) AS charge, SUM(cofunded) AS cofunded, SUM(shortfall) AS short").
		Where("org_id = ? AND day >= ? AND day < ?", orgID, from, to).Group("day").Order("day").Scan(&sums).Error
	return sums, err
}

// vendorEarningsByDay sums what the ledger credited a vendor's payable account for kind (usage or order) per
// day of r.
func vendorEarningsByDay(db *gorm.DB, vendorOrgID, kind string, r dayrange.Range) (map[string]int64, error) {
	return sumByDay(db.Model(&ledger.Transfer{}).
		Where("credit_account = ? AND kind = ? AND phase = ? AND created_at >= ? AND created_at < ?", vendorAcct(vendorOrgID), kind,
			ledger.PhasePosted, r.Start(), r.End()), r, "created_at", "amount")
}

// grantedByDayAllOrgs sums the grants given per day of r, to every organisation: staff's programme chart.
func grantedByDayAllOrgs(db *gorm.DB, r dayrange.Range) (map[string]int64, error) {
	return sumByDay(db.Model(&ledger.Transfer{}).
		Where("kind = ? AND debit_account = ? AND created_at >= ? AND created_at < ?", "grant", AcctFund, r.Start(), r.End()), r, "created_at", "amount")
}

// grantSpendByDayAllOrgs sums the grant credits spent on usage and orders per day of r, by every
// organisation: staff's programme chart.
func grantSpendByDayAllOrgs(db *gorm.DB, r dayrange.Range) (map[string]int64, error) {
	return sumByDay(db.Model(&ledger.Transfer{}).
		Where("kind IN ? AND debit_account LIKE ? AND phase = ? AND created_at >= ? AND created_at < ?", []string{"usage", "order"}, "grant:%",
			ledger.PhasePosted, r.Start(), r.End()), r, "created_at", "amount")
}

// cofundedByDayAllOrgs sums the co-funded share of metered usage per day of r, of every organisation: staff's
// programme chart.
func cofundedByDayAllOrgs(db *gorm.DB, r dayrange.Range) (map[string]int64, error) {
	if r.Local() {
		return sumByDay(db.Model(&Usage{}).Where("created_at >= ? AND created_at < ?", r.Start(), r.End()), r, "created_at", "cofunded")
	}
	var cof []dayAmount
	err := db.Model(&Usage{}).Select("day, SUM(cofunded) AS s").
		Where("day >= ? AND day < ?", r.From.Format("2006-01-02"), r.To.AddDate(0, 0, 1).Format("2006-01-02")).Group("day").Scan(&cof).Error
	return fillDays(cof), err
}

// dayExpr is the UTC calendar day of a timestamp column, per engine.
func dayExpr(db *gorm.DB, col string) string {
	if sqldb.DialectOf(db) == sqldb.Postgres {
		return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
	return "date(" + col + ")"
}

// sumByDay sums valueCol of q's rows per day of r: in SQL by UTC day, or, for another zone, row by row on
// the local day of timeCol.
func sumByDay(q *gorm.DB, r dayrange.Range, timeCol, valueCol string) (map[string]int64, error) {
	if !r.Local() {
		day := dayExpr(q, timeCol)
		var rows []dayAmount
		err := q.Select(day + " AS day, SUM(" + valueCol + ") AS s").Group(day).Scan(&rows).Error
		return fillDays(rows), err
	}
	rows, err := q.Select(timeCol + " AS at, " + valueCol + " AS s").Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var x struct {
			At time.Time
			S  int64
		}
		if err := q.ScanRows(rows, &x); err != nil {
			return nil, err
		}
		out[r.DayOf(x.At)] += x.S
	}
	return out, rows.Err()
}

type dayAmount struct {
	Day string
	S   int64
}

func fillDays(rows []dayAmount) map[string]int64 {
	m := map[string]int64{}
	for _, x := range rows {
		m[x.Day] += x.S
	}
	return m
}

// The metering batch (meter.go): reads in chunks of 500 IDs, writes with a fixed number of statements.

// knownOrgIDs lists which of ids have an organisation row.
func knownOrgIDs(tx *gorm.DB, ids []string) ([]string, error) {
	var known []string
	err := tx.Model(&Org{}).Where("id IN ?", ids).Pluck("id", &known).Error
	return known, err
}

// lockHolds row-locks the holds of sandboxIDs (sorted), 500 a statement.
func lockHolds(tx *gorm.DB, sandboxIDs []string) ([]Hold, error) {
	var out []Hold
	for _, part := range chunks(sandboxIDs, 500) {
		var hs []Hold
		if err := sqldb.ForUpdate(tx).Where("sandbox_id IN ?", part).Order("sandbox_id").Find(&hs).Error; err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	return out, nil
}

// chargedEvents reports which of the usage event IDs are charged already, 500 a statement.
func chargedEvents(tx *gorm.DB, eventIDs []string) (map[string]bool, error) {
	existing := map[string]bool{}
	for _, part := range chunks(eventIDs, 500) {
		var ex []string
		if err := tx.Model(&Usage{}).Where("event_id IN ?", part).Pluck("event_id", &ex).Error; err != nil {
			return nil, err
		}
		for _, id := range ex {
			existing[id] = true
		}
	}
	return existing, nil
}

// existingAccounts lists which of the ledger account IDs exist.
func existingAccounts(tx *gorm.DB, ids []string) ([]string, error) {
	var have []string
	err := tx.Model(&ledger.Account{}).Where("id IN ?", ids).Pluck("id", &have).Error
	return have, err
}

// updateGrant writes a grant's co-funding and threshold marks.
func updateGrant(tx *gorm.DB, id string, updates map[string]any) error {
	return tx.Model(&Grant{}).Where("id = ?", id).Updates(updates).Error
}

// spentSince is what an organisation paid itself for usage (charges minus co-funding and shortfalls) on the
// days from day (yyyy-mm-dd) on.
func spentSince(db *gorm.DB, orgID, day string) (int64, error) {
	var spent struct{ S int64 }
	err := db.Model(&Usage{}).Select("COALESCE(SUM(charge - cofunded - shortfall), 0) AS s").
		Where("org_id = ? AND day >= ?", orgID, day).Scan(&spent).Error
	return spent.S, err
}

// setBudgetNotified records the budget threshold last announced ("yyyy-mm:pct").
func setBudgetNotified(tx *gorm.DB, orgID, mark string) error {
	return tx.Model(&Org{}).Where("id = ?", orgID).Update("budget_notified", mark).Error
}

// insertUsage writes the usage rows. On Postgres, one INSERT … SELECT FROM unnest of one array per column:
// 13 parameters whatever the number of rows, so neither side converts, binds or plans thousands of parameters.
// On SQLite, multi-row inserts of 64 rows (its driver binds parameters in time quadratic in their number).
func insertUsage(tx *gorm.DB, rows []Usage) error {
	if len(rows) == 0 {
		return nil
	}
	if sqldb.DialectOf(tx) == sqldb.Postgres {
		n := len(rows)
		var (
			eventID, sandboxID, orgID, vendorOrgID, gpuModel = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			batchID, day                                     = make([]string, n), make([]string, n)
			seq, millis, charge, cofunded, shortfall         = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
			createdAt                                        = make([]time.Time, n)
		)
		for i, u := range rows {
			eventID[i], sandboxID[i], orgID[i], vendorOrgID[i], gpuModel[i] = u.EventID, u.SandboxID, u.OrgID, u.VendorOrgID, u.GPUModel
			batchID[i], day[i] = u.BatchID, u.Day
			seq[i], millis[i], charge[i], cofunded[i], shortfall[i] = u.Seq, u.Millis, u.Charge, u.Cofunded, u.Shortfall
			createdAt[i] = u.CreatedAt
		}
		return tx.Exec("INSERT INTO billing_usage (event_id, sandbox_id, org_id, vendor_org_id, gpu_model, seq, millis, charge, cofunded, shortfall, batch_id, day, created_at) "+
			"SELECT * FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), "+
			"CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TIMESTAMP[]))",
			pgArray{eventID}, pgArray{sandboxID}, pgArray{orgID}, pgArray{vendorOrgID}, pgArray{gpuModel}, pgArray{seq}, pgArray{millis},
			pgArray{charge}, pgArray{cofunded}, pgArray{shortfall}, pgArray{batchID}, pgArray{day}, pgArray{createdAt}).Error
	}
	const chunk = 64
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		var b strings.Builder
		b.WriteString("INSERT INTO billing_usage (event_id, sandbox_id, org_id, vendor_org_id, gpu_model, seq, millis, charge, cofunded, shortfall, batch_id, day, created_at) VALUES ")
		args := make([]any, 0, len(part)*13)
		for i, u := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?)")
			args = append(args, u.EventID, u.SandboxID, u.OrgID, u.VendorOrgID, u.GPUModel, u.Seq, u.Millis, u.Charge, u.Cofunded, u.Shortfall, u.BatchID, u.Day, u.CreatedAt)
		}
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// pgArray passes a Go slice to pgx as one array parameter (GORM expands a bare slice into a list of them).
type pgArray struct{ v any }

// Value hands the slice itself to pgx, which encodes it as the array type the statement casts to.
func (a pgArray) Value() (driver.Value, error) { return a.v, nil }

// updateHeld applies the organisations' held deltas with one statement per 300 organisations.
func updateHeld(tx *gorm.DB, delta map[string]int64) error {
	var ids []string
	for _, o := range sortedKeys(delta) {
		if delta[o] != 0 {
			ids = append(ids, o)
		}
	}
	for start := 0; start < len(ids); start += 300 {
		part := ids[start:min(start+300, len(ids))]
		var b strings.Builder
		b.WriteString("WITH v(id, d) AS (VALUES ")
		args := make([]any, 0, 2*len(part))
		for i, o := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(CAST(? AS TEXT), CAST(? AS BIGINT))")
			args = append(args, o, delta[o])
		}
		b.WriteString(") UPDATE billing_orgs SET held = billing_orgs.held + v.d FROM v WHERE billing_orgs.id = v.id")
		res := tx.Exec(b.String(), args...)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != int64(len(part)) {
			return fmt.Errorf("update held: %d of %d organisations", res.RowsAffected, len(part))
		}
	}
	return nil
}

// insertHolds inserts new holds, 200 rows a statement.
func insertHolds(tx *gorm.DB, fresh []Hold) error {
	if len(fresh) == 0 {
		return nil
	}
	return tx.CreateInBatches(&fresh, 200).Error
}

// updateHoldMeters updates the metering state of holds: on Postgres with one UPDATE … FROM unnest(…), on
// SQLite with one WITH v(...) AS (VALUES ...) UPDATE ... FROM v per 64 rows.
func updateHoldMeters(tx *gorm.DB, upd []*Hold) error {
	if sqldb.DialectOf(tx) == sqldb.Postgres {
		return updateHoldsUnnest(tx, upd)
	}
	const ts = "?"   // SQLite stores times as text; a CAST to TIMESTAMP there would mean NUMERIC
	const chunk = 64 // the SQLite driver binds parameters in quadratic time
	for start := 0; start < len(upd); start += chunk {
		part := upd[start:min(start+chunk, len(upd))]
		var b strings.Builder
		b.WriteString("WITH v(sandbox_id, charged, cum_ms, samples, max_seq, shortfall, exhausted, released, updated_at) AS (VALUES ")
		args := make([]any, 0, len(part)*9)
		for i, h := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BOOLEAN), CAST(? AS BOOLEAN), " + ts + ")")
			args = append(args, h.SandboxID, h.Charged, h.CumMs, h.Samples, h.MaxSeq, h.Shortfall, h.Exhausted, h.Released, h.UpdatedAt)
		}
		b.WriteString(") UPDATE billing_holds SET charged = v.charged, cum_ms = v.cum_ms, samples = v.samples, max_seq = v.max_seq, " +
			"shortfall = v.shortfall, exhausted = v.exhausted, released = v.released, updated_at = v.updated_at FROM v WHERE billing_holds.sandbox_id = v.sandbox_id")
		res := tx.Exec(b.String(), args...)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != int64(len(part)) {
			return fmt.Errorf("update holds: %d of %d rows", res.RowsAffected, len(part))
		}
	}
	return nil
}

// updateHoldsUnnest updates the metering state of holds with one statement of one array per column (Postgres).
func updateHoldsUnnest(tx *gorm.DB, upd []*Hold) error {
	if len(upd) == 0 {
		return nil
	}
	n := len(upd)
	ids := make([]string, n)
	charged, cumMs, samples, maxSeq, shortfall := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	exhausted, released := make([]bool, n), make([]bool, n)
	updatedAt := make([]time.Time, n)
	for i, h := range upd {
		ids[i], charged[i], cumMs[i], samples[i], maxSeq[i], shortfall[i] = h.SandboxID, h.Charged, h.CumMs, h.Samples, h.MaxSeq, h.Shortfall
		exhausted[i], released[i], updatedAt[i] = h.Exhausted, h.Released, h.UpdatedAt
	}
	res := tx.Exec("UPDATE billing_holds SET charged = v.charged, cum_ms = v.cum_ms, samples = v.samples, max_seq = v.max_seq, "+
		"shortfall = v.shortfall, exhausted = v.exhausted, released = v.released, updated_at = v.updated_at "+
		"FROM unnest(CAST(? AS TEXT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), "+
		"CAST(? AS BOOLEAN[]), CAST(? AS BOOLEAN[]), CAST(? AS TIMESTAMP[])) "+
		"AS v(sandbox_id, charged, cum_ms, samples, max_seq, shortfall, exhausted, released, updated_at) WHERE billing_holds.sandbox_id = v.sandbox_id",
		pgArray{ids}, pgArray{charged}, pgArray{cumMs}, pgArray{samples}, pgArray{maxSeq}, pgArray{shortfall},
		pgArray{exhausted}, pgArray{released}, pgArray{updatedAt})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != int64(n) {
		return fmt.Errorf("update holds: %d of %d rows", res.RowsAffected, n)
	}
	return nil
}
