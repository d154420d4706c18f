package cdi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

const fixtureUUID = "GPU-f99132a9-66f1-44ad-bbae-b611c477a08b"

func openFixture(t *testing.T) *Registry {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open([]string{dir, filepath.Join(t.TempDir(), "absent")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistryFixture(t *testing.T) {
	t.Parallel()
	r := openFixture(t)
	gpus := r.GPUs()
	want := GPU{Index: 0, UUID: fixtureUUID, Names: []string{"nvidia.com/gpu=0", "nvidia.com/gpu=" + fixtureUUID}, Nodes: []string{"/dev/nvidia0"}}
	if len(gpus) != 1 || !slices.Equal(gpus[0].Names, want.Names) || gpus[0].UUID != want.UUID || gpus[0].Index != 0 || !slices.Equal(gpus[0].Nodes, want.Nodes) {
		t.Errorf("GPUs() = %+v, want [%+v]", gpus, want)
	}
	if got := r.Tool("nvidia-smi"); got != "/usr/local/nvidia/bin/nvidia-smi" {
		t.Errorf("Tool(nvidia-smi) = %q", got)
	}
	if got := r.Tool("nvidia-bug-report.sh"); got != "" {
		t.Errorf("Tool of a program the spec lacks = %q", got)
	}
	specs := r.Specs()
	if len(specs) != 1 || specs[0].Kind != GPUKind || specs[0].Err != nil || len(specs[0].Devices) != 3 {
		t.Fatalf("Specs() = %+v", specs)
	}
	for _, cmd := range []string{"create-symlinks", "update-ldcache", "enable-cuda-compat", "apply-cuda-memory-limits"} {
		if !slices.ContainsFunc(specs[0].Notes, func(n string) bool { return strings.HasPrefix(n, "hook "+cmd+": ") }) {
			t.Errorf("notes %q do not say what replaces %s", specs[0].Notes, cmd)
		}
	}
	if p := r.Problems(); len(p) != 0 {
		t.Errorf("Problems() = %v", p)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	r := openFixture(t)
	tests := []struct {
		name    string
		dev     backend.Device
		want    string // qualified name; "" for skipped
		wantErr string
	}{
		{"by CDI name", backend.Device{Index: 5, CDIName: "nvidia.com/gpu=0"}, "nvidia.com/gpu=0", ""},
		{"by UUID", backend.Device{Index: 0, UUID: fixtureUUID, Paths: []string{"/dev/nvidia0"}}, "nvidia.com/gpu=" + fixtureUUID, ""},
		{"by index when there is no UUID", backend.Device{Index: 0, Paths: []string{"/dev/nvidia0"}}, "nvidia.com/gpu=0", ""},
		{"declared, nothing to hand over", backend.Device{Index: 3, UUID: "GPU-declared-node-3"}, "", ""},
		{"discovered but not in the spec", backend.Device{Index: 1, UUID: "GPU-0000", Paths: []string{"/dev/nvidia1"}}, "", "no CDI device for GPU-0000 (index 1)"},
		{"a CDI name the host lacks", backend.Device{CDIName: "nvidia.com/gpu=7"}, "", "no CDI device for nvidia.com/gpu=7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := r.resolve([]backend.Device{tt.dev})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, backend.ErrUnavailable) ||
					!strings.Contains(err.Error(), "nvidia-ctk cdi generate") {
					t.Fatalf("resolve = %v, %v; want ErrUnavailable saying %q and how to fix it", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range got {
				names = append(names, d.GetQualifiedName())
			}
			if tt.want == "" && len(names) != 0 || tt.want != "" && !slices.Equal(names, []string{tt.want}) {
				t.Errorf("resolve = %v, want %q", names, tt.want)
			}
		})
	}
}

func TestProblemsNameABrokenSpec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: [{name: '', containerEdits: {}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Problems(); len(p) == 0 || !strings.Contains(p[0], "broken.yaml") {
		t.Errorf("Problems() = %v, want the broken file named", p)
	}
	if len(r.GPUs()) != 0 {
		t.Errorf("GPUs from a broken spec: %v", r.GPUs())
	}
}

func TestOpenRefusesRelativeDirs(t *testing.T) {
	t.Parallel()
	if _, err := Open([]string{"etc/cdi"}, nil); err == nil {
		t.Error("Open(relative) succeeded")
	}
}
