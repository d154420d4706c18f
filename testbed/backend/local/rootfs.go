package local

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
)

// A sandbox's root filesystem is Spec.RootFS, an unpacked image (testbed/image), or, when that is empty,
// the host view: an empty skeleton of mount points (Options.HostDir/hostroot, shared by every sandbox on
// the host) on which the spec binds the host's /usr and a few /etc files read-only. The host view is what
// sandboxes saw before images existed; it stays for templates without an image and for tests.
//
// Either way the root must be reachable by the sandbox's root user, an unprivileged host uid: runc opens
// it from inside the user namespace, so every directory above it must be searchable by others (o+x),
// as Docker's /var/lib/docker is 0711 for remapped roots.

// hostEtc are the parts of the host's /etc that programs need. Never passwd, shadow, machine-id or the
// TLS keys in /etc/ssl/private: passwd and group are generated, the rest stays out.
var hostEtc = []string{"alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "ssl/certs", "ssl/openssl.cnf",
	"ca-certificates", "ca-certificates.conf", "localtime", "timezone", "mime.types", "os-release",
	"profile", "profile.d", "bash.bashrc", "inputrc", "terminfo", "protocols", "services", "gai.conf",
	"host.conf", "debian_version", "python3", "xdg"}

// hostTop are the top-level directories that are symlinks into /usr on merged-/usr systems and
// directories elsewhere.
var hostTop = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// rootfs returns the sandbox's root and the host paths bound into it, after writing the generated /etc
// files into conf.
func (b *Backend) rootfs(s backend.Spec, conf string) (string, []ocispec.Bind, error) {
	generated := map[string]string{
		"hosts":    "127.0.0.1\tlocalhost " + s.SandboxID + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"hostname": s.SandboxID + "\n",
	}
	root := s.RootFS
	var binds []ocispec.Bind
	if root == "" {
		root = filepath.Join(b.opts.HostDir, "hostroot")
		if err := ensureHostView(root); err != nil {
			return "", nil, err
		}
		binds = append(binds, ocispec.Bind{Source: "/usr", Destination: "/usr", ReadOnly: true})
		for _, p := range hostTop {
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				binds = append(binds, ocispec.Bind{Source: p, Destination: p, ReadOnly: true})
			}
		}
		for _, e := range hostEtc {
			if p := "/etc/" + e; exists(p) {
				binds = append(binds, ocispec.Bind{Source: p, Destination: p, ReadOnly: true})
			}
		}
		generated["passwd"] = "root:x:0:0:sandbox:" + ocispec.HomeDir + ":/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
		generated["group"] = "root:x:0:\nnogroup:x:65534:\n"
	}
	for _, name := range slices.Sorted(maps.Keys(generated)) {
		p := filepath.Join(conf, name)
		if err := os.WriteFile(p, []byte(generated[name]), 0o644); err != nil {
			return "", nil, err
		}
		binds = append(binds, ocispec.Bind{Source: p, Destination: "/etc/" + name, ReadOnly: true})
	}
	if s.Network && exists("/etc/resolv.conf") {
		binds = append(binds, ocispec.Bind{Source: "/etc/resolv.conf", Destination: "/etc/resolv.conf", ReadOnly: true})
	}
	for _, p := range b.opts.ReadOnlyPaths {
		binds = append(binds, ocispec.Bind{Source: p, Destination: p, ReadOnly: true})
	}
	return root, binds, nil
}

// ensureHostView creates the host view's skeleton: the top-level symlinks of a merged-/usr host, and
// the directories that are not mount points (mount points are made by ensureMountpoints).
func ensureHostView(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("host view: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("host view: %w", err)
	}
	defer r.Close()
	for _, p := range hostTop {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("host view: %w", err)
		}
		if err := r.Symlink(target, strings.TrimPrefix(p, "/")); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("host view: %w", err)
		}
	}
	for _, d := range []string{"etc", "home", "var"} {
		if err := r.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("host view: %w", err)
		}
	}
	// As on the host: programs (and CDI specs) name /var/run for /run, the sandbox's tmpfs.
	if err := r.Symlink("../run", "var/run"); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("host view: %w", err)
	}
	return nil
}

// ensureMountpoints creates in root every mount point the spec needs and the root lacks: the sandbox's
// root user cannot create them itself in a root it does not own. Filesystems under a filesystem the
// spec mounts (/dev/pts under /dev) are made by the runtime inside that filesystem, and so are binds there
// under runc (/run/tamarack/init under /run, a GPU's node under /dev). Under gVisor (inTmpfs) bind mount
// points are made in root even under a tmpfs: gVisor's gofer binds every bind on the root directory on the
// host, while the Sentry mounts the tmpfs itself. Nothing is made under an earlier bind or overlay: that
// is not the root's (the host view's /usr is the host's, a CDI graft holds its own mount points).
// Everything is created through os.Root, so a symlink in an image can never make this write outside it.
func ensureMountpoints(root string, mounts []specs.Mount, inTmpfs bool) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("mount points: %w", err)
	}
	defer r.Close()
	// filesystems the runtime makes (tmpfs, proc…), and what covers the root with something else.
	var filesystems, covered []string
	for _, m := range mounts {
		dest := filepath.Clean(m.Destination)
		under := func(dirs []string) bool {
			return slices.ContainsFunc(dirs, func(d string) bool { return strings.HasPrefix(dest, d+"/") })
		}
		if under(covered) || under(filesystems) && (m.Type != "bind" || !inTmpfs) {
			continue
		}
		if m.Type == "bind" || m.Type == "overlay" {
			covered = append(covered, dest)
		} else {
			filesystems = append(filesystems, dest)
		}
		rel := strings.TrimPrefix(dest, "/")
		if _, err := r.Lstat(rel); err == nil {
			continue
		}
		dir := true
		if m.Type == "bind" {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("mount points: %w", err)
			}
			dir = fi.IsDir()
		}
		parent := filepath.Dir(rel)
		if parent != "." {
			if err := r.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("mount points: %w", err)
			}
		}
		if !dir {
			f, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				return fmt.Errorf("mount points: %w", err)
			}
			f.Close()
			continue
		}
		if err := r.Mkdir(rel, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("mount points: %w", err)
		}
		if dest == "/tmp" {
			// runc gives a tmpfs the mode of the directory it covers.
			if err := r.Chmod(rel, 0o777|os.ModeSticky); err != nil {
				return fmt.Errorf("mount points: %w", err)
			}
		}
	}
	return nil
}

// searchable reports the first directory on the way to p that others cannot search.
func searchable(p string) error {
	for d := filepath.Clean(p); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return err
		}
		if st.Mode&0o001 == 0 {
			return fmt.Errorf("%s is mode %04o: the sandbox's root user (an unprivileged host uid) cannot reach the root filesystem through it; chmod o+x %s", d, st.Mode&0o7777, d)
		}
		if d == "/" {
			return nil
		}
	}
}

// deviceNodes resolves the spec's devices (and the driver's shared nodes when any GPU is assigned) to
// host device numbers. Missing assigned nodes are skipped and returned, for a note in the sandbox's
// log. Devices named by their CDI device are left to the CDI edit.
func deviceNodes(s backend.Spec) (nodes []ocispec.Device, missing []string) {
	var paths []string
	plain := false
	for _, d := range s.Devices {
		if d.CDIName != "" {
			continue // its nodes come from its CDI spec (a FileEdit)
		}
		plain = true
		paths = append(paths, d.Paths...)
	}
	if plain {
		paths = append(paths, "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
	}
	for _, p := range paths {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		typ := ""
		switch {
		case err != nil:
		case st.Mode&unix.S_IFMT == unix.S_IFCHR:
			typ = "c"
		case st.Mode&unix.S_IFMT == unix.S_IFBLK:
			typ = "b"
		}
		if typ != "" {
			nodes = append(nodes, ocispec.Device{Path: p, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), FileMode: os.FileMode(st.Mode & 0o777)})
			continue
		}
		assigned := slices.ContainsFunc(s.Devices, func(d backend.Device) bool { return slices.Contains(d.Paths, p) })
		if !assigned {
			continue // optional shared node: absent on hosts without UVM or modeset, not worth a note
		}
		missing = append(missing, p)
	}
	return nodes, missing
}
