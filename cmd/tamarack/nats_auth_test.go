package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
	"github.com/tamarack-ai/tamarack/platform/natsauth/natsauthtest"
	"github.com/tamarack-ai/tamarack/services/events"
)

// TestServeRunsTheEmbeddedNATSInOperatorMode: the default serve generates its keys, refuses clients without
// credentials on its listener, leaves local tools their credentials, and issues agents users that reach only
// their pool and can be revoked.
func TestServeRunsTheEmbeddedNATSInOperatorMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newTestServer(t, "--nats-listen", "127.0.0.1:0")
	data := s.e.cfg.Data
	for name, mode := range map[string]os.FileMode{"nats-auth/account.nk": 0o600, "nats-auth/platform.creds": 0o600} {
		if fi, err := os.Stat(filepath.Join(data, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v (want mode %v)", name, err, mode)
		}
	}
	b, err := os.ReadFile(filepath.Join(data, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(string(b))
	if nc, err := nats.Connect(url, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("the embedded NATS listener took a client without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("want an authorization violation, got %v", err)
	}

	// `tamarack events` finds the server and its credentials in the data directory.
	u := events.SandboxUsageV1{SandboxID: "sb1", OrganizationID: "o1", DeviceCount: 1, Seq: 1,
		Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 1, 1, 0, 0, 15, 0, time.UTC), Millis: 15000}
	if err := eventbus.Publish(ctx, s.e.bus, events.SandboxUsage, "test", "sb1-1", u.End, u); err != nil {
		t.Fatal(err)
	}
	c := newConfig("events")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--data", data}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := eventsCmd(ctx, c, events.StreamTestbed, "", 1, false, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"id":"sb1-1"`) {
		t.Fatalf("tamarack events printed:\n%s", out.String())
	}

	// An agent issued with the server's keys reaches its pool only, until it is revoked.
	if s.e.natsKeys == nil {
		t.Fatal("serve holds no NATS keys")
	}
	scope := natsauth.Scope{PoolID: "p1", AgentID: "a1"}
	ac, err := s.e.natsKeys.AgentCreds(scope)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	closed := make(chan struct{})
	agent, err := nats.Connect(url, nats.UserJWTAndSeed(ac.JWT, ac.Seed), nats.CustomInboxPrefix(scope.InboxPrefix()), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	if _, err := agent.Subscribe(events.SandboxUsage.Name, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("want a permission violation, got %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the agent subscribed to the platform's usage events")
	}
	if _, err := s.e.natsKeys.Revoke(ac.User); err != nil {
		t.Fatal(err)
	}
	if err := pushNATSAccount(ctx, s.e.bus, s.e.natsKeys); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the revoked agent is still connected")
	}
}

// TestNATSAuthInitAndItsSettings: `nats-auth init` writes what an operator needs, once; the settings that use it
// are checked as a whole.
func TestNATSAuthInitAndItsSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats-auth")
	var out bytes.Buffer
	if err := run([]string{"nats-auth", "init", "--dir", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"include \"" + filepath.Join(dir, "server.conf") + "\"", "TAMARACK_NATS_AUTH_DIR=" + dir} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("init's instructions lack %q:\n%s", want, out.String())
		}
	}
	conf, err := os.ReadFile(filepath.Join(dir, "server.conf"))
	if err != nil || !strings.Contains(string(conf), "type: full") || !strings.Contains(string(conf), filepath.Join(dir, "jwt")) {
		t.Fatalf("server.conf: %v\n%s", err, conf)
	}
	if fi, err := os.Stat(filepath.Join(dir, "platform.creds")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("platform.creds: %v", err)
	}
	if err := run([]string{"nats-auth", "init", "--dir", dir}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("a second init over the keys: %v", err)
	}

	notCreds := filepath.Join(t.TempDir(), "x.creds")
	if err := os.WriteFile(notCreds, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string // "" when valid
	}{
		{[]string{"--nats", "nats://127.0.0.1:4222", "--nats-auth-dir", dir}, ""},
		{[]string{"--nats", "nats://127.0.0.1:4222", "--nats-creds", filepath.Join(dir, "platform.creds")}, ""},
		{[]string{"--nats", "nats://127.0.0.1:4222"}, ""},
		{[]string{"--nats-creds", filepath.Join(dir, "platform.creds")}, "--nats-creds is for an external server"},
		{[]string{"--nats-auth-dir", dir}, "--nats-auth-dir is for an external server"},
		{[]string{"--nats", "nats://127.0.0.1:4222", "--nats-auth-dir", t.TempDir()}, "nats-auth init"},
		{[]string{"--nats", "nats://127.0.0.1:4222", "--nats-creds", notCreds}, "not a NATS .creds file"},
	} {
		var out bytes.Buffer
		err := run(append([]string{"serve", "--check-config", "--data", data}, tc.args...), &out, io.Discard)
		if tc.want == "" && err != nil {
			t.Errorf("%v: %v", tc.args, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// TestServeOnAnExternalServerInOperatorMode: serve runs on a nats-server configured by `nats-auth init`, pushes
// its account at start, and tools connect with platform.creds; keys the server does not trust stop the start
// with a sentence.
func TestServeOnAnExternalServerInOperatorMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := t.TempDir()
	dir := filepath.Join(base, "nats-auth")
	if err := run([]string{"nats-auth", "init", "--dir", dir}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(base, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("include %q\n", "nats-auth/server.conf")), 0o644); err != nil {
		t.Fatal(err)
	}
	url, _ := natsauthtest.Run(t, conf, filepath.Join(base, "store"))

	s := newTestServer(t, "--nats", url, "--nats-auth-dir", dir)
	resp, err := s.e.app.Test(httptest.NewRequest("GET", "/readyz", nil), -1)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	u := events.SandboxUsageV1{SandboxID: "sb1", OrganizationID: "o1", DeviceCount: 1, Seq: 1,
		Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 1, 1, 0, 0, 15, 0, time.UTC), Millis: 15000}
	if err := eventbus.Publish(ctx, s.e.bus, events.SandboxUsage, "test", "sb1-1", u.End, u); err != nil {
		t.Fatal(err)
	}
	c := newConfig("events")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--data", t.TempDir(), "--nats", url, "--nats-creds", filepath.Join(dir, "platform.creds")}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := eventsCmd(ctx, c, events.StreamTestbed, "", 1, false, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"id":"sb1-1"`) {
		t.Fatalf("tamarack events printed:\n%s", out.String())
	}

	// Keys or credentials the server does not take, or none: serve names the setting at fault.
	other := filepath.Join(base, "other")
	if err := run([]string{"nats-auth", "init", "--dir", other}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-creds", filepath.Join(dir, "platform.creds"), "--nats-auth-dir", other}, "--nats-auth-dir " + other},
		{[]string{"--nats-auth-dir", other}, "--nats-auth-dir " + other},
		{[]string{"--nats-creds", filepath.Join(other, "platform.creds")}, "--nats-creds " + filepath.Join(other, "platform.creds")},
		{nil, "give --nats-creds or --nats-auth-dir"},
	} {
		c := newConfig("test")
		c.fs.SetOutput(io.Discard)
		if err := c.parse(append([]string{"--data", t.TempDir(), "--nats", url, "--log-level", "error", "--sandbox-backend", "simulator"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if srv, err := build(ctx, c); err == nil {
			srv.close()
			t.Errorf("%v: serve started with credentials the NATS server does not take", tc.args)
		} else if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%v: want an authorization error naming %q, got %v", tc.args, tc.want, err)
		}
	}
}
