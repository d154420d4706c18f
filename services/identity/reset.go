package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Password reset by e-mail link. Asking for a link answers the same whether or not the address has an
// account, after the same work: the database round trips are alike, and the mail (the slow part, when there
// is one) leaves after the answer. Setting the new password applies the sign-up rules, ends every session of
// the user (their refresh tokens; access tokens lapse within their short lifetime) and is audited.

// ErrResetTokenInvalid answers a reset link that is unknown, used or expired.
var ErrResetTokenInvalid = problem.New(400, "reset_token_invalid", "The password reset link is invalid, used or expired.").
	WithDetail("A link works once and for one hour; ask for a new one with POST /api/v1/identity/password/forgot.")

// mailTimeout bounds a mail sent after the answer.
const mailTimeout = 30 * time.Second

// ResetPasswordInput sets a new password with a reset link's token.
type ResetPasswordInput struct {
	Token    string
	Password string
	Meta
}

// RequestPasswordReset mails a reset link when email has an account; it returns nil either way (only a
// malformed address, an exhausted per-IP budget or a failing database are errors). A user's links are
// limited like verification links; past the limit the request is quietly dropped, never revealed.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, meta Meta) error {
	email = normalizeEmail(email)
	var f problem.Fields
	if email == "" {
		f.Add("email", "required", "is required")
	} else if !validEmail(email) {
		f.Add("email", "email", "must be an e-mail address")
	}
	if err := f.Err(); err != nil {
		return err
	}
	if ok, wait := s.limiter.allow(s.clock.Now(), "reset-ip:"+meta.IP); !ok {
		return ErrRateLimited.WithDetailMsg("problem.rate_limited.resets", nil).
			WithExtra("retry_after_seconds", retrySeconds(wait))
	}
	var (
		u    User
		t    EmailToken
		sec  string
		send bool
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		u, err = userByEmail(tx, email)
		known := err == nil
		if err != nil && !errors.Is(err, ErrUserNotFound) {
			return err
		}
		if !known {
			// The same kind of work as below: a token drawn and hashed, a look-up, an audit row.
			_ = hashSecret(secret())
			if err := tx.Model(&EmailToken{}).Where("token_hash = ?", "").Limit(1).Find(&[]EmailToken{}).Error; err != nil {
				return err
			}
			return s.writeAudit(tx, AuditEntry{Action: AuditResetRequested, ActorEmail: email, IP: meta.IP,
				Detail: details("account", false)})
		}
		wait, err := s.mailBudget(tx, u.ID, PurposeResetPassword)
		if err != nil {
			return err
		}
		if wait == 0 {
			if t, sec, err = s.issueEmailToken(tx, u, PurposeResetPassword, ResetPasswordTTL); err != nil {
				return err
			}
			send = true
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditResetRequested, ActorUserID: u.ID, ActorEmail: email,
			Target: "user:" + u.ID, IP: meta.IP, Detail: details("account", true, "sent", send)})
	})
	if err != nil || !send {
		return err
	}
	body := fmt.Sprintf("Hello %s,\n\nSomeone (we hope you) asked to reset your Tamarack password. Choose a new one here: %s\n\n"+
		"Or through the API: POST %s/api/v1/identity/password/reset with {\"token\": \"%s\", \"password\": \"…\"}\n\n"+
		"The link works once and expires on %s. Resetting signs you out everywhere.\n\n"+
		"If you did not ask, ignore this message: your password stays as it is.\n",
		u.Name, s.link("reset-password", sec), strings.TrimRight(s.publicURL, "/"), sec, t.ExpiresAt.Format(time.RFC1123))
	m := mail.Message{To: []string{u.Email}, Subject: "Reset your Tamarack password", Body: body}
	s.mailing.Add(1)
	go func() {
		defer s.mailing.Done()
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
		defer cancel()
		if err := s.mailer.Send(mctx, m); err != nil {
			s.log.Error("password reset mail failed", "user", u.ID, "err", err)
		}
	}()
	return nil
}

// ResetPassword sets a new password with a reset token and ends every session of the user. The link also
// proves the address, so an unverified account becomes verified.
func (s *Service) ResetPassword(ctx context.Context, in ResetPasswordInput) error {
	var f problem.Fields
	f.Check(in.Token != "", "token", "required", "is required")
	f.Check(len(in.Token) <= 200, "token", "max", "is too long")
	if in.Password == "" {
		f.Add("password", "required", "is required")
	}
	if err := f.Err(); err != nil {
		return err
	}
	db := s.db.WithContext(ctx)
	now := s.clock.Now()
	var t EmailToken
	err := db.Where("token_hash = ? AND purpose = ? AND used_at IS NULL", hashSecret(in.Token), PurposeResetPassword).Take(&t).Error
	if sqldb.IsNotFound(err) || (err == nil && !now.Before(t.ExpiresAt)) {
		return ErrResetTokenInvalid
	}
	if err != nil {
		return err
	}
	u, err := userByID(db, t.UserID)
	if err != nil {
		return ErrResetTokenInvalid
	}
	checkPassword(&f, "password", in.Password, u.Email)
	if err := f.Err(); err != nil {
		return err
	}
	hash, err := s.hash(ctx, in.Password)
	if err != nil {
		return err
	}
	var ended []string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		t, err := s.consumeEmailToken(tx, in.Token, PurposeResetPassword, ErrResetTokenInvalid)
		if err != nil {
			return err
		}
		if t.UserID != u.ID {
			return ErrResetTokenInvalid
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{"password_hash": hash, "updated_at": now}).Error; err != nil {
			return err
		}
		if strings.EqualFold(t.Email, u.Email) {
			if err := markVerified(tx, &u, now); err != nil {
				return err
			}
		}
		// Every session ends, its access tokens with it on every replica (announced after commit).
		if ended, err = s.revokeUserSessions(tx, u.ID, "", now); err != nil {
			return err
		}
		res := tx.Model(&RefreshToken{}).Where("user_id = ? AND revoked_at IS NULL", u.ID).Update("revoked_at", now)
		if res.Error != nil {
			return res.Error
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditPasswordReset, ActorUserID: u.ID, ActorEmail: u.Email,
			Target: "user:" + u.ID, IP: in.IP, Detail: details("sessions_revoked", int64(len(ended))+res.RowsAffected)})
	})
	if err == nil {
		s.announce(ctx, now, ended...)
	}
	return err
}
