package image

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Policy is a pool's allow-list of images, kept by staff. An entry is one of:
//
//	registry/repository@sha256:…   exactly that image
//	registry/repository            any digest of that repository
//	registry/prefix/               any repository under the prefix (note the trailing slash)
//
// Names are compared after normalisation ("docker.io/library/python" is "index.docker.io/library/python");
// an entry may name Docker Hub short ("docker.io/python"), a reference must name it in full. The zero
// Policy allows nothing: a pool without an allow-list runs only what the platform adds for every pool (the
// built-in images of its own registry).
type Policy struct {
	Allow []string
}

// Check returns nil when ref (pinned by digest) is allowed, else an error wrapping ErrNotAllowed.
func (p Policy) Check(ref string) error {
	d, err := ParseRef(ref)
	if err != nil {
		return err
	}
	repo := d.Context().Name()
	for _, e := range p.Allow {
		switch {
		case strings.HasSuffix(e, "/"):
			if strings.HasPrefix(repo, normalisePrefix(e)) {
				return nil
			}
		case strings.Contains(e, "@"):
			if a, err := name.NewDigest(e); err == nil && a.Context().Name() == repo && a.DigestStr() == d.DigestStr() {
				return nil
			}
		default:
			if a, err := name.NewRepository(e); err == nil && a.Name() == repo {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: %w", ref, ErrNotAllowed)
}

// normalisePrefix spells a prefix entry's registry as go-containerregistry does ("docker.io/" is
// "index.docker.io/").
func normalisePrefix(e string) string {
	if r, err := name.NewRepository(strings.TrimSuffix(e, "/")); err == nil {
		return r.Name() + "/"
	}
	return e
}

// With returns a copy of p that also allows the given entries (the platform adds its own registry's
// built-in images to every pool's policy).
func (p Policy) With(entries ...string) Policy {
	return Policy{Allow: append(append([]string(nil), p.Allow...), entries...)}
}

// Pool settings read by FromSettings. Pool settings are a JSON object of strings (testbed's Pool.Settings);
// these keys are the only ones this package reads.
const (
	// SettingAllow lists allowed images, separated by spaces, commas or newlines (see Policy).
	SettingAllow = "images.allow"
	// SettingAuthPrefix + registry host ("images.auth.ghcr.io") holds "username:password" for that registry.
	SettingAuthPrefix = "images.auth."
)

// FromSettings reads a pool's allow-list and registry credentials from its settings, reporting every bad
// entry at once.
func FromSettings(settings map[string]string) (Policy, Credentials, error) {
	var p Policy
	creds := Credentials{}
	var errs []error
	for _, e := range strings.FieldsFunc(settings[SettingAllow], func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n' || r == '\t'
	}) {
		if err := validEntry(e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", SettingAllow, e, err))
			continue
		}
		p.Allow = append(p.Allow, e)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		host, ok := strings.CutPrefix(k, SettingAuthPrefix)
		if !ok {
			continue
		}
		user, pass, ok := strings.Cut(settings[k], ":")
		if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || host == "" {
			errs = append(errs, fmt.Errorf("%s: not a registry host", k))
			continue
		}
		if !ok || user == "" {
			errs = append(errs, fmt.Errorf("%s: want username:password", k))
			continue
		}
		creds[host] = Basic{Username: user, Password: pass}
	}
	return p, creds, errors.Join(errs...)
}

func validEntry(e string) error {
	switch {
	case strings.HasSuffix(e, "/"):
		_, err := name.NewRepository(strings.TrimSuffix(e, "/"))
		return err
	case strings.Contains(e, "@"):
		_, err := ParseRef(e)
		return err
	default:
		_, err := name.NewRepository(e)
		return err
	}
}
