// Package problem is the one error format of Tamarack's HTTP API: RFC 9457 problem details with a stable,
// snake_case code. Services declare their sentinels with New and wrap them with context; web.ErrorHandler is
// the only place that renders them. It knows nothing of any domain.
package problem

import (
	"errors"
	"fmt"
	"net/http"
	"sort"

	"golang.org/x/text/language"

	"github.com/tamarack-ai/tamarack/platform/i18n"
)

// Problem is an RFC 9457 problem with Tamarack's extensions (code, fields).
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Code   string       `json:"code"`
	Fields []FieldError `json:"fields,omitempty"`
	// Extra carries machine-readable context a client can act on (the next free slot, a shortfall).
	Extra map[string]any `json:"-"`
	// DetailKey names the catalogue message (platform/i18n) Detail was rendered from, in English, with
	// DetailArgs: the error handler renders it again in the reader's language. Empty for a free-text detail.
	DetailKey  string         `json:"-"`
	DetailArgs map[string]any `json:"-"`
}

// FieldError names one invalid input field, by its JSON path.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Key and Args name the catalogue message Message was rendered from (see AddMsg); empty for free text.
	Key  string         `json:"-"`
	Args map[string]any `json:"-"`
}

// New declares a sentinel problem. Type is derived from the code so that it is stable and documented.
func New(status int, code, title string) *Problem {
	return &Problem{Type: "https://tamarack.dev/problems/" + code, Title: title, Status: status, Code: code}
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Code + ": " + p.Detail
	}
	return p.Code + ": " + p.Title
}

// Is makes errors.Is match any problem with the same code, so a sentinel matches its copies.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t.Code == p.Code
}

// WithDetail returns a copy carrying a human-readable detail for this occurrence. A fixed text that is a
// sentinel's catalogued detail is translated by the error handler; anything else reads in English: prefer
// WithDetailMsg for a detail that carries values.
func (p *Problem) WithDetail(format string, args ...any) *Problem {
	c := *p
	c.Detail = fmt.Sprintf(format, args...)
	c.DetailKey, c.DetailArgs = "", nil
	return &c
}

// Args are a catalogue message's named values (its placeholders), e.g. Args{"Limit": i18n.Size(n)}.
type Args = map[string]any

// WithDetailMsg returns a copy whose detail is the catalogue message key with args: English in Detail (logs,
// Error), and the reader's language when the error handler renders it.
func (p *Problem) WithDetailMsg(key string, args Args) *Problem {
	c := *p
	c.Detail = i18n.Default().English(key, args)
	c.DetailKey, c.DetailArgs = key, args
	return &c
}

// In returns p as a reader of tag's language reads it; the code, status and every machine-readable member
// stay as they are. The title comes from the catalogue by code (the variant whose English is p's title,
// else the code's own); the detail is rendered again when it is keyed (WithDetailMsg) or is one of the
// code's catalogued details; each field message likewise (AddMsg, or a catalogued field.* text). A free
// text that the catalogue does not know stays in English.
func (p *Problem) In(tag language.Tag) *Problem {
	cat := i18n.Default()
	if i18n.Code(tag) == "en" {
		return p
	}
	c := *p
	prefix := "problem." + p.Code + "."
	if key, ok := cat.KeyOf(prefix+"title", p.Title); ok {
		c.Title = text(cat, tag, key, nil, p.Title)
	} else {
		c.Title = text(cat, tag, prefix+"title", nil, p.Title)
	}
	switch {
	case p.DetailKey != "":
		c.Detail = text(cat, tag, p.DetailKey, p.DetailArgs, p.Detail)
	case p.Detail != "":
		if key, ok := cat.KeyOf(prefix+"detail", p.Detail); ok {
			c.Detail = text(cat, tag, key, nil, p.Detail)
		}
	}
	if len(p.Fields) > 0 {
		c.Fields = make([]FieldError, len(p.Fields))
		for i, f := range p.Fields {
			if f.Key != "" {
				f.Message = text(cat, tag, f.Key, f.Args, f.Message)
			} else if key, ok := cat.KeyOf("field.", f.Message); ok {
				f.Message = text(cat, tag, key, nil, f.Message)
			}
			c.Fields[i] = f
		}
	}
	return &c
}

func text(cat *i18n.Catalog, tag language.Tag, key string, args map[string]any, fallback string) string {
	if s, ok := cat.Text(tag, key, args); ok {
		return s
	}
	return fallback
}

// WithExtra returns a copy carrying one more machine-readable member in the JSON body.
func (p *Problem) WithExtra(key string, value any) *Problem {
	c := *p
	c.Extra = make(map[string]any, len(p.Extra)+1)
	for k, v := range p.Extra {
		c.Extra[k] = v
	}
	c.Extra[key] = value
	return &c
}

// Body is the JSON object to render: the standard members plus Extra.
func (p *Problem) Body() map[string]any {
	m := map[string]any{"type": p.Type, "title": p.Title, "status": p.Status, "code": p.Code}
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if len(p.Fields) > 0 {
		m["fields"] = p.Fields
	}
	for k, v := range p.Extra {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return m
}

// From finds the problem in err's chain. ok is false for errors that are not problems (internal errors).
func From(err error) (*Problem, bool) {
	var p *Problem
	if errors.As(err, &p) {
		// A wrapped problem keeps the wrapping context as its detail when it has none of its own.
		if p.Detail == "" && err.Error() != p.Error() {
			c := *p
			c.Detail = err.Error()
			return &c, true
		}
		return p, true
	}
	return nil, false
}

// Common problems used by the platform itself. Each carries a default detail saying what the caller can do; an
// occurrence that knows more replaces it (WithDetail).
var (
	ErrValidation = New(http.StatusUnprocessableEntity, "validation_failed", "The request has invalid fields.").
			WithDetail("Each invalid field is listed in fields, with a code and a message; correct them all and send the request again.")
	ErrMalformed = New(http.StatusBadRequest, "malformed_json", "The request body is not valid JSON.").
			WithDetail("Send one JSON object that follows the operation's schema in /api/openapi.json.")
	ErrTooLarge = New(http.StatusRequestEntityTooLarge, "payload_too_large", "The request body is too large.").
			WithDetail("The body is over this route's size limit; send a smaller one.")
	ErrNotFound = New(http.StatusNotFound, "not_found", "No such resource.").
			WithDetail("It does not exist, or your organisation may not see it; check the ID.")
	ErrRoute = New(http.StatusNotFound, "route_not_found", "No such route.").
			WithDetail("No route matches this method and path; /api/openapi.json lists every route.")
	ErrMethod = New(http.StatusMethodNotAllowed, "method_not_allowed", "That method is not allowed here.").
			WithDetail("This path does not take that method; /api/openapi.json lists the methods it takes.")
	ErrUnauthorized = New(http.StatusUnauthorized, "unauthorized", "Sign in first: a valid bearer token is required.").
			WithDetail("Send Authorization: Bearer <token>, with an access token from POST /api/v1/identity/login or an API token (tmk_...).")
	ErrForbidden = New(http.StatusForbidden, "forbidden", "Your role does not allow this.").
			WithDetail("You are signed in, but your role or organisation may not do this; an owner or admin of your organisation can change roles.")
	ErrRateLimited = New(http.StatusTooManyRequests, "rate_limited", "Too many requests; try again later.").
			WithDetail("Slow down: wait as many seconds as the Retry-After header says, or a little while when there is none, then retry.")
	ErrInternal = New(http.StatusInternalServerError, "internal", "Internal error.").
			WithDetail("Something failed on the server's side, not in your request; retry later, and quote the request_id if you report it.")
	ErrUnavailable = New(http.StatusServiceUnavailable, "unavailable", "A dependency is unavailable.").
			WithDetail("A service this request needs is not answering; retry in a moment.")
	ErrBadCursor = New(http.StatusBadRequest, "invalid_cursor", "The pagination cursor is invalid.").
			WithDetail("Pass next_cursor from the previous page unchanged, or leave cursor out to start at the first page.")
	ErrConflict = New(http.StatusConflict, "conflict", "The resource changed; retry.").
			WithDetail("Someone changed it at the same time; read it again and retry.")
)

// Fields collects field errors so that every invalid field is reported at once.
type Fields []FieldError

// Add records one invalid field.
func (f *Fields) Add(field, code, message string) {
	*f = append(*f, FieldError{Field: field, Code: code, Message: message})
}

// AddMsg records one invalid field whose message is the catalogue message key with args (see WithDetailMsg).
func (f *Fields) AddMsg(field, code, key string, args Args) {
	*f = append(*f, FieldError{Field: field, Code: code, Message: i18n.Default().English(key, args), Key: key, Args: args})
}

// Check records the field error when ok is false.
func (f *Fields) Check(ok bool, field, code, message string) {
	if !ok {
		f.Add(field, code, message)
	}
}

// CheckMsg records the field error, a catalogue message (see AddMsg), when ok is false.
func (f *Fields) CheckMsg(ok bool, field, code, key string, args Args) {
	if !ok {
		f.AddMsg(field, code, key, args)
	}
}

// Err returns nil when no field failed, else a validation problem listing them in a stable order.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	out := append([]FieldError(nil), f...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	c := *ErrValidation
	c.Fields = out
	n := len(out)
	c.Detail = i18n.Default().English("problem.validation_failed.count", Args{"Count": n})
	c.DetailKey, c.DetailArgs = "problem.validation_failed.count", Args{"Count": n}
	return &c
}
