package marketplace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// EnvMinIO names a MinIO server binary; when set, the S3 store is tested against a real server it starts.
const EnvMinIO = "TAMARACK_TEST_MINIO"

func testStore(t *testing.T, s BlobStore) {
	t.Helper()
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	n, err := s.Put(ctx, "artifacts/a1", bytes.NewReader(data), "application/octet-stream")
	if err != nil || n != int64(len(data)) {
		t.Fatalf("put: %d, %v", n, err)
	}
	b, err := s.Open(ctx, "artifacts/a1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != int64(len(data)) {
		t.Fatalf("size %d", b.Size())
	}
	if _, err := b.Seek(9990, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(b)
	_ = b.Close()
	if string(tail) != "0123456789" {
		t.Fatalf("seek+read: %q", tail)
	}
	// A failing reader leaves nothing behind.
	if _, err := s.Put(ctx, "artifacts/a2", io.MultiReader(bytes.NewReader(data[:100]), errReader{}), ""); err == nil {
		t.Fatal("put of a failing reader succeeded")
	}
	if _, err := s.Open(ctx, "artifacts/a2"); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("failed put left %v", err)
	}
	must(t, s.Delete(ctx, "artifacts/a1"))
	if _, err := s.Open(ctx, "artifacts/a1"); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("deleted blob: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestLocalStore(t *testing.T) {
	t.Parallel()
	s, err := NewLocalStore(t.TempDir())
	must(t, err)
	testStore(t, s)
	if _, err := s.Put(context.Background(), "../escape", strings.NewReader("x"), ""); err == nil {
		t.Fatal("a key with .. was accepted")
	}
}

// TestS3Store runs the store contract and the download flow against a real MinIO server.
func TestS3Store(t *testing.T) {
	bin := os.Getenv(EnvMinIO)
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: CI tests the S3 store against a real MinIO server (.ci/run builds it)", EnvMinIO)
		}
		t.Skipf("set %s to a MinIO server binary (go install github.com/minio/minio@latest) to test the S3 store against a real server", EnvMinIO)
	}
	endpoint := startMinIO(t, bin)
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4("tamarack", "tamarack-secret", ""), Secure: false})
	must(t, err)
	ctx := context.Background()
	must(t, mc.MakeBucket(ctx, "artifacts", minio.MakeBucketOptions{}))
	s, err := NewS3Store(S3Config{URL: "s3://artifacts/test?endpoint=" + endpoint + "&insecure=true&region=us-east-1",
		AccessKey: "tamarack", SecretKey: "tamarack-secret"})
	must(t, err)
	testStore(t, s)

	// The whole download flow through a presigned URL of the real server.
	e := newSQLiteEnv(t, Config{})
	e.svc.blobs = s
	data := strings.Repeat("s3 bytes\n", 5000)
	l := e.publishListing(modelListing("s3-model"), map[string]string{"weights.bin": data})
	expect(t, e.do(smeMember, "POST", "orders", map[string]any{"listing_id": l.ID, "plan_id": l.PublishedVersion.Plans[0].ID}), 201, "")
	r := e.do(smeMember, "GET", "artifacts/"+l.PublishedVersion.Artifacts[0].ID+"/download", nil)
	expect(t, r, 302, "")
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "http://"+endpoint+"/artifacts/test/artifacts/") || !strings.Contains(loc, "X-Amz-Signature=") {
		t.Fatalf("Location %q", loc)
	}
	req, _ := http.NewRequest("GET", loc, nil)
	req.Header.Set("Range", "bytes=0-8")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(part) != "s3 bytes\n" {
		t.Fatalf("ranged presigned GET: %d %q", resp.StatusCode, part)
	}
	resp, err = http.Get(loc)
	must(t, err)
	all, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(all)
	want := sha256.Sum256([]byte(data))
	if hex.EncodeToString(sum[:]) != hex.EncodeToString(want[:]) {
		t.Fatal("presigned download differs")
	}
}

func startMinIO(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(bin, "server", t.TempDir(), "--address", addr, "--console-address", "127.0.0.1:0", "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER=tamarack", "MINIO_ROOT_PASSWORD=tamarack-secret", "MINIO_BROWSER=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://%s/minio/health/live", addr))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio did not start: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
