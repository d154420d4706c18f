package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigOIDCProviders: --oidc-providers is read and validated with the rest of the configuration, and
// its providers reach identity.
func TestConfigOIDCProviders(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "oidc.json")
	if err := os.WriteFile(filepath.Join(dir, "client-secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(`[{"id":"campus","name":"Campus SSO","issuer":"https://sso.example.edu/",
		"client_id":"tamarack","client_secret_file":"client-secret",
		"redirect_url":"https://tamarack.example.ca/api/v1/identity/oidc/campus/callback",
		"domains":{"example.edu":"0198c1f0-0000-7000-8000-000000000001"}}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newConfig("test")
	c.fs.SetOutput(io.Discard)
	if err := c.parse([]string{"--oidc-providers", file}); err != nil {
		t.Fatal(err)
	}
	if len(c.oidc) != 1 || c.oidc[0].ID != "campus" || c.oidc[0].ClientSecret != "s3cret" {
		t.Fatalf("providers: %+v", c.oidc)
	}
	if err := os.WriteFile(file, []byte(`[{"id":"campus","issuer":"http://sso.example.edu/"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	c = newConfig("test")
	c.fs.SetOutput(io.Discard)
	err := c.parse([]string{"--oidc-providers", file, "--log-format", "xml"})
	for _, want := range []string{"--oidc-providers", "issuer", "client_id", "--log-format"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}
