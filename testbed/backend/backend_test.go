package backend_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	good := backend.Spec{SandboxID: "sb-1", Command: []string{"/bin/true"}}
	tests := []struct {
		name    string
		mutate  func(*backend.Spec)
		wantErr []string // substrings; nil means valid
	}{
		{name: "minimal", mutate: func(*backend.Spec) {}},
		{name: "63 chars", mutate: func(s *backend.Spec) { s.SandboxID = strings.Repeat("a", 63) }},
		{name: "64 chars", mutate: func(s *backend.Spec) { s.SandboxID = strings.Repeat("a", 64) }, wantErr: []string{"sandbox_id"}},
		{name: "upper case", mutate: func(s *backend.Spec) { s.SandboxID = "Sb" }, wantErr: []string{"sandbox_id"}},
		{name: "trailing dash", mutate: func(s *backend.Spec) { s.SandboxID = "sb-" }, wantErr: []string{"sandbox_id"}},
		{name: "path in id", mutate: func(s *backend.Spec) { s.SandboxID = "../x" }, wantErr: []string{"sandbox_id"}},
		{name: "image root", mutate: func(s *backend.Spec) { s.RootFS = "/var/lib/tamarack/images/abc/rootfs" }},
		{name: "relative root", mutate: func(s *backend.Spec) { s.RootFS = "images/abc" }, wantErr: []string{"rootfs"}},
		{name: "unclean root", mutate: func(s *backend.Spec) { s.RootFS = "/var/lib/../../etc" }, wantErr: []string{"rootfs"}},
		{name: "host root as root", mutate: func(s *backend.Spec) { s.RootFS = "/" }, wantErr: []string{"rootfs"}},
		{name: "negative log cap", mutate: func(s *backend.Spec) { s.Limits.LogBytes = -1 }, wantErr: []string{"limits"}},
		{name: "image's entrypoint", mutate: func(s *backend.Spec) { s.Command, s.Image = nil, "registry.example/sh@sha256:"+strings.Repeat("a", 64) }},
		{name: "no command nor image", mutate: func(s *backend.Spec) { s.Command = nil }, wantErr: []string{"command: empty"}},
		{name: "empty program with image", mutate: func(s *backend.Spec) { s.Command, s.Image = []string{""}, "x@sha256:1" }, wantErr: []string{"command: empty"}},
		{name: "image with spaces", mutate: func(s *backend.Spec) { s.Image = "a b" }, wantErr: []string{"image"}},
		{name: "booked duration", mutate: func(s *backend.Spec) { s.Duration = 90 * time.Minute }},
		{name: "negative duration", mutate: func(s *backend.Spec) { s.Duration = -time.Second }, wantErr: []string{"duration"}},
		{
			name: "every problem at once",
			mutate: func(s *backend.Spec) {
				s.SandboxID = ""
				s.Command = nil
				s.Env = map[string]string{"A=B": "x"}
				s.Ports = []int{0}
				s.Limits.MemoryBytes = -1
				s.Devices = []backend.Device{{Index: 0, Paths: []string{"/etc/passwd"}}, {Index: 0}}
			},
			wantErr: []string{"sandbox_id", "command", "env", "ports", "limits", "not under /dev", "repeated"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := good
			tt.mutate(&s)
			err := s.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, backend.ErrInvalidSpec) {
				t.Fatalf("Validate() = %v, want ErrInvalidSpec", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
