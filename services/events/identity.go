package events

import (
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// OrganizationCreatedV1 announces a new organisation and its owner.
type OrganizationCreatedV1 struct {
	OrganizationID string    `json:"organization_id"`
	Name           string    `json:"name"`
	Kind           string    `json:"kind"` // sme, vendor, partner
	OwnerUserID    string    `json:"owner_user_id"`
	At             time.Time `json:"at"`
}

func (e OrganizationCreatedV1) Validate() error {
	var c check
	c.need(e.OrganizationID != "", "organization_id")
	c.need(e.Kind == "sme" || e.Kind == "vendor" || e.Kind == "partner" || e.Kind == "programme", "kind")
	c.need(set(e.At), "at")
	return c.err("organization.created")
}

// OrganizationVerifiedV1 announces that staff verified (or unverified) an organisation; co-funding and
// vendor submissions depend on it.
type OrganizationVerifiedV1 struct {
	OrganizationID string    `json:"organization_id"`
	Verified       bool      `json:"verified"`
	ByUserID       string    `json:"by_user_id"`
	At             time.Time `json:"at"`
}

func (e OrganizationVerifiedV1) Validate() error {
	var c check
	c.need(e.OrganizationID != "", "organization_id")
	c.need(set(e.At), "at")
	return c.err("organization.verified")
}

// MembershipChangedV1 announces a user joining, changing role in, or leaving an organisation.
type MembershipChangedV1 struct {
	OrganizationID string    `json:"organization_id"`
	UserID         string    `json:"user_id"`
	Email          string    `json:"email"`
	Role           string    `json:"role"`   // owner, admin, member; empty when removed
	Change         string    `json:"change"` // added, role_changed, removed
	At             time.Time `json:"at"`
}

func (e MembershipChangedV1) Validate() error {
	var c check
	c.need(e.OrganizationID != "", "organization_id")
	c.need(e.UserID != "", "user_id")
	c.need(e.Change == "added" || e.Change == "role_changed" || e.Change == "removed", "change")
	c.need(set(e.At), "at")
	return c.err("membership.changed")
}

var (
	OrganizationCreated  = eventbus.Subject[OrganizationCreatedV1]{Stream: StreamIdentity, Name: "tamarack.identity.organization.created.v1"}
	OrganizationVerified = eventbus.Subject[OrganizationVerifiedV1]{Stream: StreamIdentity, Name: "tamarack.identity.organization.verified.v1"}
	MembershipChanged    = eventbus.Subject[MembershipChangedV1]{Stream: StreamIdentity, Name: "tamarack.identity.membership.changed.v1"}
)

// IdentityStream captures identity's events.
var IdentityStream = eventbus.Stream{Name: StreamIdentity, Subjects: []string{
	OrganizationCreated.Name, OrganizationVerified.Name, MembershipChanged.Name,
}}

// TokenVerifyV1 asks identity to check an API token for a service running in another process (API tokens
// are opaque secrets stored hashed by identity; access JWTs never need this).
type TokenVerifyV1 struct {
	Token string `json:"token"`
}

func (e TokenVerifyV1) Validate() error {
	var c check
	c.need(len(e.Token) > 4, "token")
	return c.err("token verify")
}

// TokenPrincipalV1 is who an API token acts as.
type TokenPrincipalV1 struct {
	UserID  string   `json:"user_id"`
	Email   string   `json:"email"`
	OrgID   string   `json:"org_id"`
	OrgKind string   `json:"org_kind"`
	Role    string   `json:"role"`
	Staff   bool     `json:"staff"`
	TokenID string   `json:"token_id"`
	Scopes  []string `json:"scopes"`
	// EmailVerified says the token's user proved their e-mail address.
	EmailVerified bool `json:"email_verified"`
}

// TokenVerify is the request/reply endpoint; an invalid token answers the problem invalid_token.
var TokenVerify = eventbus.Endpoint[TokenVerifyV1, TokenPrincipalV1]{Name: "tamarack.identity.token.verify.v1"}

// SSHKeyLookupV1 asks identity who the SSH public key with this SHA256 fingerprint belongs to: the testbed's
// SSH gateway asks on every connection, so a deleted key, or a membership that ended, counts at once. Probe
// leaves the key's last use as it is (the gateway's key check before the signature is proven).
type SSHKeyLookupV1 struct {
	Fingerprint string `json:"fingerprint"`
	Probe       bool   `json:"probe,omitempty"`
}

func (e SSHKeyLookupV1) Validate() error {
	var c check
	c.need(len(e.Fingerprint) > len("SHA256:") && len(e.Fingerprint) < 100, "fingerprint")
	return c.err("ssh key lookup")
}

// SSHKeyOwnerV1 is the user a key belongs to and their organisations now.
type SSHKeyOwnerV1 struct {
	KeyID         string               `json:"key_id"`
	Fingerprint   string               `json:"fingerprint"`
	UserID        string               `json:"user_id"`
	Email         string               `json:"email"`
	Staff         bool                 `json:"staff"`
	EmailVerified bool                 `json:"email_verified"`
	Memberships   []SSHKeyMembershipV1 `json:"memberships"`
}

// SSHKeyMembershipV1 is one organisation of a key's owner.
type SSHKeyMembershipV1 struct {
	OrgID   string `json:"org_id"`
	OrgKind string `json:"org_kind"`
	Role    string `json:"role"`
}

// SSHKeyLookup is the request/reply endpoint; an unknown key answers the problem ssh_key_not_found.
var SSHKeyLookup = eventbus.Endpoint[SSHKeyLookupV1, SSHKeyOwnerV1]{Name: "tamarack.identity.sshkey.lookup.v1"}
