package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Credentials are basic-auth credentials per registry host ("ghcr.io", "registry.example.com:5000";
// "docker.io" means Docker Hub). Registries without an entry are pulled anonymously.
type Credentials map[string]Basic

// Basic is a user name and password (or token) for one registry.
type Basic struct {
	Username, Password string
}

// Resolve implements authn.Keychain.
func (c Credentials) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	b, ok := c[host]
	if !ok && host == name.DefaultRegistry {
		b, ok = c["docker.io"]
	}
	if !ok {
		return authn.Anonymous, nil
	}
	return &authn.Basic{Username: b.Username, Password: b.Password}, nil
}

// loopbackOnlyHTTP refuses plain-HTTP requests to anything but loopback: go-containerregistry falls back to
// HTTP for private (RFC 1918) and .local registries, where credentials and manifests would cross the
// network in clear and be open to tampering before the digest check. Redirects pass through here too.
type loopbackOnlyHTTP struct{ next http.RoundTripper }

func (t loopbackOnlyHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("plain HTTP to %s refused: only loopback registries may be reached without TLS", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// layerTypes are the layer media types unpacked; foreign and non-distributable layers are refused (they
// would be fetched from URLs outside the registry).
var layerTypes = map[types.MediaType]bool{
	types.OCILayer: true, types.OCILayerZStd: true, types.OCIUncompressedLayer: true,
	types.DockerLayer: true, types.DockerUncompressedLayer: true,
}

// pull fetches the image d, caches its missing layers and unpacks it; report receives progress.
func (c *Cache) pull(ctx context.Context, d name.Digest, ref string, creds Credentials, report func(Progress)) (Rootfs, error) {
	img, err := remote.Image(d, remote.WithContext(ctx), remote.WithAuthFromKeychain(creds),
		remote.WithTransport(loopbackOnlyHTTP{c.opts.Transport}),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return Rootfs{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return Rootfs{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	refHex := strings.TrimPrefix(d.DigestStr(), "sha256:")
	if digest.Algorithm != "sha256" {
		return Rootfs{}, fmt.Errorf("pull %s: %w: manifest digest %s", ref, ErrUnsupported, digest)
	}
	// An index reference may resolve to an image another reference already unpacked.
	c.mu.Lock()
	r, ok := c.readRoot(digest.Hex)
	c.mu.Unlock()
	if ok {
		return r, c.alias(refHex, digest.Hex)
	}

	m, err := img.Manifest()
	if err != nil {
		return Rootfs{}, fmt.Errorf("pull %s: manifest: %w", ref, err)
	}
	cfg, err := img.ConfigFile() // fetched by digest and verified by go-containerregistry
	if err != nil {
		return Rootfs{}, fmt.Errorf("pull %s: config: %w", ref, err)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return Rootfs{}, fmt.Errorf("pull %s: %w: os %q", ref, ErrUnsupported, cfg.OS)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return Rootfs{}, fmt.Errorf("pull %s: %w: %d layers but %d diff_ids", ref, ErrUnsupported, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	var total int64
	for _, l := range m.Layers {
		if !layerTypes[l.MediaType] {
			return Rootfs{}, fmt.Errorf("pull %s: %w: layer media type %s", ref, ErrUnsupported, l.MediaType)
		}
		if l.Digest.Algorithm != "sha256" || l.Size < 0 {
			return Rootfs{}, fmt.Errorf("pull %s: %w: layer %s", ref, ErrUnsupported, l.Digest)
		}
		total += l.Size
	}
	if total > c.opts.MaxBytes {
		return Rootfs{}, fmt.Errorf("pull %s: %w: %d compressed bytes > %d", ref, ErrTooLarge, total, c.opts.MaxBytes)
	}

	prog := Progress{Ref: ref, Phase: PhasePulling, Total: total}
	report(prog)
	for _, l := range m.Layers {
		if err := c.fetchLayer(img, l, func(n int64) { prog.Done += n; report(prog) }); err != nil {
			return Rootfs{}, fmt.Errorf("pull %s: layer %s: %w", ref, l.Digest, err)
		}
	}

	prog = Progress{Ref: ref, Phase: PhaseUnpacking, Total: total}
	report(prog)
	r, err = c.unpack(ctx, digest, m, cfg, func(n int64) { prog.Done += n; report(prog) })
	if err != nil {
		return Rootfs{}, fmt.Errorf("unpack %s: %w", ref, err)
	}
	return r, c.alias(refHex, digest.Hex)
}

// alias records that the reference digest refHex (an index) resolved to the image imgHex.
func (c *Cache) alias(refHex, imgHex string) error {
	if refHex == imgHex {
		return nil
	}
	return writeFileAtomic(filepath.Join(c.opts.Dir, refsDir, refHex), []byte(imgHex+"\n"), filepath.Join(c.opts.Dir, tmpDir))
}

// fetchLayer downloads the compressed layer l into the layer cache unless it is there. go-containerregistry
// verifies the digest (and the size) as the last byte is read; the file is renamed into the cache only then.
func (c *Cache) fetchLayer(img v1.Image, l v1.Descriptor, progress func(int64)) error {
	dst := filepath.Join(c.opts.Dir, layersDir, l.Digest.Hex)
	if fi, err := os.Stat(dst); err == nil && fi.Size() == l.Size {
		progress(l.Size)
		return nil
	}
	layer, err := img.LayerByDigest(l.Digest)
	if err != nil {
		return err
	}
	rc, err := layer.Compressed()
	if err != nil {
		if isVerifyError(err) {
			return fmt.Errorf("%w: %v", ErrVerify, err)
		}
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Join(c.opts.Dir, tmpDir), "layer-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// Hash here as well: the cached file must hold exactly the verified bytes, whatever the reader did.
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &countingReader{r: io.LimitReader(rc, l.Size+1), fn: progress})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if isVerifyError(err) {
			return fmt.Errorf("%w: %v", ErrVerify, err)
		}
		return err
	}
	if n != l.Size || hex.EncodeToString(h.Sum(nil)) != l.Digest.Hex {
		return fmt.Errorf("%w: got %d bytes with sha256:%x", ErrVerify, n, h.Sum(nil))
	}
	return os.Rename(tmp.Name(), dst)
}

// isVerifyError tells go-containerregistry's digest and size checks from network errors: its verification
// error type is internal, its messages are stable.
func isVerifyError(err error) bool {
	m := err.Error()
	return strings.Contains(m, "error verifying") || strings.Contains(m, "does not match expected size")
}

// countingReader reports the bytes read in steps of at least 1 MiB (and the rest at EOF).
type countingReader struct {
	r       io.Reader
	fn      func(int64)
	pending int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.pending += int64(n)
	if c.pending >= 1<<20 || (err != nil && c.pending > 0) {
		c.fn(c.pending)
		c.pending = 0
	}
	return n, err
}

// unpack writes the image's layers, already cached, into a temporary directory and renames it into place.
func (c *Cache) unpack(ctx context.Context, digest v1.Hash, m *v1.Manifest, cfg *v1.ConfigFile, progress func(int64)) (Rootfs, error) {
	tmp, err := os.MkdirTemp(filepath.Join(c.opts.Dir, tmpDir), "unpack-")
	if err != nil {
		return Rootfs{}, err
	}
	defer func() { _ = removeTree(tmp) }()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Rootfs{}, err
	}
	rootDir := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootDir, 0o755); err != nil {
		return Rootfs{}, err
	}
	u, err := newUnpacker(rootDir, Limits{MaxBytes: c.opts.MaxBytes, MaxFiles: c.opts.MaxFiles})
	if err != nil {
		return Rootfs{}, err
	}
	defer u.close()
	r := Rootfs{Digest: digest.String(), Config: Config{Env: cfg.Config.Env, Entrypoint: cfg.Config.Entrypoint,
		Cmd: cfg.Config.Cmd, WorkingDir: cfg.Config.WorkingDir, User: cfg.Config.User}}
	for i, l := range m.Layers {
		if err := ctx.Err(); err != nil {
			return Rootfs{}, err
		}
		if err := c.applyLayer(u, l, cfg.RootFS.DiffIDs[i], progress); err != nil {
			return Rootfs{}, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
		r.Layers = append(r.Layers, l.Digest.String())
	}
	if err := u.finish(); err != nil {
		return Rootfs{}, err
	}
	r.Bytes, r.Stripped, r.Skipped = u.written, u.stripped, u.skipped
	meta, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return Rootfs{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), meta, 0o644); err != nil {
		return Rootfs{}, err
	}
	dst := filepath.Join(c.opts.Dir, rootsDir, digest.Hex)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.Rename(tmp, dst); err != nil {
		// Another reference to the same image won the race: use its copy.
		if existing, ok := c.readRoot(digest.Hex); ok {
			return existing, nil
		}
		return Rootfs{}, err
	}
	c.unpacks++
	r.Path = filepath.Join(dst, "rootfs")
	c.log.Info("image unpacked", "digest", r.Digest, "bytes", r.Bytes, "setuid_stripped", len(r.Stripped), "skipped", len(r.Skipped))
	return r, nil
}

// applyLayer unpacks one cached layer, checking its compressed digest and its uncompressed digest (the
// config's diff_id) as it reads: a cache file changed on disk is refused, not unpacked.
func (c *Cache) applyLayer(u *unpacker, l v1.Descriptor, diffID v1.Hash, progress func(int64)) error {
	f, err := os.Open(filepath.Join(c.opts.Dir, layersDir, l.Digest.Hex))
	if err != nil {
		return err
	}
	defer f.Close()
	zh := sha256.New()
	compressed := io.TeeReader(&countingReader{r: f, fn: progress}, zh)
	dr, err := decompress(compressed)
	if err != nil {
		return err
	}
	defer dr.Close()
	uh := sha256.New()
	err = u.layer(io.TeeReader(dr, uh))
	if err == nil {
		// Tar streams end with padding the tar reader need not consume: hash every byte.
		_, err = io.Copy(uh, dr)
	}
	// A cached file changed on disk usually fails as a corrupt stream first: hash the rest and say what
	// it really is.
	_, cerr := io.Copy(zh, compressed)
	if got := hex.EncodeToString(zh.Sum(nil)); cerr == nil && got != l.Digest.Hex {
		// Drop it: the next request downloads the layer again instead of failing for ever.
		_ = os.Remove(f.Name())
		return fmt.Errorf("%w: cached layer has sha256:%s (removed from the cache)", ErrVerify, got)
	}
	if err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if got := "sha256:" + hex.EncodeToString(uh.Sum(nil)); got != diffID.String() {
		return fmt.Errorf("%w: uncompressed layer is %s, config says %s", ErrVerify, got, diffID)
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file in tmpDir (same file system).
func writeFileAtomic(path string, b []byte, tmpDir string) error {
	f, err := os.CreateTemp(tmpDir, "write-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
