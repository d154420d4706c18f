package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
)

// NATS runs in operator mode (platform/natsauth): every client is a user of the TAMARACK account, so site
// agents can be given credentials that reach only their pool's subjects. The embedded server generates its keys
// in <data>/nats-auth at its first start; an external server is set up with `tamarack nats-auth init`.

// embeddedAuthDir holds the embedded server's operator keys and the platform's credentials for local tools.
func (c *config) embeddedAuthDir() string { return filepath.Join(c.Data, "nats-auth") }

// embeddedCredsFile is what `tamarack events`, `seed` and other tools connect to a running embedded server
// with (beside <data>/nats.url).
func (c *config) embeddedCredsFile() string {
	return filepath.Join(c.embeddedAuthDir(), "platform.creds")
}

// natsKeys loads the operator keys this process holds: the embedded server's (generated at its first start),
// or --nats-auth-dir's for an external server; nil for an external server without them.
func natsKeys(c *config, log *slog.Logger) (*natsauth.Keys, error) {
	if c.NATS == "" {
		k, created, err := natsauth.LoadOrGenerate(c.embeddedAuthDir())
		if err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
		if created {
			log.Info("generated the embedded NATS server's operator keys", "dir", c.embeddedAuthDir())
		}
		return k, nil
	}
	if c.NATSAuthDir != "" {
		return natsauth.Load(c.NATSAuthDir)
	}
	return nil, nil
}

// busOptions are the bus settings of c: the embedded server in operator mode with keys, or the external one with
// --nats-creds, else a platform user issued with keys, else no credentials.
func busOptions(c *config, keys *natsauth.Keys) (eventbus.Options, error) {
	opt := eventbus.Options{URL: c.NATS, DataDir: filepath.Join(c.Data, "nats"), Listen: c.NATSListen,
		Replicas: c.Replicas, Name: "tamarack-" + c.Only}
	if c.NATS == "" {
		if keys == nil {
			return opt, errors.New("embedded nats: no operator keys")
		}
		opt.ConfigureServer = keys.Apply
	}
	switch {
	case c.NATSCreds != "":
		opt.Creds = c.NATSCreds
	case keys != nil:
		pc, err := keys.PlatformCreds()
		if err != nil {
			return opt, fmt.Errorf("nats platform credentials: %w", err)
		}
		opt.UserJWT, opt.UserSeed = pc.JWT, pc.Seed
	}
	return opt, nil
}

// explainNATSRefusal names the credentials an external server refused, and the setting they came from.
func explainNATSRefusal(c *config, err error) error {
	if c.NATS == "" || (!errors.Is(err, nats.ErrAuthorization) && !errors.Is(err, nats.ErrAuthRevoked)) {
		return err
	}
	switch {
	case c.NATSCreds != "":
		return fmt.Errorf("%w: the server refuses --nats-creds %s", err, c.NATSCreds)
	case c.NATSAuthDir != "":
		return fmt.Errorf("%w: the server does not trust the keys of --nats-auth-dir %s (start it with that directory's server.conf)", err, c.NATSAuthDir)
	}
	return fmt.Errorf("%w: the server requires credentials: give --nats-creds or --nats-auth-dir (`tamarack nats-auth init`)", err)
}

// runningCreds is the credentials file of the running embedded server whose URL is in <data>/nats.url; ""
// when it wrote none (a server of a version without authentication).
func runningCreds(c *config) string {
	if _, err := os.Stat(c.embeddedCredsFile()); err != nil {
		return ""
	}
	return c.embeddedCredsFile()
}

// publishEmbeddedNATS writes what local tools need to reach the embedded server: a platform user's
// credentials (0600), then its URL.
func publishEmbeddedNATS(c *config, keys *natsauth.Keys, url string) error {
	pc, err := keys.PlatformCreds()
	if err != nil {
		return err
	}
	if err := pc.WriteFile(c.embeddedCredsFile()); err != nil {
		return fmt.Errorf("write the platform's NATS credentials: %w", err)
	}
	return os.WriteFile(filepath.Join(c.Data, "nats.url"), []byte(url+"\n"), 0o640)
}

// pushNATSAccount sends the TAMARACK account's current claims (every revocation so far) to the server, as a
// system-account user. After keys.Revoke it cuts the revoked user off; at start it makes sure an external
// server refuses every user revoked so far, and that it trusts these keys at all.
func pushNATSAccount(ctx context.Context, bus *eventbus.Bus, keys *natsauth.Keys) error {
	sys, err := keys.SystemCreds()
	if err != nil {
		return err
	}
	nc, err := bus.Dial("tamarack-system", nats.UserJWTAndSeed(sys.JWT, sys.Seed))
	if err != nil {
		return fmt.Errorf("nats system account: %w", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return natsauth.PushAccount(ctx, nc, keys.AccountJWT())
}

// natsAuthCmd runs `tamarack nats-auth init --dir D`: operator keys for an external NATS server, the server
// configuration that trusts them, and the platform's credentials.
func natsAuthCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "init" {
		return errors.New("usage: tamarack nats-auth init --dir DIR [--jwt-dir DIR]")
	}
	fs := flag.NewFlagSet("nats-auth init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the keys (created 0700), server.conf and platform.creds")
	jwtDir := fs.String("jwt-dir", "", "where nats-server keeps account claims and their updates (its `full` resolver); default <dir>/jwt")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: tamarack nats-auth init --dir DIR [--jwt-dir DIR]\n\nGenerate operator keys for an external NATS server and the configuration that trusts them.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("nats-auth init: --dir is required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if natsauth.Exists(abs) {
		return fmt.Errorf("nats-auth init: %s already holds keys; remove it to start over (every agent must then enrol again)", abs)
	}
	if *jwtDir == "" {
		*jwtDir = filepath.Join(abs, "jwt")
	}
	keys, err := natsauth.Generate()
	if err != nil {
		return err
	}
	if err := keys.Save(abs); err != nil {
		return err
	}
	conf := filepath.Join(abs, "server.conf")
	if err := os.WriteFile(conf, []byte(keys.ServerConfig(*jwtDir)), 0o644); err != nil {
		return err
	}
	pc, err := keys.PlatformCreds()
	if err != nil {
		return err
	}
	creds := filepath.Join(abs, "platform.creds")
	if err := pc.WriteFile(creds); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `NATS operator keys are in %[1]s (keep it with the platform: it can mint any user).

1. Include the generated settings in nats-server's configuration, with JetStream:

     include %[2]q
     jetstream { store_dir: "/var/lib/nats" }

   and start it: nats-server -c nats.conf   (%[3]s keeps account updates: revocations)

2. Run the platform against it, with the keys (they issue and revoke site agents' credentials):

     TAMARACK_NATS=nats://HOST:4222 TAMARACK_NATS_AUTH_DIR=%[1]s tamarack serve

   Processes that issue no agent credentials may take the platform's user alone:
     TAMARACK_NATS_CREDS=%[4]s
`, abs, conf, *jwtDir, creds)
	return nil
}
