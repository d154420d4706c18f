// Package jwtauth defines Tamarack's access tokens: their claims, their verification against Ed25519 public
// keys looked up by kid, and the JWKS document that publishes those keys. Identity signs; every service
// verifies with this package, in-process or from identity's JWKS URL, never by calling identity per request.
package jwtauth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience of every access token.
const (
	Issuer   = "tamarack"
	Audience = "tamarack-api"
)

// Claims of an access token: the user, the organisation it acts for, its role there and staff status.
type Claims struct {
	jwt.RegisteredClaims
	Org     string   `json:"org,omitempty"`
	OrgKind string   `json:"org_kind,omitempty"`
	Role    string   `json:"role,omitempty"`
	Staff   bool     `json:"staff,omitempty"`
	Scopes  []string `json:"scp,omitempty"`
	Email   string   `json:"email,omitempty"`
	// SessionID names the sign-in (identity's refresh-token family) the token belongs to; ending the session
	// revokes the token (revocation.go).
	SessionID string `json:"sid,omitempty"`
	// AMR lists how the user authenticated (RFC 8176): "pwd", plus "mfa" and "otp" when a second factor was
	// checked at sign-in. Staff power needs it (MFA).
	AMR []string `json:"amr,omitempty"`
	// OrgMFA says the acting organisation requires MFA of its members (writes without it are refused).
	OrgMFA bool `json:"org_mfa,omitempty"`
	// EmailVerified says the user proved their e-mail address; unverified accounts may browse but not spend
	// or launch (web.RequireVerifiedEmail). Absent reads as false.
	EmailVerified bool `json:"email_verified"`
}

// MFA reports whether the session was signed in with a second factor.
func (c Claims) MFA() bool { return slices.Contains(c.AMR, AMRMFA) }

// Authentication methods of the amr claim (RFC 8176).
const (
	AMRPassword = "pwd"
	AMRMFA      = "mfa"
	AMROTP      = "otp"
)

// KeySource finds the public key of a kid.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// ErrUnknownKey is returned by a KeySource for a kid it does not know.
var ErrUnknownKey = errors.New("unknown signing key")

// ErrKeysUnavailable is returned by a KeySource that could not ask for the keys (identity down, unreachable or
// answering an error): the token is not known to be bad, so callers answer 503, not 401.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// Verifier checks access tokens: EdDSA only (so "none" and HMAC confusion are refused), known kid, issuer,
// audience and expiry.
type Verifier struct {
	Keys   KeySource
	Now    func() time.Time
	Leeway time.Duration
	// Revoked, when set, refuses tokens of ended sessions with ErrRevoked (revocation.go).
	Revoked *Revocations
}

// Verify parses and checks token, returning its claims.
func (v Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.Leeway),
	}
	if v.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(v.Now))
	}
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no kid")
		}
		return v.Keys.PublicKey(ctx, kid)
	}, opts...)
	if err != nil {
		return nil, err
	}
	if claims.Subject == "" {
		return nil, errors.New("token has no subject")
	}
	if v.Revoked.Revoked(claims.SessionID) {
		return nil, ErrRevoked
	}
	return &claims, nil
}

// Sign issues a token for claims with key, naming kid in the header.
func Sign(claims Claims, kid string, key ed25519.PrivateKey) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	return t.SignedString(key)
}

// JWK is one public key in a JWKS document (RFC 8037 OKP key for Ed25519).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is the document served at /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWK describes an Ed25519 public key.
func NewJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Alg: "EdDSA", Use: "sig"}
}

// PublicKey decodes an Ed25519 JWK.
func (k JWK) PublicKey() (ed25519.PublicKey, error) {
	if k.Kty != "OKP" || k.Crv != "Ed25519" {
		return nil, fmt.Errorf("jwk %s: unsupported key type %s/%s", k.Kid, k.Kty, k.Crv)
	}
	b, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("jwk %s: bad x", k.Kid)
	}
	return ed25519.PublicKey(b), nil
}

// RemoteKeys is a KeySource reading identity's JWKS over HTTP: cached, refreshed when an unknown kid shows up
// (a rotation), at most once per MinRefresh so forged kids cannot flood identity.
type RemoteKeys struct {
	URL        string
	Client     *http.Client
	MinRefresh time.Duration

	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

// PublicKey returns the key for kid, fetching the JWKS when kid is not cached.
func (r *RemoteKeys) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.keys[kid]; ok {
		return k, nil
	}
	minRefresh := r.MinRefresh
	if minRefresh == 0 {
		minRefresh = 10 * time.Second
	}
	if time.Since(r.fetched) < minRefresh {
		return nil, ErrUnknownKey
	}
	if err := r.fetch(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	if k, ok := r.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func (r *RemoteKeys) fetch(ctx context.Context) error {
	c := r.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch jwks: %s", resp.Status)
	}
	var doc JWKS
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	keys := make(map[string]ed25519.PublicKey, len(doc.Keys))
	for _, k := range doc.Keys {
		pub, err := k.PublicKey()
		if err != nil {
			continue
		}
		keys[k.Kid] = pub
	}
	r.keys, r.fetched = keys, time.Now()
	return nil
}
