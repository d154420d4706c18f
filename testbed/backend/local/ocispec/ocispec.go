// Package ocispec builds the OCI runtime spec (runc's config.json) of one local sandbox, as strict as
// Docker's defaults: a user namespace mapping the sandbox's root to an unprivileged host uid range of its
// own, Docker's default capabilities and seccomp profile, no_new_privs, Docker's masked and read-only
// /proc paths, a read-only root, small tmpfs /tmp, /run and /dev, the home directory bound nosuid,nodev,
// a devices cgroup that allows only the standard nodes and the assigned GPUs, a network namespace with
// only loopback unless the sandbox asks for network, and memory, CPU and process limits.
//
// It is pure: it reads no file and runs nothing. The caller resolves what needs the host (device
// numbers, the mounted home, the cgroup path, the uid range) and passes it in. The one exception is the
// host kernel's version, which some rules of Docker's seccomp profile depend on; the profile's module
// reads it once with uname(2).
//
// It must not decide policy that belongs to the testbed (which limits, which devices): it only turns a
// decision into a spec. Hooks (Input.Edits) let a later layer change the spec, e.g. CDI device edits.
package ocispec

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// IDMap is a sandbox's own range of host ids: container uid and gid 0..Size-1 are host HostID..HostID+Size-1.
type IDMap struct {
	HostID uint32
	Size   uint32
}

// RangeSize is the size of every sandbox's id range: 0..65535, what a Debian image's users and groups
// (nobody is 65534) need.
const RangeSize = 65536

// Bind is a host path bound into the sandbox. Binds are always nosuid and nodev.
type Bind struct {
	Source, Destination string
	ReadOnly            bool
}

// Device is a host device node handed to the sandbox (an assigned GPU, the driver's control nodes):
// it is created at Path inside and allowed in the devices cgroup.
type Device struct {
	Path         string
	Type         string // "c" or "b"
	Major, Minor int64
	FileMode     os.FileMode // permission bits only
}

// Cgroup says where the sandbox's cgroup goes and what the host's hierarchy supports.
type Cgroup struct {
	// Path is runc's cgroupsPath: relative to the cgroup of the process that runs runc, or absolute from
	// the hierarchy's root.
	Path string
	// V2 is a unified (cgroup v2 only) host: memory.oom.group can be set.
	V2 bool
	// Swap is true where a swap limit can be set (v2's memory.swap.max, v1's memory.memsw.*); the spec
	// then forbids swap, so the memory limit is a real limit.
	Swap bool
}

// Input is everything Build needs.
type Input struct {
	// ID is the sandbox ID, also its hostname.
	ID string
	// Args is the main process and its arguments.
	Args []string
	// Env is the whole environment of the main process (and of every exec): nothing else is added.
	Env []string
	// Cwd is the working directory, usually HomeDir.
	Cwd string
	// RootFS is the host path of the sandbox's root filesystem, mounted read-only.
	RootFS string
	// IDs is the sandbox's own host id range; HostID must not be 0 and Size must be RangeSize.
	IDs IDMap
	// Network true shares the host's network namespace; false gives an own one with only loopback.
	Network bool
	// Home is the host directory (a mounted filesystem with a quota) bound read-write at HomeDir.
	Home string
	// Init is the host path of a static init (tini) bound read-only at InitPath and run as PID 1 with
	// Args as its child: it reaps zombies and passes Stop's SIGTERM on, which a command as PID 1 would
	// ignore. Empty runs Args as PID 1.
	Init string
	// Binds are more host paths bound into the sandbox (generated /etc files, read-only shared caches).
	Binds []Bind
	// Devices are the device nodes the sandbox may use beyond the standard ones.
	Devices []Device
	// Limits cap memory, CPU and processes; zero means no limit of that kind.
	Limits backend.Limits
	// Cgroup is where the sandbox's cgroup goes.
	Cgroup Cgroup
	// TmpBytes is the size of the /tmp tmpfs; default DefaultTmpBytes. Its pages count against the
	// memory limit.
	TmpBytes int64
	// Edits change the finished spec in order (CDI device edits, a gVisor annotation). An error aborts
	// Build.
	Edits []func(*specs.Spec) error
}

// Paths inside every sandbox.
const (
	HomeDir  = "/home/sandbox"
	InitPath = "/run/tamarack/init"
)

// DefaultTmpBytes is the size of /tmp when Input.TmpBytes is zero.
const DefaultTmpBytes = 1 << 30

// DefaultCapabilities is Docker's default capability set (moby's oci/caps DefaultCapabilities). They hold
// only inside the sandbox's user namespace: over its own files, processes and network namespace, never
// over the host's.
var DefaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// MaskedPaths are Docker's: hidden behind /dev/null (files) or an empty read-only tmpfs (directories).
var MaskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// ReadonlyPaths are Docker's: visible but remounted read-only.
var ReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// cpuPeriod is the CFS period in µs (the kernel's default); the quota is CPUMillis of it per 1000.
const cpuPeriod = 100_000

// Build returns the runtime spec for in, or every problem with in at once.
func Build(in Input) (*specs.Spec, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	tmp := in.TmpBytes
	if tmp == 0 {
		tmp = DefaultTmpBytes
	}
	args := in.Args
	if in.Init != "" {
		args = append([]string{InitPath, "--"}, in.Args...)
	}
	caps := slices.Clone(DefaultCapabilities)
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: in.RootFS, Readonly: true},
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: slices.Clone(args),
			Env:  slices.Clone(in.Env),
			Cwd:  in.Cwd,
			Capabilities: &specs.LinuxCapabilities{
				// Not inheritable and not ambient: a program run through execve keeps only what its
				// file capabilities grant (moby dropped inheritable for CVE-2022-24769).
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Hostname: in.ID,
		Mounts:   mounts(in, tmp),
		Linux: &specs.Linux{
			UIDMappings:   []specs.LinuxIDMapping{{ContainerID: 0, HostID: in.IDs.HostID, Size: in.IDs.Size}},
			GIDMappings:   []specs.LinuxIDMapping{{ContainerID: 0, HostID: in.IDs.HostID, Size: in.IDs.Size}},
			Namespaces:    namespaces(in.Network),
			Devices:       devices(in.Devices),
			Resources:     resources(in),
			CgroupsPath:   in.Cgroup.Path,
			MaskedPaths:   slices.Clone(MaskedPaths),
			ReadonlyPaths: slices.Clone(ReadonlyPaths),
		},
	}
	sc, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	s.Linux.Seccomp = sc
	for i, edit := range in.Edits {
		if err := edit(s); err != nil {
			return nil, fmt.Errorf("spec edit %d: %w", i, err)
		}
	}
	return s, nil
}

func (in Input) validate() error {
	var probs []string
	if in.ID == "" {
		probs = append(probs, "id: empty")
	}
	if len(in.Args) == 0 || in.Args[0] == "" {
		probs = append(probs, "args: empty")
	}
	for _, kv := range in.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			probs = append(probs, fmt.Sprintf("env %q: not NAME=value", kv))
		}
	}
	for name, p := range map[string]string{"rootfs": in.RootFS, "home": in.Home, "cwd": in.Cwd} {
		if !filepath.IsAbs(p) {
			probs = append(probs, fmt.Sprintf("%s %q: not an absolute path", name, p))
		}
	}
	if in.Init != "" && !filepath.IsAbs(in.Init) {
		probs = append(probs, fmt.Sprintf("init %q: not an absolute path", in.Init))
	}
	// Host uid 0 must never be inside the range, and the range must be whole: a short range leaves
	// image files owned by unmapped ids, a range past 2^32-1 wraps around to root.
	if in.IDs.HostID == 0 {
		probs = append(probs, "ids: host id 0 (root) in the sandbox's range")
	}
	if in.IDs.Size != RangeSize {
		probs = append(probs, fmt.Sprintf("ids: size %d, want %d", in.IDs.Size, RangeSize))
	}
	if uint64(in.IDs.HostID)+uint64(in.IDs.Size) > math.MaxUint32 {
		probs = append(probs, "ids: range runs past the largest uid")
	}
	for _, b := range in.Binds {
		if !filepath.IsAbs(b.Source) || !filepath.IsAbs(b.Destination) {
			probs = append(probs, fmt.Sprintf("bind %s -> %s: paths must be absolute", b.Source, b.Destination))
		}
	}
	for _, d := range in.Devices {
		if !strings.HasPrefix(d.Path, "/dev/") || (d.Type != "c" && d.Type != "b") || d.Major < 0 || d.Minor < 0 {
			probs = append(probs, fmt.Sprintf("device %s: want a c or b node under /dev", d.Path))
		}
	}
	l := in.Limits
	if l.MemoryBytes < 0 || l.CPUMillis < 0 || l.Pids < 0 || in.TmpBytes < 0 {
		probs = append(probs, "limits: negative value")
	}
	if len(probs) > 0 {
		slices.Sort(probs) // stable error text: the map above has no order
		return errors.New("oci spec: " + strings.Join(probs, "; "))
	}
	return nil
}

func namespaces(network bool) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.UserNamespace},
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.CgroupNamespace},
	}
	if !network {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	return ns
}

// mounts are Docker's default mounts, then /tmp, /run, the home directory, the init and the binds.
func mounts(in Input, tmpBytes int64) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	if in.Network {
		// sysfs can only be mounted by the user namespace that owns the network namespace; sharing the
		// host's, bind the host's /sys read-only instead (what runc does for rootless containers).
		ms = append(ms, specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "ro", "nosuid", "noexec", "nodev"}})
	} else {
		ms = append(ms, specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}})
	}
	ms = append(ms,
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(tmpBytes, 10)}},
		specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755", "size=65536k"}},
		specs.Mount{Destination: HomeDir, Type: "bind", Source: in.Home, Options: []string{"bind", "rw", "nosuid", "nodev"}},
	)
	if in.Init != "" {
		ms = append(ms, specs.Mount{Destination: InitPath, Type: "bind", Source: in.Init, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	for _, b := range in.Binds {
		opts := []string{"rbind", "nosuid", "nodev"}
		if b.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		ms = append(ms, specs.Mount{Destination: b.Destination, Type: "bind", Source: b.Source, Options: opts})
	}
	return ms
}

func devices(ds []Device) []specs.LinuxDevice {
	var out []specs.LinuxDevice
	for _, d := range ds {
		mode := d.FileMode.Perm()
		uid, gid := uint32(0), uint32(0)
		out = append(out, specs.LinuxDevice{Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor, FileMode: &mode, UID: &uid, GID: &gid})
	}
	return out
}

func resources(in Input) *specs.LinuxResources {
	r := &specs.LinuxResources{
		// Deny everything first; runc then adds the standard nodes (null, zero, full, random, urandom,
		// tty, console, ptmx, pts), as it does for Docker.
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	for _, d := range in.Devices {
		maj, mnr := d.Major, d.Minor
		r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &maj, Minor: &mnr, Access: "rw"})
	}
	l := in.Limits
	if l.MemoryBytes > 0 {
		limit := l.MemoryBytes
		r.Memory = &specs.LinuxMemory{Limit: &limit}
		if in.Cgroup.Swap {
			swap := l.MemoryBytes // memory+swap: equal to the limit means no swap
			r.Memory.Swap = &swap
		}
		if in.Cgroup.V2 {
			// One OOM kills the whole sandbox rather than leaving a half-dead process tree.
			r.Unified = map[string]string{"memory.oom.group": "1"}
		}
	}
	if l.CPUMillis > 0 {
		quota, period := l.CPUMillis*cpuPeriod/1000, uint64(cpuPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if l.Pids > 0 {
		pids := l.Pids
		r.Pids = &specs.LinuxPids{Limit: &pids}
	}
	return r
}
