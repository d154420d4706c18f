package marketplace

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Limits of a try-it image's command and ports.
const (
	maxTryItArgs    = 64
	maxTryItArgLen  = 4096
	maxTryItPorts   = 8
	tryItImageRule  = "an OCI image pinned by digest, registry named: registry/repository@sha256:<64 hex digits>"
	tryItPinnedRule = "must be pinned by digest (registry/repository@sha256:<64 hex digits>), not a tag: staff review, " +
		"and sandboxes run, exactly these bytes"
)

// validate adds a field error for each invalid part of a try-it image. The reference is checked as the
// testbed checks a template's image (image.ParseRef): a digest, sha256, and an explicit registry.
func (t *TryIt) validate(f *problem.Fields) {
	switch err := checkPinnedRef(t.Image); {
	case t.Image == "":
		f.Add("try_it.image", "required", tryItImageRule)
	case err == errTagged:
		f.Add("try_it.image", "not_pinned", tryItPinnedRule)
	case err != nil:
		f.Add("try_it.image", "invalid", tryItImageRule+": "+err.Error())
	}
	if len(t.Command) > maxTryItArgs {
		f.Add("try_it.command", "too_many", fmt.Sprintf("at most %d arguments", maxTryItArgs))
	}
	for i, a := range t.Command {
		if a == "" && i == 0 || len(a) > maxTryItArgLen || strings.ContainsRune(a, 0) {
			f.Add(fmt.Sprintf("try_it.command[%d]", i), "invalid",
				fmt.Sprintf("a non-empty program, and arguments of at most %d bytes without NUL", maxTryItArgLen))
		}
	}
	f.Check(len(t.Ports) <= maxTryItPorts, "try_it.ports", "too_many", fmt.Sprintf("at most %d ports", maxTryItPorts))
	seen := map[int]bool{}
	for i, p := range t.Ports {
		at := fmt.Sprintf("try_it.ports[%d]", i)
		switch {
		case p < 1 || p > 65535:
			f.Add(at, "invalid", "a TCP port, 1 to 65535")
		case seen[p]:
			f.Add(at, "duplicate", "is listed twice")
		}
		seen[p] = true
	}
}

var errTagged = fmt.Errorf("not pinned by digest")

// checkPinnedRef accepts registry/repository@sha256:<hex> only (errTagged for a reference without a digest).
func checkPinnedRef(ref string) error {
	if !strings.Contains(ref, "@") {
		return errTagged
	}
	d, err := name.NewDigest(ref, name.StrictValidation)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(d.DigestStr(), "sha256:") {
		return fmt.Errorf("sha256 digests only")
	}
	return nil
}
