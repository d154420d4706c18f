package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

func TestOwnCgroup(t *testing.T) {
	t.Parallel()
	v1 := []byte("12:cpu,cpuacct:/a/b\n4:memory:/process_api/x\n8:pids:/\n0::/unified/p\n")
	tests := []struct {
		controller, want string
	}{
		{"cpu", "/a/b"},
		{"memory", "/process_api/x"},
		{"pids", "/"},
		{"", "/unified/p"},
	}
	for _, tt := range tests {
		if got, ok := ownCgroup(v1, tt.controller); !ok || got != tt.want {
			t.Errorf("ownCgroup(%q) = %q, %v; want %q", tt.controller, got, ok, tt.want)
		}
	}
	if _, ok := ownCgroup(v1, "blkio"); ok {
		t.Error("ownCgroup(blkio) found a controller that is not there")
	}
}

// TestRuntimePath: the cgroupsPath handed to runc names the directories this package watches.
func TestRuntimePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		layout cgroupLayout
		want   string
	}{
		{"v1 relative: runc joins it to its own cgroup per hierarchy, as detectCgroups does", cgroupLayout{parent: "tamarack-sandboxes",
			parents: []string{"/sys/fs/cgroup/memory/serve/tamarack-sandboxes"}}, "tamarack-sandboxes/sb-1"},
		{"v1 absolute", cgroupLayout{parent: "/tamarack.slice/sandboxes", parents: []string{"/sys/fs/cgroup/memory/tamarack.slice/sandboxes"}},
			"/tamarack.slice/sandboxes/sb-1"},
		// runc would put a relative path under the parent of its own cgroup: v2 always gets the absolute one.
		{"v2 relative", cgroupLayout{v2: true, parent: "tamarack-sandboxes", parents: []string{"/sys/fs/cgroup/system.slice/tamarack.service/tamarack-sandboxes"}},
			"/system.slice/tamarack.service/tamarack-sandboxes/sb-1"},
		{"v2 absolute", cgroupLayout{v2: true, parent: "/tamarack.slice/sandboxes", parents: []string{"/sys/fs/cgroup/tamarack.slice/sandboxes"}},
			"/tamarack.slice/sandboxes/sb-1"},
	}
	for _, tt := range tests {
		if got := tt.layout.runtimePath("sb-1"); got != tt.want {
			t.Errorf("%s: runtimePath = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	t.Parallel()
	if got := unescapeMount(`/sys/fs/cgroup/cpu\054cpuacct`); got != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Errorf("unescapeMount = %q", got)
	}
}

func TestEndReason(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		code, ooms int
		stop       bool
		want       string
	}{
		{0, 0, false, backend.ReasonExited},
		{3, 0, false, backend.ReasonExited},
		{137, 0, false, backend.ReasonKilled},
		{137, 1, false, backend.ReasonOOMKilled},
		{143, 0, true, backend.ReasonStopped},
		{137, 2, true, backend.ReasonOOMKilled},
	}
	for _, tt := range tests {
		os.Remove(filepath.Join(dir, fileStop))
		if tt.stop {
			if err := os.WriteFile(filepath.Join(dir, fileStop), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if got := endReason(dir, tt.code, tt.ooms); got != tt.want {
			t.Errorf("endReason(code %d, ooms %d, stop %v) = %s, want %s", tt.code, tt.ooms, tt.stop, got, tt.want)
		}
	}
}

// TestCgroupV2Mechanics exercises the v2 half of the cgroup layer (list, cgroup.kill, remove) on this
// host's unified hierarchy when the host is hybrid: on a pure v2 host the whole suite runs on v2 anyway.
// Controllers are bound to v1 here, so limits are not set.
func TestCgroupV2Mechanics(t *testing.T) {
	t.Parallel()
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skip("pure cgroup v2 host: the sandbox tests already run on v2")
	}
	if err := unix.Statfs("/sys/fs/cgroup/unified", &fs); err != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("hybrid host without a cgroup2 mount at /sys/fs/cgroup/unified: cannot test the v2 layer (%v)", err)
	}
	parent := filepath.Join("/sys/fs/cgroup/unified", cgroupParent+"-v2")
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(parent); err != nil {
			t.Errorf("remove %s: %v", parent, err)
		}
	})
	cg := cgroupLayout{v2: true, parents: []string{parent}}.set("v2")
	if err := os.Mkdir(cg.Dirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	dirFD, err := unix.Open(cg.Dirs[0], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirFD)
	// Born in the cgroup (clone3's CLONE_INTO_CGROUP), as runc's processes are.
	cmd := exec.Command("/bin/sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: dirFD}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = cg.remove()
	})
	waitFor(t, 10*time.Second, "sleep to join the v2 cgroup", func() bool {
		pids, _ := cg.pids()
		return len(pids) == 1 && pids[0] == cmd.Process.Pid
	})
	if err := cg.killAll(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitEmpty(context.Background(), cg, 10*time.Second)
	if !cg.empty() {
		t.Fatal("v2 cgroup not empty after killAll")
	}
	if n := cg.oomKills(); n != 0 {
		t.Errorf("oomKills = %d without memory controller", n)
	}
	if err := cg.remove(); err != nil {
		t.Fatal(err)
	}
	if cg.exists() {
		t.Error("v2 cgroup survived remove")
	}
}

// TestFailedStartLeftovers: a directory a crashed serve left half made is reported failed after the
// start timeout, and Remove clears it.
func TestFailedStartLeftovers(t *testing.T) {
	t.Parallel()
	b := newBackend(t, RuntimeRunc) // no runtime ever ran
	dir := b.dir("half")
	if err := os.MkdirAll(filepath.Join(dir, dirHome), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := b.Inspect(context.Background(), "half")
	if err != nil || st.State != backend.StatePending {
		t.Fatalf("fresh half-made sandbox = %+v, %v; want pending", st, err)
	}
	old := time.Now().Add(-2 * startTimeout)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	list, err := b.List(context.Background())
	if err != nil || len(list) != 1 || list[0].Reason != backend.ReasonFailed || !list[0].Ended() {
		t.Fatalf("List = %+v, %v; want one failed sandbox", list, err)
	}
	if err := b.Remove(context.Background(), "half"); err != nil {
		t.Fatal(err)
	}
	if exists(dir) {
		t.Error("Remove left the directory")
	}
}
