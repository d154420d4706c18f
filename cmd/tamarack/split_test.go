package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// TestSplitIdentityProcesses is acceptance 3: two `serve --only=identity` processes on one database and one
// NATS verify each other's access tokens (and API tokens). It runs on Postgres when TAMARACK_TEST_POSTGRES is
// set, else on a shared SQLite file; on the NATS server of TAMARACK_TEST_NATS, else an embedded one.
func TestSplitIdentityProcesses(t *testing.T) {
	bin, dsn, natsURL := splitDeps(t)

	// Different sealing secrets: b cannot open a's private key, so each signs with its own key and verifies
	// the other's through the database.
	a := startServer(t, bin, dsn, natsURL, "secret-a")
	b := startServer(t, bin, dsn, natsURL, "secret-b") // after a is ready: SQLite migrations must not race

	email := fmt.Sprintf("split-%d@example.com", time.Now().UnixNano())
	var su struct {
		AccessToken string `json:"access_token"`
	}
	status := call(t, "POST", a+"/api/v1/identity/signup", "", map[string]any{"email": email, "password": "split test password",
		"name": "Split", "organization": map[string]any{"name": "Split Co", "kind": "sme"}}, &su)
	if status != 201 {
		t.Fatalf("signup on A: %d", status)
	}
	var me struct {
		User struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	if status := call(t, "GET", b+"/api/v1/identity/me", su.AccessToken, nil, &me); status != 200 || me.User.Email != email {
		t.Fatalf("A's token on B: %d %+v", status, me)
	}
	var li struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, "POST", b+"/api/v1/identity/login", "", map[string]any{"email": email, "password": "split test password"}, &li); status != 200 {
		t.Fatalf("login on B: %d", status)
	}
	if status := call(t, "GET", a+"/api/v1/identity/me", li.AccessToken, nil, &me); status != 200 || me.User.Email != email {
		t.Fatalf("B's token on A: %d %+v", status, me)
	}
	if kidOf(t, su.AccessToken) == kidOf(t, li.AccessToken) {
		t.Fatal("both processes signed with one key: the test proves less than it should")
	}
	var tok struct {
		Token string `json:"token"`
	}
	if status := call(t, "POST", a+"/api/v1/identity/tokens", su.AccessToken, map[string]any{"name": "split", "scopes": []string{"read"},
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, &tok); status != 201 {
		t.Fatalf("token on A: %d", status)
	}
	if status := call(t, "GET", b+"/api/v1/identity/me", tok.Token, nil, &me); status != 200 {
		t.Fatalf("A's API token on B: %d", status)
	}
	// A forged token is refused by both.
	if status := call(t, "GET", b+"/api/v1/identity/me", su.AccessToken+"x", nil, nil); status != 401 {
		t.Fatalf("tampered token on B: %d", status)
	}
}

// splitDeps is what the split tests' identity processes share: the tamarack binary, built from this package; a
// database (Postgres when TAMARACK_TEST_POSTGRES is set, else a SQLite file); the NATS server of
// TAMARACK_TEST_NATS, else an embedded one.
func splitDeps(t *testing.T) (bin, dsn, natsURL string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "tamarack")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if os.Getenv(dbtest.EnvPostgres) != "" {
		dsn = dbtest.DSN(t, sqldb.Postgres, identityMigrations()...)
	} else {
		dsn = filepath.Join(t.TempDir(), "shared.db")
	}
	natsURL = os.Getenv(natstest.EnvNATS)
	if natsURL == "" {
		natsURL = natstest.Start(t).ClientURL()
	}
	return bin, dsn, natsURL
}

// startServer runs `tamarack serve --only=identity` and waits until /readyz answers 200; the process is
// stopped (SIGTERM, then kill) when the test ends.
func startServer(t *testing.T, bin, dsn, natsURL, keySecret string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out webtest.Buffer
	cmd := exec.Command(bin, "serve", "--only=identity", "--db="+dsn, "--nats="+natsURL, "--addr="+addr,
		"--data="+t.TempDir(), "--log-level=warn", "--key-secret="+keySecret)
	cmd.Env = withoutTamarackEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server %s output:\n%s", addr, out.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("server %s exited: %v\n%s", addr, err, out.String())
		default:
		}
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s not ready:\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func withoutTamarackEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TAMARACK_") {
			out = append(out, kv)
		}
	}
	return out
}

func call(t *testing.T, method, url, token string, body, into any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if into != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	if res.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, url, res.StatusCode, raw)
	}
	return res.StatusCode
}

func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	head, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}
