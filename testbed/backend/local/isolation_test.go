package local

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
)

// The isolation tests of issue 10: what a sandbox must not be able to do, tried for real from inside.
// Helpers run inside sandboxes as the test binary (bound read-only) with TAMARACK_TEST_HELPER=argv and
// the helper's name as first argument, so that one sandbox can run several of them through Terminal.

// helperArgv runs the helper named by os.Args[1].
func helperArgv() {
	if len(os.Args) < 2 {
		os.Exit(2)
	}
	switch os.Args[1] {
	case "syscalls":
		helperSyscalls()
	case "inject":
		helperInject(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Args[1])
		os.Exit(2)
	}
	os.Exit(0)
}

// helperSyscalls tries what Docker's defaults refuse and prints "<what>: <result>" for each.
func helperSyscalls() {
	try := func(name string, err error) {
		if err == nil {
			fmt.Printf("%s: ALLOWED\n", name)
			return
		}
		fmt.Printf("%s: %v\n", name, err)
	}
	try("unshare-user", unix.Unshare(unix.CLONE_NEWUSER))
	try("unshare-mount", unix.Unshare(unix.CLONE_NEWNS))
	try("mount", unix.Mount("none", "/tmp", "tmpfs", 0, ""))
	_, err := unix.KeyctlJoinSessionKeyring("tamarack-test")
	try("keyctl", err)
	_, err = unix.AddKey("user", "tamarack-test", []byte("secret"), unix.KEY_SPEC_PROCESS_KEYRING)
	try("add_key", err)
	// BPF_MAP_CREATE of a 1-entry array map: the smallest thing bpf(2) can do.
	attr := [5]uint32{unix.BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno == 0 {
		unix.Close(int(fd))
		try("bpf", nil)
	} else {
		try("bpf", errno)
	}
	pa := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK}
	pa.Size = uint32(unsafe.Sizeof(pa))
	pfd, err := unix.PerfEventOpen(&pa, 0, -1, -1, 0)
	if err == nil {
		unix.Close(pfd)
	}
	try("perf_event_open", err)
	// A node for /dev/mem (1:1) that could be read. runc's user namespace refuses the mknod; gVisor's
	// Sentry may make it on its own tmpfs, but a node there names the Sentry's own emulated devices
	// only, never a host device, and it has no /dev/mem: the open fails.
	err = unix.Mknod("/tmp/mem", unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1)))
	if err == nil {
		var f *os.File
		if f, err = os.Open("/tmp/mem"); err == nil {
			f.Close()
		} else {
			err = fmt.Errorf("made, but open: %w", err)
		}
	}
	try("mknod", err)
	params := make([]byte, 120) // struct io_uring_params
	ufd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	if errno == 0 {
		unix.Close(int(ufd))
		try("io_uring_setup", nil)
	} else {
		try("io_uring_setup", errno)
	}
	ns, err := os.Open("/proc/self/ns/net")
	if err == nil {
		err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET)
		ns.Close()
	}
	try("setns", err)
}

// hostUID is the real uid of pid as the host sees it.
func hostUID(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid, _ := strconv.Atoi(strings.Fields(v)[0])
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// hostSide checks what the host sees of a running sandbox: every process in its cgroup runs as one host
// uid, with no_new_privs and a seccomp filter, and it returns that uid. Under runc they are the sandbox's
// own processes; under gVisor the Sentry, its gofer and the systrap stubs that hold the application's
// address spaces: the application's processes are the Sentry's tasks and never host processes.
func hostSide(t *testing.T, rec state) int {
	t.Helper()
	pids, err := rec.Cgroup.pids()
	if err != nil || len(pids) == 0 {
		t.Fatalf("the sandbox's cgroup holds %v (%v)", pids, err)
	}
	uid := -1
	for _, pid := range pids {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue // exited meanwhile
		}
		fields := map[string]string{}
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		u, _ := strconv.Atoi(strings.Fields(fields["Uid"])[0])
		if uid >= 0 && u != uid {
			t.Errorf("the sandbox's host processes run as uids %d and %d", uid, u)
		}
		uid = u
		if fields["NoNewPrivs"] != "1" || fields["Seccomp"] != "2" {
			t.Errorf("host process %d of the sandbox: NoNewPrivs %q, Seccomp %q; want 1 and 2", pid, fields["NoNewPrivs"], fields["Seccomp"])
		}
	}
	return uid
}

func readState(t *testing.T, b testBackend, id string) state {
	t.Helper()
	var st state
	if err := readJSON(filepath.Join(b.dir(id), fileState), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// termRun runs cmd in a terminal of the sandbox and returns what it printed and the host uid of its
// process. Under gVisor the process is a task of the Sentry, so the host uid is that of the sandbox's
// processes on the host (hostSide).
func termRun(t *testing.T, b testBackend, id string, cmd ...string) (string, int) {
	t.Helper()
	term, err := b.Terminal(context.Background(), id, cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	uid := -1
	if b.gvisor() {
		uid = hostSide(t, readState(t, b, id))
	} else if p := term.(*terminal).proc; p.PID > 0 && p.alive(bootID()) {
		uid = hostUID(t, p.PID)
	}
	out, err := io.ReadAll(term)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n"), uid
}

// busyboxRoot builds a minimal image root: busybox-static and its applets, nothing else.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found (apt-get install busybox-static): %v", err)
	}
	if f, err := elf.Open(bb); err != nil || f.Section(".interp") != nil {
		t.Fatalf("%s is not a static binary (%v): apt-get install busybox-static", bb, err)
	} else {
		f.Close()
	}
	dir := t.TempDir()
	// The sandbox's root user reaches its root through every directory above it.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "id", "sleep", "mount", "unshare", "mknod", "dd", "df", "grep", "wc", "touch", "chmod", "stat", "test", "head", "tr"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// leftovers lists what of sandbox id is still on the host: processes of its uid range, cgroups in any
// hierarchy, mounts, loop devices, runc state, files owned by its uids, files other than its record.
func leftovers(t *testing.T, b testBackend, id string, st state) []string {
	t.Helper()
	var left []string
	dir := b.dir(id)
	lo, hi := int(st.HostID), int(st.HostID)+ocispec.RangeSize
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if uid, _ := strconv.Atoi(strings.Fields(v)[0]); uid >= lo && uid < hi {
					left = append(left, "process "+p)
				}
			}
		}
	}
	below, _ := filepath.Rel(cgroupParent, b.opts.CgroupParent)
	for _, p := range runParents() {
		if cg := filepath.Join(p, below, id); exists(cg) {
			left = append(left, "cgroup "+cg)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.Lines(string(mounts)) {
		if strings.Contains(line, dir+"/") {
			left = append(left, "mount "+strings.TrimSpace(line))
		}
	}
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range backing {
		if data, _ := os.ReadFile(f); strings.HasPrefix(string(data), dir+"/") {
			left = append(left, "loop device "+f+" -> "+strings.TrimSpace(string(data)))
		}
	}
	if l := b.launchOf(id); l.Runtime.known(id) {
		left = append(left, l.Runtime.name()+" state")
	}
	if b.gvisor() {
		// runsc's other files of the sandbox: lock, control socket.
		files, _ := filepath.Glob(filepath.Join(b.opts.Root, ".runsc", "*"+id+"*"))
		for _, f := range files {
			left = append(left, "runsc file "+f)
		}
	}
	record := map[string]bool{fileLaunch: true, fileState: true, fileOutput: true, fileShim: true, fileStop: true}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if uid := int(info.Sys().(*syscall.Stat_t).Uid); uid >= lo && uid < hi {
				left = append(left, "file owned by the sandbox "+p)
			}
		}
		if rel, _ := filepath.Rel(dir, p); !record[rel] {
			left = append(left, "file "+p)
		}
		return nil
	})
	return left
}

// TestEscapeReplay replays issue 10's escape. Then, an exec'd process ptraced the sandbox's PID 1 (host
// root), made it unshare and bind its script over /usr/bin/setpriv, and the next terminal's nsenter ran
// that script as host root. Here the attacker does the same from a terminal: it ptraces PID 1 and makes
// it execute the attacker's script, which tries everything the exploit needed and writes a marker file
// where only the host can see it. The injection may work (PID 1 is the sandbox's own unprivileged user,
// which the issue accepts); what must never happen is anything outside the sandbox running the script.
func TestEscapeReplay(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		marker := filepath.Join(t.TempDir(), "pwned") // a host path: only a process on the host side can create it
		st := start(t, b, backend.Spec{SandboxID: "escape", Command: []string{"sleep", "600"}, Env: map[string]string{envHelper: "argv"}, Limits: backend.Limits{Pids: 64}})
		rec := readState(t, b, st.SandboxID)
		if uid := hostUID(t, rec.Init.PID); uid != int(rec.HostID) || uid == 0 {
			t.Fatalf("the sandbox's PID 1 runs as host uid %d, want its own range's %d", uid, rec.HostID)
		}
		// PID 1's execve gets no environment: the script sets its own.
		script := "HOME=" + ocispec.HomeDir + "; PATH=/usr/sbin:/usr/bin:/sbin:/bin\n" +
			"touch " + marker + "; touch /proc/1/root" + marker + "\n" +
			"unshare -Urm true 2>/dev/null && echo unshare-ok >> $HOME/injected\n" +
			"mount --bind $HOME/pwn.sh /usr/bin/setpriv 2>/dev/null && echo mount-ok >> $HOME/injected\n" +
			"cp $HOME/pwn.sh /run/tamarack/init 2>/dev/null && echo init-replaced >> $HOME/injected\n" +
			"echo \"injected uid=$(id -u) $(grep CapEff /proc/self/status)\" >> $HOME/injected\n" +
			"exec sleep 600\n"
		if err := os.WriteFile(filepath.Join(b.dir(st.SandboxID), dirHome, "pwn.sh"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		exe, _ := os.Executable()
		out, uid := termRun(t, b, st.SandboxID, exe, "inject", ocispec.HomeDir+"/pwn.sh")
		t.Logf("attacker: %s", strings.TrimSpace(out))
		if uid == 0 {
			t.Error("the attacker's terminal runs as host root")
		}
		if strings.Contains(out, "injected") {
			// PID 1 now runs the script, as the sandbox's root: give it time to do its worst.
			injected := filepath.Join(b.dir(st.SandboxID), dirHome, "injected")
			waitFor(t, 10*time.Second, "the injected script to run", func() bool {
				data, _ := os.ReadFile(injected)
				return strings.Contains(string(data), "injected uid=")
			})
			data, _ := os.ReadFile(injected)
			t.Logf("injected script: %s", strings.TrimSpace(string(data)))
			for _, bad := range []string{"unshare-ok", "mount-ok", "init-replaced"} {
				if strings.Contains(string(data), bad) {
					t.Errorf("the injected script could %s", bad)
				}
			}
			if uid := hostUID(t, rec.Init.PID); uid == 0 {
				t.Error("the injected PID 1 runs as host root")
			}
		} else if !strings.Contains(out, "ptrace-attach:") {
			t.Fatalf("attacker output %q: neither injected nor refused", out)
		}
		// Every way the host enters a sandbox, after the attack: a terminal, a port, logs, stop.
		// It lingers a moment, so the host can see whose it is.
		next, uid := termRun(t, b, st.SandboxID, "/bin/sh", "-c", "grep -E '^(Uid|NoNewPrivs|Seccomp):' /proc/self/status; sleep 1")
		if uid != int(rec.HostID) || !strings.Contains(next, "NoNewPrivs:\t1") || !strings.Contains(next, "Seccomp:\t2") {
			t.Errorf("the next terminal: host uid %d, status %q", uid, next)
		}
		_, _ = b.DialPort(context.Background(), st.SandboxID, 1)
		_ = logs(t, b, st.SandboxID)
		if _, err := b.Stop(context.Background(), st.SandboxID, time.Second); err != nil {
			t.Fatal(err)
		}
		if exists(marker) {
			t.Fatalf("ESCAPE: %s was created on the host", marker)
		}
	})
}

// TestRefused: what Docker's defaults refuse is refused, both as system calls and through the tools an
// attacker would use.
func TestRefused(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		exe, _ := os.Executable()
		st := start(t, b, backend.Spec{SandboxID: "refused", Command: []string{exe, "syscalls"}, Env: map[string]string{envHelper: "argv"}})
		waitEndedT(t, b, st.SandboxID)
		out := logs(t, b, st.SandboxID)
		t.Logf("system calls:\n%s", out)
		for _, name := range []string{"unshare-user", "unshare-mount", "mount", "keyctl", "add_key", "bpf", "perf_event_open", "mknod", "io_uring_setup", "setns"} {
			if !strings.Contains(out, name+": ") {
				t.Errorf("%s not tried", name)
			} else if strings.Contains(out, name+": ALLOWED") {
				t.Errorf("%s allowed inside a sandbox", name)
			}
		}
		tools := `mknod-and-read() { mknod "$@" && head -c1 "$1" >/dev/null; }
for c in "unshare -U true" "unshare -m true" "mount -t tmpfs none /tmp" "mknod-and-read /tmp/mem c 1 1" "chroot / true"; do
  if $c 2>/dev/null; then echo "$c: ALLOWED"; else echo "$c: refused"; fi
done`
		st = start(t, b, backend.Spec{SandboxID: "refused-tools", Command: []string{"/bin/bash", "-c", tools}})
		waitEndedT(t, b, st.SandboxID)
		out = logs(t, b, st.SandboxID)
		t.Logf("tools:\n%s", out)
		for _, c := range []string{"unshare -U true", "unshare -m true", "mount -t tmpfs none /tmp", "mknod-and-read /tmp/mem c 1 1"} {
			if !strings.Contains(out, c+": refused") {
				t.Errorf("%q not refused", c)
			}
		}
	})
}

// TestSetuidInHome: a setuid-root file made in home is owned on the host by the sandbox's uid, not root,
// and the host mount of home is nosuid as well.
func TestSetuidInHome(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		st := start(t, b, backend.Spec{SandboxID: "suid", Command: []string{"/bin/bash", "-c", "cp /bin/sh $HOME/rootsh && chmod 4755 $HOME/rootsh && echo made; sleep 600"}})
		waitFor(t, 10*time.Second, "the setuid file", func() bool { return strings.Contains(logs(t, b, st.SandboxID), "made") })
		rec := readState(t, b, st.SandboxID)
		p := filepath.Join(b.dir(st.SandboxID), dirHome, "rootsh")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if sys.Uid == 0 || sys.Uid != rec.HostID {
			t.Errorf("%s is owned by host uid %d, want the sandbox's %d", p, sys.Uid, rec.HostID)
		}
		if fi.Mode()&os.ModeSetuid == 0 {
			t.Log("the setuid bit did not stick (fine, but the test wanted to see nosuid matter)")
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(filepath.Dir(p), &sfs); err != nil || sfs.Flags&unix.ST_NOSUID == 0 || sfs.Flags&unix.ST_NODEV == 0 {
			t.Errorf("home is mounted on the host with flags %#x (%v), want nosuid and nodev", sfs.Flags, err)
		}
	})
}

// TestDistinctUIDs: two sandboxes get disjoint host uid ranges, and their processes and files show it.
func TestDistinctUIDs(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		var recs []state
		for _, id := range []string{"tenant-a", "tenant-b"} {
			start(t, b, backend.Spec{SandboxID: id, Command: []string{"/bin/bash", "-c", "touch $HOME/mine; sleep 600"}})
			recs = append(recs, readState(t, b, id))
		}
		a, c := recs[0], recs[1]
		if a.HostID == 0 || c.HostID == 0 || a.Slot == c.Slot || max(a.HostID, c.HostID)-min(a.HostID, c.HostID) < ocispec.RangeSize {
			t.Fatalf("ranges %d (slot %d) and %d (slot %d) overlap or include root", a.HostID, a.Slot, c.HostID, c.Slot)
		}
		for _, r := range recs {
			if uid := hostUID(t, r.Init.PID); uid != int(r.HostID) {
				t.Errorf("%s's PID 1 runs as host uid %d, want %d", r.ID, uid, r.HostID)
			}
			var fi os.FileInfo
			waitFor(t, 10*time.Second, r.ID+"'s file", func() bool {
				var err error
				fi, err = os.Stat(filepath.Join(b.dir(r.ID), dirHome, "mine"))
				return err == nil
			})
			if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != r.HostID {
				t.Errorf("%s's file is owned by host uid %d, want %d", r.ID, uid, r.HostID)
			}
		}
	})
}

// TestForkBomb: a fork bomb stops at the pids limit, and Stop still ends it completely.
func TestForkBomb(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		st := start(t, b, backend.Spec{SandboxID: "forkbomb", Command: []string{"/bin/bash", "-c", "bomb() { bomb | bomb & }; bomb; sleep 600"},
			Limits: backend.Limits{Pids: 48, CPUMillis: 200, MemoryBytes: 256 << 20}})
		rec := readState(t, b, st.SandboxID)
		pidsDir := rec.Cgroup.Dirs[0]
		if !rec.Cgroup.V2 {
			pidsDir = rec.Cgroup.Dirs[1]
		}
		waitFor(t, 30*time.Second, "a fork refused at the limit", func() bool {
			data, _ := os.ReadFile(filepath.Join(pidsDir, "pids.events"))
			f := strings.Fields(string(data))
			return len(f) == 2 && f[0] == "max" && f[1] != "0"
		})
		// Under gVisor the limit also counts the Sentry's and gofer's threads, and reaching it ends the
		// sandbox (TestPidsLimit); either way the host never holds more than the limit.
		limit := int64(48)
		if b.gvisor() {
			limit = runscLimits(backend.Limits{Pids: limit}).Pids
		}
		data, _ := os.ReadFile(filepath.Join(pidsDir, "pids.current"))
		if n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); n > limit {
			t.Errorf("pids.current = %d over a limit of %d", n, limit)
		}
		if _, err := b.Stop(context.Background(), st.SandboxID, 0); err != nil {
			t.Fatal(err)
		}
		if left := leftovers(t, b, st.SandboxID, rec); len(left) > 0 {
			t.Errorf("after Stop of a fork bomb: %v", left)
		}
	})
}

// TestDiskFill: filling home stops at its quota with ENOSPC, and the host's disk holds no more than that.
func TestDiskFill(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		exe, _ := os.Executable()
		b := newBackendWith(t, rt, Options{Root: t.TempDir(), CgroupParent: runtimeParent(rt), ReadOnlyPaths: []string{filepath.Dir(exe)}, HomeBytes: 32 << 20})
		st := start(t, b, backend.Spec{SandboxID: "diskfill", Command: []string{"/bin/bash", "-c", "dd if=/dev/zero of=$HOME/fill bs=1M count=100 2>&1; echo dd=$?; sleep 600"}})
		waitFor(t, 30*time.Second, "dd to give up", func() bool { return strings.Contains(logs(t, b, st.SandboxID), "dd=") })
		out := logs(t, b, st.SandboxID)
		if !strings.Contains(out, "No space left on device") || strings.Contains(out, "dd=0") {
			t.Errorf("dd of 100 MiB into a 32 MiB home: %q, want ENOSPC", out)
		}
		var sys unix.Stat_t
		if err := unix.Stat(filepath.Join(b.dir(st.SandboxID), fileHomeImage), &sys); err != nil {
			t.Fatal(err)
		}
		if used := sys.Blocks * 512; used > 33<<20 {
			t.Errorf("the home image uses %d bytes on the host disk, over its 32 MiB quota", used)
		}
	})
}

// TestNothingLeft: after Stop, nothing of a sandbox that had a terminal and background processes is left
// on the host but its record; after Remove, not even that, and its uid range is free again.
func TestNothingLeft(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		st := start(t, b, backend.Spec{SandboxID: "left", Command: []string{"/bin/bash", "-c", "(sleep 600 &); echo x > $HOME/file; sleep 600"}, Limits: backend.Limits{MemoryBytes: 128 << 20, Pids: 32}})
		rec := readState(t, b, st.SandboxID)
		term, err := b.Terminal(context.Background(), st.SandboxID, []string{"/bin/sh", "-c", "sleep 600 & sleep 600"})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		if _, err := b.Stop(context.Background(), st.SandboxID, 0); err != nil {
			t.Fatal(err)
		}
		if left := leftovers(t, b, st.SandboxID, rec); len(left) > 0 {
			t.Errorf("after Stop: %v", left)
		}
		if err := b.Remove(context.Background(), st.SandboxID); err != nil {
			t.Fatal(err)
		}
		if exists(b.dir(st.SandboxID)) {
			t.Error("Remove left the directory")
		}
		if exists(filepath.Join(b.ids.dir, strconv.Itoa(rec.Slot))) {
			data, _ := os.ReadFile(filepath.Join(b.ids.dir, strconv.Itoa(rec.Slot)))
			if string(data) == b.dir(st.SandboxID) {
				t.Errorf("uid slot %d still held after Remove", rec.Slot)
			}
		}
	})
}

// TestImageRoot: a sandbox runs on the root filesystem it is given (a minimal busybox image here), not on
// the host's /usr, and the mount points it needed were made without writing outside it.
func TestImageRoot(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		root := busyboxRoot(t)
		st := start(t, b, backend.Spec{SandboxID: "image", RootFS: root, Command: []string{"/bin/sh", "-c",
			"ls /usr/bin/python3 >/dev/null 2>&1 && echo host-usr || echo own-root; id -u; touch /bin/x 2>/dev/null && echo root-writable || echo root-read-only; echo ok > $HOME/x && cat $HOME/x"}})
		end := waitEndedT(t, b, st.SandboxID)
		out := logs(t, b, st.SandboxID)
		if end.ExitCode != 0 || !strings.Contains(out, "own-root\n0\nroot-read-only\nok\n") {
			t.Errorf("image sandbox: %+v, output %q", end, out)
		}
		for _, mp := range []string{"proc", "dev", "sys", "tmp", "run", "home/sandbox", "etc/hosts", "etc/hostname"} {
			if !exists(filepath.Join(root, mp)) {
				t.Errorf("mount point /%s not made in the image", mp)
			}
		}
		// runc gives /tmp's tmpfs the mode of the directory under it.
		if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&(os.ModeSticky|os.ModePerm) != os.ModeSticky|0o777 {
			t.Errorf("/tmp mount point mode %v (%v), want sticky and 0777", fi.Mode(), err)
		}
	})
}

// TestImageRootSymlinkStaysInside: an image whose /etc is a symlink out of it cannot make mount-point
// creation write on the host.
func TestImageRootSymlinkStaysInside(t *testing.T) {
	t.Parallel()
	root := busyboxRoot(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	err := ensureMountpoints(root, []specs.Mount{{Destination: "/etc/hosts", Type: "bind", Source: "/etc/hosts"}}, false)
	if err == nil {
		t.Error("mount points made through a symlink out of the image")
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("wrote %v outside the image", entries)
	}
}

// TestTerminalHardened: a terminal's shell has no_new_privs and the seccomp filter, and the host sees it
// as the sandbox's unprivileged uid. Under gVisor the shell is a task of the Sentry, not a host process:
// the host sees the sandbox's processes (Sentry, gofer, stubs), all as the sandbox's uid, and the one
// host process the terminal adds is runsc's own waiter, outside the sandbox's cgroup.
func TestTerminalHardened(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		st := start(t, b, backend.Spec{SandboxID: "term-hard", Command: []string{"sleep", "600"}})
		rec := readState(t, b, st.SandboxID)
		term, err := b.Terminal(context.Background(), st.SandboxID, []string{"/bin/bash", "--norc", "-i"})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		var uid int
		if b.gvisor() {
			uid = hostSide(t, rec)
			waiter := term.(*terminal).proc.PID
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(waiter) + "/exe"); err != nil || exe != b.opts.Runsc {
				t.Errorf("the terminal's host process %d is %q (%v), want runsc's waiter %s", waiter, exe, err, b.opts.Runsc)
			}
			if pids, _ := rec.Cgroup.pids(); slices.Contains(pids, waiter) {
				t.Errorf("runsc's waiter %d is in the sandbox's cgroup", waiter)
			}
		} else {
			uid = hostUID(t, term.(*terminal).proc.PID)
		}
		if _, err := io.WriteString(term, "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr '\\t' ' '; exit\n"); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		sc := bufio.NewScanner(term)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
		}
		if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "NoNewPrivs: 1") || !strings.Contains(out.String(), "Seccomp: 2") {
			t.Errorf("terminal shell status %q, want NoNewPrivs: 1 and Seccomp: 2", out.String())
		}
		if uid == 0 || uid != int(rec.HostID) {
			t.Errorf("terminal shell runs as host uid %d, want the sandbox's %d", uid, rec.HostID)
		}
	})
}
