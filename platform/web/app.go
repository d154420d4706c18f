// Package web builds Tamarack's Fiber apps: request IDs, access log, panic recovery, a deadline on every
// request's context, body limits, metrics, authentication by JWT, role guards, pagination, JSON binding with
// validation, and the one error handler that renders RFC 9457 problems. It holds no domain knowledge.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/text/language"

	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Config configures New.
type Config struct {
	Logger *slog.Logger
	// BodyLimit caps every request body but those of routes declared with ReadsOwnBody (see LimitBody).
	// Default 1 MiB.
	BodyLimit int
	// RequestTimeout bounds each request's context. Default 30s.
	RequestTimeout time.Duration
	// Registry receives HTTP metrics when set.
	Registry prometheus.Registerer
	// StreamRequestBody lets routes that read their own body stream it (artifact uploads); every other
	// route still reads at most BodyLimit.
	StreamRequestBody bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed (see ClientIP). Default: none, so a
	// client cannot choose the address that per-IP limits and the audit log see.
	TrustedProxies []netip.Prefix
}

// New returns a Fiber app with Tamarack's middleware and error handler.
func New(cfg Config) *fiber.App {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	app := fiber.New(fiber.Config{
		Immutable:             true,
		DisableStartupMessage: true,
		BodyLimit:             cfg.BodyLimit,
		StreamRequestBody:     cfg.StreamRequestBody,
		// fasthttp would read a multipart body whole, to memory and temporary files, before any handler.
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 ErrorHandler(log),
		ReadTimeout:                  60 * time.Second,
		IdleTimeout:                  120 * time.Second,
		// A response up to this size leaves in one write: with fasthttp's 4 kB default a catalogue page (about
		// 17 kB, up to 50 kB) took two or three write calls.
		WriteBufferSize: 32 << 10,
	})
	app.Use(clientIP(cfg.TrustedProxies))
	app.Use(requestid.New(requestid.Config{ContextKey: "request_id"}))
	app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		log.Error("panic", "request_id", RequestID(c), "panic", e)
	}}))
	if cfg.Registry != nil {
		app.Use(metricsMiddleware(cfg.Registry))
	}
	app.Use(accessLog(log))
	app.Use(deadline(cfg.RequestTimeout))
	app.Use(appBodyLimit(cfg.BodyLimit))
	return app
}

const logPathKey = "tamarack_log_path"

// SetLogPath replaces the path that logs show for this request, for routes carrying a secret in the path
// (an invitation token): pass the route pattern.
func SetLogPath(c *fiber.Ctx, p string) { c.Locals(logPathKey, p) }

var (
	secretMu    sync.RWMutex
	secretPaths []string
)

// SecretPath declares a route pattern whose parameters are secrets (an invitation token): logs show the
// pattern for every request matching it, also when a middleware refuses the request before the route's
// handler could call SetLogPath.
func SecretPath(pattern string) {
	secretMu.Lock()
	defer secretMu.Unlock()
	secretPaths = append(secretPaths, pattern)
}

// LogPath is the path logs show: the request path unless SetLogPath replaced it or it matches a SecretPath.
func LogPath(c *fiber.Ctx) string {
	if p, ok := c.Locals(logPathKey).(string); ok {
		return p
	}
	path := c.Path()
	secretMu.RLock()
	defer secretMu.RUnlock()
	for _, pat := range secretPaths {
		if matchPattern(pat, path) {
			return pat
		}
	}
	return path
}

// matchPattern reports whether path fits pattern, a Fiber path whose ":name" segments match any one
// non-empty segment and whose final "*" matches the rest, if any.
func matchPattern(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(strings.TrimSuffix(path, "/"), "/")
	if ps[len(ps)-1] == "*" {
		ps = ps[:len(ps)-1]
		if len(xs) > len(ps) {
			xs = xs[:len(ps)]
		}
	}
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, ":") {
			if xs[i] == "" {
				return false
			}
		} else if p != xs[i] {
			return false
		}
	}
	return true
}

// RequestID returns the request's ID (also sent as X-Request-ID).
func RequestID(c *fiber.Ctx) string {
	if v, ok := c.Locals("request_id").(string); ok {
		return v
	}
	return ""
}

// deadline gives every request a context with a deadline: Fiber never cancels UserContext on its own.
func deadline(d time.Duration) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Get(fiber.HeaderUpgrade) != "" || c.Get(fiber.HeaderAccept) == "text/event-stream" {
			// Long-lived streams (terminal, logs) manage their own lifetime.
			return c.Next()
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), d)
		defer cancel()
		c.SetUserContext(ctx)
		return c.Next()
	}
}

func accessLog(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		status := c.Response().StatusCode()
		if err != nil {
			// The error handler has not run yet: report the status it will send.
			status = statusOf(err)
		}
		level := levelFor(status)
		if !log.Enabled(c.UserContext(), level) {
			return err // most successes log at debug: skip building the line (LogPath matches the secret routes)
		}
		// The path only: query strings can carry tokens (terminal and log streams), never logged.
		log.LogAttrs(c.UserContext(), level, "http",
			slog.String("request_id", RequestID(c)), slog.String("method", c.Method()),
			slog.String("path", LogPath(c)), slog.Int("status", status),
			slog.Duration("took", time.Since(start)))
		return err
	}
}

func levelFor(status int) slog.Level {
	switch {
	case status == fiber.StatusServiceUnavailable:
		return slog.LevelWarn
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func statusOf(err error) int {
	if p, ok := problem.From(err); ok {
		return p.Status
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	if sqldb.IsUnavailable(err) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrDependencyUnavailable answers a request whose database could not be reached (sqldb.IsUnavailable): down,
// refusing connections, or no answer (its pool exhausted, say) before the request's deadline, which may also be
// another dependency's silence, hence the general detail. Nothing is wrong with the request: the client
// retries it after Retry-After.
var ErrDependencyUnavailable = problem.ErrUnavailable.WithExtra("retry_after_seconds", 5)

// ErrorHandler renders every error once: problems as they are, Fiber's own errors as the matching problem, a
// database that cannot be reached as 503 unavailable (logged at warn), anything else as a bare 500 logged
// with the request ID.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(c *fiber.Ctx, err error) error {
		p, ok := problem.From(err)
		if !ok {
			var fe *fiber.Error
			switch {
			case errors.As(err, &fe):
				p = fromFiber(fe)
			case sqldb.IsUnavailable(err):
				log.Warn("dependency unavailable", "request_id", RequestID(c), "method", c.Method(), "path", LogPath(c), "err", err)
				p = ErrDependencyUnavailable
			default:
				log.Error("internal error", "request_id", RequestID(c), "method", c.Method(), "path", LogPath(c), "err", err)
				p = problem.ErrInternal
			}
		}
		// A declared 500-class problem is worth an error line; 503s (a dependency down, a feature not
		// configured) are expected conditions, already in the access log.
		if p.Status >= 500 && p.Status != fiber.StatusServiceUnavailable && p.Code != problem.ErrInternal.Code {
			log.Error("server problem", "request_id", RequestID(c), "code", p.Code, "detail", p.Detail)
		}
		return WriteProblem(c, p)
	}
}

// Lang is the language of this request's answer, negotiated from Accept-Language (English by default): it
// says so in Content-Language and Vary. Handlers that answer text for people (template descriptions, audit
// action names) call it; WriteProblem does for every problem.
func Lang(c *fiber.Ctx) language.Tag {
	tag := i18n.Negotiate(c.Get(fiber.HeaderAcceptLanguage))
	c.Set(fiber.HeaderContentLanguage, i18n.Code(tag))
	c.Vary(fiber.HeaderAcceptLanguage)
	return tag
}

// WriteProblem sends p as application/problem+json, in the reader's language (Lang): the title, detail and
// field messages are localised, the code and every machine-readable member never are.
func WriteProblem(c *fiber.Ctx, p *problem.Problem) error {
	p = p.In(Lang(c))
	body := p.Body()
	if id := RequestID(c); id != "" {
		body["request_id"] = id
	}
	if p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable {
		if v, ok := p.Extra["retry_after_seconds"]; ok {
			c.Set(fiber.HeaderRetryAfter, toString(v))
		}
	}
	c.Status(p.Status)
	if err := c.JSON(body); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return nil
}

func toString(v any) string {
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatInt(int64(x), 10)
	case string:
		return x
	}
	return ""
}

func fromFiber(fe *fiber.Error) *problem.Problem {
	switch fe.Code {
	case http.StatusNotFound:
		return problem.ErrRoute
	case http.StatusMethodNotAllowed:
		return problem.ErrMethod
	case http.StatusRequestEntityTooLarge:
		return problem.ErrTooLarge
	case http.StatusBadRequest:
		return problem.ErrMalformed.WithDetail("%s", fe.Message)
	case http.StatusUnsupportedMediaType:
		return problem.New(fe.Code, "unsupported_media_type", "Send the body as application/json.").
			WithDetailMsg("problem.unsupported_media_type.detail", nil)
	case http.StatusRequestTimeout:
		return problem.New(fe.Code, "request_timeout", "The request took too long.").
			WithDetailMsg("problem.request_timeout.detail", nil)
	case http.StatusServiceUnavailable:
		return problem.ErrUnavailable
	}
	if fe.Code >= 500 {
		return problem.ErrInternal
	}
	return problem.New(fe.Code, "http_"+strconv.Itoa(fe.Code), http.StatusText(fe.Code)).
		WithDetailMsg("problem.http.refused", problem.Args{"Status": fe.Code, "Text": http.StatusText(fe.Code)})
}

// NotFound is the last handler of an app: unknown routes answer a problem, not Fiber's plain text.
func NotFound(c *fiber.Ctx) error {
	return problem.ErrRoute.WithDetailMsg("problem.route_not_found.no_route", problem.Args{"Method": c.Method(), "Path": c.Path()})
}
