// Package artifact keeps models' and datasets' files on a host that runs sandboxes, for mounting them
// read-only into the sandboxes of the organisations entitled to them.
//
// It owns a cache directory: blobs/<sha256> holds each file once, by content digest (so a second sandbox, or
// another listing version with the same file, downloads nothing); sets/<digest>/ is one listing version's
// files under their names (hard links to the blobs), the directory a sandbox sees at /artifacts/<listing>;
// users/<sandbox> names the sets a sandbox uses. Release drops a sandbox's use and removes what nobody uses.
// It fetches only the signed, expiring links the marketplace hands out (which check the entitlement again),
// checks every byte against the digest, and never decides who may have a file.
package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// ErrFetch: a file could not be fetched (link refused or expired, wrong size or digest, store unreachable).
var ErrFetch = errors.New("artifact could not be fetched")

// Root is where a sandbox sees the artifacts of listings: Root/<listing ID>.
const Root = "/artifacts"

// Target is where a sandbox sees the artifacts of listingID.
func Target(listingID string) string { return Root + "/" + listingID }

var (
	digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)
	idRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
)

// Cache is the artifacts cache of one host. Its methods are safe for concurrent use by one process.
type Cache struct {
	dir    string
	client *http.Client
	log    *slog.Logger

	mu sync.Mutex // links, uses and sweeps (downloads run outside it)

	baseMu sync.Mutex
	base   *url.URL
}

// SetBaseURL changes the address relative links resolve against (the embedded agent learns the platform's
// listener only once it listens).
func (c *Cache) SetBaseURL(u string) error {
	base, err := parseBase(u)
	if err != nil {
		return err
	}
	c.baseMu.Lock()
	c.base = base
	c.baseMu.Unlock()
	return nil
}

func parseBase(u string) (*url.URL, error) {
	base, err := url.Parse(u)
	if err != nil || u != "" && (base.Scheme != "http" && base.Scheme != "https" || base.Host == "") {
		return nil, fmt.Errorf("artifact cache: base URL %q: want http(s)://host[:port]", u)
	}
	return base, nil
}

// Options configure New.
type Options struct {
	// Dir is the cache directory (created when missing).
	Dir string
	// BaseURL resolves links that are paths on the platform (the marketplace's own signed blob route): the
	// platform's address as this host reaches it.
	BaseURL string
	// Client fetches the files; nil: a client with a 30-minute limit per file.
	Client *http.Client
	Log    *slog.Logger
}

// New opens the cache at opts.Dir.
func New(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("artifact cache: a directory is required")
	}
	base, err := parseBase(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"blobs", "sets", "users", "tmp"} {
		// World-searchable: a sandbox's root (a uid of its own range on this host) reads the files through its
		// read-only bind; nothing here is secret from it once mounted, and the cache root itself stays 0711.
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o711); err != nil {
			return nil, fmt.Errorf("artifact cache: %w", err)
		}
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 30 * time.Minute}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Cache{dir: opts.Dir, base: base, client: opts.Client, log: opts.Log}, nil
}

// Mount makes the files of m available to sandboxID: each file not cached yet is fetched and checked, then
// the listing version's set directory is made (once) and the sandbox's use of it recorded. The returned mount
// binds that directory read-only at m.Target.
func (c *Cache) Mount(ctx context.Context, sandboxID string, m events.AgentMountV1) (backend.Mount, error) {
	if !idRE.MatchString(sandboxID) || !idRE.MatchString(m.ListingID) {
		return backend.Mount{}, fmt.Errorf("%w: sandbox %q, listing %q: invalid IDs", backend.ErrInvalidSpec, sandboxID, m.ListingID)
	}
	files := slices.Clone(m.Files)
	slices.SortFunc(files, func(a, b events.AgentArtifactV1) int { return strings.Compare(a.Name, b.Name) })
	set := sha256.New()
	fmt.Fprintf(set, "%s\n", m.ListingID)
	for i, f := range files {
		if !nameRE.MatchString(f.Name) || !digestRE.MatchString(f.SHA256) || i > 0 && files[i-1].Name == f.Name {
			return backend.Mount{}, fmt.Errorf("%w: artifact %q (%s): invalid or repeated name or digest", backend.ErrInvalidSpec, f.Name, f.SHA256)
		}
		fmt.Fprintf(set, "%s %s\n", f.SHA256, f.Name)
	}
	setID := hex.EncodeToString(set.Sum(nil))
	tmps := map[string]string{} // digest → downloaded temporary file, for the blobs not cached yet
	defer func() {
		for _, p := range tmps {
			_ = os.Remove(p)
		}
	}()
	for _, f := range files {
		if _, done := tmps[f.SHA256]; done || c.has(f.SHA256) {
			continue
		}
		p, err := c.fetch(ctx, f)
		if err != nil {
			return backend.Mount{}, err
		}
		tmps[f.SHA256] = p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, p := range tmps {
		if c.has(d) { // another sandbox's fetch of the same file finished first: keep its copy (its links)
			continue
		}
		if err := os.Rename(p, c.blob(d)); err != nil {
			return backend.Mount{}, fmt.Errorf("artifact cache: %w", err)
		}
		delete(tmps, d)
	}
	dir := filepath.Join(c.dir, "sets", setID)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := c.makeSet(dir, files); err != nil {
			return backend.Mount{}, err
		}
	} else if err != nil {
		return backend.Mount{}, fmt.Errorf("artifact cache: %w", err)
	}
	if err := c.use(sandboxID, setID); err != nil {
		return backend.Mount{}, err
	}
	return backend.Mount{Source: dir, Target: m.Target}, nil
}

func (c *Cache) blob(digest string) string { return filepath.Join(c.dir, "blobs", digest) }

func (c *Cache) has(digest string) bool {
	_, err := os.Stat(c.blob(digest))
	return err == nil
}

// fetch downloads f into a temporary file, refusing more bytes than declared and a wrong digest.
func (c *Cache) fetch(ctx context.Context, f events.AgentArtifactV1) (string, error) {
	c.baseMu.Lock()
	base := c.base
	c.baseMu.Unlock()
	u, err := base.Parse(f.URL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%w: %s: link %q is not an http(s) URL", ErrFetch, f.Name, f.URL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrFetch, f.Name, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrFetch, f.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("%w: %s: %s answered %s: %s", ErrFetch, f.Name, u.Host, resp.Status, strings.TrimSpace(string(body)))
	}
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "fetch-*")
	if err != nil {
		return "", fmt.Errorf("artifact cache: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, f.SizeBytes+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o444)
	}
	switch got := hex.EncodeToString(h.Sum(nil)); {
	case err != nil:
		err = fmt.Errorf("%w: %s: %v", ErrFetch, f.Name, err)
	case n != f.SizeBytes:
		err = fmt.Errorf("%w: %s: %d bytes, want %d", ErrFetch, f.Name, n, f.SizeBytes)
	case got != f.SHA256:
		err = fmt.Errorf("%w: %s: sha256 %s, want %s", ErrFetch, f.Name, got, f.SHA256)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	c.log.Info("artifact fetched", "name", f.Name, "sha256", f.SHA256, "bytes", n)
	return tmp.Name(), nil
}

// makeSet links the files under their names into a new directory, made elsewhere and renamed into place so
// that a set is whole or absent; both end read-only.
func (c *Cache) makeSet(dir string, files []events.AgentArtifactV1) error {
	tmp, err := os.MkdirTemp(filepath.Join(c.dir, "tmp"), "set-*")
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	for _, f := range files {
		if err := os.Link(c.blob(f.SHA256), filepath.Join(tmp, f.Name)); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("artifact cache: %w", err)
		}
	}
	err = os.Chmod(tmp, 0o555)
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		_ = os.Chmod(tmp, 0o755)
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("artifact cache: %w", err)
	}
	return nil
}

// use records that sandboxID uses set (one line per set in users/<sandbox>).
func (c *Cache) use(sandboxID, set string) error {
	p := filepath.Join(c.dir, "users", sandboxID)
	sets, _ := c.sets(sandboxID)
	if slices.Contains(sets, set) {
		return nil
	}
	if err := os.WriteFile(p, []byte(strings.Join(append(sets, set), "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	return nil
}

func (c *Cache) sets(sandboxID string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "users", sandboxID))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// Release drops sandboxID's uses (it has ended) and removes the sets and files nobody uses any more. A
// sandbox without any is a no-op.
func (c *Cache) Release(sandboxID string) error {
	if !idRE.MatchString(sandboxID) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := filepath.Join(c.dir, "users", sandboxID)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	return c.sweep()
}

// Sweep drops the uses of every sandbox for which alive is false (ended while this process was away), then
// removes what nobody uses.
func (c *Cache) Sweep(alive func(sandboxID string) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	users, err := os.ReadDir(filepath.Join(c.dir, "users"))
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	for _, u := range users {
		if !alive(u.Name()) {
			if err := os.Remove(filepath.Join(c.dir, "users", u.Name())); err != nil {
				return fmt.Errorf("artifact cache: %w", err)
			}
		}
	}
	return c.sweep()
}

// sweep removes the sets no sandbox uses, then the blobs no set links (link count 1), and leftovers of
// interrupted downloads. Called with mu held.
func (c *Cache) sweep() error {
	used := map[string]bool{}
	users, err := os.ReadDir(filepath.Join(c.dir, "users"))
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	for _, u := range users {
		sets, _ := c.sets(u.Name())
		for _, s := range sets {
			used[s] = true
		}
	}
	sets, err := os.ReadDir(filepath.Join(c.dir, "sets"))
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	var errs []error
	for _, s := range sets {
		if used[s.Name()] {
			continue
		}
		p := filepath.Join(c.dir, "sets", s.Name())
		_ = os.Chmod(p, 0o755)
		errs = append(errs, os.RemoveAll(p))
	}
	blobs, err := os.ReadDir(filepath.Join(c.dir, "blobs"))
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	for _, b := range blobs {
		if links(filepath.Join(c.dir, "blobs", b.Name())) <= 1 {
			errs = append(errs, os.Remove(filepath.Join(c.dir, "blobs", b.Name())))
		}
	}
	return errors.Join(errs...)
}

// Files lists the digests of the cached files (tests: what a second sandbox did not download again).
func (c *Cache) Files() ([]string, error) {
	es, err := os.ReadDir(filepath.Join(c.dir, "blobs"))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out, err
}
