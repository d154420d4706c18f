package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Limits bound one unpacked image.
type Limits struct {
	MaxBytes int64 // bytes of regular files, summed over layers
	MaxFiles int   // entries, summed over layers
}

// decompress sniffs the layer's compression (gzip, zstd or none) from its first bytes, as go-containerregistry
// does, rather than trusting the media type.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	default:
		return io.NopCloser(br), nil
	}
}

// unpacker applies layers, in order, to one root directory. Every path goes through an os.Root, so no
// entry can create, follow or remove anything outside the root: a symbolic link that is absolute or climbs
// out (from this layer or a lower one) is refused when a later entry would be written through it, and the
// whole image is refused with it. Symbolic links themselves are written as they are: their targets are
// resolved inside the sandbox, against its own root, by the kernel at run time.
type unpacker struct {
	root   *os.Root
	limits Limits

	written int64
	files   int

	stripped []string
	skipped  []string
	// skippedPaths are entries not unpacked: a hard link to one is skipped too.
	skippedPaths map[string]bool
	// layerPaths holds what the current layer wrote and every ancestor of it: an opaque directory keeps
	// those and removes what lower layers put there.
	layerPaths map[string]bool
	// dirs gets each directory's final mode and time once every layer is applied: until then directories
	// stay writable by their owner so that later entries can go in, also when not running as root.
	dirs map[string]dirMeta
}

type dirMeta struct {
	mode  fs.FileMode
	mtime time.Time
}

func newUnpacker(dir string, l Limits) (*unpacker, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &unpacker{root: r, limits: l, skippedPaths: map[string]bool{}, dirs: map[string]dirMeta{}}, nil
}

func (u *unpacker) close() { _ = u.root.Close() }

// layer applies one uncompressed layer tar stream.
func (u *unpacker) layer(r io.Reader) error {
	u.layerPaths = map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := u.entry(h, tr); err != nil {
			// os.Root's refusal to leave the root has no exported error value; its message is stable.
			if !errors.Is(err, ErrUnsafe) && strings.Contains(err.Error(), "path escapes from parent") {
				err = fmt.Errorf("%w: %v", ErrUnsafe, err)
			}
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

// cleanPath turns a tar name into a path relative to the root: leading "/" and "./" are dropped, a name
// that climbs out of the root ("../x", "a/../../x") is refused.
func cleanPath(n string) (string, error) {
	if n == "" || strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("%w: bad name %q", ErrUnsafe, n)
	}
	p := path.Clean(n)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%w: %q leaves the root", ErrUnsafe, n)
	}
	p = strings.TrimLeft(p, "/")
	if p == "" {
		p = "."
	}
	return p, nil
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanPath(h.Name)
	if err != nil {
		return err
	}
	u.files++
	if u.files > u.limits.MaxFiles {
		return fmt.Errorf("%w: more than %d entries", ErrTooLarge, u.limits.MaxFiles)
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	// Whiteouts (OCI image spec, "Representing Changes"): they delete what lower layers put there.
	if base == opaqueMarker {
		return u.opaque(dir)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		hidden := strings.TrimPrefix(base, whiteoutPrefix)
		if hidden == "" || hidden == "." || hidden == ".." {
			return fmt.Errorf("%w: whiteout %q", ErrUnsafe, h.Name)
		}
		return u.removeAll(path.Join(dir, hidden))
	}
	if name == "." {
		return nil // the root directory keeps its own mode
	}
	u.markLayer(name)

	fi := h.FileInfo()
	mode := fi.Mode().Perm() | fi.Mode()&fs.ModeSticky
	if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		u.stripped = append(u.stripped, "/"+name)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := u.parent(name); err != nil {
			return err
		}
		if st, err := u.root.Lstat(name); err == nil && st.IsDir() {
			// Merged with the lower layer's directory; its mode and time are the upper one's.
		} else {
			if err := u.replace(name); err != nil {
				return err
			}
			if err := u.root.Mkdir(name, 0o700); err != nil {
				return err
			}
		}
		if err := u.root.Chmod(name, 0o700|mode); err != nil {
			return err
		}
		u.dirs[name] = dirMeta{mode: mode, mtime: h.ModTime}
		return nil
	case tar.TypeReg: // archive/tar reports the old TypeRegA as TypeReg
		if err := u.parent(name); err != nil {
			return err
		}
		if err := u.replace(name); err != nil {
			return err
		}
		f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		left := u.limits.MaxBytes - u.written
		n, err := io.Copy(f, io.LimitReader(r, left+1))
		u.written += n
		if err == nil && n > left {
			err = fmt.Errorf("%w: more than %d bytes of files", ErrTooLarge, u.limits.MaxBytes)
		}
		// Mode and times through the open descriptor: no second walk of the path.
		if err == nil {
			err = f.Chmod(mode)
		}
		if err == nil {
			err = setTimes(f, h.ModTime)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		if err := u.parent(name); err != nil {
			return err
		}
		if err := u.replace(name); err != nil {
			return err
		}
		return u.root.Symlink(h.Linkname, name)
	case tar.TypeLink:
		target, err := cleanPath(h.Linkname)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		if target == name {
			return fmt.Errorf("%w: hard link to itself", ErrUnsafe)
		}
		if u.skippedPaths[target] {
			return u.skip(name, "link to skipped "+target)
		}
		if err := u.parent(name); err != nil {
			return err
		}
		if err := u.replace(name); err != nil {
			return err
		}
		if st, err := u.root.Lstat(target); err != nil {
			return fmt.Errorf("hard link to %q: %w", h.Linkname, err)
		} else if st.IsDir() {
			return fmt.Errorf("%w: hard link to directory %q", ErrUnsafe, h.Linkname)
		}
		return u.root.Link(target, name)
	case tar.TypeChar, tar.TypeBlock:
		return u.skip(name, "device node (the runtime provides /dev)")
	case tar.TypeFifo:
		return u.skip(name, "fifo")
	default:
		return u.skip(name, fmt.Sprintf("tar type %q", h.Typeflag))
	}
}

func (u *unpacker) skip(name, why string) error {
	u.skipped = append(u.skipped, "/"+name+": "+why)
	u.skippedPaths[name] = true
	return u.removeAll(name)
}

// markLayer records name and its ancestors as written by the current layer.
func (u *unpacker) markLayer(name string) {
	for p := name; p != "." && !u.layerPaths[p]; p = path.Dir(p) {
		u.layerPaths[p] = true
	}
}

// parent makes the directories above name exist (tars may omit them). os.Root follows a symbolic link on
// the way only while it stays inside the root.
func (u *unpacker) parent(name string) error {
	d := path.Dir(name)
	if _, known := u.dirs[d]; known || d == "." {
		return nil // a directory an entry made, still there (removals forget theirs)
	}
	if st, err := u.root.Stat(d); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("parent %q is not a directory", d)
		}
		return nil
	}
	return u.root.MkdirAll(d, 0o755)
}

// replace removes whatever a lower layer has at name, so that a new entry never writes through an
// existing symbolic link or into an inode shared by a hard link.
func (u *unpacker) replace(name string) error {
	st, err := u.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return u.removeAll(name)
	}
	return u.root.Remove(name)
}

// removeAll removes name and what is under it, if anything, and forgets the directories it held.
func (u *unpacker) removeAll(name string) error {
	delete(u.dirs, name)
	for d := range u.dirs {
		if strings.HasPrefix(d, name+"/") {
			delete(u.dirs, d)
		}
	}
	return ignoreNotExist(u.root.RemoveAll(name))
}

// opaque empties dir of what lower layers put there, keeping what the current layer wrote.
func (u *unpacker) opaque(dir string) error {
	f, err := u.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if p == "." {
			continue
		}
		if !u.layerPaths[p] {
			if err := u.removeAll(p); err != nil {
				return err
			}
			continue
		}
		if e.IsDir() { // not a symbolic link: ReadDir does not follow them
			if err := u.opaque(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish gives every directory its final mode and time, deepest first: a directory whose image mode lacks
// search permission would otherwise stop its children being reached when not running as root.
func (u *unpacker) finish() error {
	names := make([]string, 0, len(u.dirs))
	for d := range u.dirs {
		names = append(names, d)
	}
	sort.Slice(names, func(i, j int) bool { return strings.Count(names[i], "/") > strings.Count(names[j], "/") })
	for _, d := range names {
		m := u.dirs[d]
		if err := u.root.Chtimes(d, m.mtime, m.mtime); err != nil {
			return err
		}
		if err := u.root.Chmod(d, m.mode); err != nil {
			return err
		}
	}
	return nil
}

// setTimes sets a file's access and modification times through its descriptor.
func setTimes(f *os.File, t time.Time) error {
	tv := syscall.NsecToTimeval(t.UnixNano())
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Futimes(int(fd), []syscall.Timeval{tv, tv}) }); err != nil {
		return err
	}
	return serr
}

func ignoreNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
