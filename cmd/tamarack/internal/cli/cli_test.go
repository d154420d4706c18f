package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"go/parser"
	"go/token"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCredits(t *testing.T) {
	for micro, want := range map[int64]string{
		0: "0", 1: "0.000001", 1_500_000: "1.5", -1_500_000: "-1.5", 12_345_600_000: "12,345.6",
		1_000_000_000_000: "1,000,000", math.MinInt64: "-9,223,372,036,854.775808",
	} {
		if got := credits(micro); got != want {
			t.Errorf("credits(%d) = %q, want %q", micro, got, want)
		}
	}
}

func TestProblemExitCodes(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		want   int
	}{
		{401, "unauthorized", ExitAuth}, {403, "forbidden", ExitAuth}, {404, "listing_not_found", ExitNotFound},
		{402, "insufficient_credits", ExitConflict}, {409, "no_capacity", ExitConflict}, {409, "not_submitted", ExitConflict},
		{400, "validation_failed", ExitError}, {500, "internal", ExitError},
	} {
		body, _ := json.Marshal(map[string]any{"status": c.status, "code": c.code, "title": "T", "detail": "D"})
		p := problemOf(c.status, body)
		if got := exitCode(p); got != c.want {
			t.Errorf("%d %s: exit %d, want %d", c.status, c.code, got, c.want)
		}
		if p.Error() != "T ("+c.code+"): D" {
			t.Errorf("message %q does not show the title, detail and code", p.Error())
		}
	}
	if p := problemOf(502, []byte("<html>bad gateway</html>")); p.Title != "Bad Gateway" || exitCode(p) != ExitError {
		t.Errorf("a non-problem body: %+v", p)
	}
}

// A saved device login renews its expired access token with the refresh token, and saves the rotated pair.
func TestExpiredDeviceLoginRefreshes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/identity/refresh":
			var in struct {
				RefreshToken string `json:"refresh_token"`
			}
			_ = json.NewDecoder(r.Body).Decode(&in)
			if in.RefreshToken != "rt-1" {
				w.WriteHeader(401)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 900})
		case "/api/v1/identity/me":
			if r.Header.Get("Authorization") != "Bearer at-2" {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(401)
				_ = json.NewEncoder(w).Encode(map[string]any{"status": 401, "code": "unauthorized", "title": "Sign in"})
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"user": map[string]any{"email": "a@b.example", "name": "A"}})
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "tamarack", "config.json")
	c := &Config{Current: "default", Profiles: map[string]*Profile{"default": {URL: srv.URL, AccessToken: "at-1", RefreshToken: "rt-1",
		Expires: time.Now().Add(-time.Minute)}}}
	if err := c.save(path); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"whoami"}, Streams{Out: &out, Err: &errb, ConfigPath: path}); code != 0 {
		t.Fatalf("whoami: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "a@b.example") {
		t.Errorf("whoami: %s", out.String())
	}
	saved, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if p := saved.Profiles["default"]; p.AccessToken != "at-2" || p.RefreshToken != "rt-2" || !p.Expires.After(time.Now()) {
		t.Errorf("saved profile: %+v", p)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode: %v %v", fi, err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"sandbox", "launch", "--gpus", "x"}, {"listings", "show"}, {"wallet", "--output", "yaml"},
		{"completion", "tcsh"}, {"sandbox", "nope", "--url", "http://127.0.0.1:1"}} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, Streams{Out: &out, Err: &errb, ConfigPath: filepath.Join(t.TempDir(), "c.json")}); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, ExitUsage, errb.String())
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"completion", sh}, Streams{Out: &out, Err: &errb}); code != 0 || !strings.Contains(out.String(), "tamarack") {
			t.Errorf("completion %s: exit %d, %d bytes: %s", sh, code, out.Len(), errb.String())
		}
	}
}

func TestHandles(t *testing.T) {
	for arg, want := range map[string]bool{"sandbox": true, "completion": true, "--profile": true, "--url=http://x": true, "-o": true,
		"serve": false, "seed": false, "agent": false, "doctor": false, "--data": false, "version": false} {
		if Handles(arg) != want {
			t.Errorf("Handles(%q) = %v, want %v", arg, !want, want)
		}
	}
}

// The client reaches the platform over HTTP only: it imports the SDK, and identity's device-login client (HTTP
// and the standard library only), and nothing else of this module.
func TestImportsOnlyTheSDK(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pf.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/tamarack-ai/tamarack/") && p != "github.com/tamarack-ai/tamarack/sdk" &&
				p != "github.com/tamarack-ai/tamarack/services/identity/devicelogin" {
				t.Errorf("%s imports %s: the client uses the platform through sdk only", f, p)
			}
		}
	}
}
