package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Two-step sign-in: TOTP (RFC 6238, through github.com/pquerna/otp) with ten single-use recovery codes.
//
//   - Enrolment shows the secret once (POST /mfa/totp) and turns nothing on until a first code confirms it
//     (POST /mfa/totp/confirm), which also shows the recovery codes once. Secrets are sealed like the signing
//     keys; recovery codes are stored as SHA-256 hashes (80 random bits each, so a slow hash adds nothing).
//   - With MFA on, a right password answers a challenge token (5 minutes, 5 tries) instead of tokens; the
//     second step (POST /login/mfa) trades it and a code or a recovery code for a session whose access tokens
//     carry amr ["pwd","mfa",...]. Refreshes of that session keep it (identity_mfa_sessions).
//   - Every code check is charged to the sign-in throttle (throttle.go) like a password, under the account's
//     e-mail and the client's IP. A TOTP code is accepted for the current step and one either side, and each
//     step at most once (identity_mfa.last_step), so an overheard code cannot be replayed.
//   - Programme staff act as staff only in sessions with MFA (platform/web: Principal.Staff is false without it
//     and RequireStaff answers mfa_required); an organisation's owners may require MFA of its members, whose
//     writes are then refused with mfa_required (web.RequireScope("write")) until they sign in with it.

const (
	mfaIssuer            = "Tamarack"
	mfaChallengeTTL      = 5 * time.Minute
	mfaChallengeAttempts = 5
	recoveryCodeCount    = 10
	totpPeriod           = 30
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Problems of two-step sign-in.
var (
	ErrMFARequired = web.ErrMFARequired
	// The same answer for a wrong, reused or expired code: which one is not revealed.
	ErrInvalidMFACode = problem.New(http.StatusUnauthorized, "invalid_mfa_code", "The code is wrong, expired or already used.").
				WithDetail("Enter the current 6-digit code from your authenticator app, or an unused recovery code; repeated failures are rate-limited.")
	ErrMFATokenInvalid = problem.New(http.StatusUnauthorized, "mfa_token_invalid", "The sign-in challenge is invalid, expired or used up.").
				WithDetail("Sign in again with POST /api/v1/identity/login to get a new mfa_token; it lasts 5 minutes and allows 5 codes.")
	ErrMFAAlreadyEnabled = problem.New(http.StatusConflict, "mfa_already_enabled", "Two-step sign-in is already on.").
				WithDetail("Turn it off first (POST /api/v1/identity/mfa/disable) to enrol another authenticator.")
	ErrMFANotEnabled = problem.New(http.StatusConflict, "mfa_not_enabled", "Two-step sign-in is not on for this account.").
				WithDetail("Enrol with POST /api/v1/identity/mfa/totp and confirm with POST /api/v1/identity/mfa/totp/confirm.")
)

// MFA is a user's TOTP authenticator: pending until ConfirmedAt is set. Secret is sealed (sealMFA).
type MFA struct {
	UserID      string `gorm:"primaryKey"`
	Secret      string
	ConfirmedAt *time.Time
	LastStep    int64     // the last TOTP time step accepted
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
}

func (MFA) TableName() string { return "identity_mfa" }

// RecoveryCode is one single-use recovery code; only its hash is stored.
type RecoveryCode struct {
	ID        string `gorm:"primaryKey"`
	UserID    string
	CodeHash  string
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	UsedAt    *time.Time
}

func (RecoveryCode) TableName() string { return "identity_mfa_recovery_codes" }

type mfaChallenge struct {
	ID             string `gorm:"primaryKey"`
	TokenHash      string
	UserID         string
	OrganizationID string
	Attempts       int
	CreatedAt      time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt      time.Time
	UsedAt         *time.Time
}

func (mfaChallenge) TableName() string { return "identity_mfa_challenges" }

type mfaSession struct {
	FamilyID  string `gorm:"primaryKey"`
	UserID    string
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (mfaSession) TableName() string { return "identity_mfa_sessions" }

// MFAStatus is what GET /mfa shows.
type MFAStatus struct {
	Enabled           bool
	Pending           bool
	EnabledAt         *time.Time
	RecoveryCodesLeft int
}

// MFAEnrolment is a new, unconfirmed authenticator: the secret and its otpauth:// URI, shown once.
type MFAEnrolment struct {
	Secret string
	URI    string
}

// MFACode is a second factor: a TOTP code or a recovery code (exactly one).
type MFACode struct {
	Code         string
	RecoveryCode string
}

func (c *MFACode) validate(f *problem.Fields, recoveryAllowed bool) {
	c.Code = strings.TrimSpace(c.Code)
	c.RecoveryCode = normalizeRecovery(c.RecoveryCode)
	switch {
	case c.Code == "" && c.RecoveryCode == "":
		if recoveryAllowed {
			f.Add("code", "required", "code or recovery_code is required")
		} else {
			f.Add("code", "required", "is required")
		}
	case c.Code != "" && c.RecoveryCode != "":
		f.Add("recovery_code", "conflict", "give code or recovery_code, not both")
	case c.Code != "" && !sixDigits(c.Code):
		f.Add("code", "format", "must be the 6 digits your authenticator app shows")
	case c.RecoveryCode != "" && !recoveryAllowed:
		f.Add("recovery_code", "not_allowed", "use a code from your authenticator app here")
	case c.RecoveryCode != "" && len(c.RecoveryCode) != 16:
		f.Add("recovery_code", "format", "must be a recovery code such as ABCD-EFGH-IJKL-MNOP")
	}
}

func sixDigits(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// normalizeRecovery drops separators and case, so "abcd-efgh ijkl-mnop" matches ABCDEFGHIJKLMNOP.
func normalizeRecovery(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s)))
}

// newRecoveryCode is 80 random bits in base32, shown in groups of four.
func newRecoveryCode() string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	s := base32.StdEncoding.EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// sealMFA seals a TOTP secret with the signing keys' secret (AES-256-GCM, bound to the user).
func (s *Service) sealMFA(secret, userID string) (string, error) {
	if s.keys.aead == nil {
		return "raw:" + base64.RawURLEncoding.EncodeToString([]byte(secret)), nil
	}
	nonce := make([]byte, s.keys.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return "gcm:" + base64.RawURLEncoding.EncodeToString(s.keys.aead.Seal(nonce, nonce, []byte(secret), []byte("mfa:"+userID))), nil
}

func (s *Service) openMFA(sealed, userID string) (string, error) {
	kind, body, _ := strings.Cut(sealed, ":")
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", fmt.Errorf("mfa secret of %s: %w", userID, err)
	}
	switch kind {
	case "raw":
		return string(b), nil
	case "gcm":
		if s.keys.aead == nil || len(b) < s.keys.aead.NonceSize() {
			return "", fmt.Errorf("mfa secret of %s: %w", userID, errSealed)
		}
		ns := s.keys.aead.NonceSize()
		p, err := s.keys.aead.Open(nil, b[:ns], b[ns:], []byte("mfa:"+userID))
		if err != nil {
			return "", fmt.Errorf("mfa secret of %s: %w", userID, errSealed)
		}
		return string(p), nil
	}
	return "", fmt.Errorf("mfa secret of %s: unknown sealing %q", userID, kind)
}

// Store.

func mfaOf(db *gorm.DB, userID string) (*MFA, error) {
	var m MFA
	err := db.Where("user_id = ?", userID).Take(&m).Error
	if sqldb.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// mfaEnabled reports a confirmed authenticator.
func mfaEnabled(db *gorm.DB, userID string) (bool, error) {
	var n int64
	err := db.Model(&MFA{}).Where("user_id = ? AND confirmed_at IS NOT NULL", userID).Count(&n).Error
	return n > 0, err
}

// replaceRecoveryCodes deletes the user's codes and stores ten new ones, returned in plain.
func (s *Service) replaceRecoveryCodes(tx *gorm.DB, userID string) ([]string, error) {
	if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
		return nil, err
	}
	now := s.clock.Now()
	codes := make([]string, recoveryCodeCount)
	rows := make([]RecoveryCode, recoveryCodeCount)
	for i := range codes {
		codes[i] = newRecoveryCode()
		rows[i] = RecoveryCode{ID: newID(), UserID: userID, CodeHash: hashSecret(normalizeRecovery(codes[i])), CreatedAt: now}
	}
	return codes, tx.Create(&rows).Error
}

// Service.

// requireSession refuses API tokens: the second factor is managed from a password session only.
func requireSession(a Actor) error {
	if a.APIToken {
		return ErrAPITokenNotAllowed.WithDetailMsg("problem.session_required.mfa", nil)
	}
	return nil
}

// MFAStatusOf says whether the actor has MFA on and how many recovery codes are left.
func (s *Service) MFAStatusOf(ctx context.Context, a Actor) (MFAStatus, error) {
	db := s.db.WithContext(ctx)
	m, err := mfaOf(db, a.UserID)
	if err != nil || m == nil {
		return MFAStatus{}, err
	}
	st := MFAStatus{Enabled: m.ConfirmedAt != nil, Pending: m.ConfirmedAt == nil, EnabledAt: m.ConfirmedAt}
	if st.Enabled {
		var n int64
		if err := db.Model(&RecoveryCode{}).Where("user_id = ? AND used_at IS NULL", a.UserID).Count(&n).Error; err != nil {
			return MFAStatus{}, err
		}
		st.RecoveryCodesLeft = int(n)
	}
	return st, nil
}

// EnrolTOTP starts enrolment: a new secret, replacing any unconfirmed one. Nothing changes at sign-in until
// ConfirmTOTP.
func (s *Service) EnrolTOTP(ctx context.Context, a Actor, password string) (MFAEnrolment, error) {
	if err := requireSession(a); err != nil {
		return MFAEnrolment{}, err
	}
	if _, err := s.checkPassword(ctx, a, password, "enrol"); err != nil {
		return MFAEnrolment{}, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: mfaIssuer, AccountName: a.Email, Period: totpPeriod,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return MFAEnrolment{}, fmt.Errorf("totp key: %w", err)
	}
	sealed, err := s.sealMFA(key.Secret(), a.UserID)
	if err != nil {
		return MFAEnrolment{}, err
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		m, err := mfaOf(sqldb.ForUpdate(tx), a.UserID)
		if err != nil {
			return err
		}
		if m != nil && m.ConfirmedAt != nil {
			return ErrMFAAlreadyEnabled
		}
		if err := tx.Where("user_id = ?", a.UserID).Delete(&MFA{}).Error; err != nil {
			return err
		}
		return tx.Create(&MFA{UserID: a.UserID, Secret: sealed, CreatedAt: s.clock.Now()}).Error
	})
	if err != nil {
		return MFAEnrolment{}, err
	}
	return MFAEnrolment{Secret: key.Secret(), URI: key.URL()}, nil
}

// sessionTOTP checks that a is a signed-in session and code a well-formed TOTP code (no recovery code).
func sessionTOTP(a Actor, code string) (MFACode, error) {
	if err := requireSession(a); err != nil {
		return MFACode{}, err
	}
	c := MFACode{Code: code}
	var f problem.Fields
	c.validate(&f, false)
	return c, f.Err()
}

// ConfirmTOTP turns MFA on with a first code and returns the recovery codes (shown once).
func (s *Service) ConfirmTOTP(ctx context.Context, a Actor, code string) ([]string, error) {
	c, err := sessionTOTP(a, code)
	if err != nil {
		return nil, err
	}
	var codes []string
	err = s.checkFactor(ctx, a.UserID, a.Email, a.IP, c, false, func(tx *gorm.DB, m *MFA) error {
		if m.ConfirmedAt != nil {
			return ErrMFAAlreadyEnabled
		}
		now := s.clock.Now()
		if err := tx.Model(&MFA{}).Where("user_id = ?", a.UserID).Update("confirmed_at", now).Error; err != nil {
			return err
		}
		var err error
		if codes, err = s.replaceRecoveryCodes(tx, a.UserID); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditMFAEnabled, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: a.OrgID, Target: "user:" + a.UserID, IP: a.IP, Detail: details("method", "totp")})
	})
	return codes, err
}

// RegenerateRecoveryCodes replaces the recovery codes, given a current TOTP code.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, a Actor, code string) ([]string, error) {
	c, err := sessionTOTP(a, code)
	if err != nil {
		return nil, err
	}
	var codes []string
	err = s.checkFactor(ctx, a.UserID, a.Email, a.IP, c, true, func(tx *gorm.DB, _ *MFA) error {
		var err error
		if codes, err = s.replaceRecoveryCodes(tx, a.UserID); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditRecoveryCodesNew, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: a.OrgID, Target: "user:" + a.UserID, IP: a.IP})
	})
	return codes, err
}

// DisableMFA turns MFA off, given the password and a current code or a recovery code. Sessions opened with
// MFA lose it at their next refresh.
func (s *Service) DisableMFA(ctx context.Context, a Actor, password string, c MFACode) error {
	if err := requireSession(a); err != nil {
		return err
	}
	var f problem.Fields
	f.Check(password != "", "password", "required", "is required")
	c.validate(&f, true)
	if err := f.Err(); err != nil {
		return err
	}
	u, err := s.checkPassword(ctx, a, password, "disable")
	if err != nil {
		return err
	}
	return s.checkFactor(ctx, u.ID, u.Email, a.IP, c, true, func(tx *gorm.DB, _ *MFA) error {
		for _, row := range []any{&MFA{}, &RecoveryCode{}, &mfaSession{}} {
			if err := tx.Where("user_id = ?", u.ID).Delete(row).Error; err != nil {
				return err
			}
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditMFADisabled, ActorUserID: u.ID, ActorEmail: u.Email,
			OrganizationID: a.OrgID, Target: "user:" + u.ID, IP: a.IP})
	})
}

// checkPassword re-checks the actor's password before a change of their second factor. A wrong one is charged
// like a failed sign-in, so the password cannot be guessed here instead.
func (s *Service) checkPassword(ctx context.Context, a Actor, password, step string) (User, error) {
	var f problem.Fields
	f.Check(password != "", "password", "required", "is required")
	f.Check(len(password) <= 1024, "password", "max", "must be at most 1024 bytes")
	if err := f.Err(); err != nil {
		return User{}, err
	}
	u, err := userByID(s.db.WithContext(ctx), a.UserID)
	if err != nil {
		return User{}, err
	}
	ok, err := s.compare(ctx, password, u.PasswordHash)
	if err != nil && ctx.Err() != nil {
		return User{}, err
	}
	if err == nil && ok {
		return u, nil
	}
	if _, wait, _, cerr := s.chargeAttempt(ctx, newThrottleKeys(u.Email, a.IP)); cerr != nil {
		return User{}, cerr
	} else if wait > 0 {
		return User{}, s.tooManyAttempts(wait)
	}
	s.auditNow(ctx, AuditEntry{Action: AuditMFALoginFailed, ActorUserID: u.ID, ActorEmail: u.Email, IP: a.IP,
		Detail: details("step", step, "reason", "password")})
	return User{}, ErrInvalidCredentials
}

func (s *Service) tooManyAttempts(wait time.Duration) error {
	secs := retrySeconds(wait)
	return ErrTooManyAttempts.WithDetailMsg("problem.too_many_attempts.codes", problem.Args{"Seconds": secs, "MaxSeconds": retrySeconds(s.throttle.Max)}).WithExtra("retry_after_seconds", secs)
}

// checkFactor charges one attempt to the sign-in throttle, checks c against userID's authenticator
// (confirmed only when confirmed is set) and, when it matches, runs then in the same transaction that spends
// the code, and refunds the attempt. A wrong code is audited as mfa_login_failed.
func (s *Service) checkFactor(ctx context.Context, userID, email, ip string, c MFACode, confirmed bool, then func(tx *gorm.DB, m *MFA) error) error {
	ch, wait, by, err := s.chargeAttempt(ctx, newThrottleKeys(normalizeEmail(email), ip))
	if err != nil {
		return err
	}
	if wait > 0 {
		s.auditNow(ctx, AuditEntry{Action: AuditLoginRateLimited, ActorUserID: userID, ActorEmail: email, IP: ip,
			Detail: details("by", by, "retry_after_seconds", retrySeconds(wait), "step", "mfa")})
		return s.tooManyAttempts(wait)
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		m, err := mfaOf(sqldb.ForUpdate(tx), userID)
		if err != nil {
			return err
		}
		if m == nil || (confirmed && m.ConfirmedAt == nil) {
			return ErrMFANotEnabled
		}
		if c.RecoveryCode != "" {
			res := tx.Model(&RecoveryCode{}).Where("user_id = ? AND code_hash = ? AND used_at IS NULL", userID, hashSecret(c.RecoveryCode)).
				Update("used_at", s.clock.Now())
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				return ErrInvalidMFACode
			}
			if err := s.writeAudit(tx, AuditEntry{Action: AuditRecoveryCodeUsed, ActorUserID: userID, ActorEmail: email,
				Target: "user:" + userID, IP: ip}); err != nil {
				return err
			}
		} else {
			secret, err := s.openMFA(m.Secret, userID)
			if err != nil {
				return err
			}
			step, ok := s.matchTOTP(secret, c.Code, m.LastStep)
			if !ok {
				return ErrInvalidMFACode
			}
			// Conditional on the step, so two requests with one code cannot both pass.
			res := tx.Model(&MFA{}).Where("user_id = ? AND last_step < ?", userID, step).Update("last_step", step)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				return ErrInvalidMFACode
			}
		}
		return then(tx, m)
	})
	if errors.Is(err, ErrInvalidMFACode) {
		method := "totp"
		if c.RecoveryCode != "" {
			method = "recovery_code"
		}
		s.auditNow(ctx, AuditEntry{Action: AuditMFALoginFailed, ActorUserID: userID, ActorEmail: email, IP: ip,
			Detail: details("method", method)})
		return err
	}
	if err != nil {
		return err
	}
	return s.refund(ctx, ch)
}

// matchTOTP returns the time step whose code is code, among now's and one either side, newer than last.
func (s *Service) matchTOTP(secret, code string, last int64) (int64, bool) {
	now := s.clock.Now().Unix() / totpPeriod
	for st := now - int64(totpOpts.Skew); st <= now+int64(totpOpts.Skew); st++ {
		if st <= last {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(st*totpPeriod, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return st, true
		}
	}
	return 0, false
}

// startMFA opens a challenge when u has MFA on and returns its token ("" when MFA is off).
func (s *Service) startMFA(ctx context.Context, u User, orgID string) (string, error) {
	on, err := mfaEnabled(s.db.WithContext(ctx), u.ID)
	if err != nil || !on {
		return "", err
	}
	tok := secret()
	now := s.clock.Now()
	err = s.db.WithContext(ctx).Create(&mfaChallenge{ID: newID(), TokenHash: hashSecret(tok), UserID: u.ID, OrganizationID: orgID,
		CreatedAt: now, ExpiresAt: now.Add(mfaChallengeTTL)}).Error
	return tok, err
}

// LoginMFAInput is the second step of a sign-in.
type LoginMFAInput struct {
	Token string
	MFACode
	Meta
}

// LoginMFA completes a sign-in with a code or a recovery code. A challenge allows mfaChallengeAttempts wrong
// codes, then is spent; every wrong code also counts against the sign-in throttle.
func (s *Service) LoginMFA(ctx context.Context, in LoginMFAInput) (Session, error) {
	var f problem.Fields
	f.Check(in.Token != "", "mfa_token", "required", "is required")
	f.Check(len(in.Token) <= 200, "mfa_token", "max", "is too long")
	in.validate(&f, true)
	if err := f.Err(); err != nil {
		return Session{}, err
	}
	db := s.db.WithContext(ctx)
	var ch mfaChallenge
	err := db.Where("token_hash = ?", hashSecret(in.Token)).Take(&ch).Error
	if sqldb.IsNotFound(err) {
		return Session{}, ErrMFATokenInvalid
	}
	if err != nil {
		return Session{}, err
	}
	if ch.UsedAt != nil || !s.clock.Now().Before(ch.ExpiresAt) || ch.Attempts >= mfaChallengeAttempts {
		return Session{}, ErrMFATokenInvalid
	}
	u, err := userByID(db, ch.UserID)
	if err != nil {
		return Session{}, ErrMFATokenInvalid
	}
	var refresh string
	err = s.checkFactor(ctx, u.ID, u.Email, in.IP, in.MFACode, true, func(tx *gorm.DB, _ *MFA) error {
		res := tx.Model(&mfaChallenge{}).Where("id = ? AND used_at IS NULL", ch.ID).Update("used_at", s.clock.Now())
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrMFATokenInvalid // spent concurrently
		}
		var err error
		if refresh, err = s.newRefresh(tx, u.ID, ch.OrganizationID, ""); err != nil {
			return err
		}
		var rt RefreshToken
		if err := tx.Where("token_hash = ?", hashSecret(refresh)).Take(&rt).Error; err != nil {
			return err
		}
		if err := tx.Create(&mfaSession{FamilyID: rt.FamilyID, UserID: u.ID, CreatedAt: s.clock.Now()}).Error; err != nil {
			return err
		}
		method := "totp"
		if in.RecoveryCode != "" {
			method = "recovery_code"
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditLoginOK, ActorUserID: u.ID, ActorEmail: u.Email,
			OrganizationID: ch.OrganizationID, IP: in.IP, Detail: details("mfa", method)})
	})
	if errors.Is(err, ErrInvalidMFACode) {
		if uerr := db.Model(&mfaChallenge{}).Where("id = ?", ch.ID).Update("attempts", gorm.Expr("attempts + 1")).Error; uerr != nil {
			return Session{}, uerr
		}
	}
	if err != nil {
		return Session{}, err
	}
	org, role, err := s.actingOrg(db, u.ID, ch.OrganizationID)
	if err != nil {
		return Session{}, err
	}
	amr := []string{jwtauth.AMRPassword, jwtauth.AMRMFA}
	if in.Code != "" {
		amr = append(amr, jwtauth.AMROTP)
	}
	return s.session(ctx, u, org, role, refresh, amr...)
}

// familyAMR is the amr of a session's refreshed access tokens: with mfa when it was opened with MFA.
func (s *Service) familyAMR(ctx context.Context, familyID string) []string {
	var n int64
	if err := s.db.WithContext(ctx).Model(&mfaSession{}).Where("family_id = ?", familyID).Count(&n).Error; err != nil {
		s.log.Warn("mfa session lookup failed; refreshing without mfa", "err", err)
		return nil
	}
	if n == 0 {
		return nil
	}
	return []string{jwtauth.AMRPassword, jwtauth.AMRMFA}
}

// SetOrgMFA sets whether an organisation requires MFA of its members. Owners only; turning it on needs the
// owner's own session to have MFA. It applies to access tokens issued after the change (at the latest, after
// one access-token lifetime).
func (s *Service) SetOrgMFA(ctx context.Context, a Actor, orgID string, require bool) (Organization, error) {
	var o Organization
	err := s.tx(ctx, func(tx *gorm.DB) error {
		role, err := s.authorizeOrg(tx, a, orgID, true, true)
		if err != nil {
			return err
		}
		if role != RoleOwner {
			return ErrOwnersOnly.WithDetailMsg("problem.owners_only.mfa_policy", nil)
		}
		if require && !a.MFA {
			return ErrMFARequired.WithDetailMsg("problem.mfa_required.self_first", nil)
		}
		if err := tx.Model(&Organization{}).Where("id = ?", orgID).Update("require_mfa", require).Error; err != nil {
			return err
		}
		if o, err = orgByID(tx, orgID); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditOrgMFAPolicyChanged, ActorUserID: a.UserID, ActorEmail: a.Email,
			OrganizationID: orgID, Target: "organization:" + orgID, IP: a.IP, Detail: details("require_mfa", require)})
	})
	return o, err
}

// HTTP.

func (h handler) mfaRoutes(r fiber.Router, write fiber.Handler) {
	r.Post("/login/mfa", h.loginMFA)
	r.Get("/mfa", web.RequireAuth, h.mfaStatus)
	r.Post("/mfa/totp", web.RequireAuth, h.enrolTOTP)
	r.Post("/mfa/totp/confirm", web.RequireAuth, h.confirmTOTP)
	r.Post("/mfa/recovery-codes", web.RequireAuth, h.regenerateCodes)
	r.Post("/mfa/disable", web.RequireAuth, h.disableMFA)
	r.Put("/organizations/:org_id/mfa", web.RequireAuth, write, h.setOrgMFA)
}

type loginResponse struct {
	AccessToken  string `json:"access_token,omitempty" doc:"absent when mfa_required"`
	RefreshToken string `json:"refresh_token,omitempty" doc:"absent when mfa_required"`
	TokenType    string `json:"token_type,omitempty" doc:"absent when mfa_required"`
	ExpiresIn    int    `json:"expires_in" doc:"seconds: of the access token, or of the mfa_token"`
	MFARequired  bool   `json:"mfa_required,omitempty" doc:"the password was right; send mfa_token with a code to POST /login/mfa"`
	MFAToken     string `json:"mfa_token,omitempty" doc:"the sign-in challenge: 5 minutes, 5 codes"`
}

type loginMFARequest struct {
	MFAToken     string `json:"mfa_token" openapi:"required"`
	Code         string `json:"code,omitempty" doc:"required unless recovery_code is given: 6-digit code of the authenticator app"`
	RecoveryCode string `json:"recovery_code,omitempty" text:"secret" doc:"an unused recovery code; each works once"`
}

type enrolRequest struct {
	Password string `json:"password" text:"secret" openapi:"required" doc:"the account's password, checked again"`
}

type codeRequest struct {
	Code string `json:"code" openapi:"required" doc:"6-digit code of the authenticator app"`
}

type disableMFARequest struct {
	Password     string `json:"password" text:"secret" openapi:"required"`
	Code         string `json:"code,omitempty" doc:"required unless recovery_code is given: 6-digit code"`
	RecoveryCode string `json:"recovery_code,omitempty" text:"secret"`
}

type mfaStatusJSON struct {
	Enabled           bool       `json:"enabled"`
	Pending           bool       `json:"pending" doc:"enrolled but not confirmed yet"`
	EnabledAt         *time.Time `json:"enabled_at,omitempty"`
	RecoveryCodesLeft int        `json:"recovery_codes_left"`
	Required          bool       `json:"required" doc:"programme staff, or the acting organisation requires it"`
}

type enrolmentJSON struct {
	Secret     string `json:"secret" doc:"base32; shown once"`
	OTPAuthURI string `json:"otpauth_uri" doc:"otpauth://totp/… for a QR code; shown once"`
	Algorithm  string `json:"algorithm"`
	Digits     int    `json:"digits"`
	Period     int    `json:"period"`
}

type recoveryCodesJSON struct {
	RecoveryCodes []string `json:"recovery_codes" doc:"ten single-use codes; shown once"`
}

type orgMFARequest struct {
	RequireMFA *bool `json:"require_mfa" openapi:"required"`
}

func (r *orgMFARequest) Validate() error {
	var f problem.Fields
	f.Check(r.RequireMFA != nil, "require_mfa", "required", "is required (true or false)")
	return f.Err()
}

type orgMFAJSON struct {
	OrganizationID string `json:"organization_id"`
	RequireMFA     bool   `json:"require_mfa"`
}

func (h handler) loginMFA(c *fiber.Ctx) error {
	var req loginMFARequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	s, err := h.svc.LoginMFA(c.UserContext(), LoginMFAInput{Token: req.MFAToken,
		MFACode: MFACode{Code: req.Code, RecoveryCode: req.RecoveryCode}, Meta: Meta{IP: web.ClientIP(c)}})
	if err != nil {
		return err
	}
	return c.JSON(toTokensJSON(s))
}

func (h handler) mfaStatus(c *fiber.Ctx) error {
	p := web.PrincipalOf(c)
	st, err := h.svc.MFAStatusOf(c.UserContext(), actorOf(c))
	if err != nil {
		return err
	}
	return c.JSON(mfaStatusJSON{Enabled: st.Enabled, Pending: st.Pending, EnabledAt: st.EnabledAt,
		RecoveryCodesLeft: st.RecoveryCodesLeft, Required: p.Staff || p.StaffNeedsMFA || p.OrgRequiresMFA})
}

func (h handler) enrolTOTP(c *fiber.Ctx) error {
	var req enrolRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	en, err := h.svc.EnrolTOTP(c.UserContext(), actorOf(c), req.Password)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(enrolmentJSON{Secret: en.Secret, OTPAuthURI: en.URI, Algorithm: "SHA1",
		Digits: 6, Period: totpPeriod})
}

func (h handler) confirmTOTP(c *fiber.Ctx) error {
	var req codeRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	codes, err := h.svc.ConfirmTOTP(c.UserContext(), actorOf(c), req.Code)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(recoveryCodesJSON{RecoveryCodes: codes})
}

func (h handler) regenerateCodes(c *fiber.Ctx) error {
	var req codeRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	codes, err := h.svc.RegenerateRecoveryCodes(c.UserContext(), actorOf(c), req.Code)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(recoveryCodesJSON{RecoveryCodes: codes})
}

func (h handler) disableMFA(c *fiber.Ctx) error {
	var req disableMFARequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.DisableMFA(c.UserContext(), actorOf(c), req.Password, MFACode{Code: req.Code, RecoveryCode: req.RecoveryCode}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h handler) setOrgMFA(c *fiber.Ctx) error {
	var req orgMFARequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	o, err := h.svc.SetOrgMFA(c.UserContext(), actorOf(c), c.Params("org_id"), *req.RequireMFA)
	if err != nil {
		return err
	}
	return c.JSON(orgMFAJSON{OrganizationID: o.ID, RequireMFA: o.RequireMFA})
}

func (s *Service) mfaOpenAPI(d *openapi.Doc) {
	const tag = "identity"
	codeProblems := []string{"invalid_mfa_code", "too_many_attempts", "session_required", "validation_failed"}
	d.Add(
		openapi.Op{Method: "POST", Path: Base + "/login/mfa", Summary: "Second step of a sign-in with MFA: the challenge and a code or recovery code", Tag: tag,
			Request: loginMFARequest{}, Response: tokensJSON{}, Problems: []string{"mfa_token_invalid", "invalid_mfa_code", "too_many_attempts", "validation_failed"}},
		openapi.Op{Method: "GET", Path: Base + "/mfa", Summary: "Whether two-step sign-in is on, and recovery codes left", Tag: tag, Auth: "user",
			Response: mfaStatusJSON{}},
		openapi.Op{Method: "POST", Path: Base + "/mfa/totp", Summary: "Enrol an authenticator app (secret shown once; confirm to turn on)", Tag: tag, Auth: "user",
			Request: enrolRequest{}, Response: enrolmentJSON{}, Status: 201, Problems: []string{"mfa_already_enabled", "session_required", "invalid_credentials", "too_many_attempts"}},
		openapi.Op{Method: "POST", Path: Base + "/mfa/totp/confirm", Summary: "Turn two-step sign-in on with a first code; returns the recovery codes once", Tag: tag, Auth: "user",
			Request: codeRequest{}, Response: recoveryCodesJSON{}, Problems: append([]string{"mfa_not_enabled", "mfa_already_enabled"}, codeProblems...)},
		openapi.Op{Method: "POST", Path: Base + "/mfa/recovery-codes", Summary: "Replace the recovery codes (needs a current code)", Tag: tag, Auth: "user",
			Request: codeRequest{}, Response: recoveryCodesJSON{}, Problems: append([]string{"mfa_not_enabled"}, codeProblems...)},
		openapi.Op{Method: "POST", Path: Base + "/mfa/disable", Summary: "Turn two-step sign-in off (password and a code or recovery code)", Tag: tag, Auth: "user",
			Request: disableMFARequest{}, Status: 204, Problems: append([]string{"mfa_not_enabled", "invalid_credentials"}, codeProblems...)},
		openapi.Op{Method: "PUT", Path: Base + "/organizations/:org_id/mfa", Summary: "Require two-step sign-in of the organisation's members (owners)", Tag: tag,
			Auth: "org_admin", Request: orgMFARequest{}, Response: orgMFAJSON{}, Problems: []string{"organization_not_found", "owners_only", "mfa_required"}},
	)
}

func (loginResponse) SchemaName() string     { return "LoginResponse" }
func (loginMFARequest) SchemaName() string   { return "LoginMFARequest" }
func (enrolRequest) SchemaName() string      { return "MFAEnrolRequest" }
func (codeRequest) SchemaName() string       { return "MFACodeRequest" }
func (disableMFARequest) SchemaName() string { return "DisableMFARequest" }
func (mfaStatusJSON) SchemaName() string     { return "MFAStatus" }
func (enrolmentJSON) SchemaName() string     { return "MFAEnrolment" }
func (recoveryCodesJSON) SchemaName() string { return "RecoveryCodes" }
func (orgMFARequest) SchemaName() string     { return "OrganizationMFARequest" }
func (orgMFAJSON) SchemaName() string        { return "OrganizationMFA" }
