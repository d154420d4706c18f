package image

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// serveStore serves a registry store's read-only handler on a loopback port, as `tamarack serve` does.
func serveStore(t *testing.T, r *Registry) string { return startStore(t, r) }

func startStore(t testing.TB, r *Registry) string {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestRegistryStorePushPullAndDurability(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, err := OpenRegistry(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t, layer(t, file("bin/sh", "shell", 0o755)))
	digest, err := store.Push(bg, "tamarack/shell", "bookworm", img)
	if err != nil {
		t.Fatal(err)
	}
	host := serveStore(t, store)
	policy := Policy{Allow: []string{host + "/tamarack/"}}
	ref := host + "/tamarack/shell@" + digest.String()
	r, err := newCache(t, Options{}).Rootfs(bg, ref, Pull{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, r.Path, "bin/sh") != "shell" {
		t.Error("wrong content")
	}

	// A restart: a new store on the same directory still serves the image (manifests were journalled).
	reopened, err := OpenRegistry(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	host2 := serveStore(t, reopened)
	if _, err := newCache(t, Options{}).Rootfs(bg, host2+"/tamarack/shell@"+digest.String(), Pull{Policy: Policy{Allow: []string{host2 + "/"}}}); err != nil {
		t.Fatalf("after reopening: %v", err)
	}

	// Another process (tamarack seed) pushes into the same directory: the running store serves it.
	other, err := OpenRegistry(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	img2 := testImage(t, layer(t, file("usr/bin/python3", "py", 0o755)))
	d2, err := other.Push(bg, "tamarack/python", "bookworm", img2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newCache(t, Options{}).Rootfs(bg, host+"/tamarack/python@"+d2.String(), Pull{Policy: policy}); err != nil {
		t.Fatalf("image pushed by another process: %v", err)
	}
}

func TestRegistryStoreIsReadOnlyOverHTTP(t *testing.T) {
	t.Parallel()
	store, err := OpenRegistry(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	host := serveStore(t, store)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		req, _ := http.NewRequest(m, "http://"+host+"/v2/tamarack/shell/blobs/uploads/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", m, resp.StatusCode)
		}
	}
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/: %d", resp.StatusCode)
	}
}

func TestBuiltinList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, err := OpenRegistry(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := store.Builtin()
	if err != nil || len(empty) != 0 {
		t.Fatalf("Builtin on a new store = %v, %v", empty, err)
	}
	if _, err := empty.Ref("127.0.0.1:5001", "shell"); err == nil || !strings.Contains(err.Error(), "build.sh") {
		t.Errorf("Ref of a missing image = %v, want how to build it", err)
	}
	b := Builtin{"shell": {Repository: "tamarack/shell", Digest: "sha256:" + strings.Repeat("a", 64)}}
	if err := store.SetBuiltin(b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBuiltin(filepath.Join(dir, BuiltinFile))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := got.Ref("127.0.0.1:5001", "shell")
	if err != nil || ref != "127.0.0.1:5001/tamarack/shell@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("Ref = %q, %v", ref, err)
	}
}
