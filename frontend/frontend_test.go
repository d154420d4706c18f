package frontend

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gofiber/fiber/v2"
	"github.com/tamarack-ai/tamarack/platform/problem"
)

// newApp builds an app shaped like the real one: an error handler that speaks problem JSON, an API route
// registered before the UI and one after it.
func newApp(t *testing.T, fsys fstest.MapFS) *fiber.App {
	t.Helper()
	app := fiber.New(fiber.Config{Immutable: true, ErrorHandler: func(c *fiber.Ctx, err error) error {
		p := problem.ErrInternal
		var fe *fiber.Error
		if errors.As(err, &fe) && fe.Code == fiber.StatusNotFound {
			p = problem.ErrRoute
		}
		c.Set(fiber.HeaderContentType, "application/problem+json")
		return c.Status(p.Status).JSON(p.Body(), "application/problem+json")
	}})
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	RegisterFS(app, fsys)
	app.Get("/api/v1/ping", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"pong": true}) })
	return app
}

var builtFS = fstest.MapFS{
	"index.html":               {Data: []byte(`<!doctype html><html><body><div id="root"></div></body></html>`)},
	"assets/index-abc123.js":   {Data: []byte(`console.log("x")`)},
	"assets/index-abc123.css":  {Data: []byte(`body{}`)},
	"favicon.svg":              {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
	"assets/nested/chunk-1.js": {Data: []byte(`1`)},
}

type answer struct {
	status int
	header map[string]string
	body   string
}

func do(t *testing.T, app *fiber.App, method, target string) answer {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	h := map[string]string{}
	for k := range res.Header {
		h[k] = res.Header.Get(k)
	}
	return answer{res.StatusCode, h, string(b)}
}

func TestRegisterFS(t *testing.T) {
	t.Parallel()
	app := newApp(t, builtFS)
	tests := []struct {
		name, method, target string
		status               int
		contentType          string
		cache                string
		bodyHas              string
	}{
		{"root is index", "GET", "/", 200, "text/html", "no-cache", `<div id="root">`},
		{"index by name", "GET", "/index.html", 200, "text/html", "no-cache", `<div id="root">`},
		{"spa route", "GET", "/marketplace/listings/lst_1", 200, "text/html", "no-cache", `<div id="root">`},
		{"spa route with query", "GET", "/wallet/return?session_id=cs_1", 200, "text/html", "no-cache", `id="root"`},
		{"head of spa route", "HEAD", "/catalogue", 200, "text/html", "no-cache", ""},
		{"hashed js", "GET", "/assets/index-abc123.js", 200, "text/javascript", "public, max-age=31536000, immutable", "console.log"},
		{"hashed css", "GET", "/assets/index-abc123.css", 200, "text/css", "public, max-age=31536000, immutable", "body{}"},
		{"nested asset", "GET", "/assets/nested/chunk-1.js", 200, "text/javascript", "immutable", "1"},
		{"root file", "GET", "/favicon.svg", 200, "image/svg+xml", "max-age=300", "<svg"},
		{"missing asset is 404, not html", "GET", "/assets/index-old.js", 404, "text/plain", "no-store", "not found"},
		{"traversal stays inside", "GET", "/../../etc/passwd", 200, "text/html", "no-cache", `id="root"`},
		{"directory is a route", "GET", "/assets", 200, "text/html", "no-cache", `id="root"`},
		{"api route after ui", "GET", "/api/v1/ping", 200, "application/json", "", `"pong":true`},
		{"unknown api path is the 404 problem", "GET", "/api/v1/nope", 404, "application/problem+json", "", `"route_not_found"`},
		{"bare /api is not the spa", "GET", "/api", 404, "application/problem+json", "", `"route_not_found"`},
		{"healthz route", "GET", "/healthz", 200, "text/plain", "", "ok"},
		{"readyz not swallowed", "GET", "/readyz", 404, "application/problem+json", "", `"route_not_found"`},
		{"metrics not swallowed", "GET", "/metrics", 404, "application/problem+json", "", `"route_not_found"`},
		{"healthz subpath not swallowed", "GET", "/healthz/x", 404, "application/problem+json", "", `"route_not_found"`},
		{"post is not the spa", "POST", "/catalogue", 404, "application/problem+json", "", `"route_not_found"`},
		{"lookalike prefix is the spa", "GET", "/apiary", 200, "text/html", "no-cache", `id="root"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := do(t, app, tt.method, tt.target)
			if a.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", a.status, tt.status, a.body)
			}
			if !strings.HasPrefix(a.header["Content-Type"], tt.contentType) {
				t.Errorf("Content-Type = %q, want prefix %q", a.header["Content-Type"], tt.contentType)
			}
			if !strings.Contains(a.header["Cache-Control"], tt.cache) {
				t.Errorf("Cache-Control = %q, want it to contain %q", a.header["Cache-Control"], tt.cache)
			}
			if !strings.Contains(a.body, tt.bodyHas) {
				t.Errorf("body %q does not contain %q", a.body, tt.bodyHas)
			}
			_, hasCSP := a.header["Content-Security-Policy"]
			servedByUI := !strings.Contains(tt.contentType, "problem") && !strings.HasPrefix(tt.target, "/api/") && tt.target != "/healthz"
			if hasCSP != servedByUI {
				t.Errorf("Content-Security-Policy present = %v, want %v", hasCSP, servedByUI)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	app := newApp(t, builtFS)
	req := httptest.NewRequest("GET", "/catalogue", nil)
	req.Host = "tamarack.example:8080"
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
		"connect-src 'self' ws://tamarack.example:8080 wss://tamarack.example:8080", "object-src 'none'",
		"frame-ancestors 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "same-origin",
		"X-Frame-Options":        "DENY",
	} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}

func TestSecurityHeadersRejectOddHost(t *testing.T) {
	t.Parallel()
	app := newApp(t, builtFS)
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "evil.example; script-src *"
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	csp := res.Header.Get("Content-Security-Policy")
	if strings.Contains(csp, "evil") || !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("CSP %q took in a hostile Host header", csp)
	}
}

func TestNotBuilt(t *testing.T) {
	t.Parallel()
	app := newApp(t, fstest.MapFS{".keep": {Data: nil}})
	for _, target := range []string{"/", "/catalogue"} {
		a := do(t, app, "GET", target)
		if a.status != 200 || !strings.HasPrefix(a.header["Content-Type"], "text/html") {
			t.Fatalf("GET %s = %d %q", target, a.status, a.header["Content-Type"])
		}
		if !strings.Contains(a.body, "not built") || !strings.Contains(a.body, "make ui") {
			t.Errorf("GET %s body %q does not say how to build the UI", target, a.body)
		}
	}
	if a := do(t, app, "GET", "/api/v1/nope"); a.status != 404 || !strings.Contains(a.body, "route_not_found") {
		t.Errorf("API 404 swallowed when the UI is not built: %d %q", a.status, a.body)
	}
}

// TestRegisterEmbedded checks that the real embedded build (or its absence) is served at the root.
func TestRegisterEmbedded(t *testing.T) {
	t.Parallel()
	app := fiber.New()
	Register(app)
	a := do(t, app, "GET", "/")
	if a.status != 200 || !strings.HasPrefix(a.header["Content-Type"], "text/html") {
		t.Fatalf("GET / = %d %q", a.status, a.header["Content-Type"])
	}
}
