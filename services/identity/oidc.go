package identity

// Sign-in with OpenID Connect providers the operator configures: the authorisation code flow with PKCE
// (golang.org/x/oauth2), ID tokens verified against the provider's discovery document and JWKS
// (github.com/coreos/go-oidc). The flow ends in the same session a password sign-in opens (newRefresh and
// session, as Login does). Accounts are found by the provider's subject once linked, else linked by e-mail
// only when the provider says the e-mail is verified; new accounts are created only for e-mail domains the
// operator maps to an organisation.

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"
	"golang.org/x/oauth2"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Audit actions of OIDC sign-in; sign-ins themselves are login_succeeded and login_failed with
// detail.method "oidc".
const (
	AuditOIDCSignup = "oidc_signup" // an account created from a provider's verified e-mail
	AuditOIDCLinked = "oidc_linked" // an account linked to a provider's subject
)

// oidcStateTTL bounds the time between leaving for the provider and coming back.
const oidcStateTTL = 10 * time.Minute

// oidcCodeTTL bounds the time between the callback's redirect to the web UI and the UI's exchange of the
// sign-in code for tokens.
const oidcCodeTTL = 60 * time.Second

// OIDCCallbackPage is the web UI's page the callback redirects the browser to, with ?code= (exchanged with
// POST /oidc/exchange) or ?error=<problem code>.
const OIDCCallbackPage = "/signin/callback"

// OIDCCookie binds a pending sign-in to the browser that started it (login CSRF): the callback must carry it.
const OIDCCookie = "tamarack_oidc"

// Problems of OIDC sign-in.
var (
	ErrOIDCProviderNotFound = problem.New(http.StatusNotFound, "oidc_provider_not_found", "No such sign-in provider.").
				WithDetail("GET /api/v1/identity/oidc/providers lists the providers this platform accepts.")
	ErrOIDCUnavailable = problem.New(http.StatusBadGateway, "oidc_provider_unavailable", "The sign-in provider cannot be reached; try again.").
				WithDetail("The provider's discovery document or token endpoint did not answer; try again in a few minutes.")
	ErrOIDCState = problem.New(http.StatusBadRequest, "oidc_state_invalid", "This sign-in link is unknown, expired or already used.").
			WithDetail("Start again from the sign-in page; a sign-in must finish within 10 minutes, in the browser that started it.")
	ErrOIDCDenied = problem.New(http.StatusUnauthorized, "oidc_denied", "The sign-in provider did not sign you in.").
			WithDetail("The provider answered with an error instead of a sign-in; start again from the sign-in page.")
	ErrOIDCToken = problem.New(http.StatusUnauthorized, "oidc_token_invalid", "The sign-in provider's answer could not be verified.").
			WithDetail("The code exchange failed or the ID token's signature, issuer, audience, expiry or nonce was wrong; start again.")
	ErrOIDCEmailUnverified = problem.New(http.StatusForbidden, "oidc_email_unverified", "The sign-in provider did not confirm your e-mail address.").
				WithDetail("Accounts are matched by e-mail only when the provider says it is verified; verify it with your provider, then sign in again.")
	ErrOIDCDomainNotAllowed = problem.New(http.StatusForbidden, "oidc_domain_not_allowed", "Your e-mail domain may not sign in with this provider.").
				WithDetail("This provider admits only the e-mail domains the platform's operator listed; sign up with a password, or ask the operator to add your organisation's domain.")
	ErrOIDCCode = problem.New(http.StatusBadRequest, "oidc_code_invalid", "This sign-in code is unknown, expired or already used.").
			WithDetail("A sign-in code works once, within 60 seconds, in the browser that signed in; start again from the sign-in page.")
	ErrOIDCMisconfigured = problem.New(http.StatusServiceUnavailable, "oidc_misconfigured", "Sign-in with this provider is misconfigured.").
				WithDetail("The organisation your e-mail domain maps to does not exist; tell the platform's operator.")
)

// OIDCProvider is one OpenID Connect provider the operator accepts (docs/identity.md).
type OIDCProvider struct {
	ID               string   `json:"id"`   // in URLs: /oidc/{id}/login
	Name             string   `json:"name"` // on the sign-in button
	Issuer           string   `json:"issuer"`
	ClientID         string   `json:"client_id"`
	ClientSecret     string   `json:"client_secret,omitempty"` // or ClientSecretFile
	ClientSecretFile string   `json:"client_secret_file,omitempty"`
	RedirectURL      string   `json:"redirect_url"` // …/api/v1/identity/oidc/{id}/callback as the browser reaches it
	Scopes           []string `json:"scopes,omitempty"`
	// Domains maps each e-mail domain admitted to the organisation ID its new users join.
	Domains     map[string]string `json:"domains"`
	DefaultRole string            `json:"default_role,omitempty"` // of new users in that organisation
	Claims      OIDCClaims        `json:"claims"`
}

// OIDCClaims names the claims read from the ID token (or, when absent there, the userinfo endpoint).
type OIDCClaims struct {
	Email         string `json:"email,omitempty"`
	EmailVerified string `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
}

var providerIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// withDefaults fills optional fields.
func (p OIDCProvider) withDefaults() OIDCProvider {
	if p.Name == "" {
		p.Name = p.ID
	}
	if len(p.Scopes) == 0 {
		p.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if p.DefaultRole == "" {
		p.DefaultRole = RoleMember
	}
	if p.Claims.Email == "" {
		p.Claims.Email = "email"
	}
	if p.Claims.EmailVerified == "" {
		p.Claims.EmailVerified = "email_verified"
	}
	if p.Claims.Name == "" {
		p.Claims.Name = "name"
	}
	lower := make(map[string]string, len(p.Domains))
	for d, org := range p.Domains {
		lower[strings.ToLower(strings.TrimSpace(d))] = strings.TrimSpace(org)
	}
	p.Domains = lower
	return p
}

// Validate lists every problem of one provider's settings.
func (p OIDCProvider) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("oidc provider %q: "+format, append([]any{p.ID}, a...)...))
	}
	if !providerIDPattern.MatchString(p.ID) {
		bad("id must be 1 to 32 lower-case letters, digits or dashes")
	}
	if u, err := url.Parse(p.Issuer); err != nil || u.Host == "" || !(u.Scheme == "https" || (u.Scheme == "http" && loopback(u.Hostname()))) {
		bad("issuer %q: use an https URL (http only on loopback, for tests)", p.Issuer)
	}
	if p.ClientID == "" {
		bad("client_id is required")
	}
	if u, err := url.Parse(p.RedirectURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		bad("redirect_url %q: use the absolute http(s) URL of /api/v1/identity/oidc/%s/callback", p.RedirectURL, p.ID)
	}
	if !slices.Contains(p.Scopes, oidc.ScopeOpenID) {
		bad("scopes must include openid")
	}
	if len(p.Domains) == 0 {
		bad("domains must list at least one e-mail domain and the organisation ID it joins")
	}
	for d, org := range p.Domains {
		if d == "" || strings.ContainsAny(d, "@ /") || !strings.Contains(d, ".") {
			bad("domain %q: write it like example.org", d)
		}
		if org == "" {
			bad("domain %q: the organisation ID is empty", d)
		}
	}
	var f problem.Fields
	checkRole(&f, p.DefaultRole)
	if f.Err() != nil {
		bad("default_role %q: use owner, admin or member", p.DefaultRole)
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// LoadOIDCProviders reads a JSON file holding a list of providers (docs/identity.md). A client_secret_file is
// read relative to the file's folder. Every provider is validated; every error is returned at once.
func LoadOIDCProviders(path string) ([]OIDCProvider, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var ps []OIDCProvider
	if err := dec.Decode(&ps); err != nil {
		return nil, fmt.Errorf("%s: %w (want a JSON list of providers)", path, err)
	}
	var errs []error
	for i := range ps {
		if ps[i].ClientSecretFile != "" {
			f := ps[i].ClientSecretFile
			if !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(path), f)
			}
			sec, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("oidc provider %q: client_secret_file: %w", ps[i].ID, err))
				continue
			}
			ps[i].ClientSecret = strings.TrimSpace(string(sec))
		}
	}
	if err := checkProviders(ps); err != nil {
		errs = append(errs, err)
	}
	return ps, errors.Join(errs...)
}

func checkProviders(ps []OIDCProvider) error {
	var errs []error
	seen := map[string]bool{}
	for _, p := range ps {
		p = p.withDefaults()
		if seen[p.ID] {
			errs = append(errs, fmt.Errorf("oidc provider %q: listed twice", p.ID))
		}
		seen[p.ID] = true
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// oidcState is a pending authorisation request (migrations/00007_oidc.sql).
type oidcState struct {
	ID          string `gorm:"primaryKey"` // SHA-256 of the state parameter
	Provider    string
	Nonce       string
	Verifier    string
	BrowserHash string
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt   time.Time
}

func (oidcState) TableName() string { return "identity_oidc_states" }

// OIDCLink ties an account to a provider's subject.
type OIDCLink struct {
	Issuer      string `gorm:"primaryKey"`
	Subject     string `gorm:"primaryKey"`
	Provider    string
	UserID      string
	Email       string
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
	LastLoginAt time.Time
}

func (OIDCLink) TableName() string { return "identity_oidc_links" }

// oidcCode is a pending sign-in code (migrations/00007_oidc.sql): the account the provider signed in, waiting
// for the web UI to exchange the code for tokens.
type oidcCode struct {
	ID          string `gorm:"primaryKey"` // SHA-256 of the code
	Provider    string
	UserID      string
	BrowserHash string
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt   time.Time
}

func (oidcCode) TableName() string { return "identity_oidc_codes" }

// oidcClient is one provider with its discovery done lazily (a provider down at start-up must not stop the
// platform) and kept once it succeeded; go-oidc refreshes the JWKS itself when keys rotate.
type oidcClient struct {
	cfg OIDCProvider

	mu       sync.Mutex
	oauth    *oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

type oidcSet struct {
	byID  map[string]*oidcClient
	order []string
	http  *http.Client
}

func newOIDCSet(ps []OIDCProvider) (*oidcSet, error) {
	if err := checkProviders(ps); err != nil {
		return nil, err
	}
	set := &oidcSet{byID: map[string]*oidcClient{}, http: &http.Client{Timeout: 15 * time.Second}}
	for _, p := range ps {
		p = p.withDefaults()
		set.byID[p.ID] = &oidcClient{cfg: p}
		set.order = append(set.order, p.ID)
	}
	return set, nil
}

func (set *oidcSet) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, set.http) // oauth2 reads the same context key
}

func (set *oidcSet) client(ctx context.Context, id string) (*oidcClient, error) {
	c, ok := set.byID[id]
	if !ok {
		return nil, fmt.Errorf("oidc provider %q: %w", id, ErrOIDCProviderNotFound)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c, nil
	}
	p, err := oidc.NewProvider(set.ctx(ctx), c.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery of %s: %v: %w", c.cfg.Issuer, err, ErrOIDCUnavailable)
	}
	c.provider = p
	c.verifier = p.Verifier(&oidc.Config{ClientID: c.cfg.ClientID})
	c.oauth = &oauth2.Config{ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: c.cfg.RedirectURL, Scopes: c.cfg.Scopes}
	return c, nil
}

// OIDCProviderView is what the sign-in page shows of a provider.
type OIDCProviderView struct {
	ID, Name string
}

// OIDCProviders lists the configured providers in configuration order.
func (s *Service) OIDCProviders() []OIDCProviderView {
	out := make([]OIDCProviderView, 0, len(s.oidc.order))
	for _, id := range s.oidc.order {
		out = append(out, OIDCProviderView{ID: id, Name: s.oidc.byID[id].cfg.Name})
	}
	return out
}

// OIDCStart records a pending sign-in and returns the provider's authorisation URL and the secret the
// browser must bring back in OIDCCookie.
func (s *Service) OIDCStart(ctx context.Context, providerID string) (authURL, browser string, err error) {
	c, err := s.oidc.client(ctx, providerID)
	if err != nil {
		return "", "", err
	}
	state, nonce, verifier := secret(), secret(), oauth2.GenerateVerifier()
	browser = secret()
	now := s.clock.Now()
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("expires_at < ?", now).Delete(&oidcState{}).Error; err != nil {
			return err
		}
		return tx.Create(&oidcState{ID: hashSecret(state), Provider: providerID, Nonce: nonce, Verifier: verifier,
			BrowserHash: hashSecret(browser), CreatedAt: now, ExpiresAt: now.Add(oidcStateTTL)}).Error
	})
	if err != nil {
		return "", "", err
	}
	return c.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), browser, nil
}

// OIDCCallbackInput is the provider's redirect back, with the browser's cookie.
type OIDCCallbackInput struct {
	Provider         string
	Code             string
	State            string
	Error            string // the provider's error code instead of a code
	ErrorDescription string
	Browser          string // OIDCCookie
	Meta
}

// Validate lists every bad field.
func (in *OIDCCallbackInput) Validate() error {
	var f problem.Fields
	f.Check(in.State != "", "state", "required", "is required")
	f.Check(len(in.State) <= 200, "state", "max", "is too long")
	f.Check(in.Code != "" || in.Error != "", "code", "required", "is required (or error)")
	f.Check(len(in.Code) <= 4096, "code", "max", "is too long")
	f.Check(len(in.Error) <= 200 && len(in.ErrorDescription) <= 1000, "error", "max", "is too long")
	return f.Err()
}

// oidcIdentity is what the provider vouched for.
type oidcIdentity struct {
	Issuer, Subject, Email, Name string
	Verified                     bool
}

// OIDCCallback finishes a sign-in for an API client: it signs the user in (oidcAccount) and opens a session
// as Login does.
func (s *Service) OIDCCallback(ctx context.Context, in OIDCCallbackInput) (Session, error) {
	u, err := s.oidcAccount(ctx, in)
	if err != nil {
		return Session{}, err
	}
	return s.oidcOpen(ctx, u, in.Provider, in.Meta)
}

// OIDCCallbackCode finishes a sign-in for the web UI: it signs the user in (oidcAccount) and returns a
// single-use sign-in code, valid oidcCodeTTL in the same browser, that OIDCExchange trades for the session.
// No token travels in a URL.
func (s *Service) OIDCCallbackCode(ctx context.Context, in OIDCCallbackInput) (string, error) {
	u, err := s.oidcAccount(ctx, in)
	if err != nil {
		return "", err
	}
	code, now := secret(), s.clock.Now()
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("expires_at < ?", now).Delete(&oidcCode{}).Error; err != nil {
			return err
		}
		return tx.Create(&oidcCode{ID: hashSecret(code), Provider: in.Provider, UserID: u.ID, BrowserHash: hashSecret(in.Browser),
			CreatedAt: now, ExpiresAt: now.Add(oidcCodeTTL)}).Error
	})
	if err != nil {
		return "", err
	}
	return code, nil
}

// OIDCExchangeInput is the web UI's sign-in code, with the browser's cookie.
type OIDCExchangeInput struct {
	Code    string
	Browser string // OIDCCookie
	Meta
}

// OIDCExchange trades a sign-in code for a session, once, before it expires, in the browser the callback
// reached; anything else answers ErrOIDCCode.
func (s *Service) OIDCExchange(ctx context.Context, in OIDCExchangeInput) (Session, error) {
	var (
		row oidcCode
		u   User
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		err := sqldb.ForUpdate(tx).Where("id = ?", hashSecret(in.Code)).Take(&row).Error
		if sqldb.IsNotFound(err) {
			return ErrOIDCCode
		}
		if err != nil {
			return err
		}
		res := tx.Where("id = ?", row.ID).Delete(&oidcCode{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrOIDCCode // used concurrently
		}
		return nil // the code is used up even when refused below
	})
	if err == nil && (!s.clock.Now().Before(row.ExpiresAt) ||
		subtle.ConstantTimeCompare([]byte(row.BrowserHash), []byte(hashSecret(in.Browser))) != 1) {
		err = ErrOIDCCode
	}
	if err == nil {
		u, err = userByID(s.db.WithContext(ctx), row.UserID)
	}
	if errors.Is(err, ErrOIDCCode) {
		s.auditNow(ctx, AuditEntry{Action: AuditLoginFailed, IP: in.IP,
			Detail: details("method", "oidc", "provider", row.Provider, "reason", "code")})
		return Session{}, err
	}
	if err != nil {
		return Session{}, err
	}
	return s.oidcOpen(ctx, u, row.Provider, in.Meta)
}

// oidcOpen opens a session for u exactly as Login does.
func (s *Service) oidcOpen(ctx context.Context, u User, provider string, meta Meta) (Session, error) {
	var (
		org     *Organization
		role    string
		refresh string
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if org, role, err = s.actingOrg(tx, u.ID, ""); err != nil {
			return err
		}
		if refresh, err = s.newRefresh(tx, u.ID, orgIDOf(org), ""); err != nil {
			return err
		}
		return s.writeAudit(tx, AuditEntry{Action: AuditLoginOK, ActorUserID: u.ID, ActorEmail: u.Email,
			OrganizationID: orgIDOf(org), IP: meta.IP, Detail: details("method", "oidc", "provider", provider)})
	})
	if err != nil {
		return Session{}, err
	}
	s.outbox.Kick()
	return s.session(ctx, u, org, role, refresh)
}

// oidcAccount signs a user in with a provider: it consumes the state (once, in the browser that started it),
// exchanges the code with the PKCE verifier, verifies the ID token and its nonce, maps the claims, and finds
// or creates the linked, matched or new account. Refusals are audited as login_failed.
func (s *Service) oidcAccount(ctx context.Context, in OIDCCallbackInput) (User, error) {
	if err := in.Validate(); err != nil {
		return User{}, err
	}
	fail := func(email string, err error, reason string) (User, error) {
		s.auditNow(ctx, AuditEntry{Action: AuditLoginFailed, ActorEmail: email, IP: in.IP,
			Detail: details("method", "oidc", "provider", in.Provider, "reason", reason)})
		return User{}, err
	}
	c, err := s.oidc.client(ctx, in.Provider)
	if err != nil {
		return User{}, err
	}
	st, err := s.takeOIDCState(ctx, in.Provider, in.State, in.Browser)
	if err != nil {
		if errors.Is(err, ErrOIDCState) {
			return fail("", err, "state")
		}
		return User{}, err
	}
	if in.Error != "" {
		return fail("", ErrOIDCDenied.WithDetailMsg("problem.oidc_denied.provider", problem.Args{"Error": in.Error, "Description": in.ErrorDescription}), "provider_error")
	}
	id, err := s.oidcVerify(ctx, c, in.Code, st)
	if err != nil {
		if p, ok := problem.From(err); ok {
			s.log.Warn("oidc sign-in refused", "provider", in.Provider, "code", p.Code, "err", err)
			return fail("", err, p.Code)
		}
		return User{}, err
	}
	if id.Email == "" || !validEmail(id.Email) {
		return fail(id.Email, ErrOIDCEmailUnverified.WithDetailMsg("problem.oidc_email_unverified.missing", problem.Args{"Claim": c.cfg.Claims.Email}), "email_missing")
	}
	if !id.Verified {
		return fail(id.Email, ErrOIDCEmailUnverified, "email_unverified")
	}
	domain := id.Email[strings.LastIndexByte(id.Email, '@')+1:]
	orgID, ok := c.cfg.Domains[domain]
	if !ok {
		return fail(id.Email, ErrOIDCDomainNotAllowed.WithDetailMsg("problem.oidc_domain_not_allowed.named", problem.Args{"Domain": domain}), "domain_not_allowed")
	}
	return s.oidcUser(ctx, c.cfg, id, orgID, in.Meta)
}

// takeOIDCState deletes and returns the pending request of state; unknown, used, expired, another
// provider's, or started in another browser all answer ErrOIDCState.
func (s *Service) takeOIDCState(ctx context.Context, provider, state, browser string) (oidcState, error) {
	var st oidcState
	err := s.tx(ctx, func(tx *gorm.DB) error {
		err := sqldb.ForUpdate(tx).Where("id = ?", hashSecret(state)).Take(&st).Error
		if sqldb.IsNotFound(err) {
			return ErrOIDCState
		}
		if err != nil {
			return err
		}
		res := tx.Where("id = ?", st.ID).Delete(&oidcState{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrOIDCState // used concurrently
		}
		return nil
	})
	if err != nil {
		return oidcState{}, err
	}
	if st.Provider != provider || !s.clock.Now().Before(st.ExpiresAt) ||
		subtle.ConstantTimeCompare([]byte(st.BrowserHash), []byte(hashSecret(browser))) != 1 {
		return oidcState{}, ErrOIDCState
	}
	return st, nil
}

// oidcVerify exchanges the code and checks the ID token (signature, issuer, audience, expiry by go-oidc;
// nonce and access-token hash here), then reads the mapped claims, from userinfo when the ID token lacks the
// e-mail (userinfo must be about the same subject).
func (s *Service) oidcVerify(ctx context.Context, c *oidcClient, code string, st oidcState) (oidcIdentity, error) {
	hctx := s.oidc.ctx(ctx)
	tok, err := c.oauth.Exchange(hctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return oidcIdentity{}, fmt.Errorf("code exchange: %v: %w", err, ErrOIDCToken)
		}
		return oidcIdentity{}, fmt.Errorf("code exchange: %v: %w", err, ErrOIDCUnavailable)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return oidcIdentity{}, fmt.Errorf("no id_token in the token response: %w", ErrOIDCToken)
	}
	idt, err := c.verifier.Verify(hctx, raw)
	if err != nil {
		return oidcIdentity{}, fmt.Errorf("id token: %v: %w", err, ErrOIDCToken)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return oidcIdentity{}, fmt.Errorf("id token nonce mismatch: %w", ErrOIDCToken)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return oidcIdentity{}, fmt.Errorf("at_hash: %v: %w", err, ErrOIDCToken)
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return oidcIdentity{}, fmt.Errorf("id token claims: %v: %w", err, ErrOIDCToken)
	}
	if _, ok := claims[c.cfg.Claims.Email]; !ok {
		ui, err := c.provider.UserInfo(hctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return oidcIdentity{}, fmt.Errorf("userinfo: %v: %w", err, ErrOIDCUnavailable)
		}
		if ui.Subject != idt.Subject {
			return oidcIdentity{}, fmt.Errorf("userinfo subject %q is not the id token's: %w", ui.Subject, ErrOIDCToken)
		}
		more := map[string]any{}
		if err := ui.Claims(&more); err != nil {
			return oidcIdentity{}, fmt.Errorf("userinfo claims: %v: %w", err, ErrOIDCToken)
		}
		for k, v := range more {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	email, _ := claims[c.cfg.Claims.Email].(string)
	name, _ := claims[c.cfg.Claims.Name].(string)
	return oidcIdentity{Issuer: idt.Issuer, Subject: idt.Subject, Email: normalizeEmail(email), Name: strings.TrimSpace(name),
		Verified: truthy(claims[c.cfg.Claims.EmailVerified])}, nil
}

// truthy reads a boolean claim; some providers send "true" as a string.
func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}

// oidcUser finds or creates the account. Two first sign-ins of the same person at once collide on the link's
// or the e-mail's unique key; the loser runs again and finds the winner's account.
func (s *Service) oidcUser(ctx context.Context, cfg OIDCProvider, id oidcIdentity, orgID string, meta Meta) (User, error) {
	u, err := s.oidcUserOnce(ctx, cfg, id, orgID, meta)
	if sqldb.IsDuplicate(err) || errors.Is(err, ErrEmailTaken) {
		u, err = s.oidcUserOnce(ctx, cfg, id, orgID, meta)
	}
	return u, err
}

func (s *Service) oidcUserOnce(ctx context.Context, cfg OIDCProvider, id oidcIdentity, orgID string, meta Meta) (User, error) {
	now := s.clock.Now()
	var u User
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var link OIDCLink
		err := tx.Where("issuer = ? AND subject = ?", id.Issuer, id.Subject).Take(&link).Error
		switch {
		case err == nil:
			if u, err = userByID(tx, link.UserID); err != nil {
				return err
			}
			if err := tx.Model(&OIDCLink{}).Where("issuer = ? AND subject = ?", id.Issuer, id.Subject).
				Updates(map[string]any{"email": id.Email, "last_login_at": now}).Error; err != nil {
				return err
			}
		case sqldb.IsNotFound(err):
			u, err = userByEmail(tx, id.Email)
			if errors.Is(err, ErrUserNotFound) {
				if u, err = s.oidcSignup(tx, cfg, id, orgID); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			if err := tx.Create(&OIDCLink{Issuer: id.Issuer, Subject: id.Subject, Provider: cfg.ID, UserID: u.ID,
				Email: id.Email, CreatedAt: now, LastLoginAt: now}).Error; err != nil {
				return err
			}
			return s.writeAudit(tx, AuditEntry{Action: AuditOIDCLinked, ActorUserID: u.ID, ActorEmail: u.Email,
				Target: "user:" + u.ID, IP: meta.IP, Detail: details("provider", cfg.ID, "issuer", id.Issuer, "subject", id.Subject)})
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	s.outbox.Kick()
	return u, nil
}

// oidcSignup creates the account of a verified e-mail in an admitted domain, as a member of the
// organisation the domain maps to. It has no password: it signs in through the provider only.
func (s *Service) oidcSignup(tx *gorm.DB, cfg OIDCProvider, id oidcIdentity, orgID string) (User, error) {
	if _, err := orgByID(tx, orgID); err != nil {
		if errors.Is(err, ErrOrgNotFound) {
			return User{}, fmt.Errorf("oidc provider %s maps to organisation %s: %w", cfg.ID, orgID, ErrOIDCMisconfigured)
		}
		return User{}, err
	}
	now := s.clock.Now()
	name := id.Name
	if name == "" {
		name = id.Email[:strings.IndexByte(id.Email, '@')]
	}
	u := User{ID: newID(), Email: id.Email, Name: name, CreatedAt: now, UpdatedAt: now}
	if err := tx.Create(&u).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return User{}, fmt.Errorf("oidc sign up %s: %w", u.Email, ErrEmailTaken)
		}
		return User{}, err
	}
	if err := s.addMember(tx, orgID, &u, cfg.DefaultRole, "added"); err != nil {
		return User{}, err
	}
	return u, s.writeAudit(tx, AuditEntry{Action: AuditOIDCSignup, ActorUserID: u.ID, ActorEmail: u.Email,
		OrganizationID: orgID, Target: "user:" + u.ID, Detail: details("provider", cfg.ID, "role", cfg.DefaultRole)})
}

// HTTP.

type oidcProviderJSON struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	LoginURL string `json:"login_url" doc:"GET it in the browser to sign in"`
}

// oidcProvidersResponse is not a paged list (a handful, configured by the operator): no items/next_cursor.
type oidcProvidersResponse struct {
	Providers []oidcProviderJSON `json:"providers"`
}

func (oidcProviderJSON) SchemaName() string { return "OIDCProvider" }

func (s *Service) oidcRoutes(r fiber.Router) {
	h := handler{s}
	r.Get("/oidc/providers", h.oidcProviders)
	r.Get("/oidc/:provider/login", h.oidcLogin)
	r.Get("/oidc/:provider/callback", h.oidcCallback)
	r.Post("/oidc/exchange", h.oidcExchange)
}

type oidcExchangeRequest struct {
	Code string `json:"code" openapi:"required" doc:"the code of the callback's redirect to /signin/callback"`
}

func (r *oidcExchangeRequest) Validate() error {
	var f problem.Fields
	f.Check(r.Code != "", "code", "required", "is required")
	f.Check(len(r.Code) <= 200, "code", "max", "is too long")
	return f.Err()
}

func (h handler) oidcProviders(c *fiber.Ctx) error {
	out := oidcProvidersResponse{Providers: []oidcProviderJSON{}}
	for _, p := range h.svc.OIDCProviders() {
		out.Providers = append(out.Providers, oidcProviderJSON{ID: p.ID, Name: p.Name, LoginURL: Base + "/oidc/" + p.ID + "/login"})
	}
	return c.JSON(out)
}

func (h handler) oidcLogin(c *fiber.Ctx) error {
	id := c.Params("provider")
	to, browser, err := h.svc.OIDCStart(c.UserContext(), id)
	if err != nil {
		return err
	}
	h.setOIDCCookie(c, browser, oidcStateTTL)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(to, fiber.StatusFound)
}

// setOIDCCookie sets (or, with ttl 0, deletes) the cookie binding a sign-in to the browser. It is Secure when
// the providers send the browser back over https.
func (h handler) setOIDCCookie(c *fiber.Ctx, value string, ttl time.Duration) {
	secure := false
	for _, p := range h.svc.oidc.byID {
		secure = secure || strings.HasPrefix(p.cfg.RedirectURL, "https:")
	}
	ck := &fiber.Cookie{Name: OIDCCookie, Value: value, Path: "/", MaxAge: int(ttl / time.Second),
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: secure}
	if ttl <= 0 {
		ck.Value, ck.MaxAge, ck.Expires = "", 0, time.Unix(1, 0)
	}
	c.Cookie(ck)
}

// wantsJSON: an API client asking for JSON gets the tokens from the callback itself; a browser (which asks
// for HTML) is redirected to the web UI with a sign-in code.
func wantsJSON(c *fiber.Ctx) bool {
	a := c.Get(fiber.HeaderAccept)
	return strings.Contains(a, fiber.MIMEApplicationJSON) && !strings.Contains(a, fiber.MIMETextHTML)
}

func (h handler) oidcCallback(c *fiber.Ctx) error {
	in := OIDCCallbackInput{Provider: c.Params("provider"), Code: c.Query("code"), State: c.Query("state"),
		Error: c.Query("error"), ErrorDescription: c.Query("error_description"), Browser: c.Cookies(OIDCCookie),
		Meta: Meta{IP: web.ClientIP(c)}}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if wantsJSON(c) {
		h.setOIDCCookie(c, "", 0)
		s, err := h.svc.OIDCCallback(c.UserContext(), in)
		if err != nil {
			return err
		}
		return c.JSON(toTokensJSON(s))
	}
	code, err := h.svc.OIDCCallbackCode(c.UserContext(), in)
	if err != nil {
		h.setOIDCCookie(c, "", 0)
		p, ok := problem.From(err)
		if !ok {
			// Not a refusal: log it here, since the browser gets a page, not the error handler's 500.
			h.svc.log.Error("oidc callback", "provider", in.Provider, "request_id", c.GetRespHeader(fiber.HeaderXRequestID), "err", err)
			return c.Redirect(OIDCCallbackPage+"?"+url.Values{"error": {"internal"}}.Encode(), fiber.StatusSeeOther)
		}
		return c.Redirect(OIDCCallbackPage+"?"+url.Values{"error": {p.Code}}.Encode(), fiber.StatusSeeOther)
	}
	h.setOIDCCookie(c, in.Browser, oidcCodeTTL) // the code is bound to the same cookie, now for oidcCodeTTL
	return c.Redirect(OIDCCallbackPage+"?"+url.Values{"code": {code}}.Encode(), fiber.StatusSeeOther)
}

func (h handler) oidcExchange(c *fiber.Ctx) error {
	var req oidcExchangeRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	in := OIDCExchangeInput{Code: req.Code, Browser: c.Cookies(OIDCCookie), Meta: Meta{IP: web.ClientIP(c)}}
	h.setOIDCCookie(c, "", 0)
	s, err := h.svc.OIDCExchange(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.JSON(toTokensJSON(s))
}

func (s *Service) oidcOpenAPI(d *openapi.Doc, tag string) {
	d.Add(
		openapi.Op{Method: "GET", Path: Base + "/oidc/providers", Summary: "OpenID Connect providers to sign in with", Tag: tag,
			Response: oidcProvidersResponse{}},
		openapi.Op{Method: "GET", Path: Base + "/oidc/:provider/login", Summary: "Start signing in with a provider: 302 to its authorisation page (code flow with PKCE)", Tag: tag,
			Status: 302, Problems: []string{"oidc_provider_not_found", "oidc_provider_unavailable"}},
		openapi.Op{Method: "GET", Path: Base + "/oidc/:provider/callback", Summary: "The provider's redirect back: verifies it and signs the user in. " +
			"A browser is redirected (303) to the web UI's /signin/callback?code=… (a single-use sign-in code for POST /oidc/exchange, valid 60 s in the same browser) " +
			"or /signin/callback?error=<problem code>; a client sending Accept: application/json gets the session's tokens (as /login answers) or the problem instead", Tag: tag,
			Query:    []openapi.Param{{Name: "code"}, {Name: "state"}, {Name: "error"}, {Name: "error_description"}},
			Response: tokensJSON{}, Problems: []string{"oidc_provider_not_found", "oidc_provider_unavailable", "oidc_state_invalid",
				"oidc_denied", "oidc_token_invalid", "oidc_email_unverified", "oidc_domain_not_allowed", "oidc_misconfigured", "email_taken"}},
		openapi.Op{Method: "POST", Path: Base + "/oidc/exchange", Summary: "Trade the callback's sign-in code for the session's tokens, as /login answers (once, within 60 s, with the browser's sign-in cookie)", Tag: tag,
			Request: oidcExchangeRequest{}, Response: tokensJSON{}, Problems: []string{"oidc_code_invalid", "organization_not_found"}},
	)
}
