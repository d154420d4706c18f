package web_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/web"
)

// bodyApp is a streaming app (as serve builds it) with a 64 KiB default, a route lowering it to 1 KiB, and a
// route that reads its own body as a stream.
func bodyApp(t *testing.T) *fiber.App {
	t.Helper()
	app := web.New(web.Config{BodyLimit: 64 << 10, StreamRequestBody: true})
	echo := func(c *fiber.Ctx) error {
		var v map[string]any
		if err := web.Bind(c, &v); err != nil {
			return err
		}
		return c.JSON(fiber.Map{"keys": len(v), "bytes": len(c.Body())})
	}
	app.Post("/api/echo", echo)
	app.Post("/api/small", web.LimitBody(1<<10), echo)
	web.ReadsOwnBody("PUT", "/api/files/:name")
	app.Put("/api/files/:name", web.LimitBody(1<<10), func(c *fiber.Ctx) error {
		// Hashes the stream as an upload would, never holding it.
		h := sha256.New()
		var r io.Reader = c.Context().RequestBodyStream()
		if r == nil {
			r = bytes.NewReader(c.Body())
		}
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		return c.Status(201).JSON(fiber.Map{"bytes": n, "sha256": hex.EncodeToString(h.Sum(nil))})
	})
	app.Use(web.NotFound)
	return app
}

// jsonOf is a JSON object of about n bytes.
func jsonOf(n int) string { return `{"pad":"` + strings.Repeat("x", max(n-10, 0)) + `"}` }

func test(t *testing.T, app *fiber.App, req *http.Request) answer {
	t.Helper()
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header, close: resp.Close}
	_ = json.NewDecoder(resp.Body).Decode(&a.body)
	return a
}

// chunked is a request whose body has no Content-Length: it arrives in chunks.
func chunked(method, path, body string) *http.Request {
	req := httptest.NewRequest(method, path, io.MultiReader(strings.NewReader(body)))
	req.ContentLength = -1
	req.TransferEncoding = []string{"chunked"}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func TestBodyLimitAnswers413WhateverTheFraming(t *testing.T) {
	t.Parallel()
	app := bodyApp(t)
	big := jsonOf(3 << 20)
	for _, c := range []struct {
		name  string
		req   *http.Request
		limit float64
	}{
		{"content-length over the app's limit", httptest.NewRequest("POST", "/api/echo", strings.NewReader(big)), 64 << 10},
		{"chunked over the app's limit", chunked("POST", "/api/echo", big), 64 << 10},
		{"content-length over the route's limit", httptest.NewRequest("POST", "/api/small", strings.NewReader(jsonOf(2<<10))), 1 << 10},
		{"chunked over the route's limit", chunked("POST", "/api/small", jsonOf(2<<10)), 1 << 10},
		{"unknown route", httptest.NewRequest("POST", "/api/nowhere", strings.NewReader(big)), 64 << 10},
		{"a GET with a body", httptest.NewRequest("GET", "/api/echo", strings.NewReader(big)), 64 << 10},
		{"multipart", multipart(big), 64 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := test(t, app, c.req)
			if a.status != 413 || a.body["code"] != "payload_too_large" || a.body["limit_bytes"] != c.limit {
				t.Fatalf("got %d %v", a.status, a.body)
			}
			if a.header.Get("Content-Type") != "application/problem+json" || !a.close {
				t.Fatalf("headers %v (close %v): a refused body is left unread, the connection must close", a.header, a.close)
			}
		})
	}
}

func multipart(body string) *http.Request {
	req := httptest.NewRequest("POST", "/api/echo", strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\n"+body+"\r\n--b--\r\n"))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	return req
}

func TestBodiesWithinTheLimitAreRead(t *testing.T) {
	t.Parallel()
	app := bodyApp(t)
	body := jsonOf(60 << 10)
	for name, req := range map[string]*http.Request{
		"content-length": httptest.NewRequest("POST", "/api/echo", strings.NewReader(body)),
		"chunked":        chunked("POST", "/api/echo", body),
	} {
		a := test(t, app, req)
		if a.status != 200 || a.body["bytes"] != float64(len(body)) {
			t.Errorf("%s: got %d %v", name, a.status, a.body)
		}
	}
	// A compressed body would be inflated whole, past the limit: refused.
	req := httptest.NewRequest("POST", "/api/echo", strings.NewReader("not really gzip"))
	req.Header.Set("Content-Encoding", "gzip")
	if a := test(t, app, req); a.status != 415 || a.body["code"] != "unsupported_content_encoding" {
		t.Fatalf("gzip: got %d %v", a.status, a.body)
	}
}

func TestRoutesReadingTheirOwnBodyStreamPastTheLimit(t *testing.T) {
	t.Parallel()
	app := bodyApp(t)
	body := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: over the app's and the route group's limits
	sum := sha256.Sum256([]byte(body))
	for name, req := range map[string]*http.Request{
		"content-length": httptest.NewRequest("PUT", "/api/files/a.bin", strings.NewReader(body)),
		"chunked":        chunked("PUT", "/api/files/a.bin", body),
	} {
		a := test(t, app, req)
		if a.status != 201 || a.body["bytes"] != float64(len(body)) || a.body["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: got %d %v", name, a.status, a.body)
		}
	}
	// Only that method and pattern: the same path with POST is limited.
	if a := test(t, app, httptest.NewRequest("POST", "/api/files/a.bin", strings.NewReader(body))); a.status != 413 {
		t.Fatalf("POST to a PUT-only own-body route: %d %v", a.status, a.body)
	}
}

// Over a real connection, a refused body is not read: the answer comes while the client is still sending, and
// a body within the limit leaves the connection ready for the next request.
func TestBodyLimitOverRealConnection(t *testing.T) {
	t.Parallel()
	app := bodyApp(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(conn)
	// Two requests in a row on one connection, each within the limit, one chunked.
	small := jsonOf(10 << 10)
	fmt.Fprintf(conn, "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(small), small)
	fmt.Fprintf(conn, "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(small), small)
	for i := range 2 {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Close {
			t.Fatalf("request %d: %d %s (close %v)", i, res.StatusCode, b, res.Close)
		}
	}
	// Then an endless chunked body: the answer is 413 and the connection closes.
	fmt.Fprintf(conn, "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 32<<10, strings.Repeat("x", 32<<10))
		for {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return // the server closed the connection
			}
		}
	}()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 413 || !res.Close || !strings.Contains(string(b), "payload_too_large") {
		t.Fatalf("endless body: %d %s (close %v)", res.StatusCode, b, res.Close)
	}
	<-done
}
