package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/openapi"
)

// newTestServer builds the whole platform in one process on a temporary data directory.
func newTestServer(t *testing.T, args ...string) *server {
	t.Helper()
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse(append([]string{"--data", t.TempDir(), "--nats-listen", "", "--log-level", "error", "--sandbox-backend", "simulator", "--ssh-addr", "127.0.0.1:0"}, args...)); err != nil {
		t.Fatal(err)
	}
	s, err := build(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// Every route the app serves is described in /api/openapi.json.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	s := newTestServer(t)
	if missing := openapi.Missing(s.e.app, s.e.doc); len(missing) > 0 {
		t.Fatalf("routes missing from the OpenAPI document:\n%v", missing)
	}
	resp, err := s.e.app.Test(httptest.NewRequest("GET", "/api/openapi.json", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("document: %v %v", err, doc["openapi"])
	}
}

func TestReadyAndUnknownRoutes(t *testing.T) {
	s := newTestServer(t)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/api/v1/nope": 404} {
		resp, err := s.e.app.Test(httptest.NewRequest("GET", path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestConfigListsEveryError(t *testing.T) {
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	err := c.parse([]string{"--addr", "nope", "--only", "identity,bogus", "--log-format", "xml", "--stripe-key", "pk_live_x", "--usage-interval", "1ms", "--registry-listen", "0.0.0.0:5000", "--trusted-proxies", "10.0.0.0/8,proxy.local"})
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"--addr", "bogus", "--log-format", "--stripe-key", "--usage-interval", "--registry-listen", "proxy.local"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	c = newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--only", "marketplace"}); err == nil || !strings.Contains(err.Error(), "--identity-url") {
		t.Errorf("split service without identity must ask for --identity-url: %v", err)
	}
}

// TestConfigTrustedProxies: no proxy is trusted by default; TAMARACK_TRUSTED_PROXIES lists them.
func TestConfigTrustedProxies(t *testing.T) {
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse(nil); err != nil || len(c.trustedProxies) != 0 {
		t.Fatalf("default: %v %v", c.trustedProxies, err)
	}
	t.Setenv("TAMARACK_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7")
	c = newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse(nil); err != nil || fmt.Sprint(c.trustedProxies) != "[10.0.0.0/8 192.0.2.7/32]" {
		t.Fatalf("from the environment: %v %v", c.trustedProxies, err)
	}
}

// TestConfigRefusesUnparsableEnvironment: a TAMARACK_* value that does not parse is an error like the flag,
// unless the flag overrides it.
func TestConfigRefusesUnparsableEnvironment(t *testing.T) {
	t.Setenv("TAMARACK_ACCESS_TTL", "forever")
	t.Setenv("TAMARACK_LOGIN_RATE", "ten")
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	err := c.parse(nil)
	if err == nil || !strings.Contains(err.Error(), "TAMARACK_ACCESS_TTL") || !strings.Contains(err.Error(), "TAMARACK_LOGIN_RATE") {
		t.Fatalf("unparsable environment accepted or not named: %v", err)
	}
	c = newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--access-ttl", "20m", "--login-rate", "5"}); err != nil {
		t.Fatalf("flags override the environment: %v", err)
	}
}

// TestDataDirectoryErrorsSaySo: serve --check-config and the store commands say what is wrong with --data.
func TestDataDirectoryErrorsSaySo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", "--check-config"}, {"migrate"}, {"billing", "verify"}} {
		var out, errOut bytes.Buffer
		err := run(append(args, "--data", filepath.Join(file, "data")), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "data directory") || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("%v: %v", args, err)
		}
	}
	var out bytes.Buffer
	if err := run([]string{"serve", "--check-config", "--data", t.TempDir()}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "valid") {
		t.Fatalf("writable data directory: %v %s", err, out.String())
	}
}

// TestDataDirectoryIsMadeAbsolute: the default ./data is relative, but everything handed to sandboxes (image
// roots, bundles) must be absolute, so the configuration resolves it once.
func TestDataDirectoryIsMadeAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--data", "./data"}); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.Data) || filepath.Base(c.Data) != "data" {
		t.Fatalf("--data ./data became %q", c.Data)
	}
}

// TestHelpListsTheCommandsOwnFlags: -h exits 0 and lists what that command uses.
func TestHelpListsTheCommandsOwnFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want, not string
	}{{[]string{"serve", "-h"}, "-stripe-key", ""}, {[]string{"events", "--help"}, "-subject", "-stripe-key"},
		{[]string{"migrate", "-h"}, "-db", "-stripe-key"}, {[]string{"seed", "-h"}, "-demo", "-usage-interval"}} {
		var out, errOut bytes.Buffer
		err := run(tc.args, &out, &errOut)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v, want flag.ErrHelp (exit 0)", tc.args, err)
		}
		if !strings.Contains(errOut.String(), tc.want) || (tc.not != "" && strings.Contains(errOut.String(), tc.not)) {
			t.Errorf("%v: help lists:\n%s", tc.args, errOut.String())
		}
	}
}

func TestSecretsAreMaskedInTheStartupLog(t *testing.T) {
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--db", "postgres://u:s3cret@db/x", "--stripe-key", "sk_test_abc", "--stripe-webhook-secret", "whsec_zzz"}); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c.logValues())
	for _, secret := range []string{"s3cret", "sk_test_abc", "whsec_zzz"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("%s printed: %s", secret, b)
		}
	}
}

// The Hub API's root paths are the marketplace's, not the UI fallback's: an unknown repository answers the
// Hub's RepoNotFound (401 to an anonymous caller), never index.html.
func TestHubRoutesBeatTheUIFallback(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/api/models/acme/nothing/revision/main", "/api/datasets/acme/nothing/tree/main",
		"/acme/nothing/resolve/main/config.json", "/datasets/acme/nothing/resolve/main/data.csv"} {
		resp, err := s.e.app.Test(httptest.NewRequest("GET", path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("X-Error-Code") != "RepoNotFound" {
			t.Errorf("%s: %d %q, want 401 RepoNotFound", path, resp.StatusCode, resp.Header.Get("X-Error-Code"))
		}
	}
}
