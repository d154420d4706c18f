package identity

import (
	"net/http"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Problems identity answers besides the platform's common ones.
var (
	ErrEmailTaken         = problem.New(http.StatusConflict, "email_taken", "An account with this e-mail already exists.")
	ErrInvalidCredentials = problem.New(http.StatusUnauthorized, "invalid_credentials", "The e-mail or password is wrong.")
	ErrRateLimited        = problem.New(http.StatusTooManyRequests, "rate_limited", "Too many sign-in attempts; try again later.")
	ErrInvalidRefresh     = problem.New(http.StatusUnauthorized, "invalid_refresh_token", "The refresh token is invalid, expired or revoked.")
	ErrRefreshReused      = problem.New(http.StatusUnauthorized, "refresh_reused", "This refresh token was already used: the session is revoked, sign in again.")
	ErrOrgNotFound        = problem.New(http.StatusNotFound, "organization_not_found", "No such organisation.")
	ErrUserNotFound       = problem.New(http.StatusNotFound, "user_not_found", "No such user.")
	ErrMemberNotFound     = problem.New(http.StatusNotFound, "member_not_found", "No such member of this organisation.")
	ErrAlreadyMember      = problem.New(http.StatusConflict, "already_member", "This person is already a member of the organisation.")
	ErrLastOwner          = problem.New(http.StatusConflict, "last_owner", "An organisation must keep at least one owner.")
	ErrOwnersOnly         = problem.New(http.StatusForbidden, "owners_only", "Only an owner may grant, change or remove the owner role.")
	ErrInvitationNotFound = problem.New(http.StatusNotFound, "invitation_not_found", "The invitation is unknown or was already used.")
	ErrInvitationExpired  = problem.New(http.StatusGone, "invitation_expired", "The invitation has expired; ask for a new one.")
	ErrInvitationMismatch = problem.New(http.StatusForbidden, "invitation_email_mismatch", "The invitation was sent to another e-mail address.")
	ErrTokenNotFound      = problem.New(http.StatusNotFound, "token_not_found", "No such API token.")
	ErrAPITokenNotAllowed = problem.New(http.StatusForbidden, "session_required", "Sign in with a password session to do this, not an API token.")
	ErrMailFailed         = problem.New(http.StatusBadGateway, "mail_failed", "The e-mail could not be sent; try again.")
	ErrNoSigningKey       = problem.New(http.StatusServiceUnavailable, "no_signing_key", "No signing key is available.")
	ErrBadToken           = web.ErrBadToken
)
