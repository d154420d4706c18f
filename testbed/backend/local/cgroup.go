package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// This file is the small cgroup layer around runc's: runc creates each sandbox's cgroup, sets its
// limits and deletes it; this layer finds where that is, prepares the parent (v2 controllers), lists and
// kills the processes, reads whether the OOM killer fired before runc deletes the cgroup, and cleans up
// after a runtime that could not. It speaks cgroup v2 (one unified hierarchy, /sys/fs/cgroup is
// cgroup2fs) and v1 (one hierarchy per controller: memory, pids, cpu), which is all we need; see
// docs/sandbox-backends.md for why this is not github.com/containerd/cgroups.

// cgroupLayout says where new sandbox cgroups go on this host. It is found once per Backend.
type cgroupLayout struct {
	v2 bool
	// parent is Options.CgroupParent, defaulted: relative to serve's own cgroup, or absolute.
	parent string
	// parents are the absolute directories under which sandbox cgroups are created: one for v2, one
	// per controller for v1 (memory, pids, cpu, in that order).
	parents []string
	// others are the same parent in every other v1 hierarchy (devices, freezer, cpuset, name=systemd…),
	// where the runtime creates the sandbox's cgroup too.
	others []string
}

// cgroupSet is one sandbox's cgroup, recorded in its state file so that any later process (a restarted
// serve, the shim) can find it.
type cgroupSet struct {
	V2 bool `json:"v2"`
	// Dirs are the sandbox's cgroup directories; for v1 memory first, then pids, then cpu.
	Dirs []string `json:"dirs"`
	// Others are its directories in the other v1 hierarchies, only ever removed: the runtime makes them,
	// and one whose create failed half-way (runsc) can leave them behind.
	Others []string `json:"others,omitempty"`
}

var v1Controllers = []string{"memory", "pids", "cpu"}

// detectCgroups finds the cgroup version and the parent directories. An absolute parent is a path from
// the hierarchy's root ("/tamarack.slice/sandboxes"); a relative one is under this process's own cgroup,
// which keeps sandboxes inside whatever budget the operator gave `tamarack serve`. Empty means
// "tamarack-sandboxes".
func detectCgroups(parent string) (cgroupLayout, error) {
	if parent == "" {
		parent = "tamarack-sandboxes"
	}
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil {
		return cgroupLayout{}, fmt.Errorf("%w: cgroups: statfs /sys/fs/cgroup: %v", backend.ErrUnavailable, err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return cgroupLayout{}, fmt.Errorf("%w: cgroups: %v", backend.ErrUnavailable, err)
	}
	if fs.Type == unix.CGROUP2_SUPER_MAGIC {
		p := parent
		if !filepath.IsAbs(p) {
			own, ok := ownCgroup(self, "")
			if !ok {
				return cgroupLayout{}, fmt.Errorf("%w: cgroups: no v2 entry in /proc/self/cgroup", backend.ErrUnavailable)
			}
			p = filepath.Join(own, p)
		}
		return cgroupLayout{v2: true, parent: parent, parents: []string{filepath.Join("/sys/fs/cgroup", p)}}, nil
	}
	mounts, err := v1Mounts()
	if err != nil {
		return cgroupLayout{}, err
	}
	l := cgroupLayout{parent: parent}
	// under is parent in the hierarchy mounted as m, whose controller (or name=…) is c.
	under := func(c string, m v1Mount) (string, error) {
		p := parent
		if !filepath.IsAbs(p) {
			own, ok := ownCgroup(self, c)
			if !ok {
				return "", fmt.Errorf("%w: cgroups v1: no %s entry in /proc/self/cgroup", backend.ErrUnavailable, c)
			}
			// The mount may show only a subtree of the hierarchy (a container's cgroup namespace).
			rel, err := filepath.Rel(m.root, own)
			if err != nil || strings.HasPrefix(rel, "..") {
				rel = "."
			}
			p = filepath.Join(rel, p)
		}
		return filepath.Join(m.dir, p), nil
	}
	core := map[string]bool{}
	for _, c := range v1Controllers {
		m, ok := mounts[c]
		if !ok {
			return cgroupLayout{}, fmt.Errorf("%w: cgroups v1: the %s controller is not mounted", backend.ErrUnavailable, c)
		}
		p, err := under(c, m)
		if err != nil {
			return cgroupLayout{}, err
		}
		l.parents = append(l.parents, p)
		core[m.dir] = true
	}
	for _, c := range slices.Sorted(maps.Keys(mounts)) {
		m := mounts[c]
		if core[m.dir] || !m.controller(c) {
			continue
		}
		core[m.dir] = true
		if p, err := under(c, m); err == nil {
			l.others = append(l.others, p)
		}
	}
	return l, nil
}

// ownCgroup returns this process's cgroup path for controller (v2 when controller is "").
func ownCgroup(procSelfCgroup []byte, controller string) (string, bool) {
	for line := range strings.Lines(string(procSelfCgroup)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2], true
		}
		if controller != "" {
			for _, c := range strings.Split(parts[1], ",") {
				if c == controller {
					return parts[2], true
				}
			}
		}
	}
	return "", false
}

type v1Mount struct {
	dir, root string
	// names are the hierarchy's controllers and name= options (the super options without the others).
	names []string
}

// controller reports whether opt names one of the hierarchy's controllers (or its name=…), not a
// mount option such as rw.
func (m v1Mount) controller(opt string) bool { return slices.Contains(m.names, opt) }

// v1Mounts maps each v1 controller to where its hierarchy is mounted, from /proc/self/mountinfo.
func v1Mounts() (map[string]v1Mount, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("%w: cgroups: %v", backend.ErrUnavailable, err)
	}
	out := map[string]v1Mount{}
	for line := range strings.Lines(string(data)) {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(strings.TrimSpace(line), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		m := v1Mount{dir: unescapeMount(f[4]), root: unescapeMount(f[3])}
		for _, opt := range strings.Split(g[2], ",") {
			if cgroupMountOptions[opt] || strings.HasPrefix(opt, "release_agent=") {
				continue
			}
			m.names = append(m.names, opt)
		}
		for _, opt := range strings.Split(g[2], ",") {
			if _, seen := out[opt]; !seen {
				out[opt] = m
			}
		}
	}
	return out, nil
}

// cgroupMountOptions are the super options of a v1 cgroup mount that name no controller.
var cgroupMountOptions = map[string]bool{"rw": true, "ro": true, "noprefix": true, "xattr": true, "clone_children": true, "cpuset_v2_mode": true, "favordynmods": true}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// prepare creates the parent directories and, on v2, enables the controllers for them. It is
// idempotent; Check calls it so that a host that cannot delegate cgroups is reported at start.
func (l cgroupLayout) prepare() error {
	for _, p := range l.parents {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("%w: cgroups: create %s: %v", backend.ErrUnavailable, p, err)
		}
	}
	if !l.v2 {
		return nil
	}
	// Controllers must be enabled in subtree_control of every ancestor from the root down to the
	// parent itself, so that each sandbox cgroup under it gets memory.max, pids.max and cpu.max.
	root := "/sys/fs/cgroup"
	rel, err := filepath.Rel(root, l.parents[0])
	if err != nil {
		return err
	}
	dir := root
	steps := append([]string{""}, strings.Split(rel, "/")...)
	for _, s := range steps {
		if s == "." {
			continue
		}
		dir = filepath.Join(dir, s)
		have, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			return fmt.Errorf("%w: cgroups: %v", backend.ErrUnavailable, err)
		}
		for _, c := range v1Controllers {
			if slices.Contains(strings.Fields(string(have)), c) {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
				hint := ""
				if errors.Is(err, syscall.EBUSY) {
					hint = " (the cgroup holds processes, cgroup v2 forbids that: point TAMARACK_SANDBOX_CGROUP / Options.CgroupParent at a delegated cgroup that holds none, see docs/sandbox-backends.md)"
				}
				return fmt.Errorf("%w: cgroups: enable %s in %s: %v%s", backend.ErrUnavailable, c, dir, err, hint)
			}
		}
	}
	return nil
}

// set is the sandbox id's cgroup: where runc creates it (runtimePath) as this layout sees it.
func (l cgroupLayout) set(id string) cgroupSet {
	s := cgroupSet{V2: l.v2}
	for _, p := range l.parents {
		s.Dirs = append(s.Dirs, filepath.Join(p, id))
	}
	for _, p := range l.others {
		s.Others = append(s.Others, filepath.Join(p, id))
	}
	return s
}

// runtimePath is the sandbox id's cgroupsPath for runc, which creates it in every hierarchy (v1:
// devices, freezer… as well) and sets the limits itself. On v1 runc reads a relative path as relative to
// its own cgroup in each hierarchy, which is serve's (the shim that runs runc is its child), exactly as
// detectCgroups does, and an absolute one from each hierarchy's root, as detectCgroups does too. On v2
// runc puts a relative path under the *parent* of its own cgroup, so it always gets the absolute path
// detectCgroups found.
func (l cgroupLayout) runtimePath(id string) string {
	if l.v2 {
		return filepath.Join("/", strings.TrimPrefix(l.parents[0], "/sys/fs/cgroup"), id)
	}
	return filepath.Join(l.parent, id)
}

// swap reports whether a swap limit can be set here (memsw accounting on v1, memory.swap.max on v2),
// so the spec can forbid swap.
func (l cgroupLayout) swap() bool {
	if l.v2 {
		return exists(filepath.Join(l.parents[0], "memory.swap.max"))
	}
	return exists(filepath.Join(l.parents[0], "memory.memsw.limit_in_bytes"))
}

// procsFiles are the files a process writes its PID to in order to join the sandbox's cgroup.
func (s cgroupSet) procsFiles() []string {
	out := make([]string, len(s.Dirs))
	for i, d := range s.Dirs {
		out[i] = filepath.Join(d, "cgroup.procs")
	}
	return out
}

// pids lists the processes in the cgroup. Every sandbox process is in every one of its v1 cgroups
// (they join all at once, before exec), so reading the first is enough; but a process could be moved
// out of one by a careless root, so read all and merge.
func (s cgroupSet) pids() ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, f := range s.procsFiles() {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
			if err == nil && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// signal sends sig to every process in the cgroup except those in skip.
func (s cgroupSet) signal(sig syscall.Signal, skip ...int) error {
	pids, err := s.pids()
	if err != nil {
		return err
	}
	for _, p := range pids {
		if !slices.Contains(skip, p) {
			_ = syscall.Kill(p, sig) // ESRCH: already gone, which is what we want
		}
	}
	return nil
}

// killAll kills every process in the cgroup, including ones forked while killing.
func (s cgroupSet) killAll() error {
	if s.V2 {
		if err := os.WriteFile(filepath.Join(s.Dirs[0], "cgroup.kill"), []byte("1"), 0); err == nil {
			return nil
		}
		// cgroup.kill appeared in Linux 5.14; fall back to signalling each process.
	}
	return s.signal(syscall.SIGKILL)
}

// empty reports whether no process is left in the cgroup (a missing cgroup is empty).
func (s cgroupSet) empty() bool {
	pids, err := s.pids()
	return err == nil && len(pids) == 0
}

// oomKills returns how many times the OOM killer killed a process of this sandbox.
func (s cgroupSet) oomKills() int {
	file := filepath.Join(s.Dirs[0], "memory.oom_control") // v1: memory is first
	if s.V2 {
		file = filepath.Join(s.Dirs[0], "memory.events")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "oom_kill" || f[0] == "oom_group_kill") {
			v, _ := strconv.Atoi(f[1])
			n += v
		}
	}
	return n
}

// remove deletes the cgroup directories. It fails with EBUSY while processes remain.
func (s cgroupSet) remove() error {
	var errs []error
	for _, d := range append(slices.Clone(s.Dirs), s.Others...) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// exists reports whether any of the cgroup directories is still there.
func (s cgroupSet) exists() bool {
	for _, d := range append(slices.Clone(s.Dirs), s.Others...) {
		if exists(d) {
			return true
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
