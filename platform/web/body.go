package web

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/problem"
)

// ErrContentEncoding refuses compressed request bodies: Fiber would inflate them whole into memory, past any
// limit on what was read.
var ErrContentEncoding = problem.New(http.StatusUnsupportedMediaType, "unsupported_content_encoding",
	"Send the request body uncompressed.").
	WithDetail("Leave out the Content-Encoding header and send the body as it is; compressed request bodies are not accepted.")

// LimitBody reads the request body, at most n bytes, before the next handler runs (see ReadBody); routes
// declared with ReadsOwnBody pass through untouched. New applies it to every request with Config.BodyLimit;
// a service lowers the limit for its routes by adding its own (a later LimitBody can lower, never raise it).
func LimitBody(n int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if readsOwnBody(c) {
			return c.Next()
		}
		if err := ReadBody(c, n); err != nil {
			return err
		}
		return c.Next()
	}
}

// ReadBody makes the body available to c.Body() having read at most n bytes of it, and answers 413
// payload_too_large beyond: at once when Content-Length says so, after n+1 bytes of a chunked body. With
// StreamRequestBody, c.Body() would otherwise read the whole stream into memory. Whenever it stops before
// the body's end, the connection is closed: the rest must not be parsed as the next request.
func ReadBody(c *fiber.Ctx, n int) error {
	req := c.Request()
	if enc := strings.TrimSpace(string(req.Header.Peek(fiber.HeaderContentEncoding))); enc != "" && !strings.EqualFold(enc, "identity") {
		c.Context().SetConnectionClose()
		return ErrContentEncoding.WithDetailMsg("problem.unsupported_content_encoding.named", problem.Args{"Encoding": enc})
	}
	length := req.Header.ContentLength()
	if length > n {
		return tooLarge(c, n)
	}
	stream := c.Context().RequestBodyStream()
	if stream == nil || length == 0 {
		// Not streamed (or empty): fasthttp read it whole, within the server's own limit.
		if len(req.Body()) > n {
			return tooLarge(c, n)
		}
		return nil
	}
	var buf bytes.Buffer
	if length > 0 {
		buf.Grow(length)
	}
	if _, err := buf.ReadFrom(io.LimitReader(stream, int64(n)+1)); err != nil {
		c.Context().SetConnectionClose()
		return problem.ErrMalformed.WithDetailMsg("problem.malformed_json.unreadable", problem.Args{"Cause": err.Error()})
	}
	if buf.Len() > n {
		return tooLarge(c, n)
	}
	// The body is read to its end: the stream is done with and c.Body() returns these bytes.
	req.SetBodyRaw(buf.Bytes())
	return nil
}

func tooLarge(c *fiber.Ctx, n int) error {
	c.Context().SetConnectionClose()
	return problem.ErrTooLarge.WithDetailMsg("problem.payload_too_large.limit", problem.Args{"Limit": i18n.Size(n)}).WithExtra("limit_bytes", n)
}

var (
	ownBodyMu     sync.RWMutex
	ownBodyRoutes []string // "METHOD pattern"
)

// ReadsOwnBody declares a route that bounds its body itself: it streams it (artifact uploads, to disk) or
// calls ReadBody with its own limit once it knows the caller. No LimitBody reads the body before it; unless
// it calls ReadBody, the connection closes after its answer, since the body may be left unread. method "*"
// is any method; pattern is a full Fiber path as for SecretPath.
func ReadsOwnBody(method, pattern string) {
	ownBodyMu.Lock()
	defer ownBodyMu.Unlock()
	ownBodyRoutes = append(ownBodyRoutes, strings.ToUpper(method)+" "+pattern)
}

func readsOwnBody(c *fiber.Ctx) bool {
	ownBodyMu.RLock()
	defer ownBodyMu.RUnlock()
	for _, r := range ownBodyRoutes {
		method, pattern, _ := strings.Cut(r, " ")
		if (method == "*" || method == c.Method()) && matchPattern(pattern, c.Path()) {
			return true
		}
	}
	return false
}

// appBodyLimit is New's LimitBody. After a route that reads its own body, the connection closes unless
// ReadBody took the body: whatever the handler left unread must not be parsed as the next request.
func appBodyLimit(n int) fiber.Handler {
	limit := LimitBody(n)
	return func(c *fiber.Ctx) error {
		if !readsOwnBody(c) {
			return limit(c)
		}
		err := c.Next()
		if c.Request().Header.ContentLength() != 0 && c.Context().RequestBodyStream() != nil {
			c.Context().SetConnectionClose()
		}
		return err
	}
}
