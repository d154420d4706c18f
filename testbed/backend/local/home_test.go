package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCopySparse: the copy has the source's bytes and its holes, all-zero data becomes holes too, and
// an existing file is never overwritten.
func TestCopySparse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	const size = 64 << 20
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		data []byte
		at   int64
	}{
		{bytes.Repeat([]byte("a"), 5000), 4096},
		{make([]byte, 1<<20), 8 << 20}, // written zeros: data in src, a hole in the copy
		{[]byte("mid"), 20<<20 + 1},
		{[]byte("end"), size - 3},
	} {
		if _, err := f.WriteAt(w.data, w.at); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	c, err := os.ReadFile(dst)
	if err != nil || len(a) != size || !bytes.Equal(a, c) {
		t.Fatalf("the copy differs from the source (%d and %d bytes, %v)", len(a), len(c), err)
	}
	if used := diskBytes(t, dst); used >= 1<<20 {
		t.Errorf("the copy uses %d bytes of disk, want only the non-zero data (~12 KiB)", used)
	}
	if err := copySparse(src, dst); !errors.Is(err, os.ErrExist) {
		t.Errorf("copy onto an existing file: %v, want it refused", err)
	}
}

// TestHome: a home is a sparse copy of its size's template, which is formatted once; it is mounted
// nosuid and nodev through a loop device set to autoclear, its root belongs to the sandbox's uid and holds
// nothing, it takes no more than its quota even from host root, and after removeHome nothing of it is
// left: no mount, no file, no loop device.
func TestHome(t *testing.T) {
	t.Parallel()
	const size = 32 << 20
	b := newBackendWith(t, RuntimeRunc, Options{Root: t.TempDir(), CgroupParent: runtimeParent(RuntimeRunc), HomeBytes: size})
	ctx := context.Background()
	template, err := b.homeTemplate(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.Stat(template)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.homeTemplate(ctx, size); err != nil || again != template {
		t.Fatalf("second template %q, %v; want %q", again, err, template)
	} else if fi, err := os.Stat(again); err != nil || !os.SameFile(first, fi) {
		t.Fatalf("the template was formatted again (%v)", err)
	}
	if first.Mode().Perm() != 0o600 || first.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("template %s is mode %v, owner %d; want 0600 root's", template, first.Mode(), first.Sys().(*syscall.Stat_t).Uid)
	}

	dir := filepath.Join(b.opts.Root, "home-test")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const hostID = 1_999_000_000
	if err := makeHome(dir, template, hostID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeHome(dir) })
	img, mnt := filepath.Join(dir, fileHomeImage), filepath.Join(dir, dirHome)
	if used := diskBytes(t, img); used >= 1<<20 {
		t.Errorf("a fresh home image uses %d bytes of disk, want only the filesystem's metadata", used)
	}
	fi, err := os.Stat(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != hostID || st.Gid != hostID || fi.Mode().Perm() != 0o755 {
		t.Errorf("home's root is %v owned by %d:%d, want 0755 owned by the sandbox's %d", fi.Mode(), st.Uid, st.Gid, hostID)
	}
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 0 {
		t.Errorf("a fresh home holds %v (%v), want nothing (no lost+found)", entries, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); err != nil || sfs.Flags&unix.ST_NOSUID == 0 || sfs.Flags&unix.ST_NODEV == 0 || sfs.Type != unix.EXT4_SUPER_MAGIC {
		t.Errorf("home is mounted with type %#x, flags %#x (%v); want ext4, nosuid and nodev", sfs.Type, sfs.Flags, err)
	}
	devs := loopDevices(dir)
	if len(devs) != 1 {
		t.Fatalf("loop devices backed by %s: %v, want one", dir, devs)
	}
	if data, err := os.ReadFile(filepath.Join(devs[0], "loop", "autoclear")); err != nil || strings.TrimSpace(string(data)) != "1" {
		t.Errorf("%s autoclear = %q (%v), want 1", devs[0], data, err)
	}

	// Host root has no reserved blocks either: the quota holds for everyone.
	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i) | 1
	}
	written := 0
	for ; written < 2*size; written += len(chunk) {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("writing %d MiB into a %d MiB home: %v, want ENOSPC", written>>20, size>>20, err)
	}
	if used := diskBytes(t, img); used > size+1<<20 {
		t.Errorf("the home image uses %d bytes of disk, over its %d byte quota", used, size)
	}

	if err := removeHome(dir); err != nil {
		t.Fatal(err)
	}
	if mounted(mnt) || exists(mnt) || exists(img) {
		t.Errorf("after removeHome: mounted %v, mount point %v, image %v; want none", mounted(mnt), exists(mnt), exists(img))
	}
	waitFor(t, 10*time.Second, "the loop device to be freed", func() bool { return len(loopDevices(dir)) == 0 })
}

// TestLoopSetFD: the binding of kernels before LOOP_CONFIGURE sets autoclear too, so its device is freed
// with the last unmount.
func TestLoopSetFD(t *testing.T) {
	t.Parallel()
	const size = 32 << 20
	b := newBackendWith(t, RuntimeRunc, Options{Root: t.TempDir(), CgroupParent: runtimeParent(RuntimeRunc), HomeBytes: size})
	template, err := b.homeTemplate(context.Background(), size)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, fileHomeImage), filepath.Join(dir, dirHome)
	if err := copySparse(template, img); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	dev, err := attachLoop(img, bindLoopSetFD)
	if err != nil {
		t.Fatal(err)
	}
	info, err := unix.IoctlLoopGetStatus64(int(dev.Fd()))
	if err != nil || info.Flags&unix.LO_FLAGS_AUTOCLEAR == 0 {
		t.Errorf("%s flags %#x (%v), want autoclear", dev.Name(), info.Flags, err)
	}
	err = unix.Mount(dev.Name(), mnt, "ext4", homeMountFlags, "noinit_itable")
	dev.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := removeHome(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the loop device to be freed", func() bool { return len(loopDevices(dir)) == 0 })
}

// loopDevices are the /sys/block entries of the loop devices backed by a file under dir.
func loopDevices(dir string) []string {
	var out []string
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range backing {
		if data, _ := os.ReadFile(f); strings.HasPrefix(string(data), dir+"/") {
			out = append(out, filepath.Dir(filepath.Dir(f)))
		}
	}
	return out
}

// diskBytes is how much of the host's disk p takes.
func diskBytes(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// BenchmarkHome measures making a home from its template (copy, loop device, mount, chown) and removing
// it again, with the default 10 GiB quota; the template is made before the timer starts.
func BenchmarkHome(bb *testing.B) {
	b := newBackendWith(bb, RuntimeRunc, Options{Root: bb.TempDir(), CgroupParent: runtimeParent(RuntimeRunc)})
	template, err := b.homeTemplate(context.Background(), b.opts.HomeBytes)
	if err != nil {
		bb.Fatal(err)
	}
	dir := filepath.Join(b.opts.Root, "home-bench")
	if err := os.Mkdir(dir, 0o700); err != nil {
		bb.Fatal(err)
	}
	for bb.Loop() {
		if err := makeHome(dir, template, 1_999_000_000); err != nil {
			bb.Fatal(err)
		}
		if err := removeHome(dir); err != nil {
			bb.Fatal(err)
		}
	}
}
