package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/identity"
)

// Identity's wiring: it runs first, because every other service's routes need its keys and API tokens.

func identityMigrations() []sqldb.Migrations { return []sqldb.Migrations{identity.Migrations()} }

func newIdentity(e *env) (*identity.Service, error) {
	mailer, err := e.mailer(e.log)
	if err != nil {
		return nil, err
	}
	var secret []byte
	if e.cfg.KeySecret != "" {
		secret = []byte(e.cfg.KeySecret)
	}
	return identity.New(identity.Deps{
		DB: e.db, Bus: e.bus, Log: e.log.With("service", "identity"), Clock: e.clock, Mailer: mailer,
		AccessTTL: e.cfg.AccessTTL, RefreshTTL: e.cfg.RefreshTTL, SignupPerMin: e.cfg.SignupPerMin,
		PublicURL: e.cfg.PublicURL, KeySecret: secret, OIDC: e.cfg.oidc,
	})
}

// wireIdentity builds identity before the auth middleware exists: it sets e.keys and e.apiTokens.
func wireIdentity(ctx context.Context, e *env) error {
	svc, err := newIdentity(e)
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	e.keys = svc.Keys()
	e.apiTokens = svc.APITokens()
	e.identity = svc
	return nil
}

// mountIdentity mounts identity's routes on e.api and adds its OpenAPI operations and background loops.
func mountIdentity(ctx context.Context, e *env) error {
	svc := e.identity
	if svc == nil {
		return errors.New("identity was not wired")
	}
	svc.Routes(e.api.Group("/identity"))
	svc.OpenAPI(e.doc)
	e.background("identity", svc.Run)
	return nil
}

func seedIdentity(ctx context.Context, e *env, d *demo) error {
	svc, err := newIdentity(e)
	if err != nil {
		return err
	}
	d.StaffEmail, d.VendorEmail, d.SMEEmail, d.PartnerEmail = "staff@tamarack.demo", "vendor@tamarack.demo", "sme@tamarack.demo", "partner@tamarack.demo"
	for _, a := range []struct {
		acct          identity.DemoAccount
		userID, orgID *string
	}{
		{identity.DemoAccount{Email: d.StaffEmail, Name: "Programme Staff", OrgName: "AI Compute Programme", OrgKind: identity.KindProgramme, Verified: true, Staff: true}, &d.StaffUserID, &d.ProgrammeOrgID},
		{identity.DemoAccount{Email: d.VendorEmail, Name: "Vera Vendor", OrgName: "Northern GPU Co.", OrgKind: identity.KindVendor, Verified: true}, &d.VendorUserID, &d.VendorOrgID},
		{identity.DemoAccount{Email: d.SMEEmail, Name: "Sam Maple", OrgName: "Maple Robotics", OrgKind: identity.KindSME, Verified: true}, &d.SMEUserID, &d.SMEOrgID},
		{identity.DemoAccount{Email: d.PartnerEmail, Name: "Pat Partner", OrgName: "Laurentian Industries", OrgKind: identity.KindPartner}, &d.PartnerUserID, &d.PartnerOrgID},
	} {
		a.acct.Password = d.Password
		u, o, err := svc.EnsureDemo(ctx, a.acct)
		if err != nil {
			return fmt.Errorf("%s: %w", a.acct.Email, err)
		}
		*a.userID, *a.orgID = u, o
	}
	// Publish the events now: a one-shot command has no relay loop running.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := svc.Outbox().Flush(fctx); err != nil {
		e.log.Warn("identity events stay queued until a server relays them", "err", err)
	}
	return nil
}

// promote makes a user programme staff; it works beside a running server (same database, same bus).
func promote(ctx context.Context, c *config, email string, stdout io.Writer) error {
	e, done, err := toolEnv(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	svc, err := newIdentity(e)
	if err != nil {
		return err
	}
	u, err := svc.Promote(ctx, email, "cli")
	if errors.Is(err, identity.ErrUserNotFound) {
		return fmt.Errorf("no user with e-mail %q: they must sign up first", email)
	}
	if err != nil {
		if p, ok := problem.From(err); ok {
			return errors.New(p.Title)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s (%s) is now programme staff; their next sign-in or token refresh carries it\n", u.Email, u.ID)
	return nil
}

// rotateIdentityKey starts signing with a new key beside a running server; the previous key keeps verifying
// until the servers retire it (access TTL after the rotation). main.go can expose it as `tamarack keys rotate`.
func rotateIdentityKey(ctx context.Context, c *config, stdout io.Writer) error {
	e, done, err := toolEnv(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	svc, err := newIdentity(e)
	if err != nil {
		return err
	}
	kid, err := svc.RotateSigningKey(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s; running servers sign with it within 30 s\n", kid)
	return nil
}
