package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
)

// Level is how a Finding bears on running sandboxes.
type Level int

// Levels: a Fail stops this backend (Check returns it), a Warn does not.
const (
	LevelOK Level = iota
	LevelWarn
	LevelFail
)

func (l Level) String() string {
	switch l {
	case LevelOK:
		return "ok"
	case LevelWarn:
		return "warn"
	}
	return "FAIL"
}

// Finding is one thing the backend needs of this host, as `tamarack doctor` prints it: what was found,
// or what is wrong and how to fix it.
type Finding struct {
	Name   string
	Level  Level
	Detail string
	err    error // what Check returns for a Fail; wraps backend.ErrUnavailable
}

// Probe looks at everything Check needs of this host (it is what Check runs) and reports each thing
// with what it found: the runtime and its version, the init, the tools, root, user namespaces (the
// sysctl and a real one), the uid ranges, loop devices, the host view, cgroups. Like Check, it prepares
// what it checks (the host view's skeleton, the cgroup parent).
func (b *Backend) Probe(ctx context.Context) []Finding {
	var out []Finding
	ok := func(name, format string, args ...any) {
		out = append(out, Finding{Name: name, Level: LevelOK, Detail: fmt.Sprintf(format, args...)})
	}
	fail := func(name string, err error) {
		if !errors.Is(err, backend.ErrUnavailable) {
			err = fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
		}
		detail := strings.TrimPrefix(err.Error(), backend.ErrUnavailable.Error()+": ")
		out = append(out, Finding{Name: name, Level: LevelFail, Detail: detail, err: err})
	}

	if os.Geteuid() != 0 {
		fail("root", errors.New("the local backend needs root (cgroups, namespaces, loop mounts)"))
	} else {
		ok("root", "running as uid 0")
	}

	name := "runtime"
	if !executable(b.opts.Runtime) {
		fail(name, fmt.Errorf("runc not found (%q): install it with `apt-get install runc`", b.opts.Runtime))
	} else if v, err := exec.CommandContext(ctx, b.opts.Runtime, "--version").CombinedOutput(); err != nil {
		fail(name, fmt.Errorf("%s --version: %v: %s", b.opts.Runtime, err, strings.TrimSpace(string(v))))
	} else {
		first, _, _ := strings.Cut(strings.TrimSpace(string(v)), "\n")
		ok(name, "%s: %s", b.opts.Runtime, first)
	}

	if b.opts.Init == "" || !executable(b.opts.Init) {
		fail("init", fmt.Errorf("tini-static not found (%q): install it with `apt-get install tini`", b.opts.Init))
	} else {
		ok("init", "%s", b.opts.Init)
	}

	// mkfs.ext4 formats the home template once per size (home.go); the homes are mounted with mount(2).
	if p, err := exec.LookPath("mkfs.ext4"); err != nil {
		fail("tools", errors.New("mkfs.ext4 not found: install e2fsprogs"))
	} else {
		ok("tools", "%s", p)
	}

	if err := probeUserns(ctx); err != nil {
		fail("user namespaces", err)
	} else {
		max, _ := os.ReadFile("/proc/sys/user/max_user_namespaces")
		ok("user namespaces", "user.max_user_namespaces = %s; a user namespace was made", strings.TrimSpace(string(max)))
	}

	if f := b.probeIDs(); f.Level == LevelFail {
		fail(f.Name, errors.New(f.Detail))
	} else {
		out = append(out, f)
	}

	if err := checkLoop(); err != nil {
		fail("loop devices", err)
	} else {
		ok("loop devices", "/dev/loop-control hands out loop devices (each sandbox's home is a loop-mounted filesystem with a quota)")
	}

	view := filepath.Join(b.opts.HostDir, "hostroot")
	if err := ensureHostView(view); err != nil {
		fail("host view", err)
	} else if err := searchable(view); err != nil {
		fail("host view", err)
	} else {
		ok("host view", "%s, reachable by a sandbox's root user", view)
	}

	if l, err := b.cgroups(); err != nil {
		fail("cgroups", err)
	} else {
		ok("cgroups", "%s; sandboxes under %s", cgroupSummary(l), strings.Join(l.parents, ", "))
	}
	return out
}

// probeUserns makes a user namespace for real (the sysctl is not the only thing that can forbid it:
// AppArmor's unprivileged_userns restriction, seccomp in a container, a kernel without them).
func probeUserns(ctx context.Context) error {
	if data, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(data)) == "0" {
		return errors.New("user namespaces are disabled (user.max_user_namespaces = 0): every sandbox runs in its own; sysctl -w user.max_user_namespaces=15000")
	}
	bin, err := exec.LookPath("true")
	if err != nil {
		return nil // nothing to run in one; the sysctl above is all we can tell
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("a user namespace cannot be made here (%v): every sandbox runs in its own; allow them (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or the container's seccomp profile)", err)
	}
	return nil
}

// probeIDs says how many uid ranges are free, and warns when a host user's id or /etc/subuid range
// falls inside them (its files would belong to a sandbox's user).
func (b *Backend) probeIDs() Finding {
	const name = "uid ranges"
	first := uint64(b.ids.base)
	last := first + uint64(b.ids.slots)*ocispec.RangeSize - 1
	held := 0
	entries, _ := os.ReadDir(b.ids.dir)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if owner, err := os.ReadFile(filepath.Join(b.ids.dir, e.Name())); err == nil && exists(strings.TrimSpace(string(owner))) {
			held++
		}
	}
	f := Finding{Name: name, Level: LevelOK, Detail: fmt.Sprintf("%d ranges of %d ids from host uid %d (%s): %d held, %d free",
		b.ids.slots, ocispec.RangeSize, first, b.ids.dir, held, b.ids.slots-held)}
	if held >= b.ids.slots {
		f.Level, f.Detail = LevelFail, f.Detail+": every range is held; stop sandboxes or raise IDSlots"
		return f
	}
	var clash []string
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		for _, r := range idFile(file, 1, 2) {
			if r[0] <= last && r[0]+r[1]-1 >= first {
				clash = append(clash, fmt.Sprintf("%s: %d+%d", file, r[0], r[1]))
			}
		}
	}
	for _, r := range idFile("/etc/passwd", 2, -1) {
		if r[0] >= first && r[0] <= last {
			clash = append(clash, fmt.Sprintf("/etc/passwd: uid %d", r[0]))
		}
	}
	if len(clash) > 0 {
		f.Level = LevelWarn
		f.Detail += "; overlapping host ids (" + strings.Join(clash, ", ") + "): their owners would share files with sandboxes; move IDBase"
	}
	return f
}

// idFile reads colon-separated id lines: field start, and field size (-1 for 1).
func idFile(path string, start, size int) [][2]uint64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][2]uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) <= max(start, size) {
			continue
		}
		a, err := strconv.ParseUint(parts[start], 10, 64)
		if err != nil {
			continue
		}
		n := uint64(1)
		if size >= 0 {
			if n, err = strconv.ParseUint(parts[size], 10, 64); err != nil || n == 0 {
				continue
			}
		}
		out = append(out, [2]uint64{a, n})
	}
	return out
}

// cgroupSummary names the host's cgroup setup and its controllers.
func cgroupSummary(l cgroupLayout) string {
	if l.v2 {
		data, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		return "v2 (unified), controllers " + strings.Join(strings.Fields(string(data)), " ")
	}
	kind := "v1 (legacy)"
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup/unified", &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
		kind = "v1 (hybrid: v2 at /sys/fs/cgroup/unified)"
	}
	// The controllers the kernel has (/proc/cgroups) that are mounted.
	mounts, _ := v1Mounts()
	var names []string
	if data, err := os.ReadFile("/proc/cgroups"); err == nil {
		for line := range strings.Lines(string(data)) {
			if c := strings.Fields(line); len(c) > 0 && !strings.HasPrefix(c[0], "#") {
				if _, mounted := mounts[c[0]]; mounted {
					names = append(names, c[0])
				}
			}
		}
	}
	slices.Sort(names)
	return kind + ", controllers " + strings.Join(names, " ")
}
