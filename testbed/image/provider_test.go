package image

import (
	"errors"
	"strings"
	"testing"
)

// A template's image is a built-in name or a reference pinned by digest; anything naming a registry, a
// repository path or a tag without a digest is refused as not pinned, never looked up as a built-in name.
func TestProviderRef(t *testing.T) {
	pinned := "127.0.0.1:5000/vendor/tool@sha256:" + strings.Repeat("ab", 32)
	p := &Provider{Registry: "127.0.0.1:5001", Builtin: func() (Builtin, error) {
		return Builtin{"shell": {Repository: "tamarack/shell", Digest: "sha256:" + strings.Repeat("cd", 32)}}, nil
	}}
	for _, tc := range []struct {
		img, want string
		err       error
		errText   string
	}{
		{img: "shell", want: "127.0.0.1:5001/tamarack/shell@sha256:" + strings.Repeat("cd", 32)},
		{img: pinned, want: pinned},
		{img: "127.0.0.1:5000/vendor/tool:latest", err: ErrNotPinned},
		{img: "docker.io/library/python", err: ErrNotPinned},
		{img: "python:3.12", err: ErrNotPinned},
		{img: "vendor/tool@sha256:short", err: ErrNotPinned},
		{img: "python", errText: "tamarack seed"},
	} {
		got, err := p.Ref(tc.img)
		switch {
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("Ref(%q) = %q, %v; want %v", tc.img, got, err, tc.err)
		case tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)):
			t.Errorf("Ref(%q) = %q, %v; want an error saying %q", tc.img, got, err, tc.errText)
		case tc.err == nil && tc.errText == "" && (err != nil || got != tc.want):
			t.Errorf("Ref(%q) = %q, %v; want %q", tc.img, got, err, tc.want)
		}
	}
}
