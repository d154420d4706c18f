package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is the platform's own image store: go-containerregistry's registry (the OCI distribution API)
// with blobs on disk under dir/blobs. That registry keeps manifests in memory only, so every push is also
// journalled under dir/manifests (the manifest bytes as a blob, a small record naming repository and
// reference) and replayed into it at open; a push made by another process on the same dir (`tamarack seed`
// beside a running server) is picked up the first time a manifest is not found.
//
// Pushes go only through Push, in process; the HTTP handler served to pullers is read-only (GET and HEAD),
// so nothing reachable over the network can change the store.
type Registry struct {
	dir   string
	inner http.Handler
	log   *slog.Logger

	mu      sync.Mutex
	loaded  map[string]time.Time // journal record file → its modification time when replayed
	scanned time.Time            // modification time of the journal directory at the last scan
}

// manifestRecord is one journal entry: repository:reference → manifest digest and media type.
type manifestRecord struct {
	Repository string `json:"repository"`
	Reference  string `json:"reference"` // a tag or the digest itself
	Digest     string `json:"digest"`
	MediaType  string `json:"media_type"`
}

// OpenRegistry opens (creating) the store under dir and replays its journal.
func OpenRegistry(dir string, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{"blobs/sha256", "manifests"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("registry store: %w", err)
		}
	}
	r := &Registry{dir: dir, log: log, loaded: map[string]time.Time{},
		inner: registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "blobs"))),
			registry.Logger(slog.NewLogLogger(log.Handler(), slog.LevelDebug)))}
	if err := r.sync(true); err != nil {
		return nil, err
	}
	return r, nil
}

// Handler serves the store read-only over the distribution API (/v2/…).
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNSUPPORTED","message":"this registry is read-only"}]}`))
			return
		}
		if strings.Contains(req.URL.Path, "/manifests/") {
			if err := r.sync(false); err != nil {
				r.log.Warn("registry store: journal replay failed", "err", err)
			}
		}
		r.inner.ServeHTTP(w, req)
	})
}

// Push stores img as repo:tag (repo like "tamarack/shell") and returns its digest. Pushing goes through the
// distribution API of the store's own handler, in process.
func (r *Registry) Push(ctx context.Context, repo, tag string, img v1.Image) (v1.Hash, error) {
	ref, err := name.NewTag("registry.invalid/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s:%s: %w", repo, tag, err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(handlerTransport{r.inner})); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s:%s: %w", repo, tag, err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Hash{}, err
	}
	sum := sha256.Sum256(raw)
	digest := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	tmp := filepath.Join(r.dir, "blobs")
	if err := writeFileAtomic(filepath.Join(r.dir, "blobs", "sha256", digest.Hex), raw, tmp); err != nil {
		return v1.Hash{}, err
	}
	for _, ref := range []string{tag, digest.String()} {
		rec, _ := json.Marshal(manifestRecord{Repository: repo, Reference: ref, Digest: digest.String(), MediaType: string(mt)})
		if err := writeFileAtomic(r.recordPath(repo, ref), rec, tmp); err != nil {
			return v1.Hash{}, err
		}
	}
	return digest, nil
}

func (r *Registry) recordPath(repo, ref string) string {
	sum := sha256.Sum256([]byte(repo + "\x00" + ref))
	return filepath.Join(r.dir, "manifests", hex.EncodeToString(sum[:])+".json")
}

// sync replays journal records not yet in the in-memory manifest store. Unless forced it only looks when
// the journal directory changed since the last scan.
func (r *Registry) sync(force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	dir := filepath.Join(r.dir, "manifests")
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !force && st.ModTime().Equal(r.scanned) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var recs []manifestRecord
	var files []string
	var times []time.Time
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // renamed away meanwhile
		}
		if t, ok := r.loaded[e.Name()]; ok && t.Equal(info.ModTime()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		var rec manifestRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("registry store: %s: %w", e.Name(), err)
		}
		recs, files, times = append(recs, rec), append(files, e.Name()), append(times, info.ModTime())
	}
	// An index may only be stored once the manifests it lists are: images first.
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return !isIndexType(recs[idx[a]].MediaType) && isIndexType(recs[idx[b]].MediaType)
	})
	var errs []error
	for _, i := range idx {
		if err := r.replay(recs[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		r.loaded[files[i]] = times[i]
	}
	r.scanned = st.ModTime()
	return errors.Join(errs...)
}

func isIndexType(mt string) bool {
	return strings.Contains(mt, "index") || strings.Contains(mt, "manifest.list")
}

func (r *Registry) replay(rec manifestRecord) error {
	h, err := v1.NewHash(rec.Digest)
	if err != nil {
		return fmt.Errorf("registry store: record %s:%s: %w", rec.Repository, rec.Reference, err)
	}
	raw, err := os.ReadFile(filepath.Join(r.dir, "blobs", h.Algorithm, h.Hex))
	if err != nil {
		return fmt.Errorf("registry store: manifest of %s:%s: %w", rec.Repository, rec.Reference, err)
	}
	req := httptest.NewRequest(http.MethodPut, "/v2/"+rec.Repository+"/manifests/"+rec.Reference, bytes.NewReader(raw))
	req.Header.Set("Content-Type", rec.MediaType)
	w := httptest.NewRecorder()
	r.inner.ServeHTTP(w, req)
	if w.Code != http.StatusCreated {
		return fmt.Errorf("registry store: replay %s:%s: %d %s", rec.Repository, rec.Reference, w.Code, w.Body.String())
	}
	return nil
}

// handlerTransport sends requests straight to an http.Handler in this process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sreq := req.Clone(req.Context())
	if sreq.Body == nil {
		sreq.Body = http.NoBody // as a server request always has one
	}
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, sreq)
	resp := w.Result()
	resp.Request = req
	return resp, nil
}

// Builtin names the built-in images ("shell", "python") with their repository and digest. The image build
// (infra/images) writes one beside its OCI layouts (images.json, with Layout set); seeding pushes those
// images into the platform's registry store and writes the same list there (builtin.json), which is what
// templates resolve their image names against.
type Builtin map[string]BuiltinImage

// BuiltinImage is one entry of a Builtin list.
type BuiltinImage struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Layout     string `json:"layout,omitempty"` // OCI layout directory, relative to the list (build output only)
}

// BuiltinFile is the list's file name in the registry store's directory.
const BuiltinFile = "builtin.json"

// Ref is the pinned reference of the built-in image name in the registry reached at host ("127.0.0.1:5001").
func (b Builtin) Ref(host, imageName string) (string, error) {
	e, ok := b[imageName]
	if !ok {
		return "", fmt.Errorf("built-in image %q is not in the registry store (build it with infra/images/build.sh, then run `tamarack seed`)", imageName)
	}
	return host + "/" + e.Repository + "@" + e.Digest, nil
}

// ReadBuiltin reads a Builtin list; a missing file is an empty list.
func ReadBuiltin(path string) (Builtin, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Builtin{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := Builtin{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// WriteBuiltin writes a Builtin list atomically.
func WriteBuiltin(path string, b Builtin) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), filepath.Dir(path))
}

// Builtin reads the registry store's list of built-in images.
func (r *Registry) Builtin() (Builtin, error) { return ReadBuiltin(filepath.Join(r.dir, BuiltinFile)) }

// SetBuiltin records the built-in image list of the store.
func (r *Registry) SetBuiltin(b Builtin) error {
	return WriteBuiltin(filepath.Join(r.dir, BuiltinFile), b)
}

// PushBuild pushes the images of a build output directory (infra/images/build.sh's, listed in its
// images.json) into the store as repository:latest, records them in the store's built-in list and returns
// what it pushed (empty when dir holds no build).
func (r *Registry) PushBuild(ctx context.Context, dir string) (Builtin, error) {
	built, err := ReadBuiltin(filepath.Join(dir, BuildListFile))
	if err != nil || len(built) == 0 {
		return Builtin{}, err
	}
	list, err := r.Builtin()
	if err != nil {
		return nil, err
	}
	pushed := Builtin{}
	for imageName, b := range built {
		img, err := ReadLayout(filepath.Join(dir, b.Layout), b.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", imageName, err)
		}
		digest, err := r.Push(ctx, b.Repository, "latest", img)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", imageName, err)
		}
		list[imageName] = BuiltinImage{Repository: b.Repository, Digest: digest.String()}
		pushed[imageName] = list[imageName]
	}
	return pushed, r.SetBuiltin(list)
}
