package identity

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Organisation kinds. Programme organisations hold staff and are created by seed only.
const (
	KindSME       = "sme"
	KindVendor    = "vendor"
	KindPartner   = "partner"
	KindProgramme = "programme"
)

// Roles in an organisation.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// API token scopes.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
)

// MaxAPITokenLifetime bounds an API token's expiry.
const MaxAPITokenLifetime = 366 * 24 * time.Hour

// User is a person who signs in.
type User struct {
	ID           string `gorm:"primaryKey"`
	Email        string // lower-cased
	Name         string
	PasswordHash string
	IsStaff      bool
	CreatedAt    time.Time `gorm:"autoCreateTime:false"`
	UpdatedAt    time.Time `gorm:"autoUpdateTime:false"`
	// EmailVerifiedAt is when the user proved their address (verify.go); nil until then.
	EmailVerifiedAt *time.Time
}

func (User) TableName() string { return "identity_users" }

// Organization is a tenant: an SME, a vendor, an industry partner, or the programme itself.
type Organization struct {
	ID               string `gorm:"primaryKey"`
	Name             string
	Kind             string
	Verified         bool
	VerifiedAt       *time.Time
	VerifiedBy       string
	VerificationNote string
	RequireMFA       bool      `gorm:"column:require_mfa"` // members need MFA to write (mfa.go)
	CreatedAt        time.Time `gorm:"autoCreateTime:false"`
}

func (Organization) TableName() string { return "identity_organizations" }

// Membership is a user's role in an organisation.
type Membership struct {
	OrganizationID string `gorm:"primaryKey"`
	UserID         string `gorm:"primaryKey"`
	Role           string
	CreatedAt      time.Time `gorm:"autoCreateTime:false"`
}

func (Membership) TableName() string { return "identity_memberships" }

// throttleRow is one failed-sign-in counter (throttle.go); LastFailureAt is Unix milliseconds.
type throttleRow struct {
	ID            string `gorm:"primaryKey"`
	Failures      int
	LastFailureAt int64
}

func (throttleRow) TableName() string { return "identity_login_throttle" }

// Invitation asks someone, by e-mail, to join an organisation with a role. Only the token's hash is stored.
type Invitation struct {
	ID             string `gorm:"primaryKey"`
	OrganizationID string
	Email          string
	Role           string
	TokenHash      string
	InvitedBy      string
	CreatedAt      time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt      time.Time
	AcceptedAt     *time.Time
	AcceptedBy     string
	RevokedAt      *time.Time // invitations.go
	RevokedBy      string
}

func (Invitation) TableName() string { return "identity_invitations" }

// RefreshToken is one link of a session's rotation chain (its family). Only the hash is stored.
type RefreshToken struct {
	ID             string `gorm:"primaryKey"`
	FamilyID       string
	UserID         string
	OrganizationID string
	TokenHash      string
	CreatedAt      time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt      time.Time
	UsedAt         *time.Time
	RevokedAt      *time.Time
}

func (RefreshToken) TableName() string { return "identity_refresh_tokens" }

// APIToken is a long-lived, scoped, expiring credential of a user acting for one organisation.
type APIToken struct {
	ID             string `gorm:"primaryKey"`
	UserID         string
	OrganizationID string
	Name           string
	TokenHash      string
	Hint           string    // the first characters, to tell tokens apart in lists
	Scopes         string    // comma-separated
	CreatedAt      time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt      time.Time
	LastUsedAt     *time.Time
	RevokedAt      *time.Time
}

func (APIToken) TableName() string { return "identity_api_tokens" }

// ScopeList splits Scopes.
func (t APIToken) ScopeList() []string {
	if t.Scopes == "" {
		return []string{}
	}
	return strings.Split(t.Scopes, ",")
}

// SigningKey is an Ed25519 key pair signing access tokens. PrivateKey is sealed (see keys.go).
type SigningKey struct {
	Kid        string    `gorm:"primaryKey"`
	PublicKey  string    // base64url
	PrivateKey string    // sealed
	CreatedAt  time.Time `gorm:"autoCreateTime:false"`
	RetiredAt  *time.Time
}

func (SigningKey) TableName() string { return "identity_signing_keys" }

// AuditEntry is one security event. Rows are never updated or deleted.
type AuditEntry struct {
	ID             string `gorm:"primaryKey"`
	Action         string
	ActorUserID    string
	ActorEmail     string
	OrganizationID string
	Target         string // type:id
	IP             string
	Detail         string    // a JSON object
	CreatedAt      time.Time `gorm:"autoCreateTime:false"`
}

func (AuditEntry) TableName() string { return "identity_audit" }

// Audit actions.
const (
	AuditSignup             = "signup"
	AuditLoginOK            = "login_succeeded"
	AuditLoginFailed        = "login_failed"
	AuditLoginRateLimited   = "login_rate_limited"
	AuditRefreshReused      = "refresh_reused"
	AuditLogout             = "logout"
	AuditTokenCreated       = "api_token_created"
	AuditTokenRevoked       = "api_token_revoked"
	AuditMemberInvited      = "member_invited"
	AuditInvitationAccepted = "invitation_accepted"
	AuditRoleChanged        = "member_role_changed"
	AuditMemberRemoved      = "member_removed"
	AuditOrgVerified        = "organization_verified"
	AuditUserPromoted       = "user_promoted"
	AuditKeyRotated         = "signing_key_rotated"
	AuditKeyRetired         = "signing_key_retired"
	// Two-step sign-in (mfa.go).
	AuditMFAEnabled          = "mfa_enabled"
	AuditMFADisabled         = "mfa_disabled"
	AuditMFALoginFailed      = "mfa_login_failed"
	AuditRecoveryCodeUsed    = "recovery_code_used"
	AuditRecoveryCodesNew    = "recovery_codes_regenerated"
	AuditOrgMFAPolicyChanged = "organization_mfa_policy_changed"
)

// Meta is where a request came from, for the audit log.
type Meta struct {
	IP string
}

// Actor is who acts, the platform's caller (web.Principal: user, organisation, session or API token, MFA),
// with where the request came from for the audit log.
type Actor struct {
	web.Principal
	Meta
}

// normalizeEmail lower-cases and trims an e-mail address.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " <>\r\n") {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && strings.Contains(s[strings.LastIndexByte(s, '@'):], ".")
}

// checkPassword applies the password policy: at least 12 characters, at most 256, not the e-mail address, not a
// common password.
func checkPassword(f *problem.Fields, field, password, email string) {
	n := utf8.RuneCountInString(password)
	switch {
	case password == "":
		f.Add(field, "required", "is required")
	case n < 12:
		f.Add(field, "too_short", "must be at least 12 characters")
	case n > 256:
		f.Add(field, "too_long", "must be at most 256 characters")
	case email != "" && (strings.EqualFold(strings.TrimSpace(password), email) ||
		strings.EqualFold(strings.TrimSpace(password), strings.Split(email, "@")[0])):
		f.Add(field, "same_as_email", "must not be your e-mail address")
	case isCommonPassword(password): // passwords.go
		f.Add(field, "common_password", "is one of the most common passwords: choose another")
	}
}

// SignupInput creates a user as the owner of a new organisation.
type SignupInput struct {
	Email    string
	Password string
	Name     string
	OrgName  string
	OrgKind  string
	Meta
}

// Validate lists every bad field.
func (in *SignupInput) Validate() error {
	var f problem.Fields
	in.Email = normalizeEmail(in.Email)
	in.Name = strings.TrimSpace(in.Name)
	in.OrgName = strings.TrimSpace(in.OrgName)
	if in.Email == "" {
		f.Add("email", "required", "is required")
	} else if !validEmail(in.Email) {
		f.Add("email", "email", "must be an e-mail address")
	}
	checkPassword(&f, "password", in.Password, in.Email)
	if in.Name == "" {
		f.Add("name", "required", "is required")
	} else if utf8.RuneCountInString(in.Name) > 200 {
		f.Add("name", "max", "must be at most 200 characters")
	}
	if in.OrgName == "" {
		f.Add("organization.name", "required", "is required")
	} else if utf8.RuneCountInString(in.OrgName) > 200 {
		f.Add("organization.name", "max", "must be at most 200 characters")
	}
	switch in.OrgKind {
	case "":
		f.Add("organization.kind", "required", "is required")
	case KindSME, KindVendor, KindPartner:
	default:
		f.Add("organization.kind", "oneof", "must be one of: sme, vendor, partner")
	}
	return f.Err()
}

// LoginInput signs a user in, optionally acting for one of their organisations.
type LoginInput struct {
	Email    string
	Password string
	OrgID    string
	Meta
}

// InviteInput invites someone to an organisation.
type InviteInput struct {
	OrgID string
	Email string
	Role  string
}

// Validate lists every bad field.
func (in *InviteInput) Validate() error {
	var f problem.Fields
	in.Email = normalizeEmail(in.Email)
	if in.Email == "" {
		f.Add("email", "required", "is required")
	} else if !validEmail(in.Email) {
		f.Add("email", "email", "must be an e-mail address")
	}
	checkRole(&f, in.Role)
	return f.Err()
}

func checkRole(f *problem.Fields, role string) {
	switch role {
	case "":
		f.Add("role", "required", "is required")
	case RoleOwner, RoleAdmin, RoleMember:
	default:
		f.Add("role", "oneof", "must be one of: owner, admin, member")
	}
}

// AcceptInput accepts an invitation: as the signed-in user (Actor set), or by creating the account.
type AcceptInput struct {
	Token    string
	Name     string
	Password string
	Meta
}

// CreateTokenInput mints an API token.
type CreateTokenInput struct {
	Name      string
	Scopes    []string
	ExpiresAt time.Time
}

// validate needs now for the expiry bounds.
func (in *CreateTokenInput) validate(now time.Time) error {
	var f problem.Fields
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		f.Add("name", "required", "is required")
	} else if utf8.RuneCountInString(in.Name) > 100 {
		f.Add("name", "max", "must be at most 100 characters")
	}
	if len(in.Scopes) == 0 {
		f.Add("scopes", "required", "is required: read, write or both")
	}
	seen := map[string]bool{}
	var scopes []string
	for _, s := range in.Scopes {
		if s != ScopeRead && s != ScopeWrite {
			f.Add("scopes", "oneof", "each must be read or write")
			break
		}
		if !seen[s] {
			seen[s] = true
			scopes = append(scopes, s)
		}
	}
	in.Scopes = scopes
	switch {
	case in.ExpiresAt.IsZero():
		f.Add("expires_at", "required", "expires_at or expires_in_days is required (at most one year ahead)")
	case !in.ExpiresAt.After(now):
		f.Add("expires_at", "in_past", "must be in the future")
	case in.ExpiresAt.After(now.Add(MaxAPITokenLifetime)):
		f.Add("expires_at", "too_far", "must be at most one year ahead")
	}
	return f.Err()
}

// OrgFilter selects organisations for staff.
type OrgFilter struct {
	Kind     string
	Verified *bool
	After    string // cursor: last ID seen
	Limit    int
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	OrgID  string
	Action string
	Actor  string
	Before string // cursor: last ID seen
	Limit  int
}

// MemberView is a member with the user's details.
type MemberView struct {
	UserID    string
	Email     string
	Name      string
	Role      string
	CreatedAt time.Time
}

// MembershipView is an organisation the user belongs to, with the role.
type MembershipView struct {
	Org  Organization
	Role string
}

// Session is what a successful sign-in, sign-up or refresh returns.
type Session struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int
	User         User
	Org          *Organization
	Role         string
	// MFAToken is set instead of the tokens when the password was right and a second factor is due (mfa.go).
	MFAToken string
}
