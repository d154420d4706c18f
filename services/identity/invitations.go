package identity

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Invitation management by an organisation's owners and admins: list with state, resend (a new token; the
// old one stops working) and revoke. Invite and Accept are in service.go.

// Invitation states (derived, not stored).
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationExpired  = "expired"
	InvitationRevoked  = "revoked"
)

// Audit actions of invitation management.
const (
	AuditInvitationResent  = "invitation_resent"
	AuditInvitationRevoked = "invitation_revoked"
)

// ErrInvitationNotPending refuses to resend or revoke an accepted or revoked invitation.
var ErrInvitationNotPending = problem.New(409, "invitation_not_pending", "The invitation was already accepted or revoked.").
	WithDetail("Only pending or expired invitations can be resent or revoked; invite the person again if needed.")

// errInvitationUnknown answers an invitation ID not of this organisation.
var errInvitationUnknown = problem.New(404, "invitation_not_found", "No such invitation in this organisation.").
	WithDetail("GET /api/v1/identity/organizations/{org_id}/invitations lists the organisation's invitations.")

// State is the invitation's state at now.
func (inv Invitation) State(now time.Time) string {
	switch {
	case inv.RevokedAt != nil:
		return InvitationRevoked
	case inv.AcceptedAt != nil:
		return InvitationAccepted
	case !now.Before(inv.ExpiresAt):
		return InvitationExpired
	default:
		return InvitationPending
	}
}

// InvitationFilter selects an organisation's invitations, newest first.
type InvitationFilter struct {
	OrgID  string
	State  string // one of the states, or "" for all
	Before string // cursor: last ID seen
	Limit  int
}

// Validate checks the state.
func (f InvitationFilter) Validate() error {
	var fs problem.Fields
	switch f.State {
	case "", InvitationPending, InvitationAccepted, InvitationExpired, InvitationRevoked:
	default:
		fs.Add("state", "oneof", "must be one of: pending, accepted, expired, revoked")
	}
	return fs.Err()
}

func listInvitations(db *gorm.DB, f InvitationFilter, now time.Time) ([]Invitation, error) {
	q := db.Model(&Invitation{}).Where("organization_id = ?", f.OrgID)
	switch f.State {
	case InvitationRevoked:
		q = q.Where("revoked_at IS NOT NULL")
	case InvitationAccepted:
		q = q.Where("revoked_at IS NULL AND accepted_at IS NOT NULL")
	case InvitationExpired:
		q = q.Where("revoked_at IS NULL AND accepted_at IS NULL AND expires_at <= ?", now)
	case InvitationPending:
		q = q.Where("revoked_at IS NULL AND accepted_at IS NULL AND expires_at > ?", now)
	}
	if f.Before != "" {
		q = q.Where("id < ?", f.Before)
	}
	var out []Invitation
	err := q.Order("id DESC").Limit(f.Limit + 1).Find(&out).Error
	return out, err
}

// Invitations lists an organisation's invitations for its owners and admins (staff may read).
func (s *Service) Invitations(ctx context.Context, a Actor, f InvitationFilter) ([]Invitation, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	db := s.db.WithContext(ctx)
	if _, err := s.authorizeOrg(db, a, f.OrgID, true, false); err != nil {
		return nil, err
	}
	return listInvitations(db, f, s.clock.Now())
}

// manageInvitation locks a pending or expired invitation of orgID for an admin; owner invitations are the
// owners' to manage, as in Invite.
func (s *Service) manageInvitation(tx *gorm.DB, a Actor, orgID, id string) (Invitation, error) {
	role, err := s.authorizeOrg(tx, a, orgID, true, true)
	if err != nil {
		return Invitation{}, err
	}
	var inv Invitation
	err = sqldb.ForUpdate(tx).Where("id = ? AND organization_id = ?", id, orgID).Take(&inv).Error
	if sqldb.IsNotFound(err) {
		return Invitation{}, errInvitationUnknown
	}
	if err != nil {
		return Invitation{}, err
	}
	if inv.AcceptedAt != nil || inv.RevokedAt != nil {
		return Invitation{}, ErrInvitationNotPending
	}
	if inv.Role == RoleOwner && role != RoleOwner {
		return Invitation{}, ErrOwnersOnly
	}
	return inv, nil
}

// ResendInvitation gives a pending or expired invitation a new token and a new expiry, and mails it; the old
// token stops working.
func (s *Service) ResendInvitation(ctx context.Context, a Actor, orgID, id string) (Invitation, error) {
	now := s.clock.Now()
	token := secret()
	var (
		inv Invitation
		org Organization
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if inv, err = s.manageInvitation(tx, a, orgID, id); err != nil {
			return err
		}
		if org, err = orgByID(tx, orgID); err != nil {
			return err
		}
		inv.TokenHash, inv.ExpiresAt = hashSecret(token), now.Add(s.inviteTTL)
		if err := tx.Model(&Invitation{}).Where("id = ?", inv.ID).
			Updates(map[string]any{"token_hash": inv.TokenHash, "expires_at": inv.ExpiresAt}).Error; err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditInvitationResent, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: orgID, Target: "invitation:" + inv.ID, IP: a.IP, Detail: details("email", inv.Email, "role", inv.Role)})
	})
	if err != nil {
		return Invitation{}, err
	}
	base := strings.TrimRight(s.publicURL, "/")
	body := fmt.Sprintf("Hello,\n\n%s invited you to join %q on Tamarack as %s (this replaces any earlier invitation link).\n\n"+
		"Accept the invitation: %s/invitations/%s\n\nOr through the API: POST %s/api/v1/identity/invitations/%s/accept\n\n"+
		"The invitation expires on %s.\n", a.Email, org.Name, inv.Role, base, token, base, token, inv.ExpiresAt.Format(time.RFC1123))
	if err := s.mailer.Send(ctx, mail.Message{To: []string{inv.Email}, Subject: "Invitation to join " + org.Name + " on Tamarack", Body: body}); err != nil {
		s.log.Error("invitation mail failed", "invitation", inv.ID, "err", err)
		return Invitation{}, ErrMailFailed
	}
	return inv, nil
}

// RevokeInvitation makes a pending or expired invitation unusable; the row stays, listed as revoked.
func (s *Service) RevokeInvitation(ctx context.Context, a Actor, orgID, id string) error {
	now := s.clock.Now()
	return s.tx(ctx, func(tx *gorm.DB) error {
		inv, err := s.manageInvitation(tx, a, orgID, id)
		if err != nil {
			return err
		}
		if err := tx.Model(&Invitation{}).Where("id = ?", inv.ID).
			Updates(map[string]any{"revoked_at": now, "revoked_by": a.UserID}).Error; err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditInvitationRevoked, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: orgID, Target: "invitation:" + inv.ID, IP: a.IP, Detail: details("email", inv.Email, "role", inv.Role)})
	})
}
