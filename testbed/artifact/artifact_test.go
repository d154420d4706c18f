package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tamarack-ai/tamarack/services/events"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestCache: files are fetched once per digest and checked (a wrong digest or size keeps nothing), a set is
// shared by the sandboxes of one listing version and read-only, and what nobody uses is removed on Release and
// on Sweep of sandboxes that ended while nobody watched.
func TestCache(t *testing.T) {
	body := []byte("weights\n")
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Query().Get("sig") != "ok" {
			http.Error(w, "invalid_signature", http.StatusForbidden)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	c, err := New(Options{Dir: dir, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := events.AgentMountV1{ListingID: "lst-a", Target: Target("lst-a"), Files: []events.AgentArtifactV1{
		{Name: "w.bin", SHA256: digest(body), SizeBytes: int64(len(body)), URL: "/blob/w?sig=ok"}}}

	for _, bad := range []events.AgentArtifactV1{
		{Name: "w.bin", SHA256: digest([]byte("other")), SizeBytes: int64(len(body)), URL: "/blob/w?sig=ok"},
		{Name: "w.bin", SHA256: digest(body), SizeBytes: 3, URL: "/blob/w?sig=ok"},
		{Name: "w.bin", SHA256: digest(body), SizeBytes: int64(len(body)), URL: "/blob/w?sig=expired"},
	} {
		bm := m
		bm.Files = []events.AgentArtifactV1{bad}
		if _, err := c.Mount(ctx, "sb-bad", bm); !errors.Is(err, ErrFetch) {
			t.Fatalf("mount %+v: %v; want ErrFetch", bad, err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("refused fetches left %d files", len(left))
	}
	if files, _ := c.Files(); len(files) != 0 {
		t.Fatalf("refused fetches cached %v", files)
	}

	hits.Store(0)
	a, err := c.Mount(ctx, "sb-1", m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Mount(ctx, "sb-2", m)
	if err != nil {
		t.Fatal(err)
	}
	if a.Source != b.Source || a.Target != "/artifacts/lst-a" || hits.Load() != 1 {
		t.Fatalf("two sandboxes: %+v %+v after %d fetches; want one set, fetched once", a, b, hits.Load())
	}
	if got, err := os.ReadFile(filepath.Join(a.Source, "w.bin")); err != nil || string(got) != string(body) {
		t.Fatalf("the set's file: %q, %v", got, err)
	}
	if fi, _ := os.Stat(a.Source); fi.Mode().Perm() != 0o555 {
		t.Fatalf("set directory mode %v; want read-only 0555", fi.Mode().Perm())
	}
	if err := c.Release("sb-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Source); err != nil {
		t.Fatalf("released by one of two sandboxes: %v", err)
	}
	if err := c.Sweep(func(id string) bool { return id != "sb-2" }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Source); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("set after its last sandbox ended: %v", err)
	}
	if files, _ := c.Files(); len(files) != 0 {
		t.Fatalf("files after every sandbox ended: %v", files)
	}
	if _, err := c.Mount(ctx, "sb-3", events.AgentMountV1{ListingID: "lst-a", Target: "/artifacts/lst-a",
		Files: []events.AgentArtifactV1{{Name: "../etc", SHA256: digest(body), SizeBytes: 1, URL: "/x"}}}); err == nil {
		t.Fatal("a name with a path was accepted")
	}
}
