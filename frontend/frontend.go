// Package frontend serves Tamarack's web UI: the React single-page app that Vite builds into dist/, embedded in
// the binary. It owns the UI's HTTP headers (cache policy, Content-Security-Policy) and the SPA fallback. It
// knows nothing of the API and must never answer for /api/, /healthz, /readyz or /metrics: those fall through
// to the app's own routes or to its 404 problem handler.
package frontend

import (
	"embed"
	"errors"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// dist holds the Vite build. The repository keeps dist/.keep so that this compiles before `make ui`.
//
//go:embed all:dist
var dist embed.FS

// reserved are the path prefixes that belong to the server, never to the SPA.
var reserved = []string{"/api", "/healthz", "/readyz", "/metrics"}

// Register serves the embedded UI build on app. Call it after the API routes or before them: it only answers
// GET and HEAD for paths outside the reserved prefixes and passes everything else on.
func Register(app *fiber.App) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil { // cannot happen: "dist" is a valid path and embedded
		panic(err)
	}
	RegisterFS(app, sub)
}

// RegisterFS serves the SPA build found at the root of fsys (index.html, assets/...). It exists so that tests
// can hand in a fake build.
func RegisterFS(app *fiber.App, fsys fs.FS) {
	app.Use(func(c *fiber.Ctx) error {
		m := c.Method()
		p := c.Path()
		if (m != fiber.MethodGet && m != fiber.MethodHead) || isReserved(p) {
			return c.Next()
		}
		return serve(c, fsys, p)
	})
}

func isReserved(p string) bool {
	for _, r := range reserved {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

func serve(c *fiber.Ctx, fsys fs.FS, urlPath string) error {
	setSecurityHeaders(c)
	name := strings.TrimPrefix(path.Clean("/"+urlPath), "/")
	if name != "" && name != "index.html" && fs.ValidPath(name) {
		data, err := readFile(fsys, name)
		if err == nil {
			if strings.HasPrefix(name, "assets/") {
				// Vite puts a content hash in every file name under assets/: it never changes.
				c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
			} else {
				c.Set(fiber.HeaderCacheControl, "public, max-age=300")
			}
			c.Set(fiber.HeaderContentType, contentType(name))
			return c.Send(data)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if strings.HasPrefix(name, "assets/") {
			// A missing hashed asset is a stale page asking for an old build: answering index.html here would
			// hand HTML to a <script> tag.
			c.Set(fiber.HeaderCacheControl, "no-store")
			c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
			return c.Status(fiber.StatusNotFound).SendString("not found\n")
		}
	}
	index, err := fs.ReadFile(fsys, "index.html")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	if err != nil {
		return c.SendString(notBuiltPage)
	}
	return c.Send(index)
}

// readFile reads a regular file; a directory answers fs.ErrNotExist, so that the SPA treats it as a route.
func readFile(fsys fs.FS, name string) ([]byte, error) {
	st, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fs.ErrNotExist
	}
	return fs.ReadFile(fsys, name)
}

func contentType(name string) string {
	switch ext := path.Ext(name); ext {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".woff2":
		return "font/woff2"
	case ".json", ".map":
		return "application/json"
	case ".ico":
		return "image/x-icon"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}

// setSecurityHeaders applies the UI's policy. The build has no inline script or style (React sets styles through
// the CSSOM, which style-src does not govern; the terminal renders on a canvas), so the policy allows only this
// origin. The sandbox terminal is a WebSocket to this host, named explicitly for browsers that do not count
// ws(s) as 'self'.
func setSecurityHeaders(c *fiber.Ctx) {
	connect := "'self'"
	if h := c.Hostname(); validHost(h) {
		connect += " ws://" + h + " wss://" + h
	}
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"font-src 'self'; connect-src "+connect+"; object-src 'none'; base-uri 'self'; form-action 'self'; "+
		"frame-ancestors 'none'")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	// same-origin: invitation tokens live in page URLs and must not leak to other sites through Referer.
	c.Set(fiber.HeaderReferrerPolicy, "same-origin")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
}

// validHost accepts a host[:port] made only of characters a header value cannot be abused with.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, r := range h {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '-' || r == ':' || r == '[' || r == ']'
		if !ok {
			return false
		}
	}
	return true
}

const notBuiltPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tamarack: the web UI is not built</title></head>
<body>
<h1>The web UI is not built</h1>
<p>This binary was compiled without the web UI. Run <code>make ui</code> (or <code>make run</code>, which builds
it first), then start the server again. The API is served as usual under <code>/api/</code>.</p>
</body>
</html>
`
