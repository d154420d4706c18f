package cdi

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func i64(v int64) *int64 { return &v }

// baseSpec is a sandbox's spec as the local backend builds it, cut down to what apply touches: one GPU node
// the backend added itself, and a hook that must not survive.
func baseSpec() *specs.Spec {
	return &specs.Spec{
		Root:    &specs.Root{Path: "/images/debian", Readonly: true},
		Process: &specs.Process{Env: []string{"PATH=/usr/bin:/bin", "LD_LIBRARY_PATH=/opt/app/lib", "NVIDIA_VISIBLE_DEVICES=GPU-1", "CUDA_VISIBLE_DEVICES=0"}},
		Hooks:   &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/usr/bin/nvidia-cdi-hook"}}},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/usr", Type: "bind", Source: "/usr", Options: []string{"rbind", "ro"}},
			{Destination: "/etc/hostname", Type: "bind", Source: "/sb/conf/hostname", Options: []string{"rbind", "ro"}},
		},
		Linux: &specs.Linux{
			Devices: []specs.LinuxDevice{
				{Path: "/dev/nvidia0", Type: "c", Major: 195, Minor: 0},
				{Path: "/dev/nvidia-modeset", Type: "c", Major: 195, Minor: 254},
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}, // not a GPU's: stays
			},
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"},
				{Allow: true, Type: "c", Major: i64(195), Minor: i64(0), Access: "rw"},
				{Allow: true, Type: "c", Major: i64(195), Minor: i64(254), Access: "rw"},
				{Allow: true, Type: "c", Major: i64(10), Minor: i64(229), Access: "rw"},
			}},
		},
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	s := baseSpec()
	p := Plan{
		Env:     []string{"NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_CTK_LIBCUDA_DIR=/usr/local/nvidia/lib64"},
		LibDirs: []string{"/usr/local/nvidia/lib64", "/opt/app/lib"},
	}
	nodes := []hostNode{
		{Node: Node{Path: "/dev/nvidia1", HostPath: "/fake/nvidia1", Access: "rw"}, Type: "c", Major: 195, Minor: 1},
		{Node: Node{Path: "/dev/nvidiactl", HostPath: "/fake/nvidiactl", Access: "rw"}, Type: "c", Major: 195, Minor: 255},
		{Node: Node{Path: "/dev/nvidia-caps", HostPath: "/fake/caps"}, Type: "c", Major: 511, Minor: 0},
	}
	lay := layoutResult{
		Mounts: []Mount{
			{HostPath: "/h/lib64/libcuda.so.580", ContainerPath: "/usr/local/nvidia/lib64/libcuda.so.580"},
			{HostPath: "/h/bin/nvidia-smi", ContainerPath: "/usr/local/nvidia/bin/nvidia-smi"},
			{HostPath: "/h/firmware", ContainerPath: "/usr/local/nvidia/firmware"},
		},
		MountDirs: []bool{false, false, true},
		Grafts:    []*graft{{At: "/etc", Lower: "/images/debian/etc"}, {At: "/usr/local", Lower: "/usr/local"}},
		BinDirs:   []string{"/usr/local/nvidia/bin", "/bin"},
	}
	if err := apply(s, p, nodes, lay, []string{"/edits/7/0", "/edits/7/1"}, []string{"nvidia.com/gpu=1"}); err != nil {
		t.Fatal(err)
	}
	if s.Hooks != nil {
		t.Errorf("hooks %+v survived", s.Hooks)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/fuse" {
		t.Errorf("devices %+v: the GPU nodes are bound, never created from the spec's list; others stay", s.Linux.Devices)
	}
	wantRules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(10), Minor: i64(229), Access: "rw"},
		{Allow: true, Type: "c", Major: i64(195), Minor: i64(1), Access: "rw"},
		{Allow: true, Type: "c", Major: i64(195), Minor: i64(255), Access: "rw"},
	}
	if !reflect.DeepEqual(s.Linux.Resources.Devices, wantRules) {
		t.Errorf("devices cgroup %s, want %s", rulesString(s.Linux.Resources.Devices), rulesString(wantRules))
	}
	var got []string
	for _, m := range s.Mounts {
		got = append(got, m.Destination+" "+m.Type+" "+m.Source+" "+strings.Join(m.Options, ","))
	}
	want := []string{
		"/proc proc proc ",
		"/dev tmpfs tmpfs ",
		"/usr bind /usr rbind,ro",
		// Before the mount that lands inside it, after the one that holds it.
		"/etc overlay overlay lowerdir=/edits/7/0:/images/debian/etc,ro,nosuid,nodev",
		"/etc/hostname bind /sb/conf/hostname rbind,ro",
		"/usr/local overlay overlay lowerdir=/edits/7/1:/usr/local,ro,nosuid,nodev",
		"/dev/nvidia1 bind /fake/nvidia1 bind,nosuid,noexec",
		"/dev/nvidiactl bind /fake/nvidiactl bind,nosuid,noexec",
		"/dev/nvidia-caps bind /fake/caps bind,nosuid,noexec",
		"/usr/local/nvidia/firmware bind /h/firmware rbind,ro,nosuid,nodev",
		"/usr/local/nvidia/lib64/libcuda.so.580 bind /h/lib64/libcuda.so.580 bind,ro,nosuid,nodev",
		"/usr/local/nvidia/bin/nvidia-smi bind /h/bin/nvidia-smi bind,ro,nosuid,nodev",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mounts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantEnv := []string{
		"PATH=/usr/bin:/bin:/usr/local/nvidia/bin",
		"LD_LIBRARY_PATH=/opt/app/lib:/usr/local/nvidia/lib64",
		"NVIDIA_VISIBLE_DEVICES=GPU-1", // the backend's, not the spec's "void"
		"CUDA_VISIBLE_DEVICES=0",
		"NVIDIA_CTK_LIBCUDA_DIR=/usr/local/nvidia/lib64",
	}
	if !slices.Equal(s.Process.Env, wantEnv) {
		t.Errorf("env %q, want %q", s.Process.Env, wantEnv)
	}
	if s.Annotations[AnnotationDevices] != "nvidia.com/gpu=1" {
		t.Errorf("annotations %v", s.Annotations)
	}
}

func rulesString(rs []specs.LinuxDeviceCgroup) string {
	var out []string
	for _, r := range rs {
		nums := ""
		if r.Major != nil && r.Minor != nil {
			nums = fmt.Sprintf(" %d:%d", *r.Major, *r.Minor)
		}
		out = append(out, fmt.Sprintf("[allow=%v %s%s %s]", r.Allow, r.Type, nums, r.Access))
	}
	return strings.Join(out, " ")
}

func TestApplyRefusesAGraftUnderAnEarlierMount(t *testing.T) {
	t.Parallel()
	s := baseSpec()
	// /usr/share is mounted before /usr: a graft at /usr would have to go before the first and after the
	// second.
	s.Mounts = append([]specs.Mount{{Destination: "/usr/share", Type: "bind", Source: "/usr/share"}}, s.Mounts...)
	lay := layoutResult{Grafts: []*graft{{At: "/usr", Lower: "/usr"}}}
	if err := apply(s, Plan{}, nil, lay, []string{"/edits/1/0"}, nil); err == nil || !strings.Contains(err.Error(), "mounted inside /usr before /usr") {
		t.Errorf("apply = %v, want a refusal", err)
	}
}

func TestOverlayPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/var/lib/images/sha256:ab,c": `/var/lib/images/sha256\:ab\,c`,
		`/a\b`:                        `/a\\b`,
		"/usr/local":                  "/usr/local",
	} {
		if got := overlayPath(in); got != want {
			t.Errorf("overlayPath(%q) = %q, want %q", in, got, want)
		}
	}
}
