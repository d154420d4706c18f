package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BuildInput describes a single-layer image made from a root filesystem tarball (mmdebstrap's output).
type BuildInput struct {
	Rootfs     string // path of the tar (uncompressed or gzip)
	Env        []string
	Cmd        []string
	WorkingDir string
	// Created is the image's creation time; from SOURCE_DATE_EPOCH, so the same tarball gives the same digest.
	Created   time.Time
	CreatedBy string // the history line: how the root filesystem was made
}

// DefaultEnv is the environment of the built-in images.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}

// Build makes an OCI image of one gzip layer (the tarball) and a config. Nothing in it depends on the
// time or the machine of the build but Architecture (this host's).
func Build(in BuildInput) (v1.Image, error) {
	if in.Rootfs == "" {
		return nil, errors.New("build: no root filesystem tarball")
	}
	l, err := tarball.LayerFromFile(in.Rootfs, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("build: layer from %s: %w", in.Rootfs, err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: in.Created.UTC()}
	img, err := mutate.Append(base, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
		History: v1.History{Created: created, CreatedBy: in.CreatedBy}})
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", runtime.GOARCH, created
	cfg.Config = v1.Config{Env: in.Env, Cmd: in.Cmd, WorkingDir: in.WorkingDir}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	return img, nil
}

// WriteLayout writes img as the only image of a new OCI image layout at dir (replacing what was there),
// annotated with refName (org.opencontainers.image.ref.name).
func WriteLayout(dir string, img v1.Image, refName string) error {
	if err := removeTree(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": refName}))
}

// ReadLayout returns the image of digest in the OCI layout at dir.
func ReadLayout(dir, digest string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, err
	}
	return idx.Image(h)
}

// BuildListFile is the list of built images in a build output directory (a Builtin list with Layout set).
const BuildListFile = "images.json"

// AddToBuildList records a built image in out/images.json.
func AddToBuildList(out, imageName string, e BuiltinImage) error {
	path := filepath.Join(out, BuildListFile)
	b, err := ReadBuiltin(path)
	if err != nil {
		return err
	}
	b[imageName] = e
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return WriteBuiltin(path, b)
}
