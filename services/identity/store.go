package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Queries. Each takes the *gorm.DB to run on (the service's or a transaction) and maps not-found and
// duplicates to identity's problems.

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// secret returns a high-entropy random string (32 bytes, base64url).
func secret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret hashes a high-entropy token for storage and lookup (a slow hash adds nothing at 256 bits).
func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func userByEmail(db *gorm.DB, email string) (User, error) {
	var u User
	err := db.Where("email = ?", email).Take(&u).Error
	if sqldb.IsNotFound(err) {
		return u, fmt.Errorf("user %s: %w", email, ErrUserNotFound)
	}
	return u, err
}

func userByID(db *gorm.DB, id string) (User, error) {
	var u User
	err := db.Where("id = ?", id).Take(&u).Error
	if sqldb.IsNotFound(err) {
		return u, ErrUserNotFound
	}
	return u, err
}

func orgByID(db *gorm.DB, id string) (Organization, error) {
	var o Organization
	err := db.Where("id = ?", id).Take(&o).Error
	if sqldb.IsNotFound(err) {
		return o, ErrOrgNotFound
	}
	return o, err
}

func membership(db *gorm.DB, orgID, userID string) (Membership, error) {
	var m Membership
	err := db.Where("organization_id = ? AND user_id = ?", orgID, userID).Take(&m).Error
	if sqldb.IsNotFound(err) {
		return m, ErrMemberNotFound
	}
	return m, err
}

// membershipsOf lists a user's organisations, oldest membership first.
func membershipsOf(db *gorm.DB, userID string) ([]MembershipView, error) {
	var ms []Membership
	if err := db.Where("user_id = ?", userID).Order("created_at, organization_id").Find(&ms).Error; err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return []MembershipView{}, nil
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.OrganizationID
	}
	var orgs []Organization
	if err := db.Where("id IN ?", ids).Find(&orgs).Error; err != nil {
		return nil, err
	}
	byID := map[string]Organization{}
	for _, o := range orgs {
		byID[o.ID] = o
	}
	out := make([]MembershipView, 0, len(ms))
	for _, m := range ms {
		if o, ok := byID[m.OrganizationID]; ok {
			out = append(out, MembershipView{Org: o, Role: m.Role})
		}
	}
	return out, nil
}

func countOwners(db *gorm.DB, orgID string) (int64, error) {
	var n int64
	err := db.Model(&Membership{}).Where("organization_id = ? AND role = ?", orgID, RoleOwner).Count(&n).Error
	return n, err
}

func members(db *gorm.DB, orgID, after string, limit int) ([]MemberView, error) {
	var rows []MemberView
	q := db.Table("identity_memberships m").
		Select("m.user_id AS user_id, u.email AS email, u.name AS name, m.role AS role, m.created_at AS created_at").
		Joins("JOIN identity_users u ON u.id = m.user_id").
		Where("m.organization_id = ?", orgID)
	if after != "" {
		q = q.Where("m.user_id > ?", after)
	}
	err := q.Order("m.user_id").Limit(limit + 1).Scan(&rows).Error
	return rows, err
}

// details encodes key/value pairs as the JSON object of an audit entry's detail.
func details(kv ...any) string {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func (s *Service) writeAudit(db *gorm.DB, e AuditEntry) error {
	e.ID = newID()
	e.CreatedAt = s.clock.Now()
	if err := db.Create(&e).Error; err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// auditNow records an entry outside any transaction (failed sign-ins); a failure is logged, not returned.
func (s *Service) auditNow(ctx context.Context, e AuditEntry) {
	if err := s.writeAudit(s.db.WithContext(ctx), e); err != nil {
		s.log.Error("audit write failed", "action", e.Action, "err", err)
	}
}

func listOrgs(db *gorm.DB, f OrgFilter) ([]Organization, error) {
	q := db.Model(&Organization{})
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.Verified != nil {
		q = q.Where("verified = ?", *f.Verified)
	}
	if f.After != "" {
		q = q.Where("id > ?", f.After)
	}
	var out []Organization
	err := q.Order("id").Limit(f.Limit + 1).Find(&out).Error
	return out, err
}

func listAudit(db *gorm.DB, f AuditFilter) ([]AuditEntry, error) {
	q := db.Model(&AuditEntry{})
	if f.OrgID != "" {
		q = q.Where("organization_id = ?", f.OrgID)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Actor != "" {
		q = q.Where("actor_user_id = ?", f.Actor)
	}
	if f.Before != "" {
		q = q.Where("id < ?", f.Before)
	}
	var out []AuditEntry
	err := q.Order("id DESC").Limit(f.Limit + 1).Find(&out).Error
	return out, err
}

func listTokens(db *gorm.DB, userID, orgID, after string, limit int) ([]APIToken, error) {
	q := db.Where("user_id = ? AND organization_id = ? AND revoked_at IS NULL", userID, orgID)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var out []APIToken
	err := q.Order("id").Limit(limit + 1).Find(&out).Error
	return out, err
}

// Sign-in throttle counters (throttle.go). Times are Unix milliseconds.

// lockThrottleRows makes sure each counter has a row and returns them all, locked for the transaction
// (Postgres row locks, in key order against deadlocks; SQLite's immediate transactions serialise writers).
func lockThrottleRows(tx *gorm.DB, ids ...string) (map[string]counter, error) {
	sorted := slices.Sorted(slices.Values(ids))
	rows := make([]throttleRow, len(sorted))
	for i, id := range sorted {
		rows[i] = throttleRow{ID: id}
	}
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
		return nil, err
	}
	var got []throttleRow
	if err := sqldb.ForUpdate(tx).Where("id IN ?", sorted).Order("id").Find(&got).Error; err != nil {
		return nil, err
	}
	out := make(map[string]counter, len(got))
	for _, r := range got {
		out[r.ID] = counter{failures: r.Failures, last: time.UnixMilli(r.LastFailureAt).UTC()}
	}
	return out, nil
}

// setThrottleRows records a failure at now with each counter's new count.
func setThrottleRows(tx *gorm.DB, now time.Time, failures map[string]int) error {
	for _, id := range slices.Sorted(maps.Keys(failures)) {
		if err := tx.Model(&throttleRow{}).Where("id = ?", id).
			Updates(map[string]any{"failures": failures[id], "last_failure_at": now.UnixMilli()}).Error; err != nil {
			return err
		}
	}
	return nil
}

func deleteThrottleRow(tx *gorm.DB, id string) error {
	return tx.Where("id = ?", id).Delete(&throttleRow{}).Error
}

// refundThrottleRow takes one failure back, and puts back the previous failure time when the last one is
// still the refunded attempt's.
func refundThrottleRow(tx *gorm.DB, id string, chargedAt, prev time.Time) error {
	return tx.Exec(`UPDATE identity_login_throttle SET
		failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END,
		last_failure_at = CASE WHEN last_failure_at = ? THEN ? ELSE last_failure_at END
		WHERE id = ?`, chargedAt.UnixMilli(), prev.UnixMilli(), id).Error
}

// pruneThrottle deletes counters whose last failure is before cutoff.
func pruneThrottle(db *gorm.DB, cutoff time.Time) (int64, error) {
	res := db.Where("last_failure_at < ?", cutoff.UnixMilli()).Delete(&throttleRow{})
	return res.RowsAffected, res.Error
}
