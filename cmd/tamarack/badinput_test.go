package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Every JSON endpoint of every service answers malformed or unexpected bodies with a 4xx problem and a stable
// code: never a 5xx, never a success. Paths get IDs that exist nowhere, so each route's own validation or
// its not-found answers; both are problems.
func TestEveryRouteAnswersBadInputWithAProblem(t *testing.T) {
	s := newTestServer(t, "--nats-listen", "127.0.0.1:0")
	defer s.startLoops()()
	j := journey{t: t, s: s}
	sme, _ := j.signup("sme@bad-input.example", "Bad Input SME", "sme")
	vendor, _ := j.signup("vendor@bad-input.example", "Bad Input Vendor", "vendor")
	j.signup("staff@bad-input.example", "Bad Input Staff", "partner")
	if err := promote(t.Context(), s.e.cfg, "staff@bad-input.example", io.Discard); err != nil {
		t.Fatal(err)
	}
	staff := j.staffLogin("staff@bad-input.example")

	bodies := map[string]string{
		"truncated":     `{"a":`,
		"array":         `[1,2,3]`,
		"unknown field": `{"zz_not_a_field": true}`,
		"wrong types":   `{"name": 5, "email": [], "amount_micro": "ten", "gpu_count": "two", "decision": 3}`,
		"empty":         ``,
	}
	optional := map[string]bool{} // operations whose body may be left out: an empty one is a request
	for _, op := range s.e.doc.Ops() {
		if op.OptionalBody {
			optional[op.Method+" "+op.Path] = true
		}
	}
	checked := 0
	for _, r := range s.e.app.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/api/v1/") || (r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch) {
			continue
		}
		if strings.HasSuffix(r.Path, "/stripe/webhook") || strings.Contains(r.Path, "/artifacts/") || strings.Contains(r.Path, "/proxy/") {
			continue // signed raw payloads, raw uploads and proxied bytes: not JSON endpoints (tested in their packages)
		}
		path := fillParams(r.Path)
		for _, tok := range []struct{ name, token string }{{"sme", sme}, {"vendor", vendor}, {"staff", staff}} {
			for name, body := range bodies {
				if body == "" && optional[r.Method+" "+r.Path] {
					continue
				}
				var b any
				if body != "" {
					b = []byte(body)
				}
				got := j.call(r.Method, path, tok.token, b)
				checked++
				if got.status == http.StatusServiceUnavailable && got.str("code") == "payments_disabled" {
					continue // checkout without a Stripe key says so before reading the body: a clear answer
				}
				if got.status < 400 || got.status >= 500 {
					t.Errorf("%s %s as %s with %s body: %d %s", r.Method, r.Path, tok.name, name, got.status, got.raw)
					continue
				}
				if got.str("code") == "" || got.str("title") == "" {
					t.Errorf("%s %s as %s with %s body: %d without a problem body: %s", r.Method, r.Path, tok.name, name, got.status, got.raw)
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d requests checked: the route walk found too few JSON endpoints", checked)
	}
}

// Every list endpoint refuses out-of-range limits and forged cursors with a problem.
func TestListsRefuseBadPaging(t *testing.T) {
	s := newTestServer(t, "--nats-listen", "127.0.0.1:0")
	defer s.startLoops()()
	j := journey{t: t, s: s}
	j.signup("staff@paging.example", "Paging Staff", "partner")
	if err := promote(t.Context(), s.e.cfg, "staff@paging.example", io.Discard); err != nil {
		t.Fatal(err)
	}
	staff := j.staffLogin("staff@paging.example")
	checked := 0
	for _, r := range s.e.app.GetRoutes(true) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.Path, "/api/v1/") || strings.Contains(r.Path, ":") {
			continue
		}
		probe := j.call("GET", r.Path, staff, nil)
		if probe.status != 200 || !strings.Contains(string(probe.raw), `"items"`) {
			continue // not a list
		}
		for _, q := range []string{"limit=0", "limit=100000", "limit=abc", "cursor=%2F%2F%2Fnot-a-cursor"} {
			got := j.call("GET", r.Path+"?"+q, staff, nil)
			checked++
			if got.status < 400 || got.status >= 500 || got.str("code") == "" {
				t.Errorf("GET %s?%s: %d %s", r.Path, q, got.status, got.raw)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d paging checks: too few list endpoints found", checked)
	}
}

func fillParams(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = fmt.Sprintf("nonexistent-%d", i)
		}
		if s == "*" {
			parts[i] = "x"
		}
	}
	return strings.Join(parts, "/")
}
