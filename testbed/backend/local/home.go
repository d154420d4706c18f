package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// The home directory has a quota: it is its own ext4 filesystem in a sparse image file
// (<dir>/home.img, Options.HomeBytes), mounted at <dir>/home through a loop device and bound into the
// sandbox at /home/sandbox. A sandbox that fills it gets ENOSPC; the host's disk only ever holds what was
// written. Its root directory belongs to the sandbox's root (its host uid), so the sandbox writes there
// with no capability over anything else. The host mount is nosuid and nodev as well as the sandbox's
// bind: a setuid file made inside is never setuid on the host, and is owned by the sandbox's uid anyway.
//
// Every home of one size starts as the same empty filesystem, so it is formatted once: mkfs.ext4 makes a
// template (<root>/.home/ext4-<format>-<size>.img, root-owned, 0600) the first time a sandbox needs one,
// and each sandbox's image is a sparse copy of it (only the ~160 KiB of metadata mkfs wrote; the rest
// stays holes). Then the image is bound to a free loop device (LOOP_CONFIGURE) and mounted with mount(2),
// and its root directory is given to the sandbox's uid: no helper process on the way.
//
// The loop device is set to autoclear, so the kernel frees it when the last mount of the filesystem is
// gone (the host's, and the sandbox's when its mount namespace dies). The home lives as long as the
// sandbox runs: its end (or Stop, or Remove for a lost one) unmounts and deletes it.

// homeDefaultBytes is each sandbox's home quota unless Options.HomeBytes says otherwise. The image is
// sparse: it costs only what the sandbox writes.
const homeDefaultBytes = 10 << 30

// dirHomeTemplates holds the formatted, empty home filesystems, one per size, under the backend's root.
const dirHomeTemplates = ".home"

// homeMkfs are mkfs.ext4's options for a home template (the image's path follows). No journal: the home
// dies with the sandbox, so crash consistency buys nothing and the journal would cost tens of MiB per
// home. No reserved GDT blocks (^resize_inode): a home never grows, and they would be 4 MiB of metadata
// in every copy. No reserved blocks: they would be reserved for host root. Inode tables are initialised
// lazily and, with noinit_itable at mount, never zeroed in the background: they stay holes. The root
// directory belongs to host root until a sandbox's copy is given to its uid.
var homeMkfs = []string{"-q", "-F", "-O", "^has_journal,^resize_inode", "-m", "0",
	"-E", "root_owner=0:0,lazy_itable_init=1,nodiscard"}

// homeFormat names the format in the template's file name, so that a change of homeMkfs makes a new
// template instead of reusing one made with other options.
var homeFormat = func() string {
	sum := sha256.Sum256([]byte(strings.Join(homeMkfs, "\x00")))
	return fmt.Sprintf("%x", sum[:6])
}()

// homeMountFlags are the home's host mount flags; the sandbox's bind adds its own (ocispec).
const homeMountFlags = unix.MS_NOSUID | unix.MS_NODEV

// homeTemplate returns the template home filesystem of size bytes, making it if it does not exist yet.
// Concurrent callers in this process wait for one mkfs; another process sharing the root may format
// its own copy at the same time, and the last rename wins (both are the same empty filesystem).
func (b *Backend) homeTemplate(ctx context.Context, size int64) (string, error) {
	dir := filepath.Join(b.opts.Root, dirHomeTemplates)
	p := filepath.Join(dir, "ext4-"+homeFormat+"-"+strconv.FormatInt(size, 10)+".img")
	b.homeMu.Lock()
	defer b.homeMu.Unlock()
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("home template: %w", err)
	}
	removeStaleTemps(dir)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("home template: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = run(ctx, "mkfs.ext4", append(homeMkfs, tmp)...)
	}
	if err == nil {
		// Never publish a template whose blocks a crash could lose: every later home would be corrupt.
		err = syncFile(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		return "", fmt.Errorf("home template: %w", err)
	}
	return p, nil
}

// removeStaleTemps deletes templates left half-made by a process that died while formatting them (an
// hour is far longer than any mkfs).
func removeStaleTemps(dir string) {
	temps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	for _, t := range temps {
		if fi, err := os.Stat(t); err == nil && time.Since(fi.ModTime()) > time.Hour {
			_ = os.Remove(t)
		}
	}
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// makeHome creates the home filesystem of the sandbox in dir, a copy of template, owned by hostID, and
// mounts it on <dir>/home, which it makes unless it exists.
func makeHome(dir, template string, hostID uint32) error {
	img, mnt := filepath.Join(dir, fileHomeImage), filepath.Join(dir, dirHome)
	if err := copySparse(template, img); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("home: %w", err)
	}
	if err := mountImage(img, mnt); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	// The sandbox's root owns the filesystem's root; nothing else in it exists yet.
	if err := os.Chown(mnt, int(hostID), int(hostID)); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	// mkfs's lost+found belongs to host root (nobody inside); fsck is never run on a scratch home.
	_ = os.Remove(filepath.Join(mnt, "lost+found"))
	return nil
}

// copySparse copies src into a new file dst of the same size, writing only src's data (SEEK_DATA) and
// of that only the blocks that are not all zeros: dst's holes are src's holes. A home template's data is
// its metadata, a few dozen small extents. dst is not synced: a home never outlives its boot.
func copySparse(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	size := fi.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	fd := int(in.Fd())
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole after off
		}
		if err != nil {
			return fmt.Errorf("seek data in %s: %w", src, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole in %s: %w", src, err)
		}
		for p := data; p < hole; {
			chunk := buf[:min(int64(len(buf)), hole-p)]
			if _, err := in.ReadAt(chunk, p); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if !bytes.Equal(chunk, zero[:len(chunk)]) {
				if _, err := out.WriteAt(chunk, p); err != nil {
					return err
				}
			}
			p += int64(len(chunk))
		}
		off = hole
	}
	return nil
}

// mountImage mounts the ext4 image img at mnt (nosuid, nodev) through a loop device of its own that the
// kernel frees once the filesystem is unmounted everywhere.
func mountImage(img, mnt string) error {
	dev, err := attachLoop(img, bindLoop)
	if err != nil {
		return err
	}
	// Closing the device after the mount leaves the mount its only user (autoclear then frees it at the
	// last unmount); closing it after a failed mount frees it now.
	defer dev.Close()
	if err := unix.Mount(dev.Name(), mnt, "ext4", homeMountFlags, "noinit_itable"); err != nil {
		return fmt.Errorf("mount %s on %s: %w", img, mnt, err)
	}
	return nil
}

// loopBinder binds the open file backing to the open loop device dev with the flags of info.
type loopBinder func(dev, backing int, info *unix.LoopInfo64) error

// attachLoop binds img to a free loop device, set to autoclear, and returns the device open: the kernel
// unbinds and frees it when its last user (this descriptor, a mount) is gone.
func attachLoop(img string, bind loopBinder) (*os.File, error) {
	backing, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer backing.Close() // the loop device holds its own reference to the file
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR}
	copy(info.File_name[:len(info.File_name)-1], img) // informative only (losetup -l); may be cut
	// Another process (another backend, losetup) may bind the free device between GET_FREE and the
	// binding: EBUSY, ask again.
	for range 64 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev, err := os.OpenFile("/dev/loop"+strconv.Itoa(n), os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		err = bind(int(dev.Fd()), int(backing.Fd()), &info)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("bind %s to %s: %w", img, dev.Name(), err)
		}
	}
	return nil, fmt.Errorf("bind %s to a loop device: every free one was taken by another process first", img)
}

// bindLoop binds in one step (LOOP_CONFIGURE, Linux 5.8), or on older kernels in two (bindLoopSetFD).
func bindLoop(dev, backing int, info *unix.LoopInfo64) error {
	err := unix.IoctlLoopConfigure(dev, &unix.LoopConfig{Fd: uint32(backing), Info: *info})
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
		return bindLoopSetFD(dev, backing, info)
	}
	return err
}

// bindLoopSetFD binds as kernels before LOOP_CONFIGURE must: the file (LOOP_SET_FD), then the flags
// (LOOP_SET_STATUS64). A device whose flags cannot be set is unbound again.
func bindLoopSetFD(dev, backing int, info *unix.LoopInfo64) error {
	if err := unix.IoctlSetInt(dev, unix.LOOP_SET_FD, backing); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(dev, info); err != nil {
		_ = unix.IoctlSetInt(dev, unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// removeHome unmounts and deletes the home of the sandbox in dir. It is idempotent, and it never deletes
// anything through a mount it could not detach.
func removeHome(dir string) error {
	mnt := filepath.Join(dir, dirHome)
	if mounted(mnt) {
		if err := unix.Unmount(mnt, 0); err != nil {
			// Busy: something on the host has a file open in it. Detach it from the tree now; the
			// kernel finishes (and frees the loop device) when the last user lets go.
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount home: %w", err)
			}
		}
		if mounted(mnt) {
			return fmt.Errorf("unmount home: %s is still mounted", mnt)
		}
	}
	for _, p := range []string{mnt, filepath.Join(dir, fileHomeImage)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove home: %w", err)
		}
	}
	return nil
}

// mounted reports whether p is the root of a mount other than its parent's filesystem.
func mounted(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// checkLoop reports whether loop devices can be set up here, which the home quota needs.
func checkLoop() error {
	f, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err == nil {
		_, err = unix.IoctlRetInt(int(f.Fd()), unix.LOOP_CTL_GET_FREE)
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("%w: loop devices unavailable (%v): each sandbox's home is a loop-mounted filesystem with a quota; load the loop module (modprobe loop) or, in a container, give it /dev/loop-control and /dev/loop*", backend.ErrUnavailable, err)
	}
	return nil
}

// run runs a host tool with a fixed PATH and returns its output in the error.
func run(ctx context.Context, name string, args ...string) error {
	c := exec.CommandContext(ctx, name, args...)
	c.Env = []string{"PATH=" + hostPath}
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// hostPath is the PATH of every host tool the backend runs (mkfs.ext4, runc).
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
