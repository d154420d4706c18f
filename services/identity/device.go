package identity

// Device login: the OAuth 2.0 Device Authorization Grant (RFC 8628) for clients without a browser (the
// tamarack CLI). The client asks for a device code and a short user code; the user opens the web UI's /device
// page, signed in, enters or confirms the user code and approves or denies; the client polls with the device
// code and, once approved, receives a new session exactly as a password sign-in opens one (newRefresh and
// session), named for the client in the session list. The approving session vouches for the new one: it acts
// for the approver's organisation and carries MFA only when the approving session had it.
//
// Only SHA-256 hashes of both codes are stored (migrations/00008_device_login.sql); rows are pruned an hour
// after they expire. Client side: package devicelogin.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Limits of device login (docs/identity.md, "Device login").
const (
	DeviceCodeTTL  = 10 * time.Minute // expires_in
	DeviceInterval = 5 * time.Second  // the least time between two polls of one device code
	// deviceSlowDownStep is added to a device code's interval each time its client polls too fast (RFC 8628
	// §3.5), up to deviceMaxInterval.
	deviceSlowDownStep = 5 * time.Second
	deviceMaxInterval  = time.Minute
	// devicePollGrace forgives a poll this much early: a client that sleeps the interval between polls sees its
	// requests arrive a little closer together whenever one was slower to arrive than the next.
	devicePollGrace = time.Second
	// deviceLookupsPerMin bounds how many user codes one user may look up, approve or deny a minute, so
	// nobody can walk the user-code space (20^8 codes) to approve someone else's pending request.
	deviceLookupsPerMin = 10
	// devicePruneAfter keeps an expired row this long (polls meanwhile answer expired_token, not
	// invalid_grant), then deletes it.
	devicePruneAfter = time.Hour
	// DevicePage is the web UI's page where users enter the user code.
	DevicePage = "/device"
	// DeviceClientNameMax bounds the client's name in runes.
	DeviceClientNameMax = 100
)

// userCodeAlphabet has no vowels (no words) and no look-alikes (0/O, 1/I/L…), as RFC 8628 §6.1 suggests.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// Device code states.
const (
	DeviceStatusPending  = "pending"
	DeviceStatusApproved = "approved"
	DeviceStatusDenied   = "denied"
	DeviceStatusUsed     = "used" // approved, and the client has its tokens
)

// Audit actions of device login; the exchange itself is a login_succeeded with detail.method "device".
const (
	AuditDeviceApproved = "device_login_approved"
	AuditDeviceDenied   = "device_login_denied"
)

// Problems of device login. The client's (token endpoint) codes are RFC 8628's error codes.
var (
	ErrAuthorizationPending = problem.New(http.StatusBadRequest, "authorization_pending", "The user has not approved this device yet.").
				WithDetail("Keep polling POST /api/v1/identity/device/token every interval seconds until the user approves or denies on the /device page.")
	ErrSlowDown = problem.New(http.StatusBadRequest, "slow_down", "Polling too fast; wait longer between polls.").
			WithDetail("Poll this device code no more often than the interval the answer gives (it grew by 5 seconds).")
	ErrExpiredToken = problem.New(http.StatusBadRequest, "expired_token", "The device code has expired.").
			WithDetail("A device code lasts 10 minutes; start again with POST /api/v1/identity/device/code.")
	ErrAccessDenied = problem.New(http.StatusForbidden, "access_denied", "The user denied this device sign-in.").
			WithDetail("The request was denied on the /device page; start again with POST /api/v1/identity/device/code if that was a mistake.")
	ErrInvalidDeviceCode = problem.New(http.StatusBadRequest, "invalid_grant", "The device code is unknown or was already used.").
				WithDetail("A device code gives tokens once; start again with POST /api/v1/identity/device/code.")
	ErrDeviceCodeNotFound = problem.New(http.StatusNotFound, "device_code_not_found", "No pending sign-in has this code.").
				WithDetail("Check the code your terminal shows (8 letters, like BCDF-GHJK) and type it again.")
	ErrDeviceCodeExpired = problem.New(http.StatusGone, "device_code_expired", "This code has expired.").
				WithDetail("A code lasts 10 minutes; run the sign-in command in your terminal again for a new one.")
	ErrDeviceCodeDecided = problem.New(http.StatusConflict, "device_code_decided", "This code was already approved or denied.").
				WithDetail("A code is decided once; run the sign-in command in your terminal again for a new one.")
	ErrDeviceTooManyLookups = problem.New(http.StatusTooManyRequests, "rate_limited", "Too many device codes tried; wait before trying again.").
				WithDetail("Wait as many seconds as the Retry-After header says before trying again.")
)

// DeviceCode is one pending device login (migrations/00008_device_login.sql).
type DeviceCode struct {
	ID              string `gorm:"primaryKey"`
	DeviceHash      string // SHA-256 of the device code
	UserHash        string // SHA-256 of the normalised user code
	ClientName      string
	IP              string // of the client that asked
	UserAgent       string
	Status          string
	IntervalSeconds int
	CreatedAt       time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt       time.Time
	LastPolledAt    *time.Time
	UserID          string // the approver, once approved
	OrganizationID  string // the approving session's organisation
	MFA             bool   // the approving session had a second factor
	DecidedAt       *time.Time
	SessionID       string // the session the exchange opened
}

func (DeviceCode) TableName() string { return "identity_device_codes" }

// DeviceAuthorization answers a client asking for a device login (RFC 8628 §3.2).
type DeviceAuthorization struct {
	DeviceCode              string
	UserCode                string // XXXX-XXXX
	VerificationURI         string
	VerificationURIComplete string
	ExpiresIn               int // seconds
	Interval                int // seconds
}

// DeviceCodeInput is a client's request for a device login.
type DeviceCodeInput struct {
	ClientName string
	UserAgent  string
	Meta
}

// Validate lists every bad field.
func (in *DeviceCodeInput) Validate() error {
	var f problem.Fields
	f.CheckMsg(utf8.RuneCountInString(in.ClientName) <= DeviceClientNameMax, "client_name", "max", "field.max_chars", problem.Args{"Param": DeviceClientNameMax})
	return f.Err()
}

// DeviceRequest is a pending device login as the approving user sees it.
type DeviceRequest struct {
	UserCode   string
	ClientName string
	IP         string
	UserAgent  string
	Status     string // pending, approved, denied (a used code reads approved)
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// normalizeUserCode upper-cases a typed user code and drops dashes and spaces; ok is false unless the rest is
// 8 letters of the alphabet.
func normalizeUserCode(s string) (string, bool) {
	if len(s) > 32 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	out := b.String()
	return out, len(out) == 8
}

// formatUserCode writes a normalised user code as people read it: BCDF-GHJK.
func formatUserCode(c string) string { return c[:4] + "-" + c[4:] }

// newUserCode draws 8 letters of the alphabet uniformly (rejection sampling: 240 is 12 × 20).
func newUserCode() string {
	out := make([]byte, 0, 8)
	buf := make([]byte, 16)
	for len(out) < 8 {
		if _, err := rand.Read(buf); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		for _, b := range buf {
			if b < 240 && len(out) < 8 {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out)
}

// RequestDeviceCode starts a device login (POST /device/code). Requests are limited per client IP with the
// sign-up budget; expired rows are pruned on the way.
func (s *Service) RequestDeviceCode(ctx context.Context, in DeviceCodeInput) (DeviceAuthorization, error) {
	if err := in.Validate(); err != nil {
		return DeviceAuthorization{}, err
	}
	if ok, wait := s.limiter.allow(s.clock.Now(), "device-ip:"+in.IP); !ok {
		return DeviceAuthorization{}, ErrRateLimited.WithDetailMsg("problem.rate_limited.device_codes", problem.Args{"Seconds": retrySeconds(wait)}).WithExtra("retry_after_seconds", retrySeconds(wait))
	}
	now := s.clock.Now()
	ua := in.UserAgent
	if len(ua) > 512 {
		ua = ua[:512]
	}
	device := secret()
	var user string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("expires_at < ?", now.Add(-devicePruneAfter)).Delete(&DeviceCode{}).Error; err != nil {
			return err
		}
		// A new user code may meet a live one (1 in 2.6e10 per pair); draw again rather than fail.
		for try := 0; ; try++ {
			user = newUserCode()
			var n int64
			if err := tx.Model(&DeviceCode{}).Where("user_hash = ?", hashSecret(user)).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 || try == 4 {
				break
			}
		}
		return tx.Create(&DeviceCode{ID: newID(), DeviceHash: hashSecret(device), UserHash: hashSecret(user),
			ClientName: strings.TrimSpace(in.ClientName), IP: in.IP, UserAgent: ua, Status: DeviceStatusPending,
			IntervalSeconds: int(DeviceInterval / time.Second), CreatedAt: now, ExpiresAt: now.Add(DeviceCodeTTL)}).Error
	})
	if err != nil {
		return DeviceAuthorization{}, err
	}
	page := strings.TrimRight(s.publicURL, "/") + DevicePage
	return DeviceAuthorization{DeviceCode: device, UserCode: formatUserCode(user), VerificationURI: page,
		VerificationURIComplete: page + "?code=" + formatUserCode(user),
		ExpiresIn:               int(DeviceCodeTTL / time.Second), Interval: int(DeviceInterval / time.Second)}, nil
}

// deviceLookup checks the actor may try a user code now (a session, within the per-user budget) and
// normalises it.
func (s *Service) deviceLookup(a Actor, userCode string) (string, error) {
	if err := requireSession(a); err != nil {
		return "", ErrAPITokenNotAllowed.WithDetailMsg("problem.session_required.device", nil)
	}
	if ok, wait := s.deviceLookups.allow(s.clock.Now(), "device-user:"+a.UserID); !ok {
		return "", ErrDeviceTooManyLookups.WithExtra("retry_after_seconds", retrySeconds(wait))
	}
	code, ok := normalizeUserCode(userCode)
	if !ok {
		return "", ErrDeviceCodeNotFound
	}
	return code, nil
}

// DeviceRequestOf shows the signed-in actor what a user code would sign in (GET /device/{user_code}).
func (s *Service) DeviceRequestOf(ctx context.Context, a Actor, userCode string) (DeviceRequest, error) {
	code, err := s.deviceLookup(a, userCode)
	if err != nil {
		return DeviceRequest{}, err
	}
	var row DeviceCode
	err = s.db.WithContext(ctx).Where("user_hash = ?", hashSecret(code)).Take(&row).Error
	if sqldb.IsNotFound(err) {
		return DeviceRequest{}, ErrDeviceCodeNotFound
	}
	if err != nil {
		return DeviceRequest{}, err
	}
	if !s.clock.Now().Before(row.ExpiresAt) {
		return DeviceRequest{}, ErrDeviceCodeExpired
	}
	status := row.Status
	if status == DeviceStatusUsed {
		status = DeviceStatusApproved
	}
	return DeviceRequest{UserCode: formatUserCode(code), ClientName: row.ClientName, IP: row.IP, UserAgent: row.UserAgent,
		Status: status, CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC()}, nil
}

// DecideDevice approves or denies a pending user code as the actor. Approval records the actor's user,
// acting organisation and MFA state: the session the client then receives is theirs. The route admits only
// users with a verified e-mail to approve.
func (s *Service) DecideDevice(ctx context.Context, a Actor, userCode string, approve bool) (DeviceRequest, error) {
	code, err := s.deviceLookup(a, userCode)
	if err != nil {
		return DeviceRequest{}, err
	}
	now := s.clock.Now()
	var row DeviceCode
	err = s.tx(ctx, func(tx *gorm.DB) error {
		err := sqldb.ForUpdate(tx).Where("user_hash = ?", hashSecret(code)).Take(&row).Error
		if sqldb.IsNotFound(err) {
			return ErrDeviceCodeNotFound
		}
		if err != nil {
			return err
		}
		if !now.Before(row.ExpiresAt) {
			return ErrDeviceCodeExpired
		}
		if row.Status != DeviceStatusPending {
			return ErrDeviceCodeDecided
		}
		upd := map[string]any{"status": DeviceStatusDenied, "decided_at": now, "user_id": a.UserID}
		action := AuditDeviceDenied
		if approve {
			upd = map[string]any{"status": DeviceStatusApproved, "decided_at": now, "user_id": a.UserID,
				"organization_id": a.OrgID, "mfa": a.MFA}
			action = AuditDeviceApproved
		}
		res := tx.Model(&DeviceCode{}).Where("id = ? AND status = ?", row.ID, DeviceStatusPending).Updates(upd)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrDeviceCodeDecided // decided concurrently
		}
		row.Status = upd["status"].(string)
		return s.writeAudit(tx, AuditEntry{Action: action, ActorUserID: a.UserID, ActorEmail: a.Email, OrganizationID: a.OrgID,
			Target: "device_code:" + row.ID, IP: a.IP, Detail: details("client_name", row.ClientName, "client_ip", row.IP,
				"mfa", fmt.Sprint(a.MFA))})
	})
	if err != nil {
		return DeviceRequest{}, fmt.Errorf("decide device code: %w", err)
	}
	return DeviceRequest{UserCode: formatUserCode(code), ClientName: row.ClientName, IP: row.IP, UserAgent: row.UserAgent,
		Status: row.Status, CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC()}, nil
}

// DeviceTokenInput is a client's poll.
type DeviceTokenInput struct {
	DeviceCode string
	Meta
}

// deviceOutcome is what a poll found; the transaction commits the poll's time before the answer is an error.
type deviceOutcome int

const (
	deviceIssued deviceOutcome = iota
	devicePending
	deviceSlow
	deviceExpired
	deviceDenied
	deviceInvalid
)

// ExchangeDeviceCode answers a client's poll (POST /device/token): tokens once the code is approved (once:
// the code is then used up), else authorization_pending, slow_down (the client polled sooner than its
// interval, which grows by 5 s), expired_token, access_denied or invalid_grant.
func (s *Service) ExchangeDeviceCode(ctx context.Context, in DeviceTokenInput) (Session, error) {
	if in.DeviceCode == "" || len(in.DeviceCode) > 200 {
		return Session{}, ErrInvalidDeviceCode
	}
	now := s.clock.Now()
	var (
		row     DeviceCode
		out     deviceOutcome
		refresh string
		org     *Organization
		role    string
		u       User
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		refresh, org, role, out = "", nil, "", deviceInvalid
		err := sqldb.ForUpdate(tx).Where("device_hash = ?", hashSecret(in.DeviceCode)).Take(&row).Error
		if sqldb.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case row.Status == DeviceStatusUsed:
			return nil
		case row.Status == DeviceStatusDenied:
			out = deviceDenied
			return nil
		case !now.Before(row.ExpiresAt):
			out = deviceExpired
			return nil
		}
		interval := time.Duration(row.IntervalSeconds) * time.Second
		if row.LastPolledAt != nil && now.Sub(*row.LastPolledAt) < interval-devicePollGrace {
			out = deviceSlow
			row.IntervalSeconds = int(min(interval+deviceSlowDownStep, deviceMaxInterval) / time.Second)
			return tx.Model(&DeviceCode{}).Where("id = ?", row.ID).
				Updates(map[string]any{"last_polled_at": now, "interval_seconds": row.IntervalSeconds}).Error
		}
		if row.Status == DeviceStatusPending {
			out = devicePending
			return tx.Model(&DeviceCode{}).Where("id = ?", row.ID).Update("last_polled_at", now).Error
		}
		// Approved: open the approver's session, named for the client.
		out = deviceIssued
		if u, err = userByID(tx, row.UserID); err != nil {
			return err
		}
		org, role, err = s.actingOrg(tx, u.ID, row.OrganizationID)
		if errors.Is(err, ErrOrgNotFound) {
			org, role, err = s.actingOrg(tx, u.ID, "") // removed from that organisation since approving
		}
		if err != nil {
			return err
		}
		if refresh, err = s.newRefresh(tx, u.ID, orgIDOf(org), ""); err != nil {
			return err
		}
		var rt RefreshToken
		if err := tx.Where("token_hash = ?", hashSecret(refresh)).Take(&rt).Error; err != nil {
			return err
		}
		if row.ClientName != "" {
			if err := tx.Model(&SessionRecord{}).Where("id = ?", rt.FamilyID).Update("client_name", row.ClientName).Error; err != nil {
				return err
			}
		}
		if row.MFA {
			if err := tx.Create(&mfaSession{FamilyID: rt.FamilyID, UserID: u.ID, CreatedAt: now}).Error; err != nil {
				return err
			}
		}
		res := tx.Model(&DeviceCode{}).Where("id = ? AND status = ?", row.ID, DeviceStatusApproved).
			Updates(map[string]any{"status": DeviceStatusUsed, "last_polled_at": now, "session_id": rt.FamilyID})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrInvalidDeviceCode // exchanged concurrently
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditLoginOK, ActorUserID: u.ID, ActorEmail: u.Email,
			OrganizationID: orgIDOf(org), Target: "session:" + rt.FamilyID, IP: in.IP,
			Detail: details("method", "device", "client_name", row.ClientName, "device_code", row.ID)})
	})
	if err != nil {
		return Session{}, err
	}
	switch out {
	case devicePending:
		return Session{}, ErrAuthorizationPending
	case deviceSlow:
		return Session{}, ErrSlowDown.WithDetailMsg("problem.slow_down.interval", problem.Args{"Seconds": row.IntervalSeconds}).
			WithExtra("interval", row.IntervalSeconds)
	case deviceExpired:
		return Session{}, ErrExpiredToken
	case deviceDenied:
		return Session{}, ErrAccessDenied
	case deviceInvalid:
		return Session{}, ErrInvalidDeviceCode
	}
	// The approving session vouches: a second factor carries over only when it had one (no code was checked
	// for this session itself, so never otp).
	amr := []string{jwtauth.AMRPassword}
	if row.MFA {
		amr = append(amr, jwtauth.AMRMFA)
	}
	return s.session(ctx, u, org, role, refresh, amr...)
}
