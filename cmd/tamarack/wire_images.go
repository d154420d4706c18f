package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/image"
)

// Sandbox images' wiring: the platform's registry store under <data>/registry, served read-only on its own
// loopback listener (--registry-listen), and the image cache under <data>/images where this host's runtime
// gets unpacked roots. A listener of its own rather than a route of the platform's HTTP app: blobs of
// hundreds of MB stream through net/http as they are, where Fiber's adaptor would buffer each whole body,
// and a registry that only this host's runtime reads has no business on the public address.

// wireImages opens the registry store and the image cache, listens, and adds the registry's server to the
// background loops. The returned Provider is what the runtime asks for a template's root filesystem.
func wireImages(e *env) (*image.Provider, error) {
	c, log := e.cfg, e.log.With("component", "images")
	store, err := image.OpenRegistry(filepath.Join(c.Data, "registry"), log)
	if err != nil {
		return nil, err
	}
	cache, err := image.New(image.Options{Dir: filepath.Join(c.Data, "images"), Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.RegistryListen)
	if err != nil {
		return nil, fmt.Errorf("registry: listen %s: %w", c.RegistryListen, err)
	}
	addr := ln.Addr().String()
	_ = os.WriteFile(filepath.Join(c.Data, "registry.url"), []byte("http://"+addr+"\n"), 0o640)
	srv := &http.Server{Handler: store.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	e.background("registry", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if b, err := store.Builtin(); err != nil || len(b) == 0 {
		log.Warn("no built-in sandbox images in the registry store: build them with infra/images/build.sh, then run `tamarack seed --demo`", "err", err)
	}
	log.Info("image registry", "addr", addr, "store", filepath.Join(c.Data, "registry"), "cache", filepath.Join(c.Data, "images"))
	return &image.Provider{Cache: cache, Registry: addr, Builtin: store.Builtin}, nil
}

// reachableImages lets sandboxes reach the unpacked images under <data>/images: the runtime opens a sandbox's
// root filesystem as the sandbox's root user, an unprivileged host uid, so every directory above it must be
// searchable by others. The data directory is made so (o+x: others may pass through it to a path they know,
// never list it; its private files, the SQLite database included, are not readable by others), as Docker's
// /var/lib/docker is 0711 for remapped roots. Directories above it are the operator's: an error names them.
func reachableImages(data string, log *slog.Logger) error {
	abs, err := filepath.Abs(data)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o001 == 0 {
		if err := os.Chmod(abs, m|0o001); err != nil {
			return fmt.Errorf("data directory %s: %w", abs, err)
		}
		log.Info("data directory made traversable by others (o+x, not listable) so that sandboxes reach their images in it", "dir", abs)
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is mode %04o: a sandbox's root user (an unprivileged host uid) cannot reach the images under %s; chmod o+x %s, or choose another --data",
				d, fi.Mode().Perm(), filepath.Join(abs, "images"), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// seedImages pushes the built-in images of a build (infra/images/build.sh's output, --images) into the
// registry store and records them as the built-in list. Without a build it says how to make one.
func seedImages(ctx context.Context, e *env, d *demo) error {
	dir := e.cfg.Images
	store, err := image.OpenRegistry(filepath.Join(e.cfg.Data, "registry"), e.log)
	if err != nil {
		return err
	}
	pushed, err := store.PushBuild(ctx, dir)
	if err != nil {
		return err
	}
	if len(pushed) == 0 {
		d.Notes = append(d.Notes, fmt.Sprintf("images: no built-in images at %s: build them with `infra/images/build.sh` "+
			"(needs mmdebstrap: apt-get install mmdebstrap; about two minutes), then run `tamarack seed --demo` again", dir))
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(pushed)) {
		d.Notes = append(d.Notes, fmt.Sprintf("images: %s is %s@%s", name, pushed[name].Repository, pushed[name].Digest))
	}
	return nil
}
