package cdi

import (
	"fmt"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hostNode is a plan's device node with the numbers of the host node it is bound from.
type hostNode struct {
	Node
	Type         string // "c" or "b"
	Major, Minor int64
}

// ownEnv are the variables the backend sets itself to name the sandbox's devices; a CDI spec's values
// (NVIDIA's says NVIDIA_VISIBLE_DEVICES=void, for nested runtimes) do not replace them.
var ownEnv = []string{"NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"}

// AnnotationDevices is the spec annotation listing the CDI devices a sandbox was given.
const AnnotationDevices = "ai.tamarack.cdi.devices"

// apply edits the sandbox's spec s for the plan: every hook goes (none is ever run); the GPU nodes the
// backend put in the spec (/dev/nvidia*, from the host's /dev) are replaced by the plan's nodes, bound from the host into /dev and allowed
// in the devices cgroup (read and write only); each graft is an overlay mounted before the first of the
// spec's mounts inside it; the plan's mounts follow, read-only, nosuid, nodev; the environment gets the
// plan's variables, LD_LIBRARY_PATH its library folders and PATH its executables' folders. It reads
// nothing: the host was looked at by layout and the node lookup.
func apply(s *specs.Spec, p Plan, nodes []hostNode, lay layoutResult, graftDirs []string, devices []string) error {
	if s.Linux == nil || s.Process == nil {
		return fmt.Errorf("cdi: the spec has no linux or process section")
	}
	if len(graftDirs) != len(lay.Grafts) {
		return fmt.Errorf("cdi: %d graft directories for %d grafts", len(graftDirs), len(lay.Grafts))
	}
	s.Hooks = nil

	// Devices: the plan's nodes and nothing else beyond the runtime's standard ones.
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	// The backend's own GPU nodes (taken from the host's /dev for the same devices) go, with their rules.
	replaced := func(d specs.LinuxDevice) bool {
		return strings.HasPrefix(d.Path, "/dev/nvidia") || slices.ContainsFunc(nodes, func(n hostNode) bool { return n.Path == d.Path })
	}
	var gone []specs.LinuxDevice
	s.Linux.Devices = slices.DeleteFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool {
		if replaced(d) {
			gone = append(gone, d)
		}
		return replaced(d)
	})
	rules := slices.DeleteFunc(slices.Clone(s.Linux.Resources.Devices), func(r specs.LinuxDeviceCgroup) bool {
		return r.Allow && slices.ContainsFunc(gone, func(d specs.LinuxDevice) bool {
			return r.Type == d.Type && r.Major != nil && *r.Major == d.Major && r.Minor != nil && *r.Minor == d.Minor
		})
	})
	if len(rules) == 0 || rules[0].Allow || rules[0].Type != "" && rules[0].Type != "a" {
		// The allow-list is only one if everything else is denied first.
		rules = append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, rules...)
	}
	var nodeMounts []specs.Mount
	for _, n := range nodes {
		if n.Access != "" {
			maj, mnr := n.Major, n.Minor
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: n.Type, Major: &maj, Minor: &mnr, Access: n.Access})
		}
		// Bound, not created: in a user namespace the runtime binds nodes anyway, and a bind can take
		// the node from HostPath, which the spec's device list cannot. No nodev here, or it is no device.
		nodeMounts = append(nodeMounts, specs.Mount{Destination: n.Path, Type: "bind", Source: n.HostPath,
			Options: []string{"bind", "nosuid", "noexec"}})
	}
	s.Linux.Resources.Devices = rules

	// Mounts: each graft before the first mount inside it (and after what holds its directory), then
	// the device nodes and the plan's mounts, parents before children.
	type insert struct {
		at int
		m  specs.Mount
	}
	var inserts []insert
	for i, g := range lay.Grafts {
		last, first := -1, len(s.Mounts)
		for j, m := range s.Mounts {
			d := path.Clean(m.Destination)
			if under(g.At, d) {
				last = j
			} else if under(d, g.At) && first == len(s.Mounts) {
				first = j
			}
		}
		if first <= last {
			return fmt.Errorf("cdi: %s is mounted inside %s before %s itself", s.Mounts[first].Destination, g.At, g.At)
		}
		inserts = append(inserts, insert{at: first, m: specs.Mount{Destination: g.At, Type: "overlay", Source: "overlay",
			Options: []string{"lowerdir=" + overlayPath(graftDirs[i]) + ":" + overlayPath(g.Lower), "ro", "nosuid", "nodev"}}})
	}
	var ms []specs.Mount
	for j := 0; j <= len(s.Mounts); j++ {
		for _, in := range inserts { // in graft order: outer before inner
			if in.at == j {
				ms = append(ms, in.m)
			}
		}
		if j < len(s.Mounts) {
			ms = append(ms, s.Mounts[j])
		}
	}
	added := nodeMounts
	for i, m := range lay.Mounts {
		opts := []string{"bind", "ro", "nosuid", "nodev"}
		if lay.MountDirs[i] {
			opts[0] = "rbind"
		}
		added = append(added, specs.Mount{Destination: m.ContainerPath, Type: "bind", Source: m.HostPath, Options: opts})
	}
	slices.SortStableFunc(added, func(a, b specs.Mount) int {
		return strings.Count(path.Clean(a.Destination), "/") - strings.Count(path.Clean(b.Destination), "/")
	})
	s.Mounts = append(ms, added...)

	// Environment.
	env := s.Process.Env
	for _, kv := range p.Env {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(ownEnv, k) && envValue(env, k) != "" {
			continue
		}
		env = setEnv(env, kv)
	}
	env = appendPathList(env, "LD_LIBRARY_PATH", p.LibDirs)
	env = appendPathList(env, "PATH", lay.BinDirs)
	s.Process.Env = env

	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationDevices] = strings.Join(devices, ",")
	return nil
}

// overlayPath escapes a path for overlayfs's lowerdir option, where ':' separates layers and ',' options.
func overlayPath(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// setEnv sets NAME=value in env, replacing an earlier value in place.
func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// appendPathList adds dirs at the end of a colon-separated variable, skipping ones already in it: the
// sandbox's own settings (the template's, the image's) come first, as the ld.so cache comes after
// LD_LIBRARY_PATH.
func appendPathList(env []string, key string, dirs []string) []string {
	if len(dirs) == 0 {
		return env
	}
	var list []string
	if v := envValue(env, key); v != "" {
		list = strings.Split(v, ":")
	}
	for _, d := range dirs {
		if !slices.Contains(list, d) {
			list = append(list, d)
		}
	}
	return setEnv(env, key+"="+strings.Join(list, ":"))
}
