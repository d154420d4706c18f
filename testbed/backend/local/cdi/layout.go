package cdi

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A sandbox's root is read-only and shared (an unpacked image, or the host view of /usr), so the paths a
// CDI spec names (/usr/local/nvidia/lib64/libcuda.so.580…, and the links of create-symlinks) often do not
// exist in it, and nothing may be written into it to make them. So every directory that lacks something
// gets a graft: a per-sandbox host directory holding exactly the missing entries (empty files and
// directories as mount points, the symlinks), laid over the directory as a read-only overlay (its only
// layers: the graft first, then what was there). The runtime mounts the overlay before the binds that
// land inside it, so the driver's files are bound onto the graft's mount points, and what the directory
// held stays visible. A graft sits at the deepest directory that exists: when /usr/local has no nvidia,
// the graft is at /usr/local and holds nvidia/lib64/… . Nothing is ever created in the root, the host's
// own /usr or the image.

// view is the sandbox's filesystem as the runtime will build it, seen from the host before anything is
// mounted: the root and the spec's mounts in their order.
type view struct {
	root   string
	mounts []specs.Mount
}

func newView(s *specs.Spec) (view, error) {
	if s.Root == nil || !filepath.IsAbs(s.Root.Path) {
		return view{}, errors.New("cdi: the spec has no absolute root path")
	}
	return view{root: s.Root.Path, mounts: s.Mounts}, nil
}

// isBind reports whether m binds a host path (rather than mounting a filesystem of its own).
func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// where says where the container path p (absolute, clean, its directories resolved) lives: on the host
// at hostPath, or in a filesystem the runtime mounts itself (tmpfs, proc…) when inFS. mount is the
// spec's mount it lies in, -1 for the root.
func (v view) where(p string) (hostPath string, inFS bool, mount int) {
	mount = -1
	for i, m := range v.mounts {
		d := path.Clean(m.Destination)
		if under(p, d) && (mount < 0 || len(d) >= len(path.Clean(v.mounts[mount].Destination))) {
			mount = i
		}
	}
	if mount < 0 {
		return filepath.Join(v.root, p), false, -1
	}
	m := v.mounts[mount]
	if !isBind(m) {
		return "", true, mount
	}
	return filepath.Join(m.Source, strings.TrimPrefix(p, path.Clean(m.Destination))), false, mount
}

// resolved is a container path after following its symlinks the way the runtime does (inside the root:
// an absolute target starts again at the sandbox's /).
type resolved struct {
	// Path is the path with every symlink followed (the last one only when asked).
	Path string
	// Host is where Path is on the host, when it exists.
	Host string
	// InFS: Path is inside a filesystem the runtime mounts (a tmpfs); the runtime makes what is missing.
	InFS   bool
	Exists bool
	Dir    bool
	// Existing is the deepest directory of Path that exists (Path itself when it exists and is one).
	Existing string
}

// resolve follows p's symlinks through the view. followLast says whether a symlink as the last element
// is followed too (a mount's destination is; a link to be made is not).
func (v view) resolve(p string, followLast bool) (resolved, error) {
	for hops := 0; ; hops++ {
		if hops > 40 {
			return resolved{}, fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		next, r, err := v.step(p, followLast)
		if err != nil || next == "" {
			return r, err
		}
		p = next
	}
}

// step walks p once; it returns the path to walk next when it met a symlink to follow.
func (v view) step(p string, followLast bool) (string, resolved, error) {
	comps := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	cur := "/"
	if comps[0] == "" {
		return "", resolved{Path: "/", Host: v.root, Exists: true, Dir: true, Existing: "/"}, nil
	}
	for i, c := range comps {
		next := path.Join(cur, c)
		rest := comps[i+1:]
		last := len(rest) == 0
		host, inFS, m := v.where(next)
		if inFS {
			return "", resolved{Path: path.Join(append([]string{next}, rest...)...), InFS: true, Existing: cur}, nil
		}
		stat := os.Lstat
		if m >= 0 && path.Clean(v.mounts[m].Destination) == next {
			stat = os.Stat // a mount point is what is mounted there, never a symlink
		}
		fi, err := stat(host)
		if errors.Is(err, fs.ErrNotExist) {
			return "", resolved{Path: path.Join(append([]string{next}, rest...)...), Existing: cur}, nil
		}
		if err != nil {
			return "", resolved{}, err
		}
		if fi.Mode()&os.ModeSymlink != 0 && (!last || followLast) {
			target, err := os.Readlink(host)
			if err != nil {
				return "", resolved{}, err
			}
			if !path.IsAbs(target) {
				target = path.Join(cur, target) // cur has no symlinks left, so ".." is lexical
			}
			return path.Join(append([]string{"/", target}, rest...)...), resolved{}, nil
		}
		if last {
			r := resolved{Path: next, Host: host, Exists: true, Dir: fi.IsDir(), Existing: cur}
			if r.Dir {
				r.Existing = next
			}
			return "", r, nil
		}
		if !fi.IsDir() {
			return "", resolved{}, fmt.Errorf("%s: not a directory", next)
		}
		cur = next
	}
	panic("unreachable")
}

// entryKind is what a graft holds at a path.
type entryKind int

const (
	entryDir  entryKind = iota // a directory (on the way, or a mount point for a directory)
	entryFile                  // a file: empty, a mount point for a file, or the profile script
	entryLink                  // a symlink
)

type entry struct {
	kind    entryKind
	target  string // of a link
	content string // of a file
}

// graft is one directory of the sandbox's root that gets entries it lacks.
type graft struct {
	// At is the directory in the sandbox (it exists there); Lower is where it is on the host.
	At, Lower string
	// entries are the new entries by path relative to At.
	entries map[string]entry
}

// layoutResult is where a plan's files land.
type layoutResult struct {
	// Mounts are the plan's mounts with their destinations resolved (what the runtime would resolve),
	// in the plan's order.
	Mounts []Mount
	// MountDirs says which of Mounts bind a directory.
	MountDirs []bool
	// Grafts in the order they must be mounted (outer before inner).
	Grafts []*graft
	// BinDirs are the folders of the executables the plan mounts (nvidia-smi): PATH gets them.
	BinDirs []string
	Notes   []string
}

// layout decides, for the sandbox whose spec is s (built, not yet edited), where the plan's mounts and
// links go and which grafts make room for them. It reads the host's files; it writes nothing.
func layout(s *specs.Spec, p Plan) (layoutResult, error) {
	v, err := newView(s)
	if err != nil {
		return layoutResult{}, err
	}
	var out layoutResult
	grafts := map[string]*graft{}
	// addEntry records that the resolved path r must exist as want, in the graft at r's deepest
	// existing directory.
	addEntry := func(r resolved, want entry) error {
		a := r.Existing
		if a == "/" {
			return fmt.Errorf("%s: / lacks %s and a sandbox's root directory cannot take a graft", r.Path, strings.SplitN(strings.TrimPrefix(r.Path, "/"), "/", 2)[0])
		}
		g := grafts[a]
		if g == nil {
			lower, inFS, _ := v.where(a)
			if inFS {
				return fmt.Errorf("%s: inside a filesystem the runtime mounts", r.Path)
			}
			g = &graft{At: a, Lower: lower, entries: map[string]entry{}}
			grafts[a] = g
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(r.Path, a), "/")
		dirs := strings.Split(rel, "/")
		for i := 1; i < len(dirs); i++ {
			d := strings.Join(dirs[:i], "/")
			if e, ok := g.entries[d]; ok && e.kind != entryDir {
				return fmt.Errorf("%s: needed both as a directory and as a file or link", path.Join(a, d))
			}
			g.entries[d] = entry{kind: entryDir}
		}
		if e, ok := g.entries[rel]; ok && e != want {
			return fmt.Errorf("%s: needed as two different things", r.Path)
		}
		g.entries[rel] = want
		return nil
	}
	add := func(r resolved, kind entryKind, target string) error {
		return addEntry(r, entry{kind: kind, target: target})
	}
	var errs []error
	for _, m := range p.Mounts {
		fi, err := os.Stat(m.HostPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("mount %s: %w (regenerate the CDI spec if the driver changed)", m.ContainerPath, err))
			continue
		}
		r, err := v.resolve(m.ContainerPath, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.ContainerPath, err))
			continue
		}
		if !r.Exists && !r.InFS {
			kind := entryFile
			if fi.IsDir() {
				kind = entryDir
			}
			if err := add(r, kind, ""); err != nil {
				errs = append(errs, fmt.Errorf("mount %s: %w", m.ContainerPath, err))
				continue
			}
		}
		out.Mounts = append(out.Mounts, Mount{HostPath: m.HostPath, ContainerPath: r.Path})
		out.MountDirs = append(out.MountDirs, fi.IsDir())
		if fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 && !strings.Contains(path.Base(m.ContainerPath), ".so") {
			if d := path.Dir(m.ContainerPath); !slices.Contains(out.BinDirs, d) {
				out.BinDirs = append(out.BinDirs, d)
			}
		}
	}
	for _, l := range p.Links {
		parent, err := v.resolve(path.Dir(l.Path), true)
		if err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", l.Path, err))
			continue
		}
		if parent.Exists && !parent.Dir {
			errs = append(errs, fmt.Errorf("link %s: %s is not a directory", l.Path, parent.Path))
			continue
		}
		if parent.InFS {
			out.Notes = append(out.Notes, fmt.Sprintf("link %s -> %s not made: its folder is in a filesystem the runtime mounts", l.Path, l.Target))
			continue
		}
		r := resolved{Path: path.Join(parent.Path, path.Base(l.Path)), Existing: parent.Existing}
		if parent.Exists {
			host := filepath.Join(parent.Host, path.Base(l.Path))
			if t, err := os.Readlink(host); err == nil && t == l.Target {
				continue // the root has this very link already
			}
		}
		if err := add(r, entryLink, l.Target); err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", l.Path, err))
		}
	}
	// A login shell (the terminal's bash -l) resets PATH in /etc/profile, then reads /etc/profile.d:
	// a script there puts the driver's tools back. Only where the root has /etc/profile.d.
	if extra := slices.DeleteFunc(slices.Clone(out.BinDirs), func(d string) bool { return slices.Contains(loginPath, d) }); len(extra) > 0 {
		if pd, err := v.resolve("/etc/profile.d", true); err == nil && pd.Exists && pd.Dir {
			r := resolved{Path: path.Join(pd.Path, profileScript), Existing: pd.Path}
			if err := addEntry(r, entry{kind: entryFile, content: profile(extra)}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// The spec's own mounts that land inside a graft are mounted after it, so their mount points must be
	// in the merged directory too; ones the root lacks go into a graft.
	for i, m := range v.mounts {
		d := path.Clean(m.Destination)
		inGraft := false
		for a := range grafts {
			inGraft = inGraft || (d != a && under(d, a))
		}
		if !inGraft {
			continue
		}
		// Its mount point is looked for in what is there before it is mounted.
		r, err := view{root: v.root, mounts: v.mounts[:i]}.resolve(d, true)
		if err != nil || r.Exists || r.InFS {
			continue
		}
		kind := entryDir
		if isBind(m) {
			if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() {
				kind = entryFile
			}
		}
		if err := add(r, kind, ""); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return layoutResult{}, fmt.Errorf("cdi: %w", err)
	}
	for _, g := range grafts {
		out.Grafts = append(out.Grafts, g)
	}
	slices.SortFunc(out.Grafts, func(a, b *graft) int {
		if c := strings.Count(a.At, "/") - strings.Count(b.At, "/"); c != 0 {
			return c
		}
		return strings.Compare(a.At, b.At)
	})
	return out, nil
}

// loginPath is the PATH Debian's /etc/profile gives a login shell.
var loginPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// profileScript is the name of the script in the sandbox's /etc/profile.d.
const profileScript = "tamarack-gpu.sh"

// profile is a script for /etc/profile.d that appends dirs to PATH.
func profile(dirs []string) string {
	var b strings.Builder
	b.WriteString("# The GPU driver's tools, from the host's CDI spec (written by tamarack for this sandbox).\n")
	for _, d := range dirs {
		fmt.Fprintf(&b, "case \":$PATH:\" in *:%s:*) ;; *) PATH=\"$PATH:%s\" ;; esac\n", d, d)
	}
	b.WriteString("export PATH\n")
	return b.String()
}

// materialize writes the grafts' entries under dir (dir/0, dir/1… in the order of grafts) and returns
// their directories. dir is the sandbox's own and empty; everything in it is read-only to the sandbox.
func materialize(dir string, grafts []*graft) ([]string, error) {
	var dirs []string
	for i, g := range grafts {
		gd := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(gd, 0o755); err != nil {
			return nil, fmt.Errorf("cdi: graft for %s: %w", g.At, err)
		}
		r, err := os.OpenRoot(gd)
		if err != nil {
			return nil, fmt.Errorf("cdi: graft for %s: %w", g.At, err)
		}
		names := slices.Sorted(maps.Keys(g.entries))
		for _, rel := range names { // parents sort before their children
			e := g.entries[rel]
			switch e.kind {
			case entryDir:
				err = r.Mkdir(rel, 0o755)
			case entryFile:
				var f *os.File
				if f, err = r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444); err == nil {
					_, err = f.WriteString(e.content)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
			case entryLink:
				err = r.Symlink(e.target, rel)
			}
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("cdi: graft for %s: %w", g.At, err)
			}
		}
		r.Close()
		dirs = append(dirs, gd)
	}
	return dirs, nil
}
