package image_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/image"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// TestBuiltinImagesBuild runs infra/images/build.sh (a no-op when its cache is current), pushes what it
// built into a registry store, pulls both images through the distribution API and checks they hold a
// shell and python3; as root it also runs them, chrooted, as an unprivileged uid, which is how a sandbox's
// user namespace sees the shared root.
func TestBuiltinImagesBuild(t *testing.T) {
	dir := imagetest.Build(t)
	list, err := image.ReadBuiltin(filepath.Join(dir, image.BuildListFile))
	if err != nil {
		t.Fatal(err)
	}

	store, err := image.OpenRegistry(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(store.Handler())
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := image.New(image.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		image, file string
		run         []string
		want        string
	}{
		{"shell", "bin/sh", []string{"/bin/sh", "-c", "echo $((6*7))"}, "42"},
		{"python", "usr/bin/python3", []string{"/usr/bin/python3", "-c", "print(6*7)"}, "42"},
	} {
		e, ok := list[tc.image]
		if !ok {
			t.Fatalf("%s not built: %v", tc.image, list)
		}
		img, err := image.ReadLayout(filepath.Join(dir, e.Layout), e.Digest)
		if err != nil {
			t.Fatal(err)
		}
		d, err := store.Push(context.Background(), e.Repository, "latest", img)
		if err != nil || d.String() != e.Digest {
			t.Fatalf("push %s: %v (digest %s, listed %s)", tc.image, err, d, e.Digest)
		}
		r, err := c.Rootfs(context.Background(), host+"/"+e.Repository+"@"+e.Digest, image.Pull{Policy: image.Policy{Allow: []string{host + "/tamarack/"}}})
		if err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := root.Stat(tc.file) // through the image's own links (bin -> usr/bin, sh -> dash)
		root.Close()
		if err != nil || !st.Mode().IsRegular() || st.Mode()&0o001 == 0 {
			t.Fatalf("%s: /%s = %v, %v; want an executable file for everyone", tc.image, tc.file, st, err)
		}
		t.Logf("%s: %s, %d bytes unpacked, setuid/setgid stripped from %v", tc.image, r.Digest, r.Bytes, r.Stripped)
		if os.Geteuid() != 0 {
			continue
		}
		run := exec.Command(tc.run[0], tc.run[1:]...)
		run.Env = []string{"PATH=/usr/bin:/bin"}
		run.Dir = "/"
		run.SysProcAttr = &syscall.SysProcAttr{Chroot: r.Path, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		got, err := run.CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != tc.want {
			t.Errorf("%s: %v = %q, %v; want %s", tc.image, tc.run, got, err, tc.want)
		}
	}
}
