package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/image"
)

// imagesCmd runs `tamarack images build`: one root filesystem tarball (mmdebstrap's output) becomes a
// single-layer OCI image in a layout under --out, listed in --out/images.json. infra/images/build.sh calls it.
func imagesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "build" {
		return errors.New("usage: tamarack images build --from rootfs.tar --name NAME --out DIR [--repository R] [--cmd C]")
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
