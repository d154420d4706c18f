package image

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pullLayers pushes an image of the given layers and unpacks it in a fresh cache.
func pullLayers(t *testing.T, layers ...[]ent) (Rootfs, error) {
	t.Helper()
	reg := startRegistry(t, nil)
	var ls []v1.Layer
	for _, l := range layers {
		ls = append(ls, layer(t, l...))
	}
	ref := reg.push(t, "demo/layers", testImage(t, ls...))
	return newCache(t, Options{}).Rootfs(bg, ref, Pull{Policy: reg.allowAll()})
}

func TestWhiteoutsAcrossLayers(t *testing.T) {
	t.Parallel()
	r, err := pullLayers(t,
		[]ent{dir("a/", 0o755), file("a/gone", "1", 0o644), file("a/kept", "1", 0o644),
			dir("opq/", 0o755), file("opq/lower", "1", 0o644), dir("opq/sub/", 0o755), file("opq/sub/lower", "1", 0o644),
			dir("tree/", 0o755), dir("tree/deep/", 0o755), file("tree/deep/f", "1", 0o644),
			file("link-target", "t", 0o644), symlink("a/link", "../link-target")},
		[]ent{
			file("a/.wh.gone", "", 0o644),
			file("a/.wh.link", "", 0o644),     // removes the link, not its target
			file("opq/sub/upper", "2", 0o644), // written before the marker in the same layer: kept
			file("opq/.wh..wh..opq", "", 0o644),
			file("opq/new", "2", 0o644),
			file(".wh.tree", "", 0o644),
			file("nothing/.wh.here", "", 0o644), // a whiteout of something that never existed
		},
		[]ent{dir("tree/", 0o755), file("tree/again", "3", 0o644)},
	)
	if err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, r.Path, "a/gone")
	mustNotExist(t, r.Path, "a/link")
	mustNotExist(t, r.Path, "a/.wh.gone")
	mustNotExist(t, r.Path, "opq/lower")
	mustNotExist(t, r.Path, "opq/sub/lower")
	mustNotExist(t, r.Path, "opq/.wh..wh..opq")
	mustNotExist(t, r.Path, "tree/deep")
	for p, want := range map[string]string{"a/kept": "1", "link-target": "t", "opq/sub/upper": "2", "opq/new": "2", "tree/again": "3"} {
		if got := readFile(t, r.Path, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestUpperLayerReplacesLowerEntries(t *testing.T) {
	t.Parallel()
	r, err := pullLayers(t,
		[]ent{file("target", "original", 0o644), symlink("etc", "target"), dir("was-dir/", 0o755), file("was-dir/x", "x", 0o644),
			file("shared", "inode", 0o644), hardlink("shared2", "shared")},
		[]ent{
			dir("etc/", 0o755), file("etc/conf", "c", 0o644), // a directory replaces the symlink; the target is untouched
			file("was-dir", "now a file", 0o644),
			file("shared2", "new", 0o644), // replaces the hard link, does not write into the shared inode
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"target": "original", "etc/conf": "c", "was-dir": "now a file", "shared": "inode", "shared2": "new"} {
		if got := readFile(t, r.Path, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestEscapesRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		layers [][]ent
	}{
		{"relative symlink out of the root, written through", [][]ent{{symlink("evil", "../../../../../../tmp")}, {file("evil/planted", "x", 0o644)}}},
		{"absolute symlink, written through", [][]ent{{symlink("evil", "/tmp")}, {file("evil/planted", "x", 0o644)}}},
		{"symlink then file in one layer", [][]ent{{symlink("evil", "/tmp"), file("evil/planted", "x", 0o644)}}},
		{"symlinked parent directory made by MkdirAll", [][]ent{{symlink("evil", "../.."), file("evil/a/b/planted", "x", 0o644)}}},
		{"hard link out of the root", [][]ent{{hardlink("passwd", "../../../../../../etc/passwd")}}},
		{"hard link through an escaping symlink", [][]ent{{symlink("evil", "/etc"), hardlink("passwd", "evil/passwd")}}},
		{"dot-dot name", [][]ent{{file("../../planted", "x", 0o644)}}},
		{"dot-dot inside a name", [][]ent{{file("a/../../planted", "x", 0o644)}}},
		{"whiteout through an escaping symlink", [][]ent{{symlink("evil", "/tmp")}, {file("evil/.wh.x", "", 0o644)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := pullLayers(t, tc.layers...)
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Rootfs = %v, want ErrUnsafe", err)
			}
			if _, serr := os.Stat("/tmp/planted"); serr == nil {
				t.Fatal("/tmp/planted written outside the root")
			}
		})
	}
}

func TestSymlinksInsideTheRootAreFollowed(t *testing.T) {
	t.Parallel()
	// Debian's merged /usr: files under /bin land in /usr/bin through a relative link.
	r, err := pullLayers(t,
		[]ent{dir("usr/bin/", 0o755), symlink("bin", "usr/bin")},
		[]ent{file("bin/tool", "t", 0o755), hardlink("usr/bin/tool2", "bin/tool")},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, r.Path, "usr/bin/tool"); got != "t" {
		t.Errorf("usr/bin/tool = %q", got)
	}
	if st, err := os.Lstat(filepath.Join(r.Path, "bin")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("bin is no longer a symlink: %v %v", st, err)
	}
	if got := readFile(t, r.Path, "usr/bin/tool2"); got != "t" {
		t.Errorf("usr/bin/tool2 = %q", got)
	}
}

func TestSetuidStrippedAcrossLayers(t *testing.T) {
	t.Parallel()
	r, err := pullLayers(t,
		[]ent{file("usr/bin/passwd", "p", 0o4755), dir("var/mail/", 0o2775)},
		[]ent{file("usr/bin/passwd", "p2", 0o6755), hardlink("usr/bin/passwd-link", "usr/bin/passwd")},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"usr/bin/passwd", "usr/bin/passwd-link", "var/mail"} {
		st, err := os.Stat(filepath.Join(r.Path, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
			t.Errorf("%s keeps %v", p, st.Mode())
		}
	}
	if !slices.Contains(r.Stripped, "/usr/bin/passwd") || !slices.Contains(r.Stripped, "/var/mail") {
		t.Errorf("Stripped = %v", r.Stripped)
	}
}
