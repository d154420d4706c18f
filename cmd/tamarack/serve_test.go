package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/openapi"
)

// newTestServer builds the whole platform in one process on a temporary data directory.
func newTestServer(t *testing.T, args ...string) *server {
	t.Helper()
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse(append([]string{"--data", t.TempDir(), "--nats-listen", "", "--log-level", "error", "--sandbox-backend", "simulator"}, args...)); err != nil {
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
	err := c.parse([]string{"--addr", "nope", "--only", "identity,bogus", "--log-format", "xml", "--stripe-key", "pk_live_x", "--usage-interval", "1ms"})
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"--addr", "bogus", "--log-format", "--stripe-key", "--usage-interval"} {
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
