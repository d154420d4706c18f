// Package identity owns Tamarack's users, organisations, memberships and roles, sessions (short-lived EdDSA
// access JWTs and rotating refresh tokens), API tokens, the signing keys and their JWKS, invitations by
// e-mail, programme staff, organisation verification, and the append-only audit log of security events.
//
// It announces organisations, memberships and verifications through its outbox (services/events) and answers
// API-token checks for other processes over NATS; it never imports another service, and other services never
// call it per request: they verify access tokens with its public keys.
package identity

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/tamarack-ai/tamarack/platform/rungroup"

	"github.com/alexedwards/argon2id"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/mail"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations returns identity's versioned SQL.
func Migrations() sqldb.Migrations { return sqldb.EmbeddedMigrations("identity", migrationsFS) }

// Deps is everything the service needs; New checks each.
type Deps struct {
	DB     *gorm.DB
	Bus    *eventbus.Bus
	Log    *slog.Logger
	Clock  clock.Clock
	Mailer mail.Mailer

	AccessTTL    time.Duration // lifetime of access JWTs
	RefreshTTL   time.Duration // lifetime of each refresh token
	SignupPerMin int           // sign-ups a minute per client IP (counted in this process only)
	// LoginThrottle is the sign-in throttling policy (throttle.go); zero fields take DefaultLoginThrottle's.
	LoginThrottle LoginThrottle
	PublicURL     string // base of links in e-mails

	// KeySecret seals the signing keys' private halves in the database (AES-256-GCM). Empty stores them
	// unsealed.
	KeySecret []byte
	// KeyMaxAge rotates the signing key when it is older (default 90 days).
	KeyMaxAge time.Duration
	// Argon2 parameters of new password hashes (default argon2id.DefaultParams); tests use cheap ones.
	Argon2 *argon2id.Params
	// InvitationTTL is how long an invitation stays valid (default 7 days).
	InvitationTTL time.Duration
	// OIDC are the OpenID Connect providers users may sign in with (oidc.go); none is fine.
	OIDC []OIDCProvider
}

// Service is the identity service.
type Service struct {
	db          *gorm.DB
	bus         *eventbus.Bus
	outbox      *eventbus.Outbox
	log         *slog.Logger
	clock       clock.Clock
	mailer      mail.Mailer
	keys        *keyring
	limiter     *limiter
	throttle    LoginThrottle
	argon       *argon2id.Params
	dummyHash   string
	accessTTL   time.Duration
	refreshTTL  time.Duration
	inviteTTL   time.Duration
	publicURL   string
	reloadEvery time.Duration
	hashSlots   chan struct{}
	revKV       revocationKV // sessions.go
	oidc        *oidcSet
	mailing     sync.WaitGroup // password-reset mails sent after the answer (reset.go)

	// deviceLookups bounds user-code lookups per user (device.go).
	deviceLookups *limiter
}

// New checks d and builds the service. It does no I/O but hashing a dummy password (for alike timing of
// unknown-user sign-ins).
func New(d Deps) (*Service, error) {
	var errs []error
	if d.DB == nil {
		errs = append(errs, errors.New("identity: DB is required"))
	}
	if d.Bus == nil {
		errs = append(errs, errors.New("identity: Bus is required"))
	}
	if d.Log == nil {
		errs = append(errs, errors.New("identity: Log is required"))
	}
	if d.Clock == nil {
		errs = append(errs, errors.New("identity: Clock is required"))
	}
	if d.Mailer == nil {
		errs = append(errs, errors.New("identity: Mailer is required"))
	}
	if d.AccessTTL <= 0 || d.RefreshTTL <= 0 {
		errs = append(errs, errors.New("identity: AccessTTL and RefreshTTL must be positive"))
	}
	if d.SignupPerMin < 1 {
		errs = append(errs, errors.New("identity: SignupPerMin must be at least 1"))
	}
	oidcSet, err := newOIDCSet(d.OIDC)
	if err != nil {
		errs = append(errs, fmt.Errorf("identity: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if d.Argon2 == nil {
		d.Argon2 = argon2id.DefaultParams
	}
	if d.KeyMaxAge == 0 {
		d.KeyMaxAge = 90 * 24 * time.Hour
	}
	if d.InvitationTTL == 0 {
		d.InvitationTTL = 7 * 24 * time.Hour
	}
	keys, err := newKeyring(d.DB, d.Clock, d.Log, d.KeySecret, d.KeyMaxAge, d.AccessTTL+2*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	dummy, err := argon2id.CreateHash("tamarack-dummy-password-for-timing", d.Argon2)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &Service{
		db: d.DB, bus: d.Bus, outbox: eventbus.NewOutbox(d.DB, d.Bus, "identity", d.Log), log: d.Log,
		clock: d.Clock, mailer: d.Mailer, keys: keys, limiter: newLimiter(d.SignupPerMin), throttle: d.LoginThrottle.withDefaults(), argon: d.Argon2,
		dummyHash: dummy, accessTTL: d.AccessTTL, refreshTTL: d.RefreshTTL, inviteTTL: d.InvitationTTL,
		publicURL: d.PublicURL, reloadEvery: 30 * time.Second, hashSlots: make(chan struct{}, max(2, runtime.NumCPU())),
		oidc: oidcSet, deviceLookups: newLimiter(deviceLookupsPerMin),
	}, nil
}

// Keys is the in-process key source verifying access tokens (database-backed, cached).
func (s *Service) Keys() jwtauth.KeySource { return s.keys }

// APITokens authenticates tmk_ API tokens for the auth middleware.
func (s *Service) APITokens() web.Authenticator { return apiTokenAuth{s} }

// Start makes sure a signing key exists, so that the JWKS is never empty.
func (s *Service) Start(ctx context.Context) error {
	_, err := s.keys.current(ctx)
	return err
}

// Run relays the outbox, answers token checks for other processes, keeps the keys fresh (reloads, rotation,
// retirement) and prunes stale sign-in counters until ctx ends; then it flushes the outbox.
func (s *Service) Run(ctx context.Context) error {
	sub, err := eventbus.Serve(ctx, s.bus, events.TokenVerify, "identity", s.verifyTokenRequest)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Drain() }()
	keySub, err := eventbus.Serve(ctx, s.bus, events.SSHKeyLookup, "identity", s.LookupSSHKey)
	if err != nil {
		return err
	}
	defer func() { _ = keySub.Drain() }()
	err = rungroup.Run(ctx, s.log, rungroup.Loop{Name: "outbox", Run: s.outbox.Run},
		rungroup.Loop{Name: "revocations", Run: func(ctx context.Context) error { s.runRevocations(ctx); return nil }},
		rungroup.Loop{Name: "maintenance", Run: s.maintain})
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, s.outbox.Flush(fctx))
}

// maintain keeps the keys fresh and prunes stale sign-in counters every reload interval until ctx ends.
func (s *Service) maintain(ctx context.Context) error {
	tick := time.NewTicker(s.reloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := s.MaintainKeys(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("signing key maintenance failed", "err", err)
			}
			if _, err := s.PruneLoginThrottle(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("pruning sign-in counters failed", "err", err)
			}
		}
	}
}

// Outbox exposes the relay (tests flush it).
func (s *Service) Outbox() *eventbus.Outbox { return s.outbox }
