package marketplace

import (
	"bytes"
	"net"
	"net/http"
	"time"

	"crypto/sha256"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// TestLargeUploadStreams: an artifact larger than the app's body limit streams through (the limit that
// applies is the marketplace's own), with a Digest header, and replaces a same-name artifact.
func TestLargeUploadStreams(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, Config{MaxFileBytes: 8 << 20})
	l := e.createListing(vendorAdmin, modelListing("big"))
	const size = 3 << 20 // the test app's body limit is 1 MiB
	body := io.LimitReader(repeatReader('w'), size)
	h := sha256.New()
	_, _ = io.Copy(h, io.LimitReader(repeatReader('w'), size))
	digest := "sha-256=" + base64.StdEncoding.EncodeToString(h.Sum(nil))
	path := "listings/" + l.ID + "/versions/1/artifacts/weights.bin"
	r := e.do(vendorAdmin, "PUT", path, body, "Digest", digest, "Content-Length", "-1")
	expect(t, r, 201, "")
	var a artifactJSON
	r.JSON(t, &a)
	if a.SizeBytes != size {
		t.Fatalf("size %d", a.SizeBytes)
	}
	// A declared Content-Length above the app's body limit streams too.
	r = e.do(vendorAdmin, "PUT", "listings/"+l.ID+"/versions/1/artifacts/declared.bin", bytes.Repeat([]byte{'d'}, 2<<20))
	expect(t, r, 201, "")
	r = e.do(vendorAdmin, "PUT", "listings/"+l.ID+"/versions/1/artifacts/declared.bin", strings.NewReader("gone"))
	expect(t, r, 201, "")
	r = e.do(vendorAdmin, "PUT", path, strings.NewReader("small now"))
	expect(t, r, 201, "")
	if n := count(t, e.db, "market_artifacts"); n != 2 {
		t.Fatalf("%d artifacts after replacing", n)
	}
	if files := filesUnder(t, e.blobs); len(files) != 2 {
		t.Fatalf("replaced blob left behind: %v", files)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestSlowUploadOutlivesReadTimeout: the server's read timeout counts from the start of a request; an upload
// that keeps sending is not cut off by it (only a stalled one would be).
func TestSlowUploadOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, Config{})
	app := fiber.New(fiber.Config{StreamRequestBody: true, ReadTimeout: 300 * time.Millisecond, ErrorHandler: web.ErrorHandler(nil)})
	api := app.Group("/api/v1", web.Auth(e.sign.Authenticator()))
	e.svc.Routes(api.Group("/marketplace"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })

	l := e.createListing(vendorAdmin, modelListing("slow"))
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 6; i++ {
			_, _ = pw.Write(bytes.Repeat([]byte{'s'}, 1000))
			time.Sleep(150 * time.Millisecond) // a slow client, not synchronisation
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("PUT", "http://"+ln.Addr().String()+BasePath+"/listings/"+l.ID+"/versions/1/artifacts/slow.bin", pr)
	req.Header.Set("Authorization", "Bearer "+e.token(vendorAdmin))
	res, err := http.DefaultClient.Do(req)
	must(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 || !strings.Contains(string(b), `"size_bytes":6000`) {
		t.Fatalf("slow upload: %d %s", res.StatusCode, b)
	}
}
