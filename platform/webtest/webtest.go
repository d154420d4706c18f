// Package webtest is what the services' HTTP tests share: a signer of test access tokens, requests against a
// Fiber app (app.Test), problem and JSON bodies, golden files refreshed with -update, and Eventually for
// polling instead of sleeping. Only tests import it; it holds no domain knowledge.
package webtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/web"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Principal is who a test token speaks for.
type Principal struct {
	User, Org, OrgKind, Role string
	Staff                    bool
	Email                    string   // default: <user>@example.com
	Scopes                   []string // an API token's scopes; none = a session
}

// Signer signs test access tokens with its own Ed25519 key under kid "k1"; it is also the KeySource that
// verifies them.
type Signer struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

// NewSigner makes a signer with a fresh key.
func NewSigner() *Signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return &Signer{pub: pub, priv: priv}
}

// PublicKey returns the signer's key, whatever the kid (jwtauth.KeySource).
func (s *Signer) PublicKey(context.Context, string) (crypto.PublicKey, error) { return s.pub, nil }

// JWKS is the signer's key set, as identity serves it.
func (s *Signer) JWKS() jwtauth.JWKS {
	return jwtauth.JWKS{Keys: []jwtauth.JWK{jwtauth.NewJWK("k1", s.pub)}}
}

// Authenticator checks tokens of this signer, as serve's middleware does.
func (s *Signer) Authenticator() web.Chain {
	return web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: s}}}
}

// Token signs an hour-long access token for p, signed in with a password and MFA (as staff must be) and with a
// verified e-mail address; "" when p has no user (anonymous).
func (s *Signer) Token(t testing.TB, p Principal) string {
	t.Helper()
	if p.User == "" {
		return ""
	}
	email := p.Email
	if email == "" {
		email = p.User + "@example.com"
	}
	now := time.Now()
	tok, err := jwtauth.Sign(jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: p.User, Issuer: jwtauth.Issuer,
		Audience: jwt.ClaimStrings{jwtauth.Audience}, IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), ID: "jti-" + p.User},
		Org: p.Org, OrgKind: p.OrgKind, Role: p.Role, AMR: []string{jwtauth.AMRPassword, jwtauth.AMRMFA}, Staff: p.Staff,
		Email: email, Scopes: p.Scopes, EmailVerified: true}, "k1", s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Response is an answer read whole.
type Response struct {
	Method string // the request's
	Status int
	Header http.Header
	Body   []byte
}

// Code is the problem code of the body ("" when it is not a problem).
func (r Response) Code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.Body, &p)
	return p.Code
}

// JSON decodes the body into v, failing the test when it cannot.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Expect fails unless r has status and, when code is not empty, that problem code.
func Expect(t testing.TB, r Response, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && r.Code() != code) {
		t.Fatalf("got %d %s, want %d %s: %s", r.Status, r.Code(), status, code, r.Body)
	}
}

// Do sends one request to app and reads the answer. body is sent as is when it is a string, []byte or
// io.Reader, else encoded as JSON; a body other than an io.Reader is labelled application/json. headers are
// name, value pairs set last; "Content-Length: -1" sends the body chunked. The request has no deadline: a hung
// handler shows as the test binary's timeout, not as a flaky failure on a loaded machine.
func Do(t testing.TB, app *fiber.App, method, path, token string, body any, headers ...string) Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		if _, raw := body.(io.Reader); !raw {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if req.Header.Get("Content-Length") == "-1" {
		req.Header.Del("Content-Length")
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return Response{Method: method, Status: res.StatusCode, Header: res.Header, Body: b}
}

// Golden compares got with testdata/<name>.golden (trailing newlines aside), or rewrites the file when the test
// runs with -update. Callers mask what changes on each run (IDs, times) first.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	got = append(bytes.TrimRight(got, "\n"), '\n')
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update to create it)", name, err)
	}
	want = append(bytes.TrimRight(want, "\n"), '\n')
	if !bytes.Equal(got, want) {
		t.Errorf("golden %s differs from %s (run go test -update to accept):\n%s", name, path, lineDiff(string(want), string(got)))
	}
}

// IndentJSON re-indents a JSON body by two spaces without escaping HTML, for readable golden files.
func IndentJSON(t testing.TB, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", body, err)
	}
	return buf.Bytes()
}

// lineDiff lists the lines that differ, numbered, as -want/+got.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			out = append(out, fmt.Sprintf("line %d:\n-%s\n+%s", i+1, w, g))
		}
	}
	return strings.Join(out, "\n")
}

// Buffer is a bytes.Buffer safe for concurrent writers: a log sink or a process's output that the test reads
// while something else writes.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Timeout is how long Eventually polls: generous, because the race detector on two shared cores is slow.
const Timeout = 20 * time.Second

// Eventually polls cond every 20ms until it holds, failing the test when Timeout passes first.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, Timeout, what, cond)
}

// EventuallyWithin is Eventually with its own limit.
func EventuallyWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	polls := 0
	for {
		polls++
		if cond() {
			return
		}
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s (checked %d times, never true)", limit, what, polls)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
