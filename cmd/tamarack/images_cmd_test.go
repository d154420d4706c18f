package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// `tamarack images prune` beside a running server's data directory: it removes the image of an ended
// sandbox, keeps the built-in image and the image of a sandbox still running, refuses to touch the cache while
// a pull holds it (giving up after --wait), and finds nothing more to do the second time.
func TestImagesPruneCommand(t *testing.T) {
	ctx := context.Background()
	data, build := t.TempDir(), t.TempDir()
	e := &env{cfg: &config{Data: data, Images: build, RegistryListen: "127.0.0.1:0"}, log: slog.New(slog.DiscardHandler)}
	tiny := func(name, body string) image.BuildInput {
		t.Helper()
		tarball := filepath.Join(build, name+".tar")
		writeTar(t, tarball, map[string]string{"bin/" + name: body})
		return image.BuildInput{Rootfs: tarball, Env: image.DefaultEnv, Cmd: []string{"/bin/" + name}}
	}
	writeShellBuild(t, build)
	if err := seedImages(ctx, e, &demo{}); err != nil {
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

	// Two vendor images in the platform's registry (pushed as another process would), both pulled.
	store, err := image.OpenRegistry(filepath.Join(data, "registry"), nil)
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	for _, n := range []string{"running", "ended"} {
		img, err := image.Build(tiny(n, "#!"+n))
		if err != nil {
			t.Fatal(err)
		}
		d, err := store.Push(ctx, "aurora/"+n, "v1", img)
		if err != nil {
			t.Fatal(err)
		}
		refs[n] = p.Registry + "/aurora/" + n + "@" + d.String()
	}
	allow := map[string]string{image.SettingAllow: p.Registry + "/aurora/"}
	for _, img := range []string{"shell", refs["running"], refs["ended"]} {
		if _, err := p.Rootfs(ctx, img, allow, nil); err != nil {
			t.Fatal(err)
		}
	}

	// The database says which sandboxes use them.
	db, err := sqldb.Open(ctx, filepath.Join(data, "tamarack.db"), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sqldb.Close(db) }()
	if err := sqldb.Migrate(ctx, db, nil, testbed.Migrations()); err != nil {
		t.Fatal(err)
	}
	for _, sb := range []testbed.Sandbox{
		{ID: "sb-running", State: testbed.StateRunning, Image: refs["running"], Devices: "[]"},
		{ID: "sb-ended", State: testbed.StateStopped, Image: refs["ended"], Devices: "[]"},
	} {
		if err := db.Create(&sb).Error; err != nil {
			t.Fatal(err)
		}
	}

	prune := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(append([]string{"images", "prune", "--data", data}, args...), &out, &errb)
		return out.String() + errb.String(), err
	}
	release, err := p.Hold()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := prune("--wait", "0s"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("prune while a pull holds the cache: %v\n%s", err, out)
	}
	release()

	_, ended, _ := strings.Cut(refs["ended"], "@")
	out, err := prune()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Count(out, "removed sha256:") != 1 || !strings.Contains(out, "removed "+ended) || !strings.Contains(out, "kept 2 images") {
		t.Fatalf("prune printed:\n%s", out)
	}
	if u, err := p.Usage(); err != nil || u.Roots != 2 {
		t.Fatalf("cache after prune: %+v, %v", u, err)
	}
	if out, err := prune(); err != nil || strings.Contains(out, "removed sha256:") || !strings.Contains(out, "removed 0 images") {
		t.Fatalf("second prune: %v\n%s", err, out)
	}
}
