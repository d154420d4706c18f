package cdi

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

func ptrMode(m os.FileMode) *os.FileMode { return &m }

func hook(args ...string) *cdispec.Hook {
	return &cdispec.Hook{HookName: "createContainer", Path: "/usr/bin/nvidia-cdi-hook", Args: append([]string{"nvidia-cdi-hook"}, args...)}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edits   []*cdispec.ContainerEdits
		want    Plan
		wantErr string // substring; "" for none
	}{
		{
			name: "create-symlinks becomes links, in both argument forms and both hook programs",
			edits: []*cdispec.ContainerEdits{{Hooks: []*cdispec.Hook{
				hook("create-symlinks", "--link", "libcuda.so.1::/usr/lib/libcuda.so", "--link=libcuda.so.580::/usr/lib/libcuda.so.1"),
				{HookName: "createContainer", Path: "/usr/bin/nvidia-ctk", Args: []string{"nvidia-ctk", "hook", "create-symlinks", "--link", "../a.so::/usr/lib/gbm/b.so"}},
			}}},
			want: Plan{Links: []Link{
				{Target: "libcuda.so.1", Path: "/usr/lib/libcuda.so"},
				{Target: "libcuda.so.580", Path: "/usr/lib/libcuda.so.1"},
				{Target: "../a.so", Path: "/usr/lib/gbm/b.so"},
			}},
		},
		{
			name: "update-ldcache becomes library folders, once each",
			edits: []*cdispec.ContainerEdits{{Hooks: []*cdispec.Hook{
				hook("update-ldcache", "--folder", "/usr/local/nvidia/lib64", "--folder=/usr/local/nvidia/lib64/", "--folder", "/opt/x"),
			}}},
			want: Plan{LibDirs: []string{"/usr/local/nvidia/lib64", "/opt/x"}},
		},
		{
			name: "the other known hooks become notes saying why",
			edits: []*cdispec.ContainerEdits{{Hooks: []*cdispec.Hook{
				hook("enable-cuda-compat", "--host-driver-version=580.159.04"),
				hook("disable-device-node-modification"),
				hook("update-application-profile"),
				{HookName: "createRuntime", Path: "/usr/bin/nvidia-cdi-hook", Args: []string{"nvidia-cdi-hook", "apply-cuda-memory-limits", "--driver-root", "", "--gpu-id", "GPU-1"}},
			}}},
			want: Plan{Notes: []string{
				"hook enable-cuda-compat: " + HookSubstitutes["enable-cuda-compat"],
				"hook disable-device-node-modification: " + HookSubstitutes["disable-device-node-modification"],
				"hook update-application-profile: " + HookSubstitutes["update-application-profile"],
				"hook apply-cuda-memory-limits: " + HookSubstitutes["apply-cuda-memory-limits"],
			}},
		},
		{
			name:  "an unknown hook is dropped with a note, never kept",
			edits: []*cdispec.ContainerEdits{{Hooks: []*cdispec.Hook{{HookName: "prestart", Path: "/opt/vendor/setup", Args: []string{"setup", "--all"}}}}},
			want:  Plan{Notes: []string{"hook /opt/vendor/setup setup --all dropped: unknown, and hooks never run as host root against a sandbox's root"}},
		},
		{
			name: "nodes: host path defaults to the path, m is never granted, none grants nothing, later wins",
			edits: []*cdispec.ContainerEdits{
				{DeviceNodes: []*cdispec.DeviceNode{
					{Path: "/dev/nvidiactl", Major: 195, Minor: 255, FileMode: ptrMode(0o666), Permissions: "rwm"},
					{Path: "/dev/nvidia0", HostPath: "/tmp/x/nvidia0", Permissions: "r"},
					{Path: "/dev/nvidia-caps", Permissions: "none"},
				}},
				{DeviceNodes: []*cdispec.DeviceNode{{Path: "/dev/nvidiactl", HostPath: "/tmp/x/ctl"}}},
			},
			want: Plan{Nodes: []Node{
				{Path: "/dev/nvidia0", HostPath: "/tmp/x/nvidia0", Access: "r"},
				{Path: "/dev/nvidia-caps", HostPath: "/dev/nvidia-caps"},
				{Path: "/dev/nvidiactl", HostPath: "/tmp/x/ctl", Access: "rw"},
			}},
		},
		{
			name: "mounts keep their paths, not their options; env in order; host groups are dropped",
			edits: []*cdispec.ContainerEdits{{
				Env:            []string{"NVIDIA_VISIBLE_DEVICES=void", "A=1"},
				Mounts:         []*cdispec.Mount{{HostPath: "/h/libcuda.so.580", ContainerPath: "/usr/lib/libcuda.so.580", Options: []string{"rw", "suid", "dev", "rbind"}}},
				AdditionalGIDs: []uint32{44},
			}},
			want: Plan{
				Env:    []string{"NVIDIA_VISIBLE_DEVICES=void", "A=1"},
				Mounts: []Mount{{HostPath: "/h/libcuda.so.580", ContainerPath: "/usr/lib/libcuda.so.580"}},
				Notes:  []string{"additionalGids [44] dropped: host groups are not mapped into a sandbox"},
			},
		},
		{
			name:    "a tmpfs mount is refused",
			edits:   []*cdispec.ContainerEdits{{Mounts: []*cdispec.Mount{{HostPath: "/x", ContainerPath: "/y", Type: "tmpfs"}}}},
			wantErr: "only binds of host paths",
		},
		{
			name:    "a mount into /proc is refused",
			edits:   []*cdispec.ContainerEdits{{Mounts: []*cdispec.Mount{{HostPath: "/x", ContainerPath: "/proc/driver/nvidia/params"}}}},
			wantErr: "nothing is mounted into a sandbox's /proc",
		},
		{
			name:    "a node outside /dev is refused",
			edits:   []*cdispec.ContainerEdits{{DeviceNodes: []*cdispec.DeviceNode{{Path: "/tmp/nvidia0"}}}},
			wantErr: "want a clean path under /dev",
		},
		{
			name:    "a link that is not target::/absolute is refused",
			edits:   []*cdispec.ContainerEdits{{Hooks: []*cdispec.Hook{hook("create-symlinks", "--link", "libcuda.so.1:/usr/lib/libcuda.so")}}},
			wantErr: "want target::/absolute/link",
		},
		{
			name:    "net devices are the backend's business",
			edits:   []*cdispec.ContainerEdits{{NetDevices: []*cdispec.LinuxNetDevice{{HostInterfaceName: "eth1", Name: "eth0"}}}},
			wantErr: "netDevices",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Translate(tt.edits...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Translate = %+v, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Translate =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestTranslateFixture: the real spec nvidia-ctk generated on an H200 host. Every hook becomes something
// safe; the links include libcuda's.
func TestTranslateFixture(t *testing.T) {
	t.Parallel()
	spec := readFixture(t)
	dev := spec.Devices[0].ContainerEdits
	p, err := Translate(&spec.ContainerEdits, &dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Mounts) != len(spec.ContainerEdits.Mounts) {
		t.Errorf("%d mounts, want the spec's %d", len(p.Mounts), len(spec.ContainerEdits.Mounts))
	}
	if !slices.Contains(p.Links, Link{Target: "libcuda.so.580.159.04", Path: "/usr/local/nvidia/lib64/libcuda.so.1"}) ||
		!slices.Contains(p.Links, Link{Target: "../libnvidia-allocator.so.1", Path: "/usr/local/nvidia/lib64/gbm/nvidia-drm_gbm.so"}) {
		t.Errorf("links %v lack libcuda.so.1 or the gbm link", p.Links)
	}
	if !slices.Equal(p.LibDirs, []string{"/usr/local/nvidia/lib64"}) {
		t.Errorf("library folders %v", p.LibDirs)
	}
	var nodes []string
	for _, n := range p.Nodes {
		nodes = append(nodes, n.Path+":"+n.Access)
	}
	if want := []string{"/dev/nvidia-uvm:rw", "/dev/nvidia-uvm-tools:rw", "/dev/nvidiactl:rw", "/dev/nvidia0:rw"}; !slices.Equal(nodes, want) {
		t.Errorf("nodes %v, want %v", nodes, want)
	}
	for _, cmd := range []string{"enable-cuda-compat", "disable-device-node-modification", "update-application-profile", "apply-cuda-memory-limits"} {
		if !slices.Contains(p.Notes, "hook "+cmd+": "+HookSubstitutes[cmd]) {
			t.Errorf("notes %q lack what replaces %s", p.Notes, cmd)
		}
	}
}

func readFixture(t *testing.T) cdispec.Spec {
	t.Helper()
	data, err := os.ReadFile("testdata/cdi-h200.json")
	if err != nil {
		t.Fatal(err)
	}
	var s cdispec.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}
