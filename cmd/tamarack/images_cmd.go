package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// imagesCmd runs `tamarack images build` (`tamarack images prune` is imagesPrune): one root filesystem tarball (mmdebstrap's output) becomes a
// single-layer OCI image in a layout under --out, listed in --out/images.json. infra/images/build.sh calls it.
func imagesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "build" {
		return errors.New("usage: tamarack images build --from rootfs.tar --name NAME --out DIR [--repository R] [--cmd C]\n" +
			"       tamarack images prune [--wait D] [--data DIR] [--db DSN]")
	}
	fs := flag.NewFlagSet("images build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "root filesystem tarball (uncompressed or gzip)")
	imageName := fs.String("name", "", "built-in image name (shell, python); also the layout directory under --out")
	repo := fs.String("repository", "", "repository in the platform's registry (default tamarack/<name>)")
	out := fs.String("out", "", "output directory: OCI layouts and images.json")
	cmd := fs.String("cmd", "/bin/sh", "default command, split on spaces")
	workdir := fs.String("workdir", "/", "working directory")
	createdBy := fs.String("created-by", "", "history line: how the root filesystem was made")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var errs []error
	if *from == "" {
		errs = append(errs, errors.New("--from is required"))
	}
	if *imageName == "" || strings.ContainsAny(*imageName, "/. ") {
		errs = append(errs, errors.New("--name is required: a plain name such as shell"))
	}
	if *out == "" {
		errs = append(errs, errors.New("--out is required"))
	}
	// SOURCE_DATE_EPOCH (reproducible-builds.org) makes the config, hence the digest, independent of when
	// the build ran.
	created := time.Unix(0, 0).UTC()
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", v, err))
		}
		created = time.Unix(s, 0).UTC()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if *repo == "" {
		*repo = "tamarack/" + *imageName
	}
	img, err := image.Build(image.BuildInput{Rootfs: *from, Env: image.DefaultEnv, Cmd: strings.Fields(*cmd),
		WorkingDir: *workdir, Created: created, CreatedBy: *createdBy})
	if err != nil {
		return err
	}
	if err := image.WriteLayout(*out+"/"+*imageName, img, *imageName); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	if err := image.AddToBuildList(*out, *imageName, image.BuiltinImage{Repository: *repo, Digest: digest.String(), Layout: *imageName}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\t%s\t%s\t%d bytes compressed\n", *imageName, *repo, digest, m.Layers[0].Size)
	return nil
}

// imagesPrune runs `tamarack images prune`: it removes from this host's image cache (<data>/images) every
// unpacked image and cached layer that no sandbox that has not ended uses, that is not built in, and that no
// pool's allow-list pins by digest, as the running testbed does past its budget (--image-cache-gb), but now and
// whatever the cache holds. It reads what is in use from the database (--db, or the SQLite file in --data) and
// works beside a running server on the same data directory: while an image is being pulled into the cache it
// waits (--wait), then gives up without removing anything.
func imagesPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newConfig("images")
	wait := c.fs.Duration("wait", time.Minute, "how long to wait while an image is being pulled into the cache")
	c.fs.SetOutput(stderr)
	c.usageFor("images prune [flags]", append([]string{"wait"}, storeFlags...)...)
	if err := c.parseStore(args); err != nil {
		return err
	}
	dir := filepath.Join(c.Data, "images")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "no image cache at %s: nothing to prune\n", dir)
		return nil
	}
	log := newLogger(c)
	db, err := sqldb.Open(ctx, c.dsn(), sqldb.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() { _ = sqldb.Close(db) }()
	// Idempotent; a database no server has migrated yet has no sandboxes, so nothing but built-in images is kept.
	if err := sqldb.Migrate(ctx, db, log, testbed.Migrations()); err != nil {
		return err
	}
	cache, err := image.New(image.Options{Dir: dir, Logger: log})
	if err != nil {
		return err
	}
	builtinFile := filepath.Join(c.Data, "registry", image.BuiltinFile)
	p := &image.Provider{Cache: cache, Builtin: func() (image.Builtin, error) { return image.ReadBuiltin(builtinFile) }}
	before, err := cache.Usage()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	var rep image.PruneReport
	for {
		rep, err = p.Prune(func() ([]string, error) { return testbed.ImagesInUse(ctx, db) })
		if !errors.Is(err, image.ErrBusy) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second): // a pull holds the cache for seconds to minutes
		}
	}
	if err != nil {
		return fmt.Errorf("images prune: %w", err)
	}
	for _, d := range rep.Roots {
		fmt.Fprintln(stdout, "removed", d)
	}
	fmt.Fprintf(stdout, "image cache %s: %d images and %d layers (%s) before; removed %d images and %d layers (%s); kept %d images\n",
		dir, before.Roots, before.Layers, humanBytes(before.Bytes), len(rep.Roots), rep.Layers, humanBytes(rep.Bytes), before.Roots-len(rep.Roots))
	return nil
}

// humanBytes writes n in binary units: 512 B, 23.0 MiB, 4.2 GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
