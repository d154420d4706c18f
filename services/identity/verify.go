package identity

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// E-mail verification: a sign-up sends a single-use link; until it is opened the account may browse but not
// spend or launch (access tokens carry email_verified; web.RequireVerifiedEmail refuses the rest). The link
// token is stored as its SHA-256 only, like every other secret here, in identity_email_tokens; password
// reset (reset.go) shares the table with another purpose.

// Purposes of e-mailed link tokens.
const (
	PurposeVerifyEmail   = "verify_email"
	PurposeResetPassword = "reset_password"
)

// Lifetimes and sending limits of e-mailed links.
const (
	VerifyEmailTTL   = 24 * time.Hour
	ResetPasswordTTL = time.Hour
	// A link of the same purpose is sent to a user at most once a minute and five times an hour.
	mailLinkGap      = time.Minute
	mailLinksPerHour = 5
)

// Audit actions of this file and reset.go.
const (
	AuditVerificationSent = "email_verification_sent"
	AuditEmailVerified    = "email_verified"
	AuditResetRequested   = "password_reset_requested"
	AuditPasswordReset    = "password_reset"
)

// Problems of e-mailed links.
var (
	ErrVerifyTokenInvalid = problem.New(400, "verification_token_invalid", "The verification link is invalid, used or expired.").
				WithDetail("A link works once and for 24 hours; sign in and ask for a new one with POST /api/v1/identity/email/verify/resend.")
	ErrEmailAlreadyVerified = problem.New(409, "email_already_verified", "Your e-mail address is already verified.").
				WithDetail("Nothing to do: refresh your session (POST /api/v1/identity/refresh) if a token still says otherwise.")
	ErrTooManyMails = problem.New(429, "too_many_emails", "Too many e-mails of this kind were sent; wait before asking again.").
			WithDetail("Wait as many seconds as the Retry-After header says, and check your spam folder meanwhile.")
)

// EmailToken is one single-use link sent by e-mail. Only the token's hash is stored.
type EmailToken struct {
	ID        string `gorm:"primaryKey"`
	UserID    string
	Purpose   string
	Email     string // the address it was sent to
	TokenHash string
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt time.Time
	UsedAt    *time.Time
}

func (EmailToken) TableName() string { return "identity_email_tokens" }

// issueEmailToken stores a new link token for u and purpose, invalidating the user's earlier unused ones of
// that purpose (only the newest link works), and returns the secret.
func (s *Service) issueEmailToken(tx *gorm.DB, u User, purpose string, ttl time.Duration) (EmailToken, string, error) {
	now := s.clock.Now()
	if err := tx.Model(&EmailToken{}).Where("user_id = ? AND purpose = ? AND used_at IS NULL", u.ID, purpose).
		Update("used_at", now).Error; err != nil {
		return EmailToken{}, "", err
	}
	sec := secret()
	t := EmailToken{ID: newID(), UserID: u.ID, Purpose: purpose, Email: u.Email, TokenHash: hashSecret(sec),
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := tx.Create(&t).Error; err != nil {
		return EmailToken{}, "", err
	}
	return t, sec, nil
}

// mailBudget reports how long u must wait before another link of purpose may be sent (0: now).
func (s *Service) mailBudget(db *gorm.DB, userID, purpose string) (time.Duration, error) {
	now := s.clock.Now()
	var recent []EmailToken
	if err := db.Where("user_id = ? AND purpose = ? AND created_at > ?", userID, purpose, now.Add(-time.Hour)).
		Order("created_at DESC").Find(&recent).Error; err != nil {
		return 0, err
	}
	var wait time.Duration
	if len(recent) > 0 {
		wait = max(wait, recent[0].CreatedAt.Add(mailLinkGap).Sub(now))
	}
	if len(recent) >= mailLinksPerHour {
		wait = max(wait, recent[mailLinksPerHour-1].CreatedAt.Add(time.Hour).Sub(now))
	}
	return max(wait, 0), nil
}

// consumeEmailToken marks a live token of purpose used, inside tx, and returns it; anything else (unknown,
// used, expired, another purpose) is invalid.
func (s *Service) consumeEmailToken(tx *gorm.DB, token, purpose string, invalid error) (EmailToken, error) {
	now := s.clock.Now()
	if token == "" || len(token) > 200 {
		return EmailToken{}, invalid
	}
	var t EmailToken
	err := sqldb.ForUpdate(tx).Where("token_hash = ?", hashSecret(token)).Take(&t).Error
	if sqldb.IsNotFound(err) {
		return EmailToken{}, invalid
	}
	if err != nil {
		return EmailToken{}, err
	}
	if t.Purpose != purpose || t.UsedAt != nil || !now.Before(t.ExpiresAt) {
		return EmailToken{}, invalid
	}
	res := tx.Model(&EmailToken{}).Where("id = ? AND used_at IS NULL", t.ID).Update("used_at", now)
	if res.Error != nil {
		return EmailToken{}, res.Error
	}
	if res.RowsAffected == 0 {
		return EmailToken{}, invalid // used concurrently
	}
	return t, nil
}

// link builds the web address of an e-mailed token.
func (s *Service) link(page, token string) string {
	return strings.TrimRight(s.publicURL, "/") + "/" + page + "?token=" + url.QueryEscape(token)
}

// sendVerification issues a verification link to u and mails it. ip is for the audit log.
func (s *Service) sendVerification(ctx context.Context, u User, ip string) error {
	var (
		t   EmailToken
		sec string
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, sec, err = s.issueEmailToken(tx, u, PurposeVerifyEmail, VerifyEmailTTL); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditVerificationSent, ActorUserID: u.ID, ActorEmail: u.Email,
			Target: "user:" + u.ID, IP: ip})
	})
	if err != nil {
		return err
	}
	body := fmt.Sprintf("Hello %s,\n\nPlease confirm that this is your e-mail address for Tamarack: %s\n\n"+
		"Or through the API: POST %s/api/v1/identity/email/verify with {\"token\": \"%s\"}\n\n"+
		"The link works once and expires on %s. Until you confirm, you can browse Tamarack but not buy or launch.\n\n"+
		"If you did not sign up, ignore this message.\n",
		u.Name, s.link("verify-email", sec), strings.TrimRight(s.publicURL, "/"), sec, t.ExpiresAt.Format(time.RFC1123))
	if err := s.mailer.Send(ctx, mail.Message{To: []string{u.Email}, Subject: "Confirm your e-mail address for Tamarack", Body: body}); err != nil {
		s.log.Error("verification mail failed", "user", u.ID, "err", err)
		return ErrMailFailed
	}
	return nil
}

// sendVerificationAfterSignup mails the first link; a failure leaves the account in place (the user can ask
// again with ResendVerification), so it is logged, not returned.
func (s *Service) sendVerificationAfterSignup(ctx context.Context, u User, ip string) {
	if err := s.sendVerification(ctx, u, ip); err != nil {
		s.log.Warn("verification not sent at sign-up", "user", u.ID, "err", err)
	}
}

// ResendVerification mails the signed-in user a new verification link (older links stop working). It is
// limited per user (mailBudget) so that it cannot be used to flood a mailbox.
func (s *Service) ResendVerification(ctx context.Context, a Actor) error {
	db := s.db.WithContext(ctx)
	u, err := userByID(db, a.UserID)
	if err != nil {
		return err
	}
	if u.EmailVerifiedAt != nil {
		return ErrEmailAlreadyVerified
	}
	wait, err := s.mailBudget(db, u.ID, PurposeVerifyEmail)
	if err != nil {
		return err
	}
	if wait > 0 {
		secs := retrySeconds(wait)
		return ErrTooManyMails.WithDetailMsg("problem.too_many_emails.wait", problem.Args{"Seconds": secs}).WithExtra("retry_after_seconds", secs)
	}
	return s.sendVerification(ctx, u, a.IP)
}

// VerifyEmail consumes a verification token and marks its user's address verified. The token proves only the
// address it was sent to: should the user's e-mail have changed since, it is refused.
func (s *Service) VerifyEmail(ctx context.Context, token string, meta Meta) (User, error) {
	now := s.clock.Now()
	var u User
	err := s.tx(ctx, func(tx *gorm.DB) error {
		t, err := s.consumeEmailToken(tx, token, PurposeVerifyEmail, ErrVerifyTokenInvalid)
		if err != nil {
			return err
		}
		if u, err = userByID(tx, t.UserID); err != nil {
			return ErrVerifyTokenInvalid
		}
		if !strings.EqualFold(u.Email, t.Email) {
			return ErrVerifyTokenInvalid
		}
		if u.EmailVerifiedAt != nil {
			return nil
		}
		u.EmailVerifiedAt = &now
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{"email_verified_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditEmailVerified, ActorUserID: u.ID, ActorEmail: u.Email,
			Target: "user:" + u.ID, IP: meta.IP})
	})
	return u, err
}

// markVerified records that u proved their address at now, unless already done.
func markVerified(tx *gorm.DB, u *User, now time.Time) error {
	if u.EmailVerifiedAt != nil {
		return nil
	}
	u.EmailVerifiedAt = &now
	return tx.Model(&User{}).Where("id = ? AND email_verified_at IS NULL", u.ID).Update("email_verified_at", now).Error
}
