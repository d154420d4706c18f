package ocispec

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// base is a valid input; each case changes what it tests.
func base() Input {
	return Input{
		ID:     "sb-1",
		Args:   []string{"/bin/sh", "-c", "sleep 600"},
		Env:    []string{"HOME=/home/sandbox", "PATH=/usr/bin:/bin"},
		Cwd:    HomeDir,
		RootFS: "/var/lib/tamarack/rootfs",
		IDs:    IDMap{HostID: 1_000_000_000, Size: RangeSize},
		Home:   "/data/sandboxes/sb-1/home",
		Cgroup: Cgroup{Path: "tamarack-sandboxes/sb-1"},
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Input)
		want string
	}{
		{"host root in the range", func(in *Input) { in.IDs.HostID = 0 }, "host id 0"},
		{"short range", func(in *Input) { in.IDs.Size = 1000 }, "size 1000"},
		{"range wraps past the largest uid", func(in *Input) { in.IDs.HostID = 0xFFFF_F000 }, "runs past"},
		{"no command", func(in *Input) { in.Args = nil }, "args: empty"},
		{"relative rootfs", func(in *Input) { in.RootFS = "rootfs" }, `rootfs "rootfs"`},
		{"relative home", func(in *Input) { in.Home = "home" }, `home "home"`},
		{"relative init", func(in *Input) { in.Init = "tini" }, `init "tini"`},
		{"env without =", func(in *Input) { in.Env = append(in.Env, "JUNK") }, `env "JUNK"`},
		{"relative bind", func(in *Input) { in.Binds = []Bind{{Source: "x", Destination: "/x"}} }, "bind x -> /x"},
		{"device outside /dev", func(in *Input) { in.Devices = []Device{{Path: "/etc/shadow", Type: "c"}} }, "device /etc/shadow"},
		{"negative limit", func(in *Input) { in.Limits.MemoryBytes = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := base()
			tt.edit(&in)
			if _, err := Build(in); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestBuildIsolation(t *testing.T) {
	t.Parallel()
	s, err := Build(base())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Root.Readonly || s.Root.Path != "/var/lib/tamarack/rootfs" {
		t.Errorf("root = %+v, want the rootfs read-only", s.Root)
	}
	p := s.Process
	if !p.NoNewPrivileges || p.User.UID != 0 || p.Cwd != HomeDir || p.Terminal {
		t.Errorf("process = %+v", p)
	}
	if !slices.Equal(p.Env, base().Env) {
		t.Errorf("env = %v, want exactly the input's", p.Env)
	}
	c := p.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !slices.Equal(set, DefaultCapabilities) {
			t.Errorf("%s capabilities = %v, want Docker's defaults", name, set)
		}
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("inheritable %v, ambient %v; want none", c.Inheritable, c.Ambient)
	}
	for _, forbidden := range []string{"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_SYS_MODULE", "CAP_BPF", "CAP_PERFMON"} {
		if slices.Contains(c.Bounding, forbidden) {
			t.Errorf("%s in the bounding set", forbidden)
		}
	}
	want := specs.LinuxIDMapping{ContainerID: 0, HostID: 1_000_000_000, Size: RangeSize}
	if l := s.Linux; len(l.UIDMappings) != 1 || l.UIDMappings[0] != want || len(l.GIDMappings) != 1 || l.GIDMappings[0] != want {
		t.Errorf("id mappings %v %v, want %v", l.UIDMappings, l.GIDMappings, want)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joins %s, want a new one", n.Type, n.Path)
		}
		ns = append(ns, n.Type)
	}
	for _, w := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.CgroupNamespace, specs.NetworkNamespace} {
		if !slices.Contains(ns, w) {
			t.Errorf("no new %s namespace", w)
		}
	}
	for _, m := range []string{"/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug"} {
		if !slices.Contains(s.Linux.MaskedPaths, m) {
			t.Errorf("%s not masked", m)
		}
	}
	for _, r := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
		if !slices.Contains(s.Linux.ReadonlyPaths, r) {
			t.Errorf("%s not read-only", r)
		}
	}
	if s.Hostname != "sb-1" || s.Linux.CgroupsPath != "tamarack-sandboxes/sb-1" {
		t.Errorf("hostname %q, cgroups path %q", s.Hostname, s.Linux.CgroupsPath)
	}
}

func TestBuildSeccompIsDockersDefault(t *testing.T) {
	t.Parallel()
	s, err := Build(base())
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Linux.Seccomp
	if sc == nil || sc.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp = %+v, want default action errno", sc)
	}
	allowed := map[string]bool{}
	for _, rule := range sc.Syscalls {
		if rule.Action != specs.ActAllow || len(rule.Args) > 0 {
			continue // conditional rules (clone's flags, personality's values) are not blanket allows
		}
		for _, n := range rule.Names {
			allowed[n] = true
		}
	}
	// Without CAP_SYS_ADMIN, CAP_BPF or CAP_PERFMON, Docker's profile leaves these out.
	for _, n := range []string{"unshare", "mount", "keyctl", "add_key", "bpf", "perf_event_open", "setns", "kexec_load", "open_by_handle_at", "io_uring_setup"} {
		if allowed[n] {
			t.Errorf("seccomp allows %s", n)
		}
	}
	for _, n := range []string{"read", "write", "execve", "ptrace", "mknod"} {
		if !allowed[n] {
			t.Errorf("seccomp refuses %s, which Docker's profile allows", n)
		}
	}
}

func TestBuildMounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		network bool
	}{{"own network", false}, {"host network", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := base()
			in.Network = tt.network
			in.Init = "/usr/bin/tini-static"
			in.Binds = []Bind{{Source: "/usr", Destination: "/usr", ReadOnly: true}, {Source: "/data/cache", Destination: "/cache"}}
			s, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			byDest := map[string]specs.Mount{}
			for _, m := range s.Mounts {
				byDest[m.Destination] = m
			}
			has := func(dest string, opts ...string) {
				t.Helper()
				m, ok := byDest[dest]
				if !ok {
					t.Errorf("no mount at %s", dest)
					return
				}
				for _, o := range opts {
					if !slices.Contains(m.Options, o) {
						t.Errorf("mount %s options %v lack %s", dest, m.Options, o)
					}
				}
			}
			has("/tmp", "nosuid", "nodev", "mode=1777", "size=1073741824")
			has("/run", "nosuid", "nodev")
			has("/dev", "nosuid")
			has("/dev/shm", "nosuid", "nodev", "noexec")
			has(HomeDir, "nosuid", "nodev", "rw")
			has(InitPath, "ro", "nosuid", "nodev")
			has("/usr", "ro", "nosuid", "nodev")
			has("/cache", "rw", "nosuid", "nodev")
			has("/sys", "ro", "nosuid", "nodev", "noexec")
			if byDest[HomeDir].Source != in.Home || byDest[InitPath].Source != in.Init {
				t.Errorf("home from %s, init from %s", byDest[HomeDir].Source, byDest[InitPath].Source)
			}
			if sys := byDest["/sys"]; (sys.Type == "sysfs") == tt.network {
				t.Errorf("network %v: /sys is %s, want sysfs only in an own network namespace", tt.network, sys.Type)
			}
			ownNet := slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
			if ownNet == tt.network {
				t.Errorf("network %v: own network namespace %v", tt.network, ownNet)
			}
			if want := []string{InitPath, "--", "/bin/sh", "-c", "sleep 600"}; !slices.Equal(s.Process.Args, want) {
				t.Errorf("args = %q, want %q", s.Process.Args, want)
			}
		})
	}
}

func TestBuildResources(t *testing.T) {
	t.Parallel()
	ptr := func(v int64) *int64 { return &v }
	tests := []struct {
		name       string
		limits     backend.Limits
		cg         Cgroup
		wantMem    *specs.LinuxMemory
		wantCPU    *specs.LinuxCPU
		wantPids   *specs.LinuxPids
		wantOOMGrp bool
	}{
		{name: "none", limits: backend.Limits{}},
		{
			name: "v1 with swap accounting", limits: backend.Limits{MemoryBytes: 1 << 30, CPUMillis: 1500, Pids: 256}, cg: Cgroup{Swap: true},
			wantMem:  &specs.LinuxMemory{Limit: ptr(1 << 30), Swap: ptr(1 << 30)},
			wantCPU:  &specs.LinuxCPU{Quota: ptr(150_000)},
			wantPids: &specs.LinuxPids{Limit: ptr(256)},
		},
		{
			name: "v1 without swap accounting", limits: backend.Limits{MemoryBytes: 64 << 20},
			wantMem: &specs.LinuxMemory{Limit: ptr(64 << 20)},
		},
		{
			name: "v2", limits: backend.Limits{MemoryBytes: 64 << 20, CPUMillis: 250}, cg: Cgroup{V2: true, Swap: true},
			wantMem:    &specs.LinuxMemory{Limit: ptr(64 << 20), Swap: ptr(64 << 20)},
			wantCPU:    &specs.LinuxCPU{Quota: ptr(25_000)},
			wantOOMGrp: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := base()
			in.Limits, in.Cgroup = tt.limits, tt.cg
			s, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			r := s.Linux.Resources
			if (r.Memory == nil) != (tt.wantMem == nil) || r.Memory != nil && (*r.Memory.Limit != *tt.wantMem.Limit || !eqInt(r.Memory.Swap, tt.wantMem.Swap)) {
				t.Errorf("memory = %+v, want %+v", r.Memory, tt.wantMem)
			}
			if (r.CPU == nil) != (tt.wantCPU == nil) || r.CPU != nil && (*r.CPU.Quota != *tt.wantCPU.Quota || *r.CPU.Period != cpuPeriod) {
				t.Errorf("cpu = %+v, want quota %+v of %d", r.CPU, tt.wantCPU, cpuPeriod)
			}
			if (r.Pids == nil) != (tt.wantPids == nil) || r.Pids != nil && !eqInt(r.Pids.Limit, tt.wantPids.Limit) {
				t.Errorf("pids = %+v, want %+v", r.Pids, tt.wantPids)
			}
			if got := r.Unified["memory.oom.group"] == "1"; got != tt.wantOOMGrp {
				t.Errorf("memory.oom.group set %v, want %v", got, tt.wantOOMGrp)
			}
		})
	}
}

func eqInt(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func TestBuildDevices(t *testing.T) {
	t.Parallel()
	in := base()
	in.Devices = []Device{{Path: "/dev/nvidia1", Type: "c", Major: 195, Minor: 1, FileMode: 0o666}, {Path: "/dev/nvidiactl", Type: "c", Major: 195, Minor: 255, FileMode: 0o666}}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	rules := s.Linux.Resources.Devices
	if len(rules) != 3 || rules[0].Allow || rules[0].Access != "rwm" || rules[0].Type != "" {
		t.Fatalf("device rules %+v, want deny-all first, then the two nodes", rules)
	}
	for i, d := range in.Devices {
		r := rules[i+1]
		if !r.Allow || r.Type != "c" || *r.Major != d.Major || *r.Minor != d.Minor || r.Access != "rw" {
			t.Errorf("rule %d = %+v, want rw on %d:%d", i+1, r, d.Major, d.Minor)
		}
		n := s.Linux.Devices[i]
		if n.Path != d.Path || n.Major != d.Major || n.Minor != d.Minor || *n.FileMode != 0o666 {
			t.Errorf("device node %+v, want %+v", n, d)
		}
	}
}

func TestBuildEdits(t *testing.T) {
	t.Parallel()
	in := base()
	in.Edits = []func(*specs.Spec) error{
		func(s *specs.Spec) error { s.Annotations = map[string]string{"dev.example/gpu": "0"}; return nil },
	}
	s, err := Build(in)
	if err != nil || s.Annotations["dev.example/gpu"] != "0" {
		t.Fatalf("Build with an edit = %v, %v", s.Annotations, err)
	}
	boom := errors.New("no such CDI device")
	in.Edits = append(in.Edits, func(*specs.Spec) error { return boom })
	if _, err := Build(in); !errors.Is(err, boom) {
		t.Errorf("Build with a failing edit = %v, want it wrapped", err)
	}
}
