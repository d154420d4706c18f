// Package devicelogin is the client side of Tamarack's device login (OAuth 2.0 Device Authorization Grant,
// RFC 8628; docs/identity.md, "Device login"): a program without a browser, such as the tamarack CLI, asks
// for a code, shows it to the user, who approves it on the web UI's /device page, and polls for the session's
// tokens. It speaks HTTP only and imports nothing of the identity service, so clients can link it alone.
package devicelogin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Paths of the identity service's device endpoints, below the platform's base URL.
const (
	CodePath  = "/api/v1/identity/device/code"
	TokenPath = "/api/v1/identity/device/token"
)

// TokenPair is the session the approval opened, as POST /api/v1/identity/login answers it.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"` // seconds the access token lives
}

// Errors Login returns when the user or the clock ends the flow; errors.Is matches them.
var (
	ErrDenied  = errors.New("device login denied on the /device page")
	ErrExpired = errors.New("device login code expired before it was approved")
)

// Error is any other problem the service answered (RFC 9457): Code is its stable code.
type Error struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (e *Error) Error() string {
	msg := e.Title
	if e.Detail != "" {
		msg = e.Detail
	}
	return fmt.Sprintf("device login: %d %s: %s", e.Status, e.Code, msg)
}

// Authorization is the service's answer to a code request.
type Authorization struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// Flow is one device login with its settings; Login uses the defaults.
type Flow struct {
	BaseURL string       // the platform's URL, e.g. https://tamarack.example
	HTTP    *http.Client // nil: http.DefaultClient
	// ClientName is shown on the /device page and names the session; default "tamarack CLI on <host>".
	ClientName string
	// UserAgent of the requests; default "tamarack-cli".
	UserAgent string
	// Sleep waits d or until ctx ends; default a timer. Tests inject one that moves a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Login requests a code, calls show with what the user must see (the code, the page, and the page with the
// code filled in), then polls until the user approves (the session's tokens), denies (ErrDenied), or the code
// expires (ErrExpired); ctx ends it early. It honours the service's interval and slow_down.
func Login(ctx context.Context, baseURL string, hc *http.Client,
	show func(userCode, verificationURI, verificationURIComplete string)) (TokenPair, error) {
	return (&Flow{BaseURL: baseURL, HTTP: hc}).Login(ctx, show)
}

// Login runs the flow as the package's Login describes.
func (f *Flow) Login(ctx context.Context, show func(userCode, verificationURI, verificationURIComplete string)) (TokenPair, error) {
	a, err := f.Start(ctx)
	if err != nil {
		return TokenPair{}, err
	}
	if show != nil {
		show(a.UserCode, a.VerificationURI, a.VerificationURIComplete)
	}
	return f.Poll(ctx, a)
}

// Start asks the service for a device code.
func (f *Flow) Start(ctx context.Context) (Authorization, error) {
	name := f.ClientName
	if name == "" {
		name = "tamarack CLI"
		if h, err := os.Hostname(); err == nil && h != "" {
			name += " on " + h
		}
	}
	if len([]rune(name)) > 100 {
		name = string([]rune(name)[:100])
	}
	var a Authorization
	if err := f.post(ctx, CodePath, map[string]string{"client_name": name}, &a); err != nil {
		return Authorization{}, err
	}
	if a.DeviceCode == "" || a.UserCode == "" {
		return Authorization{}, errors.New("device login: the service answered no code")
	}
	return a, nil
}

// Poll waits for the user's decision on a, sleeping the interval before each poll and 5 s more after each
// slow_down (RFC 8628 §3.5).
func (f *Flow) Poll(ctx context.Context, a Authorization) (TokenPair, error) {
	interval := time.Duration(a.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	for {
		if err := f.sleep(ctx, interval); err != nil {
			return TokenPair{}, err
		}
		var t TokenPair
		err := f.post(ctx, TokenPath, map[string]string{"device_code": a.DeviceCode}, &t)
		var pe *Error
		switch {
		case err == nil:
			if t.AccessToken == "" {
				return TokenPair{}, errors.New("device login: the service answered no access token")
			}
			return t, nil
		case !errors.As(err, &pe):
			return TokenPair{}, err
		case pe.Code == "authorization_pending":
		case pe.Code == "slow_down":
			interval += 5 * time.Second
		case pe.Code == "access_denied":
			return TokenPair{}, ErrDenied
		case pe.Code == "expired_token":
			return TokenPair{}, ErrExpired
		default:
			return TokenPair{}, err
		}
	}
}

func (f *Flow) sleep(ctx context.Context, d time.Duration) error {
	if f.Sleep != nil {
		return f.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// post sends body as JSON and decodes a 200 answer into out, or returns the problem as *Error.
func (f *Flow) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(f.BaseURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("device login: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	ua := f.UserAgent
	if ua == "" {
		ua = "tamarack-cli"
	}
	req.Header.Set("User-Agent", ua)
	hc := f.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("device login: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("device login: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		pe := &Error{Status: res.StatusCode}
		if json.Unmarshal(raw, pe) != nil || pe.Code == "" {
			pe.Code, pe.Title = "http_"+fmt.Sprint(res.StatusCode), strings.TrimSpace(string(raw))
		}
		return pe
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("device login: decoding the answer: %w", err)
	}
	return nil
}
