package image

import (
	"context"
	"fmt"
	"strings"
)

// Provider is what a host's sandbox runtime calls: it turns a template's image, a built-in name ("python")
// or a pinned reference (registry/repository@sha256:…), into an unpacked root filesystem, under the pool's
// allow-list and credentials (its settings, read by FromSettings). The built-in images of the platform's
// own registry are allowed in every pool.
type Provider struct {
	Cache *Cache
	// Registry is the host:port of the platform's registry store, as this host reaches it (loopback).
	Registry string
	// Builtin lists the built-in images; read at each call, so images seeded while the server runs count.
	Builtin func() (Builtin, error)
}

// BuiltinPrefix is the repository prefix of the built-in images in the platform's registry.
const BuiltinPrefix = "tamarack/"

// Ref resolves a template's image to a pinned reference.
func (p *Provider) Ref(img string) (string, error) {
	// A reference names a registry or a repository path ("/") or a tag (":"); a built-in name has neither.
	// A reference that is not pinned by digest is refused here, not looked up as a built-in name.
	if strings.ContainsAny(img, "@/:") {
		if _, err := ParseRef(img); err != nil {
			return "", err
		}
		return img, nil
	}
	b, err := p.Builtin()
	if err != nil {
		return "", err
	}
	return b.Ref(p.Registry, img)
}

// Rootfs returns the unpacked root of img for a sandbox of a pool with the given settings, pulling it
// when this host does not have it; progress receives the pull's progress (see Cache.Rootfs). Bad image
// settings refuse the pull rather than fall back to anything.
func (p *Provider) Rootfs(ctx context.Context, img string, poolSettings map[string]string, progress func(Progress)) (Rootfs, error) {
	ref, err := p.Ref(img)
	if err != nil {
		return Rootfs{}, err
	}
	policy, creds, err := FromSettings(poolSettings)
	if err != nil {
		return Rootfs{}, fmt.Errorf("pool image settings: %w", err)
	}
	return p.Cache.Rootfs(ctx, ref, Pull{Policy: policy.With(p.Registry + "/" + BuiltinPrefix), Credentials: creds, Progress: progress})
}

// Hold marks this host's cache as in use (see Cache.Hold).
func (p *Provider) Hold() (release func(), err error) { return p.Cache.Hold() }

// Usage is what this host's cache holds (see Cache.Usage).
func (p *Provider) Usage() (Usage, error) { return p.Cache.Usage() }

// Prune removes from this host's cache every image that is not built in and not named by what keep lists
// (made under the cache's lock, see Cache.PruneFunc): built-in names ("shell"), references pinned by digest
// (registry/repository@sha256:…, an index's digest keeps the image it resolved to) or bare digests.
// Entries that are none of these (a tag, a name not built in) keep nothing. The built-in images are always
// kept: every pool allows them, and the demo's sandboxes start from them offline.
func (p *Provider) Prune(keep func() ([]string, error)) (PruneReport, error) {
	return p.Cache.PruneFunc(func() ([]string, error) {
		list, err := keep()
		if err != nil {
			return nil, err
		}
		b, err := p.Builtin()
		if err != nil {
			return nil, fmt.Errorf("built-in images: %w", err)
		}
		var out []string
		for _, e := range b {
			out = append(out, e.Digest)
		}
		for _, k := range list {
			switch {
			case strings.HasPrefix(k, "sha256:"):
				out = append(out, k)
			case strings.Contains(k, "@"):
				if d, err := ParseRef(k); err == nil {
					out = append(out, d.DigestStr())
				}
			default:
				if e, ok := b[k]; ok {
					out = append(out, e.Digest)
				}
			}
		}
		return out, nil
	})
}
