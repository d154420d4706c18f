package local

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
)

func TestRunscFlags(t *testing.T) {
	tests := []struct {
		name    string
		network bool
		want    string
	}{
		{"no network: the Sentry's netstack, loopback only", false, "--network=sandbox"},
		{"network: the host's, as runc shares it", true, "--network=host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runscFlags(backend.Spec{Network: tt.network})
			for _, f := range []string{"--platform=systrap", "--oci-seccomp", "--overlay2=none", "--gofer-network-namespace=new", tt.want} {
				if !slices.Contains(got, f) {
					t.Errorf("flags %v lack %s", got, f)
				}
			}
		})
	}
}

// TestRunscSpec: under runsc, Docker's ENOSYS answer to clone3 (which gVisor would turn into EPERM) is
// an allow, nothing else of the profile changes, and --nvproxy comes with NVIDIA device nodes only.
func TestRunscSpec(t *testing.T) {
	build := func(devs []ocispec.Device) *specs.Spec {
		t.Helper()
		spec, err := ocispec.Build(ocispec.Input{ID: "g", Args: []string{"true"}, Cwd: "/", RootFS: "/r", Home: "/h",
			IDs: ocispec.IDMap{HostID: 1 << 30, Size: ocispec.RangeSize}, Devices: devs})
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	spec := build(nil)
	before := slices.Clone(spec.Linux.Seccomp.Syscalls)
	rt := ociRuntime{Kind: RuntimeRunsc}
	runscSpec(spec, &rt)
	changed := 0
	for i, r := range spec.Linux.Seccomp.Syscalls {
		if slices.Contains(r.Names, "clone3") {
			if r.Action != specs.ActAllow || before[i].ErrnoRet == nil || *before[i].ErrnoRet != uint(unix.ENOSYS) {
				t.Errorf("clone3 rule %+v (was %+v), want allowed instead of ENOSYS", r, before[i])
			}
			changed++
			continue
		}
		if r.Action != before[i].Action || !slices.Equal(r.Names, before[i].Names) {
			t.Errorf("rule %v changed", r.Names)
		}
	}
	if changed != 1 || slices.Contains(rt.Flags, "--nvproxy") {
		t.Errorf("%d clone3 rules changed, flags %v; want 1 and no --nvproxy without GPUs", changed, rt.Flags)
	}
	spec = build([]ocispec.Device{{Path: "/dev/nvidia0", Type: "c", Major: 195, Minor: 0, FileMode: 0o666}})
	runscSpec(spec, &rt)
	if !slices.Contains(rt.Flags, "--nvproxy") {
		t.Errorf("flags %v with /dev/nvidia0 in the spec, want --nvproxy", rt.Flags)
	}
}

func TestRunscLimits(t *testing.T) {
	got := runscLimits(backend.Limits{MemoryBytes: 1 << 30, Pids: 64, CPUMillis: 1500, LogBytes: 1 << 20})
	want := backend.Limits{MemoryBytes: 1<<30 + runscMemoryOverhead, Pids: 64 + runscPidsOverhead, CPUMillis: 1500, LogBytes: 1 << 20}
	if got != want {
		t.Errorf("runscLimits = %+v, want %+v", got, want)
	}
	if got := runscLimits(backend.Limits{}); got != (backend.Limits{}) {
		t.Errorf("no limits became %+v: gVisor's overhead must not invent a limit", got)
	}
}
