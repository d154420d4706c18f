// Package eventbus is Tamarack's only door to NATS: it embeds a JetStream server or connects to a cluster,
// declares streams, publishes and consumes typed events in a CloudEvents envelope, relays each service's
// transactional outbox, and carries typed request/reply. It holds no domain knowledge: subjects and payloads
// are declared in services/events.
package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure Connect.
type Options struct {
	// URL of an external NATS server or cluster (comma-separated). Empty starts an embedded server.
	URL string
	// DataDir holds the embedded server's JetStream store (ignored with URL).
	DataDir string
	// Listen is the embedded server's client address, e.g. "127.0.0.1:4222"; "" keeps it in-process only,
	// "127.0.0.1:0" picks a free port. Ignored with URL.
	Listen string
	// Prefix namespaces every subject, stream and durable name (tests use it to share one real server).
	Prefix string
	// Replicas of each stream (1 embedded; 3 on a cluster).
	Replicas int
	// Name identifies the connection to the server.
	Name string
	// Creds is the path of a NATS .creds file (user JWT and nkey seed) to connect with.
	Creds string
	// UserJWT and UserSeed are credentials held in memory, instead of Creds (an embedded server's own user).
	UserJWT, UserSeed string
	// AgentOnly is for a site agent's connection: a user allowed only its own subjects, no JetStream API, so
	// Connect does not ask the server about JetStream (the agent only publishes into streams the platform
	// declared) and Ping only checks the connection.
	AgentOnly bool
	// InboxPrefix replaces _INBOX as the prefix of reply subjects, for a user that may subscribe only to its own.
	InboxPrefix string
	// ConfigureServer adjusts the embedded server's options before it starts, e.g. authentication
	// (natsauth.Keys.Apply). Ignored with URL.
	ConfigureServer func(*server.Options) error
	Logger          *slog.Logger
	Registry        prometheus.Registerer
}

// Bus is a connection to NATS JetStream, with the embedded server when there is one.
type Bus struct {
	url      string // the server's client URL (the embedded one's, even when it does not listen)
	nc       *nats.Conn
	js       jetstream.JetStream
	srv      *server.Server
	prefix   string
	replicas int
	log      *slog.Logger
	metrics  *metrics
	// agentOnly: a site agent's connection, without the JetStream API (Options.AgentOnly).
	agentOnly bool
}

// Connect starts the embedded server or dials the external one, and opens JetStream.
func Connect(ctx context.Context, opt Options) (*Bus, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{prefix: opt.Prefix, replicas: max(opt.Replicas, 1), log: log, metrics: newMetrics(opt.Registry)}
	name := opt.Name
	if name == "" {
		name = "tamarack"
	}
	nopts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrl()) }),
	}
	switch {
	case opt.Creds != "" && opt.UserJWT != "":
		return nil, errors.New("nats: give either a creds file or a JWT and seed, not both")
	case opt.Creds != "":
		nopts = append(nopts, nats.UserCredentials(opt.Creds))
	case opt.UserJWT != "":
		nopts = append(nopts, nats.UserJWTAndSeed(opt.UserJWT, opt.UserSeed))
	}
	if opt.InboxPrefix != "" {
		nopts = append(nopts, nats.CustomInboxPrefix(opt.InboxPrefix))
	}
	url := opt.URL
	if url == "" {
		srv, err := startEmbedded(opt)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		url = srv.ClientURL()
		nopts = append(nopts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	b.url, b.nc = url, nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	b.js = js
	if opt.AgentOnly {
		b.agentOnly = true
		return b, nil
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream is not enabled on %s: %w", url, err)
	}
	return b, nil
}

func startEmbedded(opt Options) (*server.Server, error) {
	dir := opt.DataDir
	if dir == "" {
		return nil, errors.New("embedded nats: no data directory")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	sopts := &server.Options{
		ServerName: "tamarack-embedded",
		JetStream:  true,
		StoreDir:   filepath.Clean(dir),
		NoSigs:     true,
		NoLog:      true,
		DontListen: opt.Listen == "",
		// Sandboxes can publish bursts; the default 1 MB payload is ample, but pending must not stall.
		MaxPending: 256 << 20,
	}
	if opt.Listen != "" {
		host, port, err := splitHostPort(opt.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats listen address: %w", err)
		}
		sopts.Host, sopts.Port = host, port
	}
	if opt.ConfigureServer != nil {
		if err := opt.ConfigureServer(sopts); err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats did not become ready")
	}
	return srv, nil
}

// ClientURL is the embedded server's listening address ("" when in-process only or external).
func (b *Bus) ClientURL() string {
	if b.srv == nil || b.srv.Addr() == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Conn exposes the core NATS connection (request/reply, tests).
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Dial opens another connection to the bus's server (in-process to an embedded one, which need not listen),
// with opts alone: typically other credentials, such as a system-account user's or an in-process agent's. The
// caller closes it.
func (b *Bus) Dial(name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.Name(name)}
	if b.srv != nil {
		base = append(base, nats.InProcessServer(b.srv))
	}
	nc, err := nats.Connect(b.url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", b.url, err)
	}
	return nc, nil
}

// JetStream exposes the JetStream context (tools, tests).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Prefix is the bus prefix of every subject ("" in production).
func (b *Bus) Prefix() string { return b.prefix }

// Subject returns the on-the-wire name of a declared subject, with the bus prefix.
func (b *Bus) Subject(name string) string {
	if b.prefix == "" {
		return name
	}
	return b.prefix + "." + name
}

// StreamName returns the on-the-wire name of a declared stream, with the bus prefix.
func (b *Bus) StreamName(name string) string {
	if b.prefix == "" {
		return name
	}
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(b.prefix)) + "_" + name
}

// Ping checks the connection (for /readyz).
func (b *Bus) Ping(ctx context.Context) error {
	if b.nc == nil || !b.nc.IsConnected() {
		return errors.New("nats not connected")
	}
	if b.agentOnly {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := b.js.AccountInfo(ctx)
	return err
}

// Drain flushes pending publishes and closes the connection gracefully, then stops an embedded server.
func (b *Bus) Drain(ctx context.Context) {
	if b.js != nil {
		select {
		case <-b.js.PublishAsyncComplete():
		case <-ctx.Done():
		}
	}
	if b.nc != nil {
		_ = b.nc.Drain()
		for b.nc.IsDraining() && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		b.nc.Close()
	}
	b.shutdownServer()
}

// Close closes at once (tests, failed start-up).
func (b *Bus) Close() {
	if b.nc != nil {
		b.nc.Close()
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// Stream declares one service's stream: the event subjects it captures. Request/reply subjects must not be
// listed, or JetStream would answer the requests itself.
type Stream struct {
	Name     string
	Subjects []string
	// MaxAge bounds retention; zero keeps events 30 days.
	MaxAge time.Duration
}

// EnsureStreams creates or updates each stream.
func (b *Bus) EnsureStreams(ctx context.Context, streams ...Stream) error {
	for _, s := range streams {
		subs := make([]string, len(s.Subjects))
		for i, n := range s.Subjects {
			subs[i] = b.Subject(n)
		}
		age := s.MaxAge
		if age == 0 {
			age = 30 * 24 * time.Hour
		}
		cfg := jetstream.StreamConfig{
			Name:       b.StreamName(s.Name),
			Subjects:   subs,
			Storage:    jetstream.FileStorage,
			Replicas:   b.replicas,
			MaxAge:     age,
			Duplicates: 2 * time.Minute,
		}
		if err := b.ensureStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", s.Name, err)
		}
	}
	return nil
}

// ensureStream retries: on a fresh cluster several processes create the same streams at once while the
// meta leader is still being elected, and single attempts time out although the server gets there.
func (b *Bus) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	var err error
	for attempt := 0; attempt < 12; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = b.js.CreateOrUpdateStream(actx, cfg)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		b.log.Warn("stream not ready; retrying", "stream", cfg.Name, "attempt", attempt+1, "err", err)
		if WaitOrDone(ctx, time.Duration(attempt+1)*250*time.Millisecond) {
			return err
		}
	}
	return err
}

// DeleteStreams removes the prefixed streams (tests against a shared server clean up with it).
func (b *Bus) DeleteStreams(ctx context.Context, names ...string) {
	for _, n := range names {
		_ = b.js.DeleteStream(ctx, b.StreamName(n))
	}
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("%q has no port", addr)
	}
	var port int
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &port); err != nil {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return addr[:i], port, nil
}
