package identity

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// HTTP of e-mail verification (verify.go), password reset (reset.go) and invitation management
// (invitations.go). Link tokens travel in request bodies, never in paths, so no log line carries them.

func (h handler) mailRoutes(r fiber.Router) {
	r.Post("/email/verify", h.verifyEmail)
	r.Post("/email/verify/resend", web.RequireAuth, web.RequireScope(ScopeWrite), h.resendVerification)
	r.Post("/password/forgot", h.forgotPassword)
	r.Post("/password/reset", h.resetPassword)
	r.Get("/organizations/:org_id/invitations", web.RequireAuth, web.RequireScope(ScopeRead), h.invitations)
	r.Post("/organizations/:org_id/invitations/:id/resend", web.RequireAuth, web.RequireScope(ScopeWrite), h.resendInvitation)
	r.Delete("/organizations/:org_id/invitations/:id", web.RequireAuth, web.RequireScope(ScopeWrite), h.revokeInvitation)
}

type verifyEmailRequest struct {
	Token string `json:"token" text:"secret" openapi:"required" doc:"from the verification e-mail's link"`
}

func (r *verifyEmailRequest) Validate() error {
	var f problem.Fields
	f.Check(r.Token != "", "token", "required", "is required")
	f.Check(len(r.Token) <= 200, "token", "max", "is too long")
	return f.Err()
}

type verifiedEmailJSON struct {
	UserID          string    `json:"user_id"`
	Email           string    `json:"email"`
	EmailVerified   bool      `json:"email_verified"`
	EmailVerifiedAt time.Time `json:"email_verified_at"`
}

type acceptedJSON struct {
	Status string `json:"status" doc:"accepted"`
	Detail string `json:"detail"`
}

type forgotPasswordRequest struct {
	Email string `json:"email" openapi:"required"`
}

func (r *forgotPasswordRequest) Validate() error {
	var f problem.Fields
	f.Check(strings.TrimSpace(r.Email) != "", "email", "required", "is required")
	f.Check(len(r.Email) <= 254, "email", "max", "must be at most 254 characters")
	return f.Err()
}

type resetPasswordRequest struct {
	Token    string `json:"token" text:"secret" openapi:"required" doc:"from the reset e-mail's link"`
	Password string `json:"password" text:"secret" openapi:"required" doc:"at least 12 characters, not the e-mail, not a common password"`
}

func (r *resetPasswordRequest) Validate() error {
	var f problem.Fields
	f.Check(r.Token != "", "token", "required", "is required")
	f.Check(len(r.Token) <= 200, "token", "max", "is too long")
	f.Check(r.Password != "", "password", "required", "is required")
	return f.Err()
}

type invitationStateJSON struct {
	invitationJSON
	State      string     `json:"state" doc:"pending, accepted, expired or revoked"`
	InvitedBy  string     `json:"invited_by"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	AcceptedBy string     `json:"accepted_by,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
}

func toInvitationStateJSON(inv Invitation, now time.Time) invitationStateJSON {
	return invitationStateJSON{invitationJSON: invitationJSON{ID: inv.ID, OrganizationID: inv.OrganizationID, Email: inv.Email,
		Role: inv.Role, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt}, State: inv.State(now), InvitedBy: inv.InvitedBy,
		AcceptedAt: inv.AcceptedAt, AcceptedBy: inv.AcceptedBy, RevokedAt: inv.RevokedAt, RevokedBy: inv.RevokedBy}
}

func (h handler) verifyEmail(c *fiber.Ctx) error {
	var req verifyEmailRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	u, err := h.svc.VerifyEmail(c.UserContext(), req.Token, Meta{IP: web.ClientIP(c)})
	if err != nil {
		return err
	}
	return c.JSON(verifiedEmailJSON{UserID: u.ID, Email: u.Email, EmailVerified: true, EmailVerifiedAt: *u.EmailVerifiedAt})
}

func (h handler) resendVerification(c *fiber.Ctx) error {
	if err := h.svc.ResendVerification(c.UserContext(), actorOf(c)); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(acceptedJSON{Status: "accepted", Detail: "a new verification link is on its way; earlier links no longer work"})
}

func (h handler) forgotPassword(c *fiber.Ctx) error {
	var req forgotPasswordRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.RequestPasswordReset(c.UserContext(), req.Email, Meta{IP: web.ClientIP(c)}); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(acceptedJSON{Status: "accepted",
		Detail: "if an account uses this address, a password reset link is on its way"})
}

func (h handler) resetPassword(c *fiber.Ctx) error {
	var req resetPasswordRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.ResetPassword(c.UserContext(), ResetPasswordInput{Token: req.Token, Password: req.Password,
		Meta: Meta{IP: web.ClientIP(c)}}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h handler) invitations(c *fiber.Ctx) error {
	page, err := web.PageOf(c)
	if err != nil {
		return err
	}
	f := InvitationFilter{OrgID: c.Params("org_id"), State: c.Query("state"), Limit: page.Limit}
	if page.Cursor != "" {
		if err := web.DecodeCursor(page.Cursor, &f.Before); err != nil {
			return err
		}
	}
	invs, err := h.svc.Invitations(c.UserContext(), actorOf(c), f)
	if err != nil {
		return err
	}
	now := h.svc.clock.Now()
	items := make([]invitationStateJSON, len(invs))
	for i, inv := range invs {
		items[i] = toInvitationStateJSON(inv, now)
	}
	return c.JSON(web.NewList(items, page.Limit, func(last invitationStateJSON) any { return last.ID }))
}

func (h handler) resendInvitation(c *fiber.Ctx) error {
	inv, err := h.svc.ResendInvitation(c.UserContext(), actorOf(c), c.Params("org_id"), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toInvitationStateJSON(inv, h.svc.clock.Now()))
}

func (h handler) revokeInvitation(c *fiber.Ctx) error {
	if err := h.svc.RevokeInvitation(c.UserContext(), actorOf(c), c.Params("org_id"), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// mailOpenAPI declares the operations of mailRoutes.
func (s *Service) mailOpenAPI(d *openapi.Doc) {
	const tag = "identity"
	page := []openapi.Param{{Name: "limit", Type: "integer", Description: "1 to 200, default 50"}, {Name: "cursor", Description: "from next_cursor"}}
	d.Add(
		openapi.Op{Method: "POST", Path: Base + "/email/verify", Summary: "Verify the e-mail address with the token of the verification link", Tag: tag,
			Request: verifyEmailRequest{}, Response: verifiedEmailJSON{}, Problems: []string{"verification_token_invalid"}},
		openapi.Op{Method: "POST", Path: Base + "/email/verify/resend", Summary: "Send a new verification link (earlier ones stop working; limited per user)", Tag: tag,
			Auth: "user", Response: acceptedJSON{}, Status: 202, Problems: []string{"email_already_verified", "too_many_emails", "mail_failed"}},
		openapi.Op{Method: "POST", Path: Base + "/password/forgot", Summary: "Mail a password reset link; the same answer whether or not the address has an account", Tag: tag,
			Request: forgotPasswordRequest{}, Response: acceptedJSON{}, Status: 202, Problems: []string{"rate_limited"}},
		openapi.Op{Method: "POST", Path: Base + "/password/reset", Summary: "Set a new password with a reset link's token; ends every session", Tag: tag,
			Request: resetPasswordRequest{}, Status: 204, Problems: []string{"reset_token_invalid"}},
		openapi.Op{Method: "GET", Path: Base + "/organizations/:org_id/invitations", Summary: "Invitations of the organisation, newest first (org admin)", Tag: tag,
			Auth: "org_admin", Query: append([]openapi.Param{{Name: "state", Description: "pending, accepted, expired, revoked"}}, page...),
			Response: web.List[invitationStateJSON]{}, Problems: []string{"organization_not_found"}},
		openapi.Op{Method: "POST", Path: Base + "/organizations/:org_id/invitations/:id/resend", Summary: "Resend an invitation with a new token (the old one stops working) (org admin)", Tag: tag,
			Auth: "org_admin", Response: invitationStateJSON{},
			Problems: []string{"organization_not_found", "invitation_not_found", "invitation_not_pending", "owners_only", "mail_failed"}},
		openapi.Op{Method: "DELETE", Path: Base + "/organizations/:org_id/invitations/:id", Summary: "Revoke a pending invitation (org admin)", Tag: tag,
			Auth: "org_admin", Status: 204, Problems: []string{"organization_not_found", "invitation_not_found", "invitation_not_pending", "owners_only"}},
	)
}

func (invitationStateJSON) SchemaName() string   { return "InvitationWithState" }
func (acceptedJSON) SchemaName() string          { return "IdentityAccepted" }
func (verifiedEmailJSON) SchemaName() string     { return "VerifiedEmail" }
func (verifyEmailRequest) SchemaName() string    { return "VerifyEmailRequest" }
func (forgotPasswordRequest) SchemaName() string { return "ForgotPasswordRequest" }
func (resetPasswordRequest) SchemaName() string  { return "ResetPasswordRequest" }
