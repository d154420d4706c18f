package testbed

import (
	"context"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
	"gorm.io/gorm"
)

// AuditActions are the actions the testbed writes to its audit log; each has a name for people in both
// catalogues (audit.testbed.<action>), which GET /audit answers as action_display.
var AuditActions = []string{"pool.create", "pool.update", "node.add", "node.health", "agent_token.create", "agent_token.revoke",
	"agent.revoke", "reservation.cancel", "sandbox.stop", AuditSSHStarted, AuditSSHEnded}

// AuditEntry records a staff action on a testbed object, written in the same transaction as the action.
type AuditEntry struct {
	ID          string `gorm:"primaryKey"`
	At          time.Time
	ActorUserID string
	ActorOrgID  string
	Action      string
	Target      string
	Detail      string
}

func (AuditEntry) TableName() string { return "testbed_audit" }

// audit writes an entry when c acts as staff on an object outside its own organisation.
func (s *Service) audit(tx *gorm.DB, c web.Principal, ownerOrg, action, target, detail string) error {
	if !c.Staff || c.OrgID == ownerOrg {
		return nil
	}
	return createAudit(tx, &AuditEntry{ID: newID("aud"), At: stamp(s.clock.Now()), ActorUserID: c.UserID, ActorOrgID: c.OrgID,
		Action: action, Target: target, Detail: detail})
}

// AuditCursor is where a page of the audit log ends: the last entry's instant (Unix ms) and ID. A zero AtMS
// starts from the newest; an empty ID (an older cursor) takes the entries strictly before AtMS.
type AuditCursor struct {
	AtMS int64  `json:"at_ms"`
	ID   string `json:"id,omitempty"`
}

// Audit lists staff actions, newest first, after the cursor (staff only; the handler checks).
func (s *Service) Audit(ctx context.Context, limit int, before AuditCursor) ([]AuditEntry, error) {
	return auditEntries(s.db.WithContext(ctx), limit, before)
}
