package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

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
// mount(8) sets the loop device to autoclear, so the kernel frees it when the last mount of the
// filesystem is gone (the host's, and the sandbox's when its mount namespace dies). The home lives as long
// as the sandbox runs: its end (or Stop, or Remove for a lost one) unmounts and deletes it.

// homeDefaultBytes is each sandbox's home quota unless Options.HomeBytes says otherwise. The image is
// sparse: it costs only what the sandbox writes.
const homeDefaultBytes = 10 << 30

// makeHome creates and mounts the home filesystem of the sandbox in dir, owned by hostID.
func makeHome(ctx context.Context, dir string, size int64, hostID uint32) error {
	img, mnt := filepath.Join(dir, fileHomeImage), filepath.Join(dir, dirHome)
	f, err := os.OpenFile(img, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	owner := fmt.Sprintf("%d:%d", hostID, hostID)
	// No journal: the home dies with the sandbox, so crash consistency buys nothing and the journal would
	// cost a write of tens of MiB per start. No reserved blocks: they would be reserved for host root.
	// Inode tables are initialised lazily and, with noinit_itable below, never zeroed in the background.
	if err := run(ctx, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0",
		"-E", "root_owner="+owner+",lazy_itable_init=1,nodiscard", img); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	if err := run(ctx, "mount", "-t", "ext4", "-o", "loop,nosuid,nodev,noinit_itable", img, mnt); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	// mkfs's lost+found belongs to host root (nobody inside); fsck is never run on a scratch home.
	_ = os.Remove(filepath.Join(mnt, "lost+found"))
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

// hostPath is the PATH of every host tool the backend runs (mkfs.ext4, mount, runc).
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
