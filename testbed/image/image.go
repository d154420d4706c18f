// Package image owns sandbox images on a host: it pulls OCI images pinned by digest from any registry
// (distribution API, credentials per pool), verifies every digest, caches layers by digest under its
// directory, and unpacks each image once into a root filesystem shared read-only by every sandbox that uses
// it. It also holds the platform's own registry store (the built-in images, served offline) and the builder
// that turns a Debian root filesystem tarball into an OCI image.
//
// It must not run anything from an image, mount anything, or know about sandboxes, pools or the database: the
// runtime (testbed/backend/local) mounts the returned directory read-only inside the sandbox's user
// namespace, and the testbed decides which images a pool allows (Policy) and with which credentials.
//
// Ownership on disk: unpacked files belong to the host user running the platform (root in production) and
// keep the image's permission bits, minus setuid and setgid (stripped and recorded), without file
// capabilities (extended attributes are not applied). There is no uid shift on disk: the runtime maps the
// sandbox's root to an unprivileged host uid, so inside the sandbox every file of the image is owned by the
// overflow uid ("nobody") and readable only where the image makes it world-readable; the root is mounted
// read-only, so nothing needs to write as the file's owner. One unpacked copy serves every tenant because no
// tenant owns it.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Errors callers map to their own answers (the testbed to problems).
var (
	ErrNotPinned   = errors.New("image reference must be registry/repository@sha256:… (pinned by digest, registry named)")
	ErrNotAllowed  = errors.New("image not on the pool's allow-list")
	ErrTooLarge    = errors.New("image exceeds the size limit")
	ErrUnsafe      = errors.New("image layer has an unsafe entry")
	ErrUnsupported = errors.New("image format not supported")
	ErrVerify      = errors.New("image content does not match its digest")
)

// Options configure a Cache.
type Options struct {
	// Dir holds the layer cache, the unpacked roots and temporary files (<data>/images). Created if missing.
	Dir string
	// MaxBytes limits one image: the sum of its compressed layers and, separately, of the bytes its files
	// take once unpacked. Default 16 GiB.
	MaxBytes int64
	// MaxFiles limits the entries of one unpacked image. Default 1,000,000.
	MaxFiles int
	// PullTimeout bounds one pull and unpack, whoever waits for it. Default 30 minutes.
	PullTimeout time.Duration
	// Transport reaches registries; default http.DefaultTransport. Plain HTTP is refused for every host but
	// loopback whatever the transport.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Pull says how one caller wants an image: which images its pool allows, with which credentials, and
// where its progress goes.
type Pull struct {
	// Policy is the pool's allow-list; the zero Policy allows nothing.
	Policy Policy
	// Credentials per registry host; anonymous elsewhere.
	Credentials Credentials
	// Progress, when set, receives the pull's progress. It is called from the pulling goroutine and must
	// return quickly (store the value; do not do I/O).
	Progress func(Progress)
}

// Phase of a pull.
type Phase string

const (
	PhasePulling   Phase = "pulling"   // downloading layers not yet cached
	PhaseUnpacking Phase = "unpacking" // writing the root filesystem
	PhaseReady     Phase = "ready"     // Rootfs.Path can be mounted
)

// Progress of one image. Done and Total count compressed layer bytes, in both phases.
type Progress struct {
	Ref         string
	Phase       Phase
	Done, Total int64
}

// Config is what the image says about running it (from its OCI config).
type Config struct {
	Env        []string `json:"env,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Rootfs is an unpacked image.
type Rootfs struct {
	// Digest is the image manifest's digest (for an index reference, the platform's image in it).
	Digest string `json:"digest"`
	// Path is the root filesystem directory. Shared: mount it read-only, never write to it.
	Path   string `json:"-"`
	Config Config `json:"config"`
	// Layers are the compressed layer digests, base first.
	Layers []string `json:"layers"`
	// Bytes is the size of the unpacked files.
	Bytes int64 `json:"bytes"`
	// Stripped lists the paths whose setuid or setgid bit was removed; Skipped the entries not unpacked
	// (device nodes, FIFOs, unknown types), with why.
	Stripped []string `json:"stripped,omitempty"`
	Skipped  []string `json:"skipped,omitempty"`
}

// Cache pulls and unpacks images under one directory. Safe for concurrent use.
type Cache struct {
	opts Options
	log  *slog.Logger

	// mu guards flights and orders publishing an unpacked root against Prune removing one.
	mu      sync.Mutex
	flights map[string]*flight

	// unpacks counts unpacks done (tests assert that a cached root is reused).
	unpacks int
}

// flight is one pull in progress: the first caller starts it, later callers for the same digest wait for
// it and receive its progress too (singleflight with fan-out of progress).
type flight struct {
	done chan struct{}
	root Rootfs
	err  error

	mu   sync.Mutex
	subs map[int]func(Progress)
	next int
	last Progress
}

func (f *flight) subscribe(fn func(Progress)) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	if fn != nil {
		f.subs[id] = fn
		if f.last.Phase != "" {
			fn(f.last)
		}
	}
	return id
}

func (f *flight) unsubscribe(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, id)
}

func (f *flight) report(p Progress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = p
	for _, fn := range f.subs {
		fn(p)
	}
}

// New opens (creating) the cache directory and removes what an interrupted unpack left behind.
func New(o Options) (*Cache, error) {
	if o.Dir == "" {
		return nil, errors.New("image: Options.Dir is required")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 16 << 30
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 1_000_000
	}
	if o.PullTimeout <= 0 {
		o.PullTimeout = 30 * time.Minute
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{layersDir, rootsDir, refsDir} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	}
	c := &Cache{opts: o, log: o.Logger, flights: map[string]*flight{}}
	// What an interrupted pull left is cleared, unless another process (a running server beside `tamarack
	// images prune`) is pulling into the directory now: its pulls hold the lock.
	if f, err := c.lock(syscall.LOCK_EX | syscall.LOCK_NB); err == nil {
		err = removeTree(filepath.Join(o.Dir, tmpDir))
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("image: clear temporary files: %w", err)
		}
	} else if !errors.Is(err, ErrBusy) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return c, nil
}

// Layout of Options.Dir.
const (
	layersDir = "layers/sha256" // compressed layer blobs by digest hex
	rootsDir  = "roots"         // <image digest hex>/rootfs and <hex>/image.json
	refsDir   = "refs"          // <index digest hex>: the image digest hex an index reference resolved to
	tmpDir    = "tmp"
)

// ParseRef parses an image reference that must be pinned by digest. Tags are refused: a sandbox must run
// exactly the bytes staff allowed.
func ParseRef(ref string) (name.Digest, error) {
	if !strings.Contains(ref, "@") {
		return name.Digest{}, fmt.Errorf("%q: %w", ref, ErrNotPinned)
	}
	d, err := name.NewDigest(ref, name.StrictValidation)
	if err != nil {
		return name.Digest{}, fmt.Errorf("%q: %w: %v", ref, ErrNotPinned, err)
	}
	if !strings.HasPrefix(d.DigestStr(), "sha256:") {
		return name.Digest{}, fmt.Errorf("%q: %w (sha256 only)", ref, ErrNotPinned)
	}
	return d, nil
}

// Rootfs returns the unpacked root filesystem of the image ref (registry/repository@sha256:…), pulling and
// unpacking it first when this host does not have it. An image already unpacked is returned without
// contacting the registry, so sandboxes start offline. Concurrent calls for the same image share one pull
// and one unpack. A caller whose ctx ends stops waiting; the pull goes on for the others (bounded by
// Options.PullTimeout) and its result is kept.
func (c *Cache) Rootfs(ctx context.Context, ref string, p Pull) (Rootfs, error) {
	d, err := ParseRef(ref)
	if err != nil {
		return Rootfs{}, err
	}
	if err := p.Policy.Check(ref); err != nil {
		return Rootfs{}, err
	}
	key := strings.TrimPrefix(d.DigestStr(), "sha256:")

	// The lookup holds the cache (shared; taken before c.mu, in the order Prune takes them): a prune in another
	// process either ends before the lookup (the root is pulled again) or begins after it, when the caller's
	// record of the image it is about to use is there for the prune to read (see PruneFunc).
	release, err := c.Hold()
	if err != nil {
		return Rootfs{}, err
	}
	c.mu.Lock()
	r, ok := c.lookup(key)
	release()
	if ok {
		c.mu.Unlock()
		if p.Progress != nil {
			p.Progress(Progress{Ref: ref, Phase: PhaseReady})
		}
		return r, nil
	}
	f, running := c.flights[key]
	if !running {
		f = &flight{done: make(chan struct{}), subs: map[int]func(Progress){}}
		c.flights[key] = f
	}
	c.mu.Unlock()

	sub := f.subscribe(p.Progress)
	defer f.unsubscribe(sub)
	if !running {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.PullTimeout)
		go func() {
			defer cancel()
			// The pull holds the cache (as a sandbox start does) until its root is in place, whoever still
			// waits for it: Prune, here or in another process, leaves its layers and files alone meanwhile.
			r, err := Rootfs{}, error(nil)
			if release, herr := c.Hold(); herr != nil {
				err = herr
			} else {
				r, err = c.pull(wctx, d, ref, p.Credentials, f.report)
				release()
			}
			c.mu.Lock()
			delete(c.flights, key)
			c.mu.Unlock()
			f.root, f.err = r, err
			if err == nil {
				f.report(Progress{Ref: ref, Phase: PhaseReady, Done: f.last.Total, Total: f.last.Total})
			}
			close(f.done)
		}()
	}
	select {
	case <-f.done:
		return f.root, f.err
	case <-ctx.Done():
		return Rootfs{}, ctx.Err()
	}
}

// lookup finds an unpacked root by the digest hex of a reference (an image's own digest or an index that
// resolved to one). Called with c.mu held.
func (c *Cache) lookup(key string) (Rootfs, bool) {
	if b, err := os.ReadFile(filepath.Join(c.opts.Dir, refsDir, key)); err == nil {
		key = strings.TrimSpace(string(b))
	}
	return c.readRoot(key)
}

func (c *Cache) readRoot(hex string) (Rootfs, bool) {
	dir := filepath.Join(c.opts.Dir, rootsDir, hex)
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return Rootfs{}, false
	}
	var r Rootfs
	if err := json.Unmarshal(b, &r); err != nil {
		c.log.Warn("image: unreadable image.json: unpacking again", "dir", dir, "err", err)
		return Rootfs{}, false
	}
	r.Path = filepath.Join(dir, "rootfs")
	return r, true
}

// Unpacks counts the images this Cache unpacked since New.
func (c *Cache) Unpacks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unpacks
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Roots  []string // image digests whose unpacked root was removed
	Layers int      // cached layer blobs removed
	Bytes  int64    // what they took: the roots' unpacked files and the layers' compressed bytes
}

// ErrBusy is Prune's answer while the cache is held (Hold): a sandbox is being started from it.
var ErrBusy = errors.New("image cache in use: a sandbox is being started from it; prune again later")

// lockFile is the file whose lock orders Hold (shared) against Prune (exclusive), across the processes that
// use one cache directory (tamarack serve, tamarack images prune).
const lockFile = "lock"

// Hold marks the cache as in use until release is called; Prune, in this process or another on the same
// directory, answers ErrBusy meanwhile. Every pull holds it until its root is in place, and every lookup of
// an unpacked root for its moment. Holds are shared; Hold waits while a Prune runs (seconds).
func (c *Cache) Hold() (release func(), err error) {
	f, err := c.lock(syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	return func() { _ = f.Close() }, nil // closing the file releases its lock
}

func (c *Cache) lock(how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.opts.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("image: lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// Usage is what the cache holds on disk.
type Usage struct {
	Roots  int   // unpacked images
	Layers int   // cached layer blobs
	Bytes  int64 // the roots' unpacked files (as recorded when unpacked) plus the layers' compressed bytes
}

// Usage adds up the unpacked roots (their recorded size) and the cached layers. It reads one small file per
// root and stats each layer, so it is cheap enough to call every few minutes.
func (c *Cache) Usage() (Usage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var u Usage
	roots, err := os.ReadDir(filepath.Join(c.opts.Dir, rootsDir))
	if err != nil {
		return u, err
	}
	for _, e := range roots {
		if r, ok := c.readRoot(e.Name()); ok {
			u.Roots++
			u.Bytes += r.Bytes
		}
	}
	layers, err := os.ReadDir(filepath.Join(c.opts.Dir, layersDir))
	if err != nil {
		return u, err
	}
	for _, e := range layers {
		if fi, err := e.Info(); err == nil {
			u.Layers++
			u.Bytes += fi.Size()
		}
	}
	return u, nil
}

// Prune removes every unpacked root whose image digest is not in keep (sha256:… or bare hex), every
// cached layer no kept root uses, and the index aliases that pointed to removed roots. The caller lists
// every image a sandbox uses or is about to use; pulls in progress are left alone. It answers ErrBusy while
// the cache is held (see Hold, and PruneFunc, which lists what to keep under the lock).
func (c *Cache) Prune(keep []string) (PruneReport, error) {
	return c.PruneFunc(func() ([]string, error) { return keep, nil })
}

// PruneFunc is Prune with the list of images to keep made by keep once the cache is locked against pulls and
// lookups (here and in other processes), so that the list is current. The rule that makes it safe: whoever
// asks Rootfs for an image records that it uses it (a sandbox's row) before asking, and keep reads those
// records. A root returned before the lock then is on the list; a lookup after it waits for the prune and
// pulls again what it removed. keep may name an index digest that an image was pulled through; the image it
// resolved to is kept. keep must not call the cache.
func (c *Cache) PruneFunc(keep func() ([]string, error)) (PruneReport, error) {
	f, err := c.lock(syscall.LOCK_EX | syscall.LOCK_NB)
	if err != nil {
		return PruneReport{}, err
	}
	defer f.Close()
	// Lookups in this process wait from here: one that returned a root before has its user's record there
	// for keep to read (see Rootfs).
	c.mu.Lock()
	defer c.mu.Unlock()
	list, err := keep()
	if err != nil {
		return PruneReport{}, err
	}
	kept := map[string]bool{}
	for _, k := range list {
		k = strings.TrimPrefix(k, "sha256:")
		kept[k] = true
		if b, err := os.ReadFile(filepath.Join(c.opts.Dir, refsDir, k)); err == nil {
			kept[strings.TrimSpace(string(b))] = true // an index reference: the image it resolved to
		}
	}
	for k := range c.flights {
		kept[k] = true
	}
	var rep PruneReport
	usedLayers := map[string]bool{}
	roots, err := os.ReadDir(filepath.Join(c.opts.Dir, rootsDir))
	if err != nil {
		return rep, err
	}
	for _, e := range roots {
		hex := e.Name()
		if kept[hex] {
			if r, ok := c.readRoot(hex); ok {
				for _, l := range r.Layers {
					usedLayers[strings.TrimPrefix(l, "sha256:")] = true
				}
			}
			continue
		}
		r, _ := c.readRoot(hex)
		if err := removeTree(filepath.Join(c.opts.Dir, rootsDir, hex)); err != nil {
			return rep, err
		}
		rep.Roots = append(rep.Roots, "sha256:"+hex)
		rep.Bytes += r.Bytes
	}
	refs, err := os.ReadDir(filepath.Join(c.opts.Dir, refsDir))
	if err != nil {
		return rep, err
	}
	for _, e := range refs {
		p := filepath.Join(c.opts.Dir, refsDir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return rep, err
		}
		if _, ok := c.readRoot(strings.TrimSpace(string(b))); !ok {
			if err := os.Remove(p); err != nil {
				return rep, err
			}
		}
	}
	// Layers of pulls in progress are not listed yet; they are kept by being younger than the pull.
	layers, err := os.ReadDir(filepath.Join(c.opts.Dir, layersDir))
	if err != nil {
		return rep, err
	}
	busy := len(c.flights) > 0
	for _, e := range layers {
		if usedLayers[e.Name()] || busy {
			continue
		}
		fi, _ := e.Info()
		if err := os.Remove(filepath.Join(c.opts.Dir, layersDir, e.Name())); err != nil {
			return rep, err
		}
		rep.Layers++
		if fi != nil {
			rep.Bytes += fi.Size()
		}
	}
	return rep, nil
}

// removeTree removes dir and everything under it, making directories writable first where the image made
// them read-only (needed when the platform does not run as root).
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
