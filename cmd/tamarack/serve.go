package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/tamarack-ai/tamarack/platform/rungroup"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/mail"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/services/identity"
	"github.com/tamarack-ai/tamarack/testbed/artifact"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// env is what the composition root hands each service's wiring: the shared infrastructure, the router to
// mount on, and the lists it adds its background loops and shutdown steps to.
type env struct {
	cfg *config
	log *slog.Logger
	db  *gorm.DB
	bus *eventbus.Bus
	// natsKeys issue and revoke site agents' NATS credentials (keys.AgentCreds; keys.Revoke, then
	// pushNATSAccount); nil on an external server without --nats-auth-dir.
	natsKeys *natsauth.Keys
	clock    clock.Clock
	registry *prometheus.Registry
	app      *fiber.App
	api      fiber.Router // /api/v1
	doc      *openapi.Doc

	// Set by identity's wiring when identity runs here; otherwise tokens are verified by identity's JWKS.
	keys      jwtauth.KeySource
	apiTokens web.Authenticator
	identity  *identity.Service // built by wireIdentity, mounted by mountIdentity
	// authn checks bearer tokens (access tokens and API tokens) for routes outside /api/v1 (the Hub API).
	authn web.Authenticator

	// Set by the testbed's wiring: the root filesystems of sandbox images for this host's runtime.
	images *image.Provider
	// artifacts is the embedded agent's cache of listings' artifacts: it fetches them from this process's own
	// listener, known once it listens.
	artifacts *artifact.Cache

	runners []rungroup.Loop
	probes  map[string]web.Probe
}

func (e *env) background(name string, run func(ctx context.Context) error) {
	e.runners = append(e.runners, rungroup.Loop{Name: name, Run: run})
}

// mailer is the services' one mailer: SMTP when configured, else .eml files under <data>/outbox-mail.
func (e *env) mailer(log *slog.Logger) (mail.Mailer, error) {
	return mail.New(mail.Config{SMTPURL: e.cfg.SMTPURL, Dir: filepath.Join(e.cfg.Data, "outbox-mail"), From: e.cfg.MailFrom, Log: log})
}

// open connects the database and the bus (as a user issued with keys, when given) and migrates the services
// of this process.
func open(ctx context.Context, c *config, keys *natsauth.Keys, log *slog.Logger, reg prometheus.Registerer) (*gorm.DB, *eventbus.Bus, error) {
	opt, err := busOptions(c, keys)
	if err != nil {
		return nil, nil, err
	}
	opt.Logger, opt.Registry = log, reg
	db, err := sqldb.Open(ctx, c.dsn(), sqldb.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if err := sqldb.Migrate(ctx, db, log, migrationsFor(c)...); err != nil {
		_ = sqldb.Close(db)
		return nil, nil, err
	}
	bus, err := eventbus.Connect(ctx, opt)
	if err != nil {
		_ = sqldb.Close(db)
		return nil, nil, explainNATSRefusal(c, err)
	}
	// Every stream, not only this process's: consumers attach to streams their producers may not have made yet.
	if err := bus.EnsureStreams(ctx, events.AllStreams()...); err != nil {
		bus.Close()
		_ = sqldb.Close(db)
		return nil, nil, err
	}
	return db, bus, nil
}

// server is a built platform process, ready to listen.
type server struct {
	e     *env
	close func()
}

// serve is the composition root's entry: build everything, listen, wait for a signal, shut down.
func serve(ctx context.Context, c *config, stdout io.Writer) error {
	s, err := build(ctx, c)
	if err != nil {
		return err
	}
	defer s.close()
	return s.run(ctx, stdout)
}

// build wires the process: config, logger, DB, NATS, services, HTTP. It listens on nothing yet.
func build(ctx context.Context, c *config) (*server, error) {
	// Config and logger.
	log := newLogger(c)
	log.Info("starting tamarack", append([]any{"version", version, "services", c.services}, c.logValues()...)...)
	if err := preflight(c, log); err != nil {
		return nil, err
	}

	// Metrics, DB and NATS.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	keys, err := natsKeys(c, log)
	if err != nil {
		return nil, err
	}
	db, bus, err := open(ctx, c, keys, log, reg)
	if err != nil {
		return nil, err
	}
	closeAll := func() {
		bus.Close()
		_ = sqldb.Close(db)
	}
	switch {
	case c.NATS == "":
		if u := bus.ClientURL(); u != "" {
			if err := publishEmbeddedNATS(c, keys, u); err != nil {
				closeAll()
				return nil, err
			}
			log.Info("embedded NATS JetStream", "url", u, "store", filepath.Join(c.Data, "nats"), "creds", c.embeddedCredsFile())
		}
	case keys != nil:
		if err := pushNATSAccount(ctx, bus, keys); err != nil {
			closeAll()
			return nil, fmt.Errorf("--nats-auth-dir %s: the NATS server does not take these keys' account (start it with that directory's server.conf, see `tamarack nats-auth init`): %w", c.NATSAuthDir, err)
		}
	case c.NATSCreds == "":
		log.Warn("NATS runs without authentication: site agents cannot be isolated from other pools' subjects; run it in operator mode (`tamarack nats-auth init`, docs/deployment.md)")
	case c.runs("testbed"):
		log.Warn("no --nats-auth-dir: this process cannot issue or revoke site agents' NATS credentials")
	}

	// HTTP app and services.
	// Every body is read up to 1 MiB (each service lowers it for its routes); artifact uploads stream.
	app := web.New(web.Config{Logger: log, Registry: reg, BodyLimit: 1 << 20, StreamRequestBody: true,
		TrustedProxies: c.trustedProxies})
	e := &env{cfg: c, log: log, db: db, bus: bus, natsKeys: keys, clock: clock.System{}, registry: reg, app: app,
		doc: openapi.New("Tamarack API", version), probes: map[string]web.Probe{
			"database": func(ctx context.Context) error { return sqldb.Ping(ctx, db) },
			"nats":     bus.Ping,
		}}
	web.Health(app, e.probes)
	if c.MetricsAddr == "" {
		web.Metrics(app, reg)
	}
	// Identity provides the token keys every other service's routes check.
	if err := provideAll(ctx, e); err != nil {
		closeAll()
		return nil, err
	}
	if e.keys == nil {
		e.keys = &jwtauth.RemoteKeys{URL: c.IdentityURL + "/api/v1/identity/.well-known/jwks.json"}
	}
	if e.apiTokens == nil {
		e.apiTokens = remoteAPITokens{bus: bus}
	}
	// Ended sessions, followed from identity's revocation bucket on NATS by every process (jwtauth).
	revoked := &jwtauth.Revocations{}
	e.background("session revocations", func(ctx context.Context) error {
		return jwtauth.FollowRevocations(ctx, bus, revoked, log, nil)
	})
	authn := web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: e.keys, Leeway: 30 * time.Second, Revoked: revoked}}, APITokens: e.apiTokens}
	e.authn = authn
	e.api = app.Group("/api/v1", web.Auth(authn))
	if err := wireAll(ctx, e); err != nil {
		closeAll()
		return nil, err
	}
	describeMeta(e.doc)
	app.Get("/api/openapi.json", func(fc *fiber.Ctx) error {
		b, err := e.doc.JSON()
		if err != nil {
			return err
		}
		fc.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return fc.Send(b)
	})
	app.All("/api/*", web.NotFound)
	if c.runs("ui") {
		wireUI(e)
	}
	app.Use(web.NotFound)
	return &server{e: e, close: closeAll}, nil
}

// run starts the background loops, listens, and shuts down in order when ctx ends: stop taking requests,
// stop the loops (each flushes its outbox), drain NATS.
func (s *server) run(ctx context.Context, stdout io.Writer) error {
	e, c, log := s.e, s.e.cfg, s.e.log
	stopLoops := s.startLoops()
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		stopLoops()
		return fmt.Errorf("listen %s: %w", c.Addr, err)
	}
	var metricsApp *fiber.App
	if c.MetricsAddr != "" {
		metricsApp = fiber.New(fiber.Config{DisableStartupMessage: true})
		web.Metrics(metricsApp, e.registry)
		go func() { _ = metricsApp.Listen(c.MetricsAddr) }()
	}
	if e.artifacts != nil {
		if err := e.artifacts.SetBaseURL(loopbackURL(ln.Addr())); err != nil {
			log.Warn("sandboxes cannot mount listings' artifacts", "err", err)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- e.app.Listener(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "ui", c.runs("ui"))
	fmt.Fprintf(stdout, "Tamarack is up: %s (API at /api/v1, OpenAPI at /api/openapi.json)\n", displayURL(ln.Addr()))

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("http server stopped", "err", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.app.ShutdownWithContext(shutCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if metricsApp != nil {
		_ = metricsApp.ShutdownWithContext(shutCtx)
	}
	stopLoops()
	e.bus.Drain(shutCtx)
	log.Info("stopped")
	return nil
}

// startLoops runs every service's background loops (outbox relays, consumers, schedulers) until the returned
// function is called; it waits for them to finish.
func (s *server) startLoops() (stop func()) {
	stopGroup := rungroup.Start(s.e.log, s.e.runners...)
	return func() { _ = stopGroup() } // each failure was logged when it happened
}

func displayURL(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && (ta.IP.IsUnspecified() || ta.IP == nil) {
		return fmt.Sprintf("http://localhost:%d", ta.Port)
	}
	return "http://" + a.String()
}

// migrateOnly applies the migrations of the configured services.
func migrateOnly(ctx context.Context, c *config, stdout io.Writer) error {
	log := newLogger(c)
	db, err := sqldb.Open(ctx, c.dsn(), sqldb.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() { _ = sqldb.Close(db) }()
	if err := sqldb.Migrate(ctx, db, log, migrationsFor(c)...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func describeMeta(d *openapi.Doc) {
	d.Add(
		openapi.Op{Method: "GET", Path: "/healthz", Summary: "Liveness: 200 while the process runs", Tag: "meta"},
		openapi.Op{Method: "GET", Path: "/readyz", Summary: "Readiness: 200 when the database and NATS answer, else 503 naming the failure", Tag: "meta"},
		openapi.Op{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics", Tag: "meta"},
		openapi.Op{Method: "GET", Path: "/api/openapi.json", Summary: "This document", Tag: "meta"},
	)
}

// remoteAPITokens verifies API tokens with identity over NATS when identity runs in another process.
type remoteAPITokens struct {
	bus *eventbus.Bus
	// timeout bounds identity's answer (3 s when zero).
	timeout time.Duration
}

func (r remoteAPITokens) Authenticate(ctx context.Context, token string) (web.Principal, error) {
	timeout := r.timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := eventbus.Call(ctx, r.bus, events.TokenVerify, events.TokenVerifyV1{Token: token})
	if err != nil {
		// Identity's answer (a problem below 500) says the token is bad; anything else (no responder, a timeout, a
		// closed connection, identity's own failure) says nothing about the token: 503, and the client retries.
		if pr, ok := problem.From(err); ok && pr.Status < 500 {
			return web.Principal{}, web.ErrBadToken
		}
		return web.Principal{}, web.ErrAuthUnavailable
	}
	return web.Principal{UserID: p.UserID, Email: p.Email, OrgID: p.OrgID, OrgKind: p.OrgKind, Role: p.Role,
		Staff: p.Staff, TokenID: p.TokenID, APIToken: true, Scopes: p.Scopes, EmailVerified: p.EmailVerified}, nil
}

// loopbackURL is this process's own listener as a client on this host reaches it (the embedded agent fetching
// artifacts from the marketplace's signed blob route).
func loopbackURL(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && (ta.IP.IsUnspecified() || ta.IP == nil) {
		return fmt.Sprintf("http://127.0.0.1:%d", ta.Port)
	}
	return "http://" + a.String()
}
