package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Exit codes scripts can rely on (docs/cli.md lists them).
const (
	ExitOK       = 0
	ExitError    = 1 // anything else: the server failed, the network, a checksum
	ExitUsage    = 2 // bad flags or arguments
	ExitAuth     = 3 // not signed in, or signed in but not allowed (401, 403)
	ExitNotFound = 4 // no such listing, sandbox, …(404)
	ExitConflict = 5 // insufficient credits, no capacity, a state that forbids it (402, 409)
)

// exitError is an error with the exit code it ends the command with.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, msg: fmt.Sprintf(format, args...)}
}

func authErr(format string, args ...any) error {
	return &exitError{code: ExitAuth, msg: fmt.Sprintf(format, args...)}
}

// exitCode is the exit code of err.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	var p *Problem
	if errors.As(err, &p) {
		return p.exitCode()
	}
	return ExitError
}

// Problem is the server's RFC 9457 answer to a failed request.
type Problem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
	Fields []struct {
		Field   string `json:"field"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"fields,omitempty"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Title)
	if p.Code != "" {
		fmt.Fprintf(&b, " (%s)", p.Code)
	}
	// A wrapped sentinel's detail often repeats its title ("listing x: listing_not_found: No such listing.").
	if p.Detail != "" && !strings.Contains(p.Detail, p.Title) {
		b.WriteString(": " + p.Detail)
	}
	for _, f := range p.Fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Message)
	}
	return b.String()
}

// exitCode maps the problem to an exit code by its code first (stable across status changes), then status.
func (p *Problem) exitCode() int {
	switch p.Code {
	case "unauthorized", "forbidden", "token_revoked", "invalid_credentials", "mfa_required", "session_required":
		return ExitAuth
	case "insufficient_credits", "no_capacity", "conflict":
		return ExitConflict
	}
	switch {
	case p.Status == http.StatusUnauthorized || p.Status == http.StatusForbidden:
		return ExitAuth
	case p.Status == http.StatusNotFound:
		return ExitNotFound
	case p.Status == http.StatusPaymentRequired || p.Status == http.StatusConflict:
		return ExitConflict
	}
	return ExitError
}

// problemOf reads a failed answer's body as a problem; a body that is none (a proxy's HTML page) still
// gives one, from the status.
func problemOf(status int, body []byte) *Problem {
	p := &Problem{}
	if json.Unmarshal(body, p) != nil || p.Title == "" {
		p = &Problem{Title: http.StatusText(status)}
		if s := strings.TrimSpace(string(body)); s != "" && len(s) < 200 {
			p.Detail = s
		}
	}
	p.Status = status
	return p
}

// answer is what every SDK response has.
type answer interface {
	StatusCode() int
	GetBody() []byte
}

// check turns an SDK answer other than a 2xx into its problem. r is not touched when err is set (it is nil).
func check(r answer, err error) error {
	if err != nil {
		return err
	}
	if s := r.StatusCode(); s < 200 || s > 299 {
		return problemOf(s, r.GetBody())
	}
	return nil
}
