package cdi

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// Plan is what a sandbox gets from its CDI devices: the containerEdits of their specs and of the devices
// themselves, with every hook replaced by what it would have done. It is built from the specs alone
// (Translate reads no file); where things land in the sandbox's root is decided later (layout).
type Plan struct {
	// Env is NAME=value, in the specs' order: a later one wins.
	Env []string
	// Nodes are the device nodes: bound from the host into the sandbox's /dev and allowed in its devices
	// cgroup, nothing else.
	Nodes []Node
	// Mounts are host files and directories (driver libraries, nvidia-smi, firmware) bound read-only,
	// nosuid, nodev at their container path.
	Mounts []Mount
	// Links are the symlinks of create-symlinks hooks.
	Links []Link
	// LibDirs are the folders of update-ldcache hooks: the sandbox finds the driver's libraries there
	// through LD_LIBRARY_PATH instead of a rebuilt /etc/ld.so.cache.
	LibDirs []string
	// Notes say, for the operator, what was dropped or done differently (`tamarack doctor` prints them).
	Notes []string
}

// Node is one device node of the plan.
type Node struct {
	// Path is where it appears in the sandbox, under /dev.
	Path string
	// HostPath is the node on the host (Path when the spec gives none).
	HostPath string
	// Major and Minor are the spec's numbers, 0 when it leaves them to the host node; the host node's
	// numbers are what the sandbox gets, and a spec that disagrees with them is stale.
	Major, Minor int64
	// Access is the devices cgroup access: r, w or rw. Never m: nothing in a sandbox may create device
	// nodes. Empty (the spec said "none") allows nothing.
	Access string
}

// Mount is a host path bound read-only into the sandbox.
type Mount struct {
	HostPath, ContainerPath string
}

// Link is a symlink made in the sandbox: Path (absolute, in the sandbox) points to Target (as given,
// usually a name relative to Path's directory).
type Link struct {
	Target, Path string
}

// Translate turns CDI containerEdits (the specs' first, then the devices', as the CDI library orders
// them) into a Plan. Hooks are never kept: each known nvidia-cdi-hook (or `nvidia-ctk hook`) command
// becomes what it would have done, or a note saying why it is not needed; an unknown hook is dropped with
// a note. Edits a sandbox cannot take (net devices, Intel RDT, non-bind mounts, mounts into /proc or /sys)
// are an error: the operator's spec asks for something this backend will not do.
func Translate(edits ...*cdispec.ContainerEdits) (Plan, error) {
	var p Plan
	var errs []error
	for _, e := range edits {
		if e == nil {
			continue
		}
		for _, kv := range e.Env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				errs = append(errs, fmt.Errorf("env %q: not NAME=value", kv))
				continue
			}
			p.Env = append(p.Env, kv)
		}
		for _, d := range e.DeviceNodes {
			n, err := node(d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			// A node named twice (a device and its spec) is one node; the later entry wins, as in the
			// CDI library.
			p.Nodes = slices.DeleteFunc(p.Nodes, func(o Node) bool { return o.Path == n.Path })
			p.Nodes = append(p.Nodes, n)
		}
		for _, m := range e.Mounts {
			mt, err := mount(m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.Mounts = slices.DeleteFunc(p.Mounts, func(o Mount) bool { return o.ContainerPath == mt.ContainerPath })
			p.Mounts = append(p.Mounts, mt)
		}
		for _, h := range e.Hooks {
			if h == nil {
				continue
			}
			if err := p.hook(h); err != nil {
				errs = append(errs, err)
			}
		}
		if len(e.NetDevices) > 0 {
			errs = append(errs, errors.New("netDevices: a sandbox's network is the backend's to decide"))
		}
		if e.IntelRdt != nil {
			errs = append(errs, errors.New("intelRdt: not supported"))
		}
		if len(e.AdditionalGIDs) > 0 {
			// Host group ids mean nothing inside the sandbox's user namespace, and the device nodes are
			// reached by their mode (0666 for NVIDIA's), not by group.
			p.Notes = append(p.Notes, fmt.Sprintf("additionalGids %v dropped: host groups are not mapped into a sandbox", e.AdditionalGIDs))
		}
	}
	p.Notes = slices.Compact(p.Notes)
	if len(errs) > 0 {
		return Plan{}, fmt.Errorf("cdi: %w", errors.Join(errs...))
	}
	return p, nil
}

func node(d *cdispec.DeviceNode) (Node, error) {
	if d == nil {
		return Node{}, errors.New("deviceNodes: empty entry")
	}
	if !strings.HasPrefix(d.Path, "/dev/") || path.Clean(d.Path) != d.Path {
		return Node{}, fmt.Errorf("device node %q: want a clean path under /dev", d.Path)
	}
	if d.Type != "" && d.Type != "c" && d.Type != "b" {
		return Node{}, fmt.Errorf("device node %s: type %q, want c or b", d.Path, d.Type)
	}
	if d.Major < 0 || d.Minor < 0 {
		return Node{}, fmt.Errorf("device node %s: negative device number", d.Path)
	}
	n := Node{Path: d.Path, HostPath: d.HostPath, Major: d.Major, Minor: d.Minor}
	if n.HostPath == "" {
		n.HostPath = d.Path
	}
	if !filepath.IsAbs(n.HostPath) {
		return Node{}, fmt.Errorf("device node %s: host path %q is not absolute", d.Path, n.HostPath)
	}
	switch perm := d.Permissions; {
	case perm == "none":
	case perm == "":
		n.Access = "rw"
	case strings.Trim(perm, "rwm") != "":
		return Node{}, fmt.Errorf("device node %s: permissions %q, want r, w and m", d.Path, perm)
	default:
		for _, c := range "rw" {
			if strings.ContainsRune(perm, c) {
				n.Access += string(c)
			}
		}
	}
	return n, nil
}

func mount(m *cdispec.Mount) (Mount, error) {
	if m == nil {
		return Mount{}, errors.New("mounts: empty entry")
	}
	if m.Type != "" && m.Type != "bind" {
		return Mount{}, fmt.Errorf("mount %s: type %q, only binds of host paths are handed to a sandbox", m.ContainerPath, m.Type)
	}
	if !filepath.IsAbs(m.HostPath) {
		return Mount{}, fmt.Errorf("mount %s: host path %q is not absolute", m.ContainerPath, m.HostPath)
	}
	c := m.ContainerPath
	if !path.IsAbs(c) || path.Clean(c) != c || c == "/" {
		return Mount{}, fmt.Errorf("mount %q: want a clean absolute container path other than /", c)
	}
	for _, fs := range []string{"/proc", "/sys"} {
		if c == fs || strings.HasPrefix(c, fs+"/") {
			return Mount{}, fmt.Errorf("mount %s: nothing is mounted into a sandbox's %s", c, fs)
		}
	}
	// The spec's options are not taken: every mount is read-only, nosuid and nodev (apply.go).
	return Mount{HostPath: m.HostPath, ContainerPath: c}, nil
}

// HookSubstitutes says, for each nvidia-cdi-hook command the NVIDIA Container Toolkit writes into CDI
// specs, what the sandbox gets instead of running it as host root. docs/sandbox-backends.md repeats it.
var HookSubstitutes = map[string]string{
	"create-symlinks": "the links are made in a per-sandbox host directory laid over their folder read-only",
	"update-ldcache":  "LD_LIBRARY_PATH lists the folders (as NVIDIA's CUDA images do); the root's ld.so.cache is never rebuilt",
	"enable-cuda-compat": "not done: the host driver's libcuda is used; an image built for a newer CUDA than the driver " +
		"supports puts its /usr/local/cuda/compat first in LD_LIBRARY_PATH itself",
	"disable-device-node-modification": "not needed: nothing in a sandbox can create device nodes (user namespace, devices cgroup), " +
		"so the driver's libraries cannot either",
	"update-application-profile": "not done: driver application profiles tune graphics (EGL, Vulkan) programs, not CUDA",
	"apply-cuda-memory-limits": "not needed: a sandbox gets whole GPUs and sets no NVIDIA_GPU_MEMORY_LIMIT, so the hook " +
		"would set nothing",
	"chmod": "not needed: device nodes are bound from the host with the host's modes",
}

// hook records what h would have done. It never keeps h.
func (p *Plan) hook(h *cdispec.Hook) error {
	cmd, args := hookCommand(h)
	why, known := HookSubstitutes[cmd]
	if !known {
		p.Notes = append(p.Notes, fmt.Sprintf("hook %s %s dropped: unknown, and hooks never run as host root against a sandbox's root",
			h.Path, strings.Join(h.Args, " ")))
		return nil
	}
	switch cmd {
	case "create-symlinks":
		links, err := flagValues(args, "link")
		if err != nil {
			return fmt.Errorf("hook create-symlinks: %w", err)
		}
		if csv, _ := flagValues(args, "csv-filename"); len(csv) > 0 {
			p.Notes = append(p.Notes, "hook create-symlinks --csv-filename dropped: CSV mount specs (Tegra) are not supported")
		}
		for _, l := range links {
			target, link, ok := strings.Cut(l, "::")
			if !ok || target == "" || !path.IsAbs(link) || path.Clean(link) != link || link == "/" {
				return fmt.Errorf("hook create-symlinks: --link %q, want target::/absolute/link", l)
			}
			p.Links = slices.DeleteFunc(p.Links, func(o Link) bool { return o.Path == link })
			p.Links = append(p.Links, Link{Target: target, Path: link})
		}
	case "update-ldcache":
		folders, err := flagValues(args, "folder")
		if err != nil {
			return fmt.Errorf("hook update-ldcache: %w", err)
		}
		for _, f := range folders {
			if !path.IsAbs(f) {
				return fmt.Errorf("hook update-ldcache: --folder %q is not absolute", f)
			}
			if f = path.Clean(f); !slices.Contains(p.LibDirs, f) {
				p.LibDirs = append(p.LibDirs, f)
			}
		}
	default:
		p.Notes = append(p.Notes, "hook "+cmd+": "+why)
	}
	return nil
}

// hookCommand returns the toolkit command a hook runs and its arguments after the command: hooks are
// `nvidia-cdi-hook <command> …` (toolkit 1.16 and later) or `nvidia-ctk hook <command> …` (before). Any
// other program yields "".
func hookCommand(h *cdispec.Hook) (string, []string) {
	args := h.Args
	if len(args) > 0 {
		args = args[1:] // argv[0]
	}
	switch filepath.Base(h.Path) {
	case "nvidia-cdi-hook":
	case "nvidia-ctk":
		if len(args) == 0 || args[0] != "hook" {
			return "", nil
		}
		args = args[1:]
	default:
		return "", nil
	}
	if len(args) == 0 {
		return "", nil
	}
	return args[0], args[1:]
}

// flagValues returns every value of --name (or -name) in args, written "--name v" or "--name=v".
func flagValues(args []string, name string) ([]string, error) {
	var out []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if a == args[i] {
			continue // a positional argument
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			out = append(out, v)
			continue
		}
		if a == name {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("--%s without a value", name)
			}
			out = append(out, args[i+1])
			i++
		}
	}
	return out, nil
}
