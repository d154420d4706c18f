package main

import (
	"archive/tar"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/image"
)

// A build's output (as infra/images/build.sh leaves it) is pushed by seed, served by the registry that
// serve wires, and resolved by name into an unpacked root.
func TestSeedImagesThenServeResolvesBuiltinNames(t *testing.T) {
	ctx := context.Background()
	data, build := t.TempDir(), t.TempDir()
	e := &env{cfg: &config{Data: data, Images: filepath.Join(build, "missing"), RegistryListen: "127.0.0.1:0"},
		log: slog.New(slog.DiscardHandler)}

	d := &demo{}
	if err := seedImages(ctx, e, d); err != nil {
		t.Fatal(err)
	}
	if len(d.Notes) != 1 || !strings.Contains(d.Notes[0], "infra/images/build.sh") {
		t.Fatalf("seed without a build: notes %q, want how to build the images", d.Notes)
	}

	digest := writeShellBuild(t, build)
	e.cfg.Images = build
	d = &demo{}
	if err := seedImages(ctx, e, d); err != nil {
		t.Fatal(err)
	}

	p, err := wireImages(e)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.runners[0].Run(rctx) }()
	defer func() { cancel(); <-done }()

	r, err := p.Rootfs(ctx, "shell", map[string]string{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(r.Path, "bin/sh")); err != nil || string(b) != "#!a shell" {
		t.Fatalf("bin/sh = %q, %v", b, err)
	}
	if r.Digest != digest {
		t.Errorf("digest %s, want %s", r.Digest, digest)
	}
	if _, err := p.Rootfs(ctx, "python", map[string]string{}, nil); err == nil || !strings.Contains(err.Error(), "tamarack seed") {
		t.Errorf("an image not seeded: %v, want how to seed it", err)
	}
}

// writeShellBuild leaves in build what infra/images/build.sh leaves there for the built-in shell image (its
// layout and its line of the build list) and returns the image's digest.
func writeShellBuild(t *testing.T, build string) string {
	t.Helper()
	rootfs := filepath.Join(build, "sh.tar")
	writeTar(t, rootfs, map[string]string{"bin/sh": "#!a shell"})
	img, err := image.Build(image.BuildInput{Rootfs: rootfs, Env: image.DefaultEnv, Cmd: []string{"/bin/sh"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := image.WriteLayout(filepath.Join(build, "shell"), img, "shell"); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := image.AddToBuildList(build, "shell", image.BuiltinImage{Repository: "tamarack/shell", Digest: digest.String(), Layout: "shell"}); err != nil {
		t.Fatal(err)
	}
	return digest.String()
}

func writeTar(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Sandboxes' uids must pass through the data directory to their unpacked images: serve adds o+x to it (never
// read access), and names a directory above it that lets nobody through.
func TestReachableImages(t *testing.T) {
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(parent), 0o711); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(parent, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := reachableImages(data, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o751 {
		t.Fatalf("data directory: %v, %v; want mode 0751", fi.Mode(), err)
	}
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := reachableImages(data, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "chmod o+x "+parent) {
		t.Fatalf("a closed parent: %v, want the fix named", err)
	}
}
