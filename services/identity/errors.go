package identity

import (
	"net/http"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Problems identity answers besides the platform's common ones.
var (
	ErrEmailTaken = problem.New(http.StatusConflict, "email_taken", "An account with this e-mail already exists.").
			WithDetail("Sign in with this e-mail (POST /api/v1/identity/login), or sign up with another one.")
	// The same answer for an unknown e-mail and a wrong password: which one failed is not revealed.
	ErrInvalidCredentials = problem.New(http.StatusUnauthorized, "invalid_credentials", "The e-mail or password is wrong.").
				WithDetail("Check both and try again; repeated failures are rate-limited.")
	ErrRateLimited = problem.New(http.StatusTooManyRequests, "rate_limited", "Too many sign-ups from this address; try again later.").
			WithDetail("Wait as many seconds as the Retry-After header says before trying again.")
	// Sign-in throttling (throttle.go): the same answer whether or not the account exists.
	ErrTooManyAttempts = problem.New(http.StatusTooManyRequests, "too_many_attempts", "Too many failed sign-ins; wait before trying again.").
				WithDetail("Wait as many seconds as the Retry-After header says before trying again; the wait grows with each further failure.")
	ErrInvalidRefresh = problem.New(http.StatusUnauthorized, "invalid_refresh_token", "The refresh token is invalid, expired or revoked.").
				WithDetail("Sign in again with POST /api/v1/identity/login to start a new session.")
	ErrRefreshReused = problem.New(http.StatusUnauthorized, "refresh_reused", "This refresh token was already used: the session is revoked, sign in again.").
				WithDetail("A refresh token works once; a second use suggests a copy, so every token of this session was revoked. Sign in again with POST /api/v1/identity/login and keep only the newest refresh token.")
	ErrOrgNotFound = problem.New(http.StatusNotFound, "organization_not_found", "No such organisation.").
			WithDetail("No organisation with this ID is visible to you; GET /api/v1/identity/me lists yours.")
	ErrUserNotFound = problem.New(http.StatusNotFound, "user_not_found", "No such user.").
			WithDetail("No user with this ID or e-mail is visible to you.")
	ErrMemberNotFound = problem.New(http.StatusNotFound, "member_not_found", "No such member of this organisation.").
				WithDetail("GET /api/v1/identity/organizations/{org_id}/members lists the organisation's members.")
	ErrAlreadyMember = problem.New(http.StatusConflict, "already_member", "This person is already a member of the organisation.").
				WithDetail("Change their role instead of inviting them again.")
	ErrLastOwner = problem.New(http.StatusConflict, "last_owner", "An organisation must keep at least one owner.").
			WithDetail("Make another member an owner first, then change or remove this one.")
	ErrOwnersOnly = problem.New(http.StatusForbidden, "owners_only", "Only an owner may grant, change or remove the owner role.").
			WithDetail("Ask an owner of the organisation to do this.")
	ErrInvitationNotFound = problem.New(http.StatusNotFound, "invitation_not_found", "The invitation is unknown or was already used.").
				WithDetail("An invitation works once; ask an admin of the organisation for a new one.")
	ErrInvitationExpired = problem.New(http.StatusGone, "invitation_expired", "The invitation has expired; ask for a new one.").
				WithDetail("An admin of the organisation can invite you again.")
	ErrInvitationMismatch = problem.New(http.StatusForbidden, "invitation_email_mismatch", "The invitation was sent to another e-mail address.").
				WithDetail("Sign in with the address the invitation was sent to, or ask for an invitation to yours.")
	ErrTokenNotFound = problem.New(http.StatusNotFound, "token_not_found", "No such API token.").
				WithDetail("GET /api/v1/identity/tokens lists your API tokens.")
	ErrAPITokenNotAllowed = problem.New(http.StatusForbidden, "session_required", "Sign in with a password session to do this, not an API token.").
				WithDetail("An API token cannot create API tokens; use the access token of a session from POST /api/v1/identity/login.")
	ErrMailFailed = problem.New(http.StatusBadGateway, "mail_failed", "The e-mail could not be sent; try again.").
			WithDetail("The mail server did not accept the message; try again in a few minutes.")
	ErrNoSigningKey = problem.New(http.StatusServiceUnavailable, "no_signing_key", "No signing key is available.").
			WithDetail("The identity service has no key to sign tokens with yet; retry in a moment.")
	ErrBadToken = web.ErrBadToken
	// ErrSessionNotFound answers ending a session that is not the caller's, or has ended (sessions.go).
	ErrSessionNotFound = problem.New(http.StatusNotFound, "session_not_found", "No such live session of yours.").
				WithDetail("List your sessions with GET /api/v1/identity/sessions; a session that has ended or expired is gone from it.")
)
