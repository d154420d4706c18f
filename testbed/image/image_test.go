package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPullVerifiesAndUnpacks(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, nil)
	img := testImage(t,
		layer(t, dir("usr/", 0o755), dir("usr/bin/", 0o755), symlink("bin", "usr/bin"),
			file("usr/bin/sh", "#!shell", 0o755), file("usr/bin/su", "setuid", 0o4755|0o755),
			file("usr/bin/wall", "setgid", 0o2755), dir("etc/", 0o755), file("etc/shadow", "secret", 0o640),
			hardlink("usr/bin/sh2", "usr/bin/sh"), symlink("etc/abs", "/usr/bin/sh"),
			ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666}, ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o644},
			dir("tmp/", 0o1777), dir("locked/", 0o500), file("locked/inside", "x", 0o444)),
	)
	ref := reg.push(t, "demo/app", img)
	c := newCache(t, Options{})
	var mu sync.Mutex
	var seen []Progress
	r, err := c.Rootfs(bg, ref, Pull{Policy: reg.allowAll(), Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if r.Digest != d.String() || filepath.Base(filepath.Dir(r.Path)) != d.Hex {
		t.Errorf("Rootfs = %+v, want digest %s", r, d)
	}
	if got := readFile(t, r.Path, "bin/sh"); got != "#!shell" {
		t.Errorf("bin/sh through the usr/bin symlink = %q", got)
	}
	for p, want := range map[string]os.FileMode{
		"usr/bin/sh": 0o755, "usr/bin/su": 0o755, "usr/bin/wall": 0o755, "etc/shadow": 0o640,
		"tmp": os.ModeDir | os.ModeSticky | 0o777, "locked": os.ModeDir | 0o500,
	} {
		st, err := os.Lstat(filepath.Join(r.Path, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("mode of %s = %v, want %v", p, st.Mode(), want)
		}
	}
	if !slices.Equal(r.Stripped, []string{"/usr/bin/su", "/usr/bin/wall"}) {
		t.Errorf("Stripped = %v", r.Stripped)
	}
	if len(r.Skipped) != 2 || !strings.HasPrefix(r.Skipped[0], "/dev/null: device node") || !strings.HasPrefix(r.Skipped[1], "/run/fifo") {
		t.Errorf("Skipped = %v", r.Skipped)
	}
	mustNotExist(t, r.Path, "dev/null")
	a, _ := os.Stat(filepath.Join(r.Path, "usr/bin/sh"))
	b, _ := os.Stat(filepath.Join(r.Path, "usr/bin/sh2"))
	if !os.SameFile(a, b) {
		t.Error("usr/bin/sh2 is not a hard link of usr/bin/sh")
	}
	if l, _ := os.Readlink(filepath.Join(r.Path, "etc/abs")); l != "/usr/bin/sh" {
		t.Errorf("absolute symlink written as %q, want it kept for the sandbox to resolve", l)
	}
	if !a.ModTime().Equal(epoch) {
		t.Errorf("mtime = %v, want the image's %v", a.ModTime(), epoch)
	}
	if !slices.Equal(r.Config.Env, []string{"PATH=/usr/bin:/bin"}) || r.Config.WorkingDir != "/root" {
		t.Errorf("Config = %+v", r.Config)
	}
	// Progress: pulling, then unpacking, then ready with every byte done.
	mu.Lock()
	defer mu.Unlock()
	last := seen[len(seen)-1]
	if seen[0].Phase != PhasePulling || last.Phase != PhaseReady || last.Done != last.Total || last.Total == 0 {
		t.Errorf("progress = %+v", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Phase == seen[i-1].Phase && seen[i].Done < seen[i-1].Done {
			t.Errorf("progress went back: %+v then %+v", seen[i-1], seen[i])
		}
	}
}

// tamper makes the registry answer different bytes for one blob (a layer) or manifest.
func tamper(target string, change func([]byte) []byte) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/"+target) {
				next.ServeHTTP(w, r)
				return
			}
			rec := &recorder{header: http.Header{}}
			next.ServeHTTP(rec, r)
			body := change(rec.body.Bytes())
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.code)
			_, _ = w.Write(body)
		})
	}
}

type recorder struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }

func TestTamperedLayerRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(b []byte) []byte
	}{
		{"one byte flipped", func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 0x01; return b }},
		{"another layer", func([]byte) []byte {
			rc, _ := layer(t, file("bin/sh", "an evil shell", 0o755)).Compressed()
			b, _ := io.ReadAll(rc)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := layer(t, file("bin/sh", "good shell", 0o755))
			ld, _ := l.Digest()
			reg := startRegistry(t, tamper(ld.String(), tc.change))
			ref := reg.push(t, "demo/tampered", testImage(t, l))
			c := newCache(t, Options{})
			_, err := c.Rootfs(bg, ref, Pull{Policy: reg.allowAll()})
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("Rootfs = %v, want ErrVerify", err)
			}
			if n := countFiles(t, filepath.Join(c.opts.Dir, layersDir)) + countFiles(t, filepath.Join(c.opts.Dir, rootsDir)); n != 0 {
				t.Errorf("%d files cached or unpacked from a tampered image", n)
			}
		})
	}
}

func TestTamperedManifestRefused(t *testing.T) {
	t.Parallel()
	img := testImage(t, layer(t, file("bin/sh", "shell", 0o755)))
	d, _ := img.Digest()
	reg := startRegistry(t, tamper(d.String(), func(b []byte) []byte { return append(b, ' ') }))
	ref := reg.push(t, "demo/manifest", img)
	_, err := newCache(t, Options{}).Rootfs(bg, ref, Pull{Policy: reg.allowAll()})
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("Rootfs = %v, want a digest mismatch", err)
	}
}

func TestCachedLayerChangedOnDiskRefused(t *testing.T) {
	t.Parallel()
	l := layer(t, file("bin/sh", "shell", 0o755))
	ld, _ := l.Digest()
	img1 := testImage(t, l)
	img2 := testImage(t, l, layer(t, file("etc/motd", "hi", 0o644)))
	reg := startRegistry(t, nil)
	ref1, ref2 := reg.push(t, "demo/one", img1), reg.push(t, "demo/two", img2)
	c := newCache(t, Options{})
	if _, err := c.Rootfs(bg, ref1, Pull{Policy: reg.allowAll()}); err != nil {
		t.Fatal(err)
	}
	// Someone with access to the host's disk changes the shared cached layer.
	p := filepath.Join(c.opts.Dir, layersDir, ld.Hex)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rootfs(bg, ref2, Pull{Policy: reg.allowAll()}); !errors.Is(err, ErrVerify) {
		t.Fatalf("Rootfs over a changed cached layer = %v, want ErrVerify", err)
	}
	// The bad copy was dropped: the next request downloads the layer again.
	if r, err := c.Rootfs(bg, ref2, Pull{Policy: reg.allowAll()}); err != nil || readFile(t, r.Path, "etc/motd") != "hi" {
		t.Fatalf("after the bad layer was dropped: %v", err)
	}
}

func TestSecondRequestReusesUnpackedRootOffline(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, nil)
	ref := reg.push(t, "demo/reuse", testImage(t, layer(t, file("bin/sh", "shell", 0o755))))
	dir := t.TempDir()
	c := newCache(t, Options{Dir: dir})
	r1, err := c.Rootfs(bg, ref, Pull{Policy: reg.allowAll()})
	if err != nil {
		t.Fatal(err)
	}
	reg.srv.Close() // the registry is gone: the unpacked root must be enough
	var ready bool
	r2, err := c.Rootfs(bg, ref, Pull{Policy: reg.allowAll(), Progress: func(p Progress) { ready = p.Phase == PhaseReady }})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Path != r2.Path || c.Unpacks() != 1 || !ready {
		t.Errorf("second request: path %s vs %s, %d unpacks, ready %v", r1.Path, r2.Path, c.Unpacks(), ready)
	}
	// A new Cache on the same directory (a restart) reuses it too.
	c2 := newCache(t, Options{Dir: dir})
	if r3, err := c2.Rootfs(bg, ref, Pull{Policy: reg.allowAll()}); err != nil || r3.Path != r1.Path || c2.Unpacks() != 0 {
		t.Errorf("after restart: %v, %s, %d unpacks", err, r3.Path, c2.Unpacks())
	}
}

func TestConcurrentRequestsUnpackOnce(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	var blobGets sync.Map
	reg := startRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				<-gate
				n, _ := blobGets.LoadOrStore(r.URL.Path, new(int))
				*n.(*int)++
			}
			next.ServeHTTP(w, r)
		})
	})
	ref := reg.push(t, "demo/concurrent", testImage(t, layer(t, file("bin/sh", "shell", 0o755))))
	d, _ := ParseRef(ref)
	key := strings.TrimPrefix(d.DigestStr(), "sha256:")
	c := newCache(t, Options{})
	const n = 8
	paths := make([]string, n)
	errs := make([]error, n)
	var progressed [n]bool
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := c.Rootfs(bg, ref, Pull{Policy: reg.allowAll(), Progress: func(p Progress) { progressed[i] = true }})
			paths[i], errs[i] = r.Path, err
		})
	}
	// Release the registry once every request waits on the one pull.
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		f := c.flights[key]
		if f == nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.subs) == n
	})
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || paths[i] != paths[0] || !progressed[i] {
			t.Errorf("request %d: %v, %s, progress %v", i, errs[i], paths[i], progressed[i])
		}
	}
	if c.Unpacks() != 1 {
		t.Errorf("%d unpacks, want 1", c.Unpacks())
	}
	blobGets.Range(func(k, v any) bool {
		if *v.(*int) != 1 {
			t.Errorf("%s fetched %d times", k, *v.(*int))
		}
		return true
	})
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIndexReferenceResolvesToPlatformImage(t *testing.T) {
	t.Parallel()
	img := testImage(t, layer(t, file("bin/sh", "shell", 0o755)))
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	reg := startRegistry(t, nil)
	host := reg.host
	ref := reg.push(t, "demo/single", img)
	id, _ := idx.Digest()
	tag, _ := name.NewTag(host + "/demo/multi:latest")
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, Options{})
	r1, err := c.Rootfs(bg, host+"/demo/multi@"+id.String(), Pull{Policy: reg.allowAll()})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if r1.Digest != d.String() {
		t.Errorf("index resolved to %s, want %s", r1.Digest, d)
	}
	r2, err := c.Rootfs(bg, ref, Pull{Policy: reg.allowAll()})
	if err != nil || r2.Path != r1.Path || c.Unpacks() != 1 {
		t.Errorf("image after its index: %v, %s vs %s, %d unpacks", err, r2.Path, r1.Path, c.Unpacks())
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, nil)
	ref := reg.push(t, "demo/big", testImage(t, layer(t, dir("data/", 0o755), file("data/big", strings.Repeat("x", 4096), 0o644))))
	tag := reg.host + "/demo/big:latest"
	for _, tc := range []struct {
		name string
		ref  string
		pull Pull
		opts Options
		want error
	}{
		{"tag not digest", tag, Pull{Policy: reg.allowAll()}, Options{}, ErrNotPinned},
		{"not on the allow-list", ref, Pull{Policy: Policy{Allow: []string{"ghcr.io/acme/"}}}, Options{}, ErrNotAllowed},
		{"zero policy", ref, Pull{}, Options{}, ErrNotAllowed},
		{"too large", ref, Pull{Policy: reg.allowAll()}, Options{MaxBytes: 1024}, ErrTooLarge},
		{"too many files", ref, Pull{Policy: reg.allowAll()}, Options{MaxFiles: 1}, ErrTooLarge},
		{"within limits", ref, Pull{Policy: reg.allowAll()}, Options{MaxBytes: 8192, MaxFiles: 2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newCache(t, tc.opts).Rootfs(bg, tc.ref, tc.pull)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Rootfs = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Rootfs = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, nil)
	shared := layer(t, file("bin/sh", "shell", 0o755))
	a := testImage(t, shared, layer(t, dir("ro/", 0o555), file("ro/a", "a", 0o444)))
	b := testImage(t, shared, layer(t, file("b", "b", 0o644)))
	refA, refB := reg.push(t, "demo/a", a), reg.push(t, "demo/b", b)
	c := newCache(t, Options{})
	ra, err := c.Rootfs(bg, refA, Pull{Policy: reg.allowAll()})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := c.Rootfs(bg, refB, Pull{Policy: reg.allowAll()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Prune([]string{rb.Digest})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Roots, []string{ra.Digest}) || rep.Layers != 1 {
		t.Errorf("Prune = %+v, want %s and its own layer removed", rep, ra.Digest)
	}
	mustNotExist(t, ra.Path, "")
	if readFile(t, rb.Path, "bin/sh") != "shell" {
		t.Error("kept image damaged")
	}
	if _, err := c.Rootfs(bg, refB, Pull{Policy: reg.allowAll()}); err != nil || c.Unpacks() != 2 {
		t.Errorf("kept image: %v, %d unpacks", err, c.Unpacks())
	}
}

// TestPruneWaitsForHolds: while the cache is held (a pull in progress) Prune removes
// nothing and answers ErrBusy, in this process and through another Cache on the same directory (another
// process: tamarack images prune beside the server), without asking what to keep; once released it prunes.
// An index digest in the keep list keeps the image it resolved to; Usage and the report count the bytes.
func TestPruneWaitsForHolds(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, nil)
	a := testImage(t, layer(t, file("a", strings.Repeat("a", 4096), 0o644)))
	b := testImage(t, layer(t, file("b", "b", 0o644)))
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: a,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	id, _ := idx.Digest()
	tag, _ := name.NewTag(reg.host + "/demo/multi:latest")
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	refB := reg.push(t, "demo/b", b)
	c := newCache(t, Options{})
	ra, err := c.Rootfs(bg, reg.host+"/demo/multi@"+id.String(), Pull{Policy: reg.allowAll()})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := c.Rootfs(bg, refB, Pull{Policy: reg.allowAll()})
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.Usage()
	if err != nil || u.Roots != 2 || u.Layers != 2 || u.Bytes <= ra.Bytes+rb.Bytes {
		t.Fatalf("Usage = %+v, %v; roots of %d and %d bytes", u, err, ra.Bytes, rb.Bytes)
	}

	release, err := c.Hold()
	if err != nil {
		t.Fatal(err)
	}
	other := newCache(t, Options{Dir: c.opts.Dir}) // leaves the held cache's temporary files alone
	asked := false
	for _, x := range []*Cache{c, other} {
		if _, err := x.PruneFunc(func() ([]string, error) { asked = true; return nil, nil }); !errors.Is(err, ErrBusy) {
			t.Fatalf("Prune while held: %v", err)
		}
	}
	if asked {
		t.Fatal("Prune asked what to keep while the cache was held")
	}
	release()

	rep, err := other.Prune([]string{id.String()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Roots, []string{rb.Digest}) || rep.Layers != 1 || rep.Bytes < rb.Bytes {
		t.Fatalf("Prune keeping the index = %+v, want only %s (%d bytes) and its layer removed", rep, rb.Digest, rb.Bytes)
	}
	if readFile(t, ra.Path, "a") != strings.Repeat("a", 4096) {
		t.Fatal("the image the index resolved to was damaged")
	}
	if rep, err = c.Prune(nil); err != nil || len(rep.Roots) != 1 {
		t.Fatalf("Prune(nil) = %+v, %v", rep, err)
	}
	if u, err := c.Usage(); err != nil || u != (Usage{}) {
		t.Fatalf("Usage after pruning everything = %+v, %v", u, err)
	}
}

func TestCredentialsPerRegistry(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "vendor" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	creds := Credentials{reg.host: {Username: "vendor", Password: "s3cret"}}
	ref := reg.push(t, "private/app", testImage(t, layer(t, file("app", "x", 0o755))), remote.WithAuthFromKeychain(creds))
	if _, err := newCache(t, Options{}).Rootfs(bg, ref, Pull{Policy: reg.allowAll()}); err == nil {
		t.Fatal("anonymous pull of a private image succeeded")
	}
	if _, err := newCache(t, Options{}).Rootfs(bg, ref, Pull{Policy: reg.allowAll(), Credentials: creds}); err != nil {
		t.Fatalf("pull with the pool's credentials: %v", err)
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	t.Parallel()
	ok := roundTripFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil })
	tr := loopbackOnlyHTTP{ok}
	for url, allowed := range map[string]bool{
		"http://127.0.0.1:5000/v2/": true, "http://localhost:5000/v2/": true, "http://[::1]:5000/v2/": true,
		"https://10.0.0.5/v2/": true, "http://10.0.0.5/v2/": false, "http://registry.local/v2/": false,
		"http://192.168.1.2:5000/v2/": false,
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		_, err := tr.RoundTrip(req)
		if (err == nil) != allowed {
			t.Errorf("%s: err %v, want allowed=%v", url, err, allowed)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func countFiles(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}
