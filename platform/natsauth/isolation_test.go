package natsauth_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
	"github.com/tamarack-ai/tamarack/platform/natsauth/natsauthtest"
)

// target is a NATS server in operator mode with the test's keys, and the platform's bus on it.
type target struct {
	name string
	// start (re)starts the server with the keys in dir, keeping its store, and connects the platform.
	start func(t *testing.T, dir, prefix string) running
	// keepsPushes: a pushed account update outlives a restart of the server (not so with the MEMORY resolver).
	keepsPushes bool
}

func targets() []target {
	return []target{
		{name: "embedded", start: startEmbedded, keepsPushes: true},
		{name: "nats-server-full-resolver", start: startNATSServer(true), keepsPushes: true},
		{name: "nats-server-memory-resolver", start: startNATSServer(false), keepsPushes: false},
	}
}

// TestAgentReachesOnlyItsPool: agents publish into the platform's stream and answer its requests on their own
// subjects, and the server refuses everything else; a revoked agent is cut off at once and stays out.
func TestAgentReachesOnlyItsPool(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			testAgentIsolation(t, tg)
		})
	}
}

func testAgentIsolation(t *testing.T, tg target) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "nats-auth")
	keys, _, err := natsauth.LoadOrGenerate(dir)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "t" + randomHex(4)
	srv := tg.start(t, dir, prefix)
	url, bus := srv.url, srv.bus

	// The platform user declares a stream over every agent's events (not its command subjects, which JetStream
	// would answer itself), publishes and reads back.
	if err := bus.EnsureStreams(ctx, eventbus.Stream{Name: "AGENTS", Subjects: []string{natsauth.AgentRoot + ".*.*.events.>"}}); err != nil {
		t.Fatal(err)
	}
	stream := bus.StreamName("AGENTS")
	if _, err := bus.JetStream().Publish(ctx, bus.Subject(natsauth.AgentRoot+".p1.a1.events.hello"), []byte("from the platform")); err != nil {
		t.Fatal(err)
	}
	cons, err := bus.JetStream().OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second)); err != nil || string(m.Data()) != "from the platform" {
		t.Fatalf("platform read back: %v", err)
	}

	a1 := natsauth.Scope{Prefix: prefix, PoolID: "p1", AgentID: "a1"}
	credsA1, err := keys.AgentCreds(a1)
	if err != nil {
		t.Fatal(err)
	}
	agentA := connectAgent(t, url, credsA1, a1)
	b1 := natsauth.Scope{Prefix: prefix, PoolID: "p2", AgentID: "b1"}
	credsB1, err := keys.AgentCreds(b1)
	if err != nil {
		t.Fatal(err)
	}
	agentB := connectAgent(t, url, credsB1, b1)

	t.Run("publishes into the platform's stream and gets its PubAck", func(t *testing.T) {
		js, err := jetstream.New(agentA.nc)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(ctx, a1.Root()+".events.usage", []byte(`{"seq":1}`), jetstream.WithMsgID("a1-1"))
		if err != nil {
			t.Fatalf("agent's JetStream publish: %v", err)
		}
		if ack.Stream != stream {
			t.Fatalf("PubAck from stream %q, want %q", ack.Stream, stream)
		}
	})

	t.Run("answers the platform's requests on its subjects", func(t *testing.T) {
		sub, err := agentA.nc.Subscribe(a1.Root()+".cmd", func(m *nats.Msg) { _ = m.Respond([]byte("pong:" + string(m.Data))) })
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := agentA.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, err := bus.Conn().RequestWithContext(rctx, a1.Root()+".cmd", []byte("ping"))
		if err != nil || string(m.Data) != "pong:ping" {
			t.Fatalf("request to the agent: %v", err)
		}
	})

	t.Run("is refused everything else", func(t *testing.T) {
		for _, tc := range []struct {
			what, subject string
			do            func(subject string) error
		}{
			{"publish another pool's usage", bus.Subject(natsauth.AgentRoot + ".p2.b1.events.usage"), agentA.publish},
			{"publish another agent's usage in its pool", bus.Subject(natsauth.AgentRoot + ".p1.a2.events.usage"), agentA.publish},
			{"publish a platform event", bus.Subject("tamarack.testbed.sandbox.usage.v1"), agentA.publish},
			{"subscribe to another pool", bus.Subject(natsauth.AgentRoot + ".p2.>"), agentA.subscribe},
			{"subscribe to every agent", bus.Subject(natsauth.AgentRoot + ".>"), agentA.subscribe},
			{"subscribe to platform events", bus.Subject("tamarack.testbed.>"), agentA.subscribe},
			{"subscribe to everything", ">", agentA.subscribe},
			{"subscribe to others' inboxes", "_INBOX.>", agentA.subscribe},
			{"subscribe to another agent's inboxes", b1.InboxPrefix() + ".>", agentA.subscribe},
			{"list streams", "$JS.API.STREAM.LIST", agentA.request},
			{"read account info", "$JS.API.INFO", agentA.publish},
			{"read the stream", "$JS.API.STREAM.MSG.GET." + stream, agentA.publish},
		} {
			t.Run(tc.what, func(t *testing.T) {
				_ = tc.do(tc.subject) // the refusal is asynchronous: the server answers with -ERR
				agentA.waitViolation(t, tc.subject)
			})
		}
		// Nothing refused reached the stream: the platform's message and agent a1's own.
		info, err := bus.JetStream().Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := info.Info(ctx); err != nil || st.State.Msgs != 2 {
			t.Fatalf("stream holds %d messages, want 2: %v", st.State.Msgs, err)
		}
		if !agentA.nc.IsConnected() {
			t.Fatal("a permission violation disconnected the agent")
		}
	})

	t.Run("revoked, is cut off and stays out", func(t *testing.T) {
		accountJWT, err := keys.Revoke(credsA1.User)
		if err != nil {
			t.Fatal(err)
		}
		pushAccount(ctx, t, bus, keys, accountJWT)
		agentA.waitClosed(t)
		if err := refused(url, credsA1, a1); err != nil {
			t.Fatal(err)
		}
		if err := agentB.nc.FlushWithContext(ctx); err != nil || !agentB.nc.IsConnected() {
			t.Fatalf("the other pool's agent lost its connection: %v", err)
		}
		if err := bus.Ping(ctx); err != nil {
			t.Fatalf("the platform lost its connection: %v", err)
		}

		// Restart the server from the keys directory (the embedded one re-reads it; nats-server its config and
		// its resolver's directory).
		agentB.nc.Close()
		srv.stop()
		srv = tg.start(t, dir, prefix)
		url, bus = srv.url, srv.bus
		if !tg.keepsPushes {
			// MEMORY resolver: back to the preloaded claims until the platform pushes again.
			if err := refused(url, credsA1, a1); err == nil {
				t.Fatal("the MEMORY resolver kept a pushed revocation over a restart: update the documentation")
			}
			pushAccount(ctx, t, bus, keys, keys.AccountJWT())
		}
		if err := refused(url, credsA1, a1); err != nil {
			t.Fatalf("after a restart: %v", err)
		}
		if b := connectAgent(t, url, credsB1, b1); !b.nc.IsConnected() {
			t.Fatal("the other agent cannot reconnect")
		}
	})
}

// TestApplyKeepsTheStoreOfAnUnauthenticatedServer: switching an embedded server's data directory to operator
// mode keeps its streams and their messages.
func TestApplyKeepsTheStoreOfAnUnauthenticatedServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := t.TempDir()
	open := func(opt eventbus.Options) *eventbus.Bus {
		opt.DataDir = data
		b, err := eventbus.Connect(ctx, opt)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := open(eventbus.Options{})
	if err := plain.EnsureStreams(ctx, eventbus.Stream{Name: "KEEP", Subjects: []string{"keep.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.JetStream().Publish(ctx, "keep.me", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	plain.Close()

	keys, err := natsauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := keys.PlatformCreds()
	authed := open(eventbus.Options{ConfigureServer: keys.Apply, UserJWT: pc.JWT, UserSeed: pc.Seed})
	defer authed.Close()
	s, err := authed.JetStream().Stream(ctx, "KEEP")
	if err != nil {
		t.Fatalf("the stream did not follow the switch to operator mode: %v", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "keep.me")
	if err != nil || string(m.Data) != "still here" {
		t.Fatalf("message: %v", err)
	}
}

func TestEmbeddedServerRefusesConnectionsWithoutCredentials(t *testing.T) {
	t.Parallel()
	keys, err := natsauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	url := startEmbeddedKeys(t, keys, t.TempDir(), "").url
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("want an authorization violation, got %v", err)
	}
	// A user of another operator's account is refused too.
	other, _ := natsauth.Generate()
	oc, _ := other.PlatformCreds()
	if nc, err := nats.Connect(url, nats.UserJWTAndSeed(oc.JWT, oc.Seed)); err == nil {
		nc.Close()
		t.Fatal("connected with another operator's user")
	}
}

// agentConn is an agent's connection that collects the server's asynchronous errors.
type agentConn struct {
	nc     *nats.Conn
	errs   chan error
	closed chan struct{}
}

func connectAgent(t *testing.T, url string, c natsauth.Creds, s natsauth.Scope) *agentConn {
	t.Helper()
	file := filepath.Join(t.TempDir(), "agent.creds")
	if err := c.WriteFile(file); err != nil {
		t.Fatal(err)
	}
	a := &agentConn{errs: make(chan error, 64), closed: make(chan struct{})}
	nc, err := nats.Connect(url, nats.UserCredentials(file), nats.CustomInboxPrefix(s.InboxPrefix()), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case a.errs <- err:
			default:
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(a.closed) }))
	if err != nil {
		t.Fatalf("agent %s connects: %v", s.AgentID, err)
	}
	a.nc = nc
	t.Cleanup(nc.Close)
	return a
}

func (a *agentConn) publish(subject string) error { return a.nc.Publish(subject, []byte("x")) }

// request publishes a request the way the JetStream API is called, with a reply inbox.
func (a *agentConn) request(subject string) error {
	return a.nc.PublishRequest(subject, a.nc.NewRespInbox(), nil)
}

func (a *agentConn) subscribe(subject string) error {
	_, err := a.nc.Subscribe(subject, func(*nats.Msg) {})
	return err
}

// waitViolation waits for the server's permission violation naming subject.
func (a *agentConn) waitViolation(t *testing.T, subject string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case err := <-a.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), fmt.Sprintf("%q", subject)) {
				return
			}
		case <-deadline:
			t.Fatalf("no permission violation for %q", subject)
		}
	}
}

func (a *agentConn) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-a.closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the revoked agent's connection is still open")
	}
}

// refused returns nil when the server refuses the agent's credentials.
func refused(url string, c natsauth.Creds, s natsauth.Scope) error {
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(c.JWT, c.Seed), nats.CustomInboxPrefix(s.InboxPrefix()), nats.NoReconnect())
	if err == nil {
		nc.Close()
		return errors.New("the revoked agent connected")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !errors.Is(err, nats.ErrAuthRevoked) {
		return fmt.Errorf("want an authorization error, got %w", err)
	}
	return nil
}

func pushAccount(ctx context.Context, t *testing.T, bus *eventbus.Bus, keys *natsauth.Keys, accountJWT string) {
	t.Helper()
	sys, err := keys.SystemCreds()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Dial("test-system", nats.UserJWTAndSeed(sys.JWT, sys.Seed))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := natsauth.PushAccount(pctx, nc, accountJWT); err != nil {
		t.Fatal(err)
	}
}

// running is a started server and the platform's bus on it.
type running struct {
	url  string
	bus  *eventbus.Bus
	stop func()
}

func startEmbedded(t *testing.T, dir, prefix string) running {
	t.Helper()
	keys, err := natsauth.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return startEmbeddedKeys(t, keys, filepath.Join(filepath.Dir(dir), "store"), prefix)
}

func startEmbeddedKeys(t *testing.T, keys *natsauth.Keys, store, prefix string) running {
	t.Helper()
	pc, err := keys.PlatformCreds()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := eventbus.Connect(ctx, eventbus.Options{DataDir: store, Listen: "127.0.0.1:0", Prefix: prefix, Name: "test-platform",
		ConfigureServer: keys.Apply, UserJWT: pc.JWT, UserSeed: pc.Seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return running{url: b.ClientURL(), bus: b, stop: b.Close}
}

// startNATSServer runs the nats-server binary on the configuration `tamarack nats-auth init` writes, with the
// full resolver or the MEMORY one, and connects the platform with a .creds file.
func startNATSServer(full bool) func(t *testing.T, dir, prefix string) running {
	return func(t *testing.T, dir, prefix string) running {
		t.Helper()
		keys, err := natsauth.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		url, stop := natsauthtest.Start(t, keys, filepath.Join(filepath.Dir(dir), "server"), full)
		pc, err := keys.PlatformCreds()
		if err != nil {
			t.Fatal(err)
		}
		creds := filepath.Join(dir, "platform.creds")
		if err := pc.WriteFile(creds); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := eventbus.Connect(ctx, eventbus.Options{URL: url, Prefix: prefix, Name: "test-platform", Creds: creds})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return running{url: url, bus: b, stop: func() { b.Close(); stop() }}
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
