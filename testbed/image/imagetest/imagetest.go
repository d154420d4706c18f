// Package imagetest gives tests outside testbed/image the built-in sandbox images as the platform serves
// them: infra/images/build.sh's output pushed into a registry store (image.Registry) served over the
// distribution API on a loopback port, and Providers on fresh caches that sandboxes can reach. It is for
// tests only and must not be imported by production code.
package imagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/image"
)

// EnvImages makes the built-in images mandatory: with TAMARACK_TEST_IMAGES=required (CI) a host that cannot
// build them fails the test; otherwise the test is skipped with a loud line.
const EnvImages = "TAMARACK_TEST_IMAGES"

// Build runs infra/images/build.sh (immediate when its cache is current) and returns its output directory.
func Build(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	cmd := exec.Command("bash", filepath.Join(root, "infra", "images", "build.sh"))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		if os.Getenv(EnvImages) == "required" {
			t.Fatalf("the built-in images cannot be built here, and %s=required: %s", EnvImages, stderr.String())
		}
		fmt.Fprintf(os.Stderr, "!!! %s: SKIPPED, no built-in sandbox images: %s(install mmdebstrap; CI sets %s=required)\n",
			t.Name(), stderr.String(), EnvImages)
		t.Skip(strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		t.Fatalf("infra/images/build.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// Registry is a registry store holding the built-in images, served read-only over the distribution API.
type Registry struct {
	Store *image.Registry
	// Host is the registry's host:port (loopback).
	Host   string
	Server *httptest.Server
}

// Serve pushes the built-in images of build (Build's output) into a new registry store and serves it; wrap,
// when set, wraps the store's handler (to slow, hold or break what pullers receive). It stops with the test.
func Serve(t testing.TB, build string, wrap func(http.Handler) http.Handler) *Registry {
	t.Helper()
	store, err := image.OpenRegistry(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := store.PushBuild(context.Background(), build)
	if err != nil {
		t.Fatal(err)
	}
	if len(pushed) == 0 {
		t.Fatalf("no built-in images in %s", build)
	}
	h := store.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Registry{Store: store, Host: strings.TrimPrefix(srv.URL, "http://"), Server: srv}
}

// Provider returns a Provider of the registry's built-in images on a new cache in a directory that a
// sandbox's root user (an unprivileged host uid) can reach.
func (r *Registry) Provider(t testing.TB) (*image.Provider, *image.Cache) {
	t.Helper()
	c, err := image.New(image.Options{Dir: ReachableDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &image.Provider{Cache: c, Registry: r.Host, Builtin: r.Store.Builtin}, c
}

// ReachableDir is a new temporary directory that every user may pass through (o+x, as the runtime needs
// for a sandbox's root filesystem), removed with the test.
func ReachableDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // the test's temporary root is 0700 too
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
