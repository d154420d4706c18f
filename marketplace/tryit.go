package marketplace

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Limits of a try-it image's command and ports.
const (
	maxTryItArgs   = 64
	maxTryItArgLen = 4096
	maxTryItPorts  = 8
)

// validate adds a field error for each invalid part of a try-it image. The reference is checked as the
// testbed checks a template's image (image.ParseRef): a digest, sha256, and an explicit registry.
func (t *TryIt) validate(f *problem.Fields) {
	switch err := checkPinnedRef(t.Image); {
	case t.Image == "":
		f.AddMsg("try_it.image", "required", "field.text.tryit_image", nil)
	case err == errTagged:
		f.AddMsg("try_it.image", "not_pinned", "field.text.tryit_pinned", nil)
	case err != nil:
		f.AddMsg("try_it.image", "invalid", "field.text.tryit_image_cause", problem.Args{"Cause": err.Error()})
	}
	if len(t.Command) > maxTryItArgs {
		f.AddMsg("try_it.command", "too_many", "field.text.at_most_args", problem.Args{"Max": maxTryItArgs})
	}
	for i, a := range t.Command {
		if a == "" && i == 0 || len(a) > maxTryItArgLen || strings.ContainsRune(a, 0) {
			f.AddMsg(fmt.Sprintf("try_it.command[%d]", i), "invalid", "field.text.tryit_arg", problem.Args{"Max": maxTryItArgLen})
		}
	}
	f.CheckMsg(len(t.Ports) <= maxTryItPorts, "try_it.ports", "too_many", "field.text.at_most_ports", problem.Args{"Max": maxTryItPorts})
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
