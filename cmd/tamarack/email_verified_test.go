package main

import "testing"

// An account whose e-mail is not verified may browse but not spend or launch: every route that moves money or
// starts a sandbox answers 403 email_unverified, in every service; after verifying and signing in again the
// same routes get past the guard.
func TestUnverifiedAccountsBrowseButDoNotSpend(t *testing.T) {
	s := newTestServer(t)
	j := journey{t: t, s: s}
	const I, M, T, B = "/api/v1/identity", "/api/v1/marketplace", "/api/v1/testbed", "/api/v1/billing"
	email := "unverified@maple.example"
	r := j.must(201, "POST", I+"/signup", "", map[string]any{"email": email, "password": "correct-horse-battery-staple",
		"name": "U", "organization": map[string]any{"name": "Unverified Co", "kind": "sme"}})
	tok := r.str("access_token")
	spend := []struct{ method, path string }{
		{"POST", T + "/sandboxes"}, {"POST", T + "/reservations"}, {"POST", T + "/sandboxes/none/extend"},
		{"POST", M + "/orders"}, {"POST", B + "/checkout"},
	}
	for _, c := range spend {
		if got := j.must(403, c.method, c.path, tok, map[string]any{}); got.str("code") != "email_unverified" {
			t.Errorf("%s %s: %s", c.method, c.path, got.raw)
		}
	}
	j.must(200, "GET", M+"/listings", tok, nil)
	j.must(200, "GET", T+"/pools", tok, nil)
	j.must(200, "GET", B+"/wallet", tok, nil)

	j.verifyEmail(email)
	tok = j.login(email)
	for _, c := range spend {
		if got := j.call(c.method, c.path, tok, map[string]any{}); got.str("code") == "email_unverified" {
			t.Errorf("verified, still refused: %s %s", c.method, c.path)
		}
	}
}
