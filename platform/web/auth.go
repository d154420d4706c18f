package web

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Organisation roles, highest first.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Organisation kinds.
const (
	OrgSME     = "sme"
	OrgVendor  = "vendor"
	OrgPartner = "partner"
)

// Principal is who is calling: a user acting for one organisation, through an access JWT or an API token.
type Principal struct {
	UserID  string
	Email   string
	OrgID   string
	OrgKind string
	Role    string
	Staff   bool
	// TokenID is the API token's ID, or the JWT's jti.
	TokenID string
	// SessionID is the access JWT's session (sid); empty for API tokens.
	SessionID string
	// APIToken is true when the caller used an API token rather than a session.
	APIToken bool
	// Scopes limit an API token; empty means every scope of the user's role.
	Scopes []string
	// MFA is true when the caller signed in with a second factor (an API token: its user has MFA on).
	MFA bool
	// StaffNeedsMFA marks programme staff whose session lacks MFA: Staff stays false, so every staff check
	// in every service refuses them, and RequireStaff answers mfa_required.
	StaffNeedsMFA bool
	// OrgRequiresMFA says the acting organisation requires MFA: RequireScope("write") refuses callers without it.
	OrgRequiresMFA bool
	// EmailVerified says the user proved their e-mail address (RequireVerifiedEmail).
	EmailVerified bool
}

// Authenticated reports whether there is a caller at all.
func (p Principal) Authenticated() bool { return p.UserID != "" }

// IsOrgAdmin reports owner or admin of the acting organisation.
func (p Principal) IsOrgAdmin() bool { return p.Role == RoleOwner || p.Role == RoleAdmin }

// HasScope reports whether the caller may use scope ("read" or "write", or a finer one).
func (p Principal) HasScope(scope string) bool {
	return len(p.Scopes) == 0 || slices.Contains(p.Scopes, scope)
}

// Authenticator turns a bearer token into a principal.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// JWTAuthenticator authenticates access JWTs with a verifier.
type JWTAuthenticator struct{ Verifier jwtauth.Verifier }

// Authenticate verifies the token and maps its claims.
func (a JWTAuthenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	c, err := a.Verifier.Verify(ctx, token)
	if errors.Is(err, jwtauth.ErrRevoked) {
		return Principal{}, ErrTokenRevoked
	}
	if errors.Is(err, jwtauth.ErrKeysUnavailable) {
		return Principal{}, ErrAuthUnavailable
	}
	if err != nil {
		return Principal{}, ErrBadToken
	}
	mfa := c.MFA()
	return Principal{UserID: c.Subject, Email: c.Email, OrgID: c.Org, OrgKind: c.OrgKind, Role: c.Role,
		Staff: c.Staff && mfa, TokenID: c.ID, SessionID: c.SessionID, Scopes: c.Scopes, MFA: mfa, StaffNeedsMFA: c.Staff && !mfa,
		OrgRequiresMFA: c.OrgMFA, EmailVerified: c.EmailVerified}, nil
}

// APITokenPrefix starts every API token, so the middleware knows which authenticator to ask.
const APITokenPrefix = "tmk_"

// Chain sends API tokens to APITokens and everything else to JWT.
type Chain struct {
	JWT       Authenticator
	APITokens Authenticator // nil disables API tokens
}

// Authenticate dispatches on the token's form.
func (c Chain) Authenticate(ctx context.Context, token string) (Principal, error) {
	if strings.HasPrefix(token, APITokenPrefix) {
		if c.APITokens == nil {
			return Principal{}, ErrBadToken
		}
		return c.APITokens.Authenticate(ctx, token)
	}
	return c.JWT.Authenticate(ctx, token)
}

// ErrBadToken is the one answer for every invalid credential: which check failed is not revealed.
var ErrBadToken = problem.New(401, "invalid_token", "The access token is invalid or expired.").
	WithDetail("Get a new access token (POST /api/v1/identity/refresh with your refresh token, or sign in again with POST /api/v1/identity/login); an API token may have expired or been revoked.")

// ErrAuthUnavailable answers a token that could not be checked because identity (its keys, or its answer to an
// API token over NATS) is unavailable: the token may be good, so the client keeps it and retries after
// Retry-After, where a 401 would make it throw the token away and sign in again.
var ErrAuthUnavailable = problem.ErrUnavailable.
	WithDetail("Identity, which checks access and API tokens, is not answering; keep your token and retry in a moment.").
	WithExtra("retry_after_seconds", 5)

// ErrTokenRevoked answers a valid access token whose session has ended (signed out, ended from the session
// list, password changed, refresh token replayed).
var ErrTokenRevoked = problem.New(401, "token_revoked", "The session of this access token has ended.").
	WithDetail("Sign in again with POST /api/v1/identity/login.")

// ErrMFARequired refuses a caller who must sign in with a second factor first: programme staff always, members
// of organisations that require it for writes.
var ErrMFARequired = problem.New(403, "mfa_required", "Sign in with a second factor (MFA) to do this.").
	WithDetail("Turn on two-step sign-in: POST /api/v1/identity/mfa/totp, add the secret to an authenticator app, confirm with POST /api/v1/identity/mfa/totp/confirm, then sign in again (POST /api/v1/identity/login, then /login/mfa).")

const principalKey = "tamarack_principal"

// Auth reads the bearer token when there is one and stores the principal; routes decide with guards whether a
// caller is required. A present but invalid token is refused outright rather than treated as anonymous.
// Streams (WebSocket, Server-Sent Events) may pass the token as ?access_token= since browsers cannot set
// headers on them.
func Auth(a Authenticator) fiber.Handler {
	return func(c *fiber.Ctx) error {
		token := ""
		if h := c.Get(fiber.HeaderAuthorization); h != "" {
			scheme, rest, ok := strings.Cut(h, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
				return ErrBadToken.WithDetailMsg("problem.invalid_token.scheme", nil)
			}
			token = strings.TrimSpace(rest)
		} else if q := c.Query("access_token"); q != "" && isStream(c) {
			token = q
		}
		if token == "" {
			return c.Next()
		}
		p, err := a.Authenticate(c.UserContext(), token)
		if err != nil {
			return err
		}
		c.Locals(principalKey, p)
		return c.Next()
	}
}

// isStream reports a stream path (logs, terminal, proxy). The path alone decides: headers such as Accept or
// Upgrade are the client's to choose and would let a token in the URL reach any route.
func isStream(c *fiber.Ctx) bool {
	return c.Method() == fiber.MethodGet && (strings.HasSuffix(c.Path(), "/logs") || strings.HasSuffix(c.Path(), "/terminal")) ||
		strings.Contains(c.Path(), "/proxy/")
}

// PrincipalOf returns the caller (zero when anonymous).
func PrincipalOf(c *fiber.Ctx) Principal {
	p, _ := c.Locals(principalKey).(Principal)
	return p
}

// SetPrincipal stores p for the rest of the request (tests and alternative authentication).
func SetPrincipal(c *fiber.Ctx, p Principal) { c.Locals(principalKey, p) }

// RequireAuth refuses anonymous callers.
func RequireAuth(c *fiber.Ctx) error {
	if !PrincipalOf(c).Authenticated() {
		return problem.ErrUnauthorized
	}
	return c.Next()
}

// RequireStaff admits programme staff only.
func RequireStaff(c *fiber.Ctx) error {
	p := PrincipalOf(c)
	if !p.Authenticated() {
		return problem.ErrUnauthorized
	}
	if p.StaffNeedsMFA {
		return ErrMFARequired
	}
	if !p.Staff {
		return problem.ErrForbidden.WithDetailMsg("problem.forbidden.staff_only", nil)
	}
	return c.Next()
}

// ErrEmailUnverified refuses spending and launching to accounts that have not proved their e-mail address.
var ErrEmailUnverified = problem.New(403, "email_unverified", "Verify your e-mail address first.").
	WithDetail("Open the link in the verification e-mail we sent you (or POST its token to /api/v1/identity/email/verify), then refresh your session; POST /api/v1/identity/email/verify/resend sends a new link.")

// RequireVerifiedEmail admits signed-in callers whose e-mail address is verified: put it on routes that move
// money or start sandboxes. Unverified accounts can still browse.
func RequireVerifiedEmail(c *fiber.Ctx) error {
	p := PrincipalOf(c)
	if !p.Authenticated() {
		return problem.ErrUnauthorized
	}
	if !p.EmailVerified {
		return ErrEmailUnverified
	}
	return c.Next()
}

// ActsForOrg refuses a caller acting for no organisation (a new account that has not created or joined one,
// or staff outside one) with 403 forbidden: what it would create (an order, an access request, a sandbox, a
// reservation) belongs to an organisation and is charged to its wallet. Services call it where such a thing is
// created, whatever the way in.
func ActsForOrg(p Principal) error {
	if !p.Authenticated() {
		return problem.ErrUnauthorized
	}
	if p.OrgID == "" {
		return problem.ErrForbidden.WithDetailMsg("problem.forbidden.org_member", nil)
	}
	return nil
}

// RequireOrgAdmin admits owners and admins of the acting organisation.
func RequireOrgAdmin(c *fiber.Ctx) error {
	p := PrincipalOf(c)
	if !p.Authenticated() {
		return problem.ErrUnauthorized
	}
	if !p.IsOrgAdmin() {
		return problem.ErrForbidden.WithDetailMsg("problem.forbidden.owners_admins_only", nil)
	}
	return c.Next()
}

// RequireOrgKind admits members of organisations of the given kinds.
func RequireOrgKind(kinds ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := PrincipalOf(c)
		if !p.Authenticated() {
			return problem.ErrUnauthorized
		}
		if !slices.Contains(kinds, p.OrgKind) {
			return problem.ErrForbidden.WithDetailMsg("problem.forbidden.org_kinds", problem.Args{"Kinds": strings.Join(kinds, ", ")})
		}
		return c.Next()
	}
}

// RequireScope refuses API tokens lacking scope. The "write" guard also refuses, with mfa_required, callers
// without MFA acting for an organisation that requires it: every service guards its writes with it.
func RequireScope(scope string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := PrincipalOf(c)
		if !p.HasScope(scope) {
			return problem.ErrForbidden.WithDetailMsg("problem.forbidden.scope", problem.Args{"Scope": scope})
		}
		if scope == "write" && p.OrgRequiresMFA && !p.MFA {
			return ErrMFARequired.WithDetailMsg("problem.mfa_required.org_policy", nil)
		}
		return c.Next()
	}
}
