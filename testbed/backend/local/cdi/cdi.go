// Package cdi hands a local sandbox its devices (GPUs) from the host's CDI specs: the Container Device
// Interface files that `nvidia-ctk cdi generate` writes into /etc/cdi or /var/run/cdi, which podman and
// containerd read too. A spec names each device (nvidia.com/gpu=0, nvidia.com/gpu=GPU-<uuid>) and what a
// container needs for it: device nodes, the driver's libraries and tools, and hooks.
//
// It owns reading the specs (tags.cncf.io/container-device-interface), finding the CDI device of each
// device the testbed assigned (by CDI name, by UUID, by index), and turning their edits into the sandbox's
// runtime spec through the local backend's FileEdits seam. It never runs a spec's hooks: a hook is a host
// program the runtime would run as host root against the tenant's root filesystem. Each known hook's work
// is done here instead, safely (Translate, HookSubstitutes), and an unknown hook is dropped with a note.
// Nothing is ever written into the sandbox's root (an image shared by other sandboxes, or the host's own
// /usr): what the root lacks comes from a per-sandbox graft (layout.go).
//
// It must not decide which devices a sandbox gets (the testbed does), nor start anything.
package cdi

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// DefaultDirs are where CDI specs live: the operator's (/etc/cdi) and generated ones (/var/run/cdi).
var DefaultDirs = []string{cdilib.DefaultStaticDir, cdilib.DefaultDynamicDir}

// GPUKind is the CDI kind of NVIDIA's GPUs; a device assigned by index is looked up in it.
const GPUKind = "nvidia.com/gpu"

// Registry is a cache of the CDI specs in a set of directories, read again before each use, so a spec
// the operator regenerates (after a driver update) is taken without a restart. Safe for concurrent use.
type Registry struct {
	dirs  []string
	log   *slog.Logger
	cache *cdilib.Cache
}

// Open reads the CDI specs in dirs (DefaultDirs when empty). Directories that do not exist are fine: a
// host without GPUs has none. Specs that fail to parse are left out and reported by Problems.
func Open(dirs []string, log *slog.Logger) (*Registry, error) {
	if len(dirs) == 0 {
		dirs = DefaultDirs
	}
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("cdi: spec directory %q is not absolute", d)
		}
	}
	if log == nil {
		log = slog.Default()
	}
	// No auto-refresh: it watches the directories with a goroutine of its own; a refresh before each
	// use is cheap (a few small files) and has nothing to stop.
	c, err := cdilib.NewCache(cdilib.WithSpecDirs(dirs...), cdilib.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("cdi: %w", err)
	}
	return &Registry{dirs: slices.Clone(dirs), log: log, cache: c}, nil
}

// Dirs are the directories the registry reads.
func (r *Registry) Dirs() []string { return slices.Clone(r.dirs) }

// refresh reads the directories again. Broken specs are not an error here (the good ones still work);
// Problems reports them.
func (r *Registry) refresh() {
	if err := r.cache.Refresh(); err != nil {
		r.log.Debug("cdi: some specs did not load", "err", err)
	}
}

// Problems lists the spec files that could not be used, with why.
func (r *Registry) Problems() []string {
	r.refresh()
	var out []string
	for file, errs := range r.cache.GetErrors() {
		for _, err := range errs {
			out = append(out, file+": "+err.Error())
		}
	}
	slices.Sort(out)
	return out
}

// Spec is one CDI spec file, for `tamarack doctor`.
type Spec struct {
	Path, Kind string
	// Devices are the qualified names of its devices.
	Devices []string
	// Notes say what the sandbox gets instead of the spec's hooks, and what is dropped.
	Notes []string
	// Err says why the spec's edits cannot be handed to a sandbox, if they cannot.
	Err error
}

// Specs lists the specs found, in file order.
func (r *Registry) Specs() []Spec {
	r.refresh()
	var out []Spec
	for _, vendor := range r.cache.ListVendors() {
		for _, s := range r.cache.GetVendorSpecs(vendor) {
			sp := Spec{Path: s.GetPath(), Kind: s.Kind}
			edits := []*cdispec.ContainerEdits{&s.ContainerEdits}
			for _, d := range s.Devices {
				sp.Devices = append(sp.Devices, parser.QualifiedName(s.GetVendor(), s.GetClass(), d.Name))
				edits = append(edits, &d.ContainerEdits)
			}
			plan, err := Translate(edits...)
			sp.Err = err
			for _, e := range edits {
				for _, h := range e.Hooks {
					if cmd, _ := hookCommand(h); cmd == "create-symlinks" || cmd == "update-ldcache" {
						sp.Notes = appendOnce(sp.Notes, "hook "+cmd+": "+HookSubstitutes[cmd])
					}
				}
			}
			for _, n := range plan.Notes {
				sp.Notes = appendOnce(sp.Notes, n)
			}
			out = append(out, sp)
		}
	}
	slices.SortFunc(out, func(a, b Spec) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// uuidName matches the device names nvidia-ctk gives by UUID (GPU-…, MIG-…).
var uuidName = regexp.MustCompile(`^(GPU|MIG)-[0-9a-fA-F-]+$`)

// GPU is one physical device of the specs of kind GPUKind: the entries naming the same device nodes
// (nvidia-ctk writes one by index and one by UUID) taken together.
type GPU struct {
	// Index is the index name (-1 when the spec has none).
	Index int
	// UUID is the UUID name ("" when the spec has none).
	UUID string
	// Names are the qualified names of the entries, index first.
	Names []string
	// Nodes are the device nodes' paths in the sandbox (/dev/nvidia0).
	Nodes []string
}

// GPUs lists the whole GPUs of the specs of kind GPUKind, by index; "all" and MIG entries are left out.
func (r *Registry) GPUs() []GPU {
	r.refresh()
	byNodes := map[string]*GPU{}
	var order []string
	for _, s := range r.cache.GetVendorSpecs("nvidia.com") {
		if s.Kind != GPUKind {
			continue
		}
		for _, d := range s.Devices {
			var nodes []string
			for _, n := range d.ContainerEdits.DeviceNodes {
				nodes = append(nodes, n.Path)
			}
			slices.Sort(nodes)
			key := strings.Join(nodes, " ")
			if d.Name == "all" || len(nodes) == 0 || strings.HasPrefix(d.Name, "MIG-") || strings.Contains(d.Name, ":") {
				continue
			}
			g := byNodes[key]
			if g == nil {
				g = &GPU{Index: -1, Nodes: nodes}
				byNodes[key] = g
				order = append(order, key)
			}
			name := parser.QualifiedName(s.GetVendor(), s.GetClass(), d.Name)
			if i, err := strconv.Atoi(d.Name); err == nil && i >= 0 {
				g.Index = i
				g.Names = append([]string{name}, g.Names...)
			} else {
				if uuidName.MatchString(d.Name) {
					g.UUID = d.Name
				}
				g.Names = append(g.Names, name)
			}
		}
	}
	out := make([]GPU, 0, len(order))
	for _, k := range order {
		out = append(out, *byNodes[k])
	}
	slices.SortStableFunc(out, func(a, b GPU) int { return a.Index - b.Index })
	return out
}

// Tool returns the host path of a program the specs hand to sandboxes (nvidia-smi, which the testbed's
// discovery runs when it is not in PATH), or "".
func (r *Registry) Tool(name string) string {
	r.refresh()
	for _, vendor := range r.cache.ListVendors() {
		for _, s := range r.cache.GetVendorSpecs(vendor) {
			for _, m := range s.ContainerEdits.Mounts {
				if filepath.Base(m.ContainerPath) == name {
					return m.HostPath
				}
			}
		}
	}
	return ""
}

// resolve finds the CDI device of each assigned device: by CDIName, else by a device named for its UUID
// (any kind, GPUKind first), else, when it has no UUID, by its index in GPUKind. A device that has no
// host device nodes of its own (declared, not discovered: nothing to hand over) and no CDI entry is
// skipped; any other without a CDI entry is an error, since the sandbox would not get what it pays for.
func (r *Registry) resolve(devs []backend.Device) ([]*cdilib.Device, error) {
	r.refresh()
	var out []*cdilib.Device
	var missing []string
	for _, d := range devs {
		var names []string
		switch {
		case d.CDIName != "":
			names = []string{d.CDIName}
		case d.UUID != "":
			names = append(names, parser.QualifiedName("nvidia.com", "gpu", d.UUID))
			for _, q := range r.cache.ListDevices() {
				if _, _, name := parser.ParseDevice(q); name == d.UUID {
					names = append(names, q)
				}
			}
		default:
			names = []string{parser.QualifiedName("nvidia.com", "gpu", strconv.Itoa(d.Index))}
		}
		var found *cdilib.Device
		for _, n := range names {
			if found = r.cache.GetDevice(n); found != nil {
				break
			}
		}
		switch {
		case found != nil:
			if !slices.ContainsFunc(out, func(o *cdilib.Device) bool { return o.GetQualifiedName() == found.GetQualifiedName() }) {
				out = append(out, found)
			}
		case d.CDIName == "" && len(d.Paths) == 0:
		default:
			id := d.CDIName
			if id == "" {
				id = fmt.Sprintf("%s (index %d)", d.UUID, d.Index)
			}
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: no CDI device for %s in %s: regenerate the host's CDI spec (nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml)",
			backend.ErrUnavailable, strings.Join(missing, ", "), strings.Join(r.dirs, ", "))
	}
	return out, nil
}

// Edit hands the sandbox s its devices from the CDI specs: it is a local.FileEdit (dir is the sandbox's
// own empty directory, for the grafts). A sandbox without devices, or whose devices have no CDI entry
// and nothing to hand over, is left as it is.
func (r *Registry) Edit(s backend.Spec, dir string, spec *specs.Spec) error {
	if len(s.Devices) == 0 {
		return nil
	}
	devs, err := r.resolve(s.Devices)
	if err != nil || len(devs) == 0 {
		return err
	}
	// The specs' own edits first (once each), then the devices', as the CDI library applies them.
	var edits []*cdispec.ContainerEdits
	var seen []*cdilib.Spec
	var names []string
	for _, d := range devs {
		if sp := d.GetSpec(); !slices.Contains(seen, sp) {
			seen = append(seen, sp)
			edits = append(edits, &sp.ContainerEdits)
		}
	}
	for _, d := range devs {
		edits = append(edits, &d.ContainerEdits)
		names = append(names, d.GetQualifiedName())
	}
	plan, err := Translate(edits...)
	if err != nil {
		return err
	}
	nodes, err := hostNodes(plan.Nodes)
	if err != nil {
		return err
	}
	lay, err := layout(spec, plan)
	if err != nil {
		return err
	}
	dirs, err := materialize(dir, lay.Grafts)
	if err != nil {
		return err
	}
	if err := apply(spec, plan, nodes, lay, dirs, names); err != nil {
		return err
	}
	if notes := append(plan.Notes, lay.Notes...); len(notes) > 0 {
		r.log.Debug("cdi: devices handed over", "sandbox", s.SandboxID, "devices", names, "notes", notes)
	}
	return nil
}

// hostNodes looks up the host node of each of the plan's nodes: the sandbox gets the host's node, so
// its numbers are what the devices cgroup must allow. A missing node, or one whose numbers differ from
// the spec's, means the spec is stale.
func hostNodes(ns []Node) ([]hostNode, error) {
	var out []hostNode
	for _, n := range ns {
		var st unix.Stat_t
		if err := unix.Stat(n.HostPath, &st); err != nil {
			return nil, fmt.Errorf("%w: cdi: device node %s: %v (is the driver loaded? regenerate the CDI spec if it changed)",
				backend.ErrUnavailable, n.HostPath, err)
		}
		h := hostNode{Node: n, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev))}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			h.Type = "c"
		case unix.S_IFBLK:
			h.Type = "b"
		default:
			return nil, fmt.Errorf("cdi: %s is not a device node", n.HostPath)
		}
		if n.Major != 0 && (n.Major != h.Major || n.Minor != h.Minor) {
			return nil, fmt.Errorf("cdi: device node %s is %d:%d on the host, the spec says %d:%d: regenerate the CDI spec",
				n.HostPath, h.Major, h.Minor, n.Major, n.Minor)
		}
		out = append(out, h)
	}
	return out, nil
}
