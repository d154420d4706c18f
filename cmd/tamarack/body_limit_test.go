package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A body of 1 GiB, generated as it is sent (never allocated) over a real connection to the whole platform,
// is refused with 413 payload_too_large on any route, anonymous or signed in, with a Content-Length or
// chunked, and none of it is held in memory: the process allocates less than 100 MiB for all of them.
func TestHugeBodiesAreRefusedUnread(t *testing.T) {
	s := newTestServer(t)
	j := journey{t: t, s: s}
	token, _ := j.signup("big@bodies.example", "Big Bodies", "vendor")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.e.app.Listener(ln) }()
	t.Cleanup(func() { _ = s.e.app.Shutdown() })

	const size = 1 << 30
	cases := []struct {
		name, method, path, token, contentType string
	}{
		{"stripe webhook", "POST", "/api/v1/billing/stripe/webhook", "", "application/json"},
		{"testbed pool", "POST", "/api/v1/testbed/pools", token, "application/json"},
		{"identity signup", "POST", "/api/v1/identity/signup", "", "application/json"},
		{"marketplace listing as a form", "POST", "/api/v1/marketplace/listings", token, "multipart/form-data; boundary=b"},
		{"unknown route", "POST", "/api/v1/nowhere", "", "application/json"},
		{"health check", "GET", "/healthz", "", "text/plain"},
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, c := range cases {
		for _, chunked := range []bool{false, true} {
			status, code := sendHuge(t, ln.Addr().String(), c.method, c.path, c.token, c.contentType, size, chunked)
			if status != http.StatusRequestEntityTooLarge || code != "payload_too_large" {
				t.Errorf("%s (chunked %v): %d %q", c.name, chunked, status, code)
			}
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	allocated, grown := after.TotalAlloc-before.TotalAlloc, int64(after.HeapInuse)-int64(before.HeapInuse)
	t.Logf("%d bodies of 1 GiB: %d MiB allocated, heap in use %+d MiB", 2*len(cases), allocated>>20, grown>>20)
	if allocated > 100<<20 || grown > 100<<20 {
		t.Fatalf("%d MiB allocated, heap in use %+d MiB: a refused body was read into memory", allocated>>20, grown>>20)
	}
}

// sendHuge sends a request with a body of size bytes, written from one small buffer while the answer is read,
// and returns the answer's status and problem code.
func sendHuge(t *testing.T, addr, method, path, token, contentType string, size int64, chunked bool) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: tamarack\r\nContent-Type: %s\r\n", method, path, contentType)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
	}
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		chunk := bytes.Repeat([]byte{'x'}, 64<<10)
		if chunked {
			chunk = append([]byte(fmt.Sprintf("%x\r\n", len(chunk))), append(chunk, "\r\n"...)...)
		}
		for n := int64(0); n < size; n += 64 << 10 {
			if _, err := conn.Write(chunk); err != nil {
				return // the server answered and closed the connection
			}
		}
		if chunked {
			_, _ = io.WriteString(conn, "0\r\n\r\n")
		}
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var p struct{ Code string }
	_ = json.NewDecoder(res.Body).Decode(&p)
	_ = conn.Close()
	<-sent
	return res.StatusCode, p.Code
}

// The served OpenAPI document says which operations may answer 413 payload_too_large: every one that takes a
// JSON body, and the Stripe webhook (Stripe's raw event).
func TestOpenAPIListsPayloadTooLarge(t *testing.T) {
	s := newTestServer(t)
	resp, err := s.e.app.Test(httptest.NewRequest("GET", "/api/openapi.json", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody *struct{ Content map[string]any }
			Responses   map[string]struct{ Description string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	withBody := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			isJSON := false
			if op.RequestBody != nil {
				_, isJSON = op.RequestBody.Content["application/json"]
			}
			if !isJSON && path != "/api/v1/billing/stripe/webhook" {
				continue
			}
			withBody++
			if r, ok := op.Responses["413"]; !ok || !strings.Contains(op.Responses["default"].Description, "payload_too_large") ||
				!strings.HasPrefix(r.Description, "payload_too_large") {
				t.Errorf("%s %s: payload_too_large is not among its answers: %+v", method, path, op.Responses)
			}
		}
	}
	if withBody < 30 {
		t.Fatalf("only %d operations with a body found", withBody)
	}
}
