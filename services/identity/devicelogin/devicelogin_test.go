package devicelogin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// script answers the token endpoint with the given problem codes in turn ("" = tokens) and records requests.
func script(t *testing.T, codes ...string) (*httptest.Server, *[]map[string]string) {
	t.Helper()
	var bodies []map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		bodies = append(bodies, body)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case CodePath:
			_ = json.NewEncoder(w).Encode(Authorization{DeviceCode: "dc", UserCode: "BCDF-GHJK", VerificationURI: "http://x/device",
				VerificationURIComplete: "http://x/device?code=BCDF-GHJK", ExpiresIn: 600, Interval: 5})
		case TokenPath:
			if len(codes) == 0 {
				t.Error("polled after the last scripted answer")
				w.WriteHeader(500)
				return
			}
			c := codes[0]
			codes = codes[1:]
			if c == "" {
				_ = json.NewEncoder(w).Encode(TokenPair{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer", ExpiresIn: 900})
				return
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": 400, "code": c, "title": "t", "detail": "d"})
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func TestPollHonoursIntervalAndSlowDown(t *testing.T) {
	srv, bodies := script(t, "authorization_pending", "slow_down", "authorization_pending", "slow_down", "")
	var sleeps []time.Duration
	f := &Flow{BaseURL: srv.URL, HTTP: srv.Client(), ClientName: "me", Sleep: func(_ context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		return nil
	}}
	shown := ""
	tok, err := f.Login(context.Background(), func(code, uri, complete string) { shown = code + " " + uri + " " + complete })
	if err != nil || tok.AccessToken != "at" || tok.RefreshToken != "rt" {
		t.Fatalf("tokens %+v, %v", tok, err)
	}
	if shown != "BCDF-GHJK http://x/device http://x/device?code=BCDF-GHJK" {
		t.Fatalf("shown %q", shown)
	}
	wantSleeps := []time.Duration{5, 5, 10, 10, 15}
	if len(sleeps) != len(wantSleeps) {
		t.Fatalf("sleeps %v", sleeps)
	}
	for i, s := range wantSleeps {
		if sleeps[i] != s*time.Second {
			t.Fatalf("sleeps %v, want %v seconds", sleeps, wantSleeps)
		}
	}
	if (*bodies)[0]["client_name"] != "me" || (*bodies)[1]["device_code"] != "dc" {
		t.Fatalf("requests %v", *bodies)
	}
}

func TestPollOutcomes(t *testing.T) {
	for _, c := range []struct {
		code string
		want error
	}{{"access_denied", ErrDenied}, {"expired_token", ErrExpired}} {
		srv, _ := script(t, "authorization_pending", c.code)
		f := &Flow{BaseURL: srv.URL, Sleep: func(context.Context, time.Duration) error { return nil }}
		if _, err := f.Login(context.Background(), nil); !errors.Is(err, c.want) {
			t.Errorf("%s: %v", c.code, err)
		}
	}
	srv, _ := script(t, "invalid_grant")
	f := &Flow{BaseURL: srv.URL, Sleep: func(context.Context, time.Duration) error { return nil }}
	_, err := f.Login(context.Background(), nil)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != "invalid_grant" || pe.Status != 400 || pe.Detail != "d" {
		t.Fatalf("invalid_grant: %v", err)
	}

	// The context ends a wait.
	srv, _ = script(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Flow{BaseURL: srv.URL}).Poll(ctx, Authorization{DeviceCode: "dc", Interval: 5}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
