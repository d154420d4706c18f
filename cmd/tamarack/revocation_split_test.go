package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestSplitRevocation: two `serve --only=identity` processes on one database and one NATS; signing out on A
// makes B refuse the session's access token with token_revoked (waited for with a deadline).
func TestSplitRevocation(t *testing.T) {
	bin, dsn, natsURL := splitDeps(t)
	a := startServer(t, bin, dsn, natsURL, "secret")
	b := startServer(t, bin, dsn, natsURL, "secret")

	var s struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	email := fmt.Sprintf("revoke-%d@example.com", time.Now().UnixNano())
	if status := call(t, "POST", a+"/api/v1/identity/signup", "", map[string]any{"email": email, "password": "split test password",
		"name": "Revoke", "organization": map[string]any{"name": "Revoke Co", "kind": "sme"}}, &s); status != 201 {
		t.Fatalf("signup on A: %d", status)
	}
	if status := call(t, "GET", b+"/api/v1/identity/me", s.AccessToken, nil, nil); status != 200 {
		t.Fatalf("token on B before sign-out: %d", status)
	}
	if status := call(t, "POST", a+"/api/v1/identity/logout", "", map[string]any{"refresh_token": s.RefreshToken}, nil); status != 204 {
		t.Fatalf("logout on A: %d", status)
	}
	for _, base := range []string{b, a} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			status, code := problemOf(t, base+"/api/v1/identity/me", s.AccessToken)
			if status == 401 && code == "token_revoked" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still answers %d %s for a signed-out session", base, status, code)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func problemOf(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(raw, &p)
	return res.StatusCode, p.Code
}
