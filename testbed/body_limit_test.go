package testbed

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The testbed reads at most MaxBody of a JSON request, whatever its framing, and stores nothing from a refused
// one; the sandbox proxy reads its own, larger, bodies once it knows the caller may use the sandbox.
func TestBodiesOverTheLimitAre413(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		send := func(method, path, token string, body []byte, chunked bool) (int, string) {
			t.Helper()
			req, _ := http.NewRequest(method, "/api/v1/testbed"+path, bytes.NewReader(body))
			if chunked {
				req.Body, req.ContentLength, req.TransferEncoding = io.NopCloser(bytes.NewReader(body)), -1, []string{"chunked"}
			}
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := app.Test(req, 30_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var p struct{ Code string }
			_ = json.NewDecoder(res.Body).Decode(&p)
			f.svc.Wait()
			return res.StatusCode, p.Code
		}
		pools := func() (n int64) {
			if err := f.db.Model(&Pool{}).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := pools()
		vend := sign.token(t, vendor())
		for _, size := range []int{100 << 10, 3 << 20} {
			body := []byte(`{"name":"` + strings.Repeat("p", size) + `","region":"ca-montreal","backend":"simulator"}`)
			for _, chunked := range []bool{false, true} {
				if st, code := send("POST", "/pools", vend, body, chunked); st != 413 || code != "payload_too_large" {
					t.Errorf("pool of %d bytes (chunked %v): %d %q", len(body), chunked, st, code)
				}
			}
		}
		if n := pools(); n != before {
			t.Fatalf("%d pools stored from refused bodies", n-before)
		}

		me := sign.token(t, sme())
		st, _ := send("POST", "/sandboxes", me, []byte(`{"listing_id":"lst-h100","gpu_model":"h100-80gb","gpu_count":1,"template":"jupyterlab","duration_minutes":30}`), false)
		if st != 202 {
			t.Fatalf("launch: %d", st)
		}
		var sb Sandbox
		if err := f.db.Order("created_at DESC").Take(&sb).Error; err != nil {
			t.Fatal(err)
		}
		proxy := "/sandboxes/" + sb.ID + "/proxy/8888/api/contents/a.ipynb"
		upload := bytes.Repeat([]byte("u"), 2<<20) // over the testbed's and the server's default limits
		for _, chunked := range []bool{false, true} {
			if st, code := send("PUT", proxy, me, upload, chunked); st != 200 {
				t.Errorf("a 2 MiB upload through the proxy (chunked %v): %d %q", chunked, st, code)
			}
		}
		huge := bytes.Repeat([]byte("u"), proxyMaxBody+1)
		for _, chunked := range []bool{false, true} {
			if st, code := send("PUT", proxy, me, huge, chunked); st != 413 || code != "payload_too_large" {
				t.Errorf("an upload over the proxy's limit (chunked %v): %d %q", chunked, st, code)
			}
		}
		if st, code := send("PUT", proxy, "", huge, false); st != 401 {
			t.Errorf("an anonymous upload through the proxy: %d %q", st, code)
		}
	})
}
