package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
)

// The test binary plays several parts, chosen by environment variable, so that the sandbox workloads
// need nothing beyond what /usr has: the shim (MaybeRunShim), and the helpers below, which run inside
// sandboxes (the binary's directory is bound read-only into them; it finds the host's libc in the host
// view) or stand in for a `tamarack serve` that gets SIGKILLed.
const envHelper = "TAMARACK_TEST_HELPER"

// cgroupParent is relative to this process's own cgroup and unique per run, so the run can remove it.
var cgroupParent = "tamarack-test-" + strconv.Itoa(os.Getpid())

// runtimeParent is where the sandboxes of rt's tests go: a test runs on both runtimes at once with the
// same sandbox IDs, and a cgroup is named by its ID.
func runtimeParent(rt string) string { return filepath.Join(cgroupParent, rt) }

func TestMain(m *testing.M) {
	MaybeRunShim()
	switch os.Getenv(envHelper) {
	case "":
	case "alloc":
		helperAlloc()
	case "serve":
		helperServe()
	case "control":
		helperControl()
	case "argv":
		helperArgv()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envHelper))
		os.Exit(2)
	}
	code := m.Run()
	// Sandbox cgroups are removed by each test's cleanup; the run's parent goes last (the runtimes'
	// below it first), in every hierarchy the runtimes created it in.
	for _, p := range runParents() {
		for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
			if err := os.Remove(filepath.Join(p, rt)); err != nil && !errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(os.Stderr, "leftover cgroup %s: %v\n", filepath.Join(p, rt), err)
				code = 1
			}
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "leftover cgroup %s: %v\n", p, err)
			code = 1
		}
	}
	os.Exit(code)
}

// runParents are the run's cgroup parent in every mounted hierarchy: runc creates a sandbox's cgroup in
// all of them (v1: devices, freezer, name=systemd… besides memory, pids and cpu).
func runParents() []string {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	var out []string
	if l, err := detectCgroups(cgroupParent); err == nil && l.v2 {
		return l.parents
	}
	mounts, err := v1Mounts()
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for c, m := range mounts {
		own, ok := ownCgroup(self, c)
		if !ok || seen[m.dir] {
			continue
		}
		seen[m.dir] = true
		rel, err := filepath.Rel(m.root, own)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = "."
		}
		out = append(out, filepath.Join(m.dir, rel, cgroupParent))
	}
	// A hybrid host's unified hierarchy, where runc puts every process too.
	if own, ok := ownCgroup(self, ""); ok {
		var fs unix.Statfs_t
		if unix.Statfs("/sys/fs/cgroup/unified", &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			out = append(out, filepath.Join("/sys/fs/cgroup/unified", own, cgroupParent))
		}
	}
	return out
}

// helperAlloc allocates and touches memory until something kills it.
func helperAlloc() {
	var keep [][]byte
	for {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i)
		}
		keep = append(keep, b)
		if len(keep)%16 == 0 {
			fmt.Printf("allocated %d MiB\n", len(keep))
		}
	}
}

// helperServe serves HTTP on 127.0.0.1:$PORT, answering with the hostname (the sandbox ID).
func helperServe() {
	host, _ := os.Hostname()
	err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", host)
	}))
	fmt.Println(err)
	os.Exit(1)
}

// helperControl is a stand-in `tamarack serve`: it starts the sandboxes named in $IDS (command in
// $CMD_<n>) on $RUNTIME, says "started" and waits to be SIGKILLed.
func helperControl() {
	b, err := New(Options{Root: os.Getenv("ROOT"), CgroupParent: os.Getenv("CGROUP_PARENT"), Runsc: os.Getenv(envRunsc)})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	for i, id := range strings.Fields(os.Getenv("IDS")) {
		cmd := []string{"/bin/bash", "-c", os.Getenv("CMD_" + strconv.Itoa(i))}
		s := backend.Spec{SandboxID: id, Command: cmd, Settings: map[string]string{SettingRuntime: os.Getenv("RUNTIME")}}
		if _, err := b.Start(context.Background(), s); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	fmt.Println("started")
	select {}
}

// envRunsc names the runsc the tests run gVisor sandboxes with: .ci/run sets it to what
// infra/gvisor/build.sh built. Without it the runsc half of every real-sandbox test fails under
// TAMARACK_TEST_SANDBOX=required (CI) and is skipped, loudly, elsewhere.
const envRunsc = "TAMARACK_TEST_RUNSC"

// testBackend is a Backend under test that runs every sandbox it starts on one runtime, as a pool whose
// settings name it does.
type testBackend struct {
	*Backend
	rt string
}

func (b testBackend) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	s.Settings = maps.Clone(s.Settings)
	if s.Settings == nil {
		s.Settings = map[string]string{}
	}
	s.Settings[SettingRuntime] = b.rt
	return b.Backend.Start(ctx, s)
}

// gvisor reports whether the sandboxes run on runsc, where some checks look from another side.
func (b testBackend) gvisor() bool { return b.rt == RuntimeRunsc }

// eachRuntime runs test as a parallel subtest on runc and on runsc: the same assertions, except where
// gVisor makes another one the true one (said at each such place).
func eachRuntime(t *testing.T, test func(t *testing.T, rt string)) {
	t.Helper()
	for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			test(t, rt)
		})
	}
}

// newBackend returns a backend on a fresh root whose sandboxes run on rt. A host that cannot run them
// fails the test when TAMARACK_TEST_SANDBOX=required (CI), else skips it loudly (backendtest.RequireHost).
func newBackend(t testing.TB, rt string) testBackend {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return newBackendWith(t, rt, Options{Root: t.TempDir(), CgroupParent: runtimeParent(rt), ReadOnlyPaths: []string{filepath.Dir(exe)}})
}

// newBackendWith is newBackend with options of the test's own.
func newBackendWith(t testing.TB, rt string, opts Options) testBackend {
	t.Helper()
	if rt == RuntimeRunsc {
		opts.Runsc = os.Getenv(envRunsc)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RequireHost(t, b.Check(context.Background()))
	t.Cleanup(func() { _ = b.Close() }) // registered first, so it runs after the cleanups of its sandboxes
	if rt == RuntimeRunsc {
		if opts.Runsc == "" {
			backendtest.RequireHost(t, fmt.Errorf("%w: %s is not set: build runsc with infra/gvisor/build.sh and set it to the path it prints", backend.ErrUnavailable, envRunsc))
		}
		backendtest.RequireHost(t, b.CheckRunsc(context.Background()))
	}
	return testBackend{Backend: b, rt: rt}
}

// start starts a sandbox and makes sure it is stopped, its processes and cgroup gone and its files
// removed when the test ends, whatever happened.
func start(t *testing.T, b testBackend, s backend.Spec) backend.Status {
	t.Helper()
	cleanup(t, b, s.SandboxID)
	st, err := b.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start(%s): %v", s.SandboxID, err)
	}
	// A command that ends at once may already be reported exited; it did run.
	if (st.State != backend.StateRunning && st.State != backend.StateExited) || st.StartedAt.IsZero() {
		t.Fatalf("Start(%s) = %+v, want running (or already exited) with StartedAt", s.SandboxID, st)
	}
	return st
}

func cleanup(t *testing.T, b testBackend, id string) {
	t.Cleanup(func() {
		var st state
		_ = readJSON(filepath.Join(b.dir(id), fileState), &st)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := b.Stop(ctx, id, 0); err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("cleanup: Stop(%s): %v", id, err)
		}
		if err := b.Remove(ctx, id); err != nil {
			t.Errorf("cleanup: Remove(%s): %v", id, err)
		}
		for _, p := range []procID{st.Shim, st.Init} {
			if p.PID > 0 {
				// The shim may take a moment to exit after writing the end; anything else is a leak.
				waitFor(t, 10*time.Second, fmt.Sprintf("process %d of %s to exit", p.PID, id), func() bool { return !p.alive(st.BootID) })
			}
		}
		for _, d := range st.Cgroup.Dirs {
			if exists(d) {
				t.Errorf("cleanup: cgroup %s left behind", d)
			}
		}
		if exists(b.dir(id)) {
			t.Errorf("cleanup: %s left behind", b.dir(id))
		}
	})
}

// waitFor polls cond until it holds or the deadline passes; it never asserts on timing.
func waitFor(t *testing.T, max time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, max)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitEndedT(t *testing.T, b testBackend, id string) backend.Status {
	t.Helper()
	var st backend.Status
	waitFor(t, 30*time.Second, id+" to end", func() bool {
		var err error
		st, err = b.Inspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Ended()
	})
	return st
}

func logs(t *testing.T, b testBackend, id string) string {
	t.Helper()
	rc, err := b.Logs(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		script := `
echo "pid=$$"
echo "procs=$(ls /proc | grep -c '^[0-9]*$')"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
for p in /usr/x /etc/x /x /home/x /proc/sys/kernel/hostname "$HOME/x" /tmp/x; do
  if (echo x > "$p") 2>/dev/null; then echo "write $p ok"; else echo "write $p denied"; fi
done
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
if (exec 3<>/dev/tcp/1.1.1.1/53) 2>/dev/null; then echo "dial ok"; else echo "dial failed"; fi
echo "cuda=$CUDA_VISIBLE_DEVICES nvidia=$NVIDIA_VISIBLE_DEVICES home=$HOME"
echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"
echo "nnp=$(grep NoNewPrivs /proc/self/status | cut -f2) seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2)"
echo "uidmap=$(tr -s ' ' < /proc/self/uid_map)"
echo "keys=$(cat /proc/keys 2>/dev/null | wc -c) timers=$(cat /proc/timer_list 2>/dev/null | wc -c)"
echo "init=$(tr '\0' ' ' < /proc/1/cmdline)"
if cat /etc/shadow >/dev/null 2>&1; then echo "shadow readable"; else echo "shadow hidden"; fi
if [ -e /etc/ssl/private ]; then echo "ssl private keys visible"; else echo "ssl private keys hidden"; fi
if [ -r /etc/ssl/certs ]; then echo "ssl certs readable"; fi
`
		st := start(t, b, backend.Spec{
			SandboxID: "iso",
			Command:   []string{"/bin/bash", "-c", script},
			Devices:   []backend.Device{{Index: 1, UUID: "GPU-0b2c", Model: "H100", Paths: []string{"/dev/nvidia1"}}, {Index: 3, UUID: "GPU-77aa", Paths: []string{"/dev/nvidia3"}}},
			Limits:    backend.Limits{MemoryBytes: 256 << 20, Pids: 64, CPUMillis: 500},
		})
		end := waitEndedT(t, b, st.SandboxID)
		out := logs(t, b, st.SandboxID)
		t.Logf("sandbox output:\n%s", out)
		if end.Reason != backend.ReasonExited || end.ExitCode != 0 || end.EndedAt.Before(end.StartedAt) {
			t.Errorf("end status %+v, want exited 0 after start", end)
		}
		want := []string{
			"hostname=iso\n",
			"write /usr/x denied", "write /etc/x denied", "write /x denied", "write /home/x denied",
			"write /proc/sys/kernel/hostname denied",
			"write /home/sandbox/x ok", "write /tmp/x ok",
			"ifaces=lo \n",
			"dial failed",
			// CUDA counts only the sandbox's own GPUs, from 0.
			"cuda=0,1 nvidia=GPU-0b2c,GPU-77aa home=/home/sandbox",
			"capeff=" + dockerCaps(b), // Docker's default set, held only in the sandbox's user namespace
			"nnp=1 seccomp=2",
			"keys=0 timers=0", // masked (runc), or absent from the Sentry's own /proc (gVisor)
			"init=/run/tamarack/init -- /bin/bash -c",
			"shadow hidden",
			"ssl private keys hidden",
			"ssl certs readable",
			"[tamarack] device node /dev/nvidia1 is not present on this host; skipped",
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q", w)
			}
		}
		// init, bash and the pipeline counting: a handful, nothing of the host's.
		for line := range strings.Lines(out) {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "procs="); ok {
				if n, _ := strconv.Atoi(v); n < 2 || n > 8 {
					t.Errorf("sandbox sees %d processes, want only its own few", n)
				}
			}
			if line == "pid=1" {
				t.Error("the command is PID 1; want it under the init")
			}
			// Container root is the first id of a range of 65536 that is not host root's. Under gVisor the
			// map is the Sentry's own kernel's, which maps nothing of the host: its root user namespace,
			// 0 0 4294967295. The host's side of it is the Sentry's uid (TestDistinctUIDs).
			if v, ok := strings.CutPrefix(line, "uidmap="); ok {
				f := strings.Fields(v)
				if b.gvisor() {
					if strings.Join(f, " ") != "0 0 4294967295" {
						t.Errorf("uid_map %q inside gVisor, want the Sentry's identity map", v)
					}
				} else if len(f) != 3 || f[0] != "0" || f[1] == "0" || f[2] != "65536" {
					t.Errorf("uid_map %q, want 0 <host id other than 0> 65536", v)
				}
			}
		}
	})
}

func TestNetworkWhenAsked(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		st := start(t, b, backend.Spec{SandboxID: "net", Network: true, Command: []string{"/bin/bash", "-c", "tail -n +3 /proc/net/dev | wc -l"}})
		waitEndedT(t, b, st.SandboxID)
		out := strings.TrimSpace(logs(t, b, st.SandboxID))
		if n, err := strconv.Atoi(out); err != nil || n < 2 {
			t.Errorf("sandbox with network sees %q interfaces, want the host's (more than lo)", out)
		}
	})
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		exe, _ := os.Executable()
		st := start(t, b, backend.Spec{
			SandboxID: "oom",
			Command:   []string{exe},
			Env:       map[string]string{envHelper: "alloc"},
			Limits:    backend.Limits{MemoryBytes: 32 << 20, Pids: 64},
		})
		end := waitEndedT(t, b, st.SandboxID)
		if end.Reason != backend.ReasonOOMKilled {
			t.Fatalf("status %+v, want reason %s; output:\n%s", end, backend.ReasonOOMKilled, logs(t, b, st.SandboxID))
		}
	})
}

func TestPidsLimit(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		// Far more processes than the limit allows; bash keeps retrying the forks that fail. Under gVisor
		// the cgroup's limit also carries the Sentry's and gofer's threads (runscLimits): more are needed
		// to reach it, and reaching it ends the sandbox (the Sentry cannot get a stub process for the
		// next address space), which leaves the host as safe as a refused fork.
		limit, n := int64(16), 40
		if b.gvisor() {
			limit, n = runscLimits(backend.Limits{Pids: limit}).Pids, 2*runscPidsOverhead
		}
		st := start(t, b, backend.Spec{SandboxID: "pids", Command: []string{"/bin/bash", "-c", "for i in $(seq " + strconv.Itoa(n) + "); do sleep 600 & done; wait"}, Limits: backend.Limits{Pids: 16}})
		var s state
		if err := readJSON(filepath.Join(b.dir(st.SandboxID), fileState), &s); err != nil {
			t.Fatal(err)
		}
		pidsDir := s.Cgroup.Dirs[0]
		if !s.Cgroup.V2 {
			pidsDir = s.Cgroup.Dirs[1]
		}
		// pids.events counts forks refused at the limit. Under gVisor the sandbox may end at the limit
		// and its cgroup go with it before a read here sees the count (more likely on a loaded host): an
		// end is the limit's doing too, since the script itself never ends.
		var ended *backend.Status
		waitFor(t, 30*time.Second, "a fork refused at the limit", func() bool {
			data, _ := os.ReadFile(filepath.Join(pidsDir, "pids.events"))
			f := strings.Fields(string(data))
			if len(f) == 2 && f[0] == "max" && f[1] != "0" {
				return true
			}
			if st, err := b.Inspect(context.Background(), st.SandboxID); b.gvisor() && err == nil && st.Ended() {
				ended = &st
				return true
			}
			return false
		})
		if ended != nil {
			if ended.Reason == backend.ReasonExited && ended.ExitCode == 0 {
				t.Errorf("the sandbox ended on its own (%+v), not at its pids limit", *ended)
			}
			return
		}
		if pids, err := s.Cgroup.pids(); err != nil || int64(len(pids)) > limit {
			t.Errorf("sandbox has %d processes (%v) under a limit of %d", len(pids), err, limit)
		}
	})
}

func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, script string
		grace        time.Duration
	}{
		{"exits on TERM", "sleep 600", 10 * time.Second},
		// Ignores TERM; only the SIGKILL after grace ends it.
		{"ignores TERM", "trap '' TERM; while :; do sleep 0.05; done", 100 * time.Millisecond},
	}
	eachRuntime(t, func(t *testing.T, rt string) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := newBackend(t, rt)
				id := "stop-" + strconv.Itoa(i)
				start(t, b, backend.Spec{SandboxID: id, Command: []string{"/bin/bash", "-c", "echo up; " + tt.script}, Limits: backend.Limits{MemoryBytes: 64 << 20, CPUMillis: 250, Pids: 32}})
				var st state
				if err := readJSON(filepath.Join(b.dir(id), fileState), &st); err != nil {
					t.Fatal(err)
				}
				// Limits are in the cgroup and the sandbox's processes are in it.
				want := backend.Limits{MemoryBytes: 64 << 20, Pids: 32}
				if b.gvisor() {
					want = runscLimits(want) // the Sentry's and gofer's own share on top of the template's
				}
				checkLimits(t, st.Cgroup, want.MemoryBytes, 25000, want.Pids)
				pids, err := st.Cgroup.pids()
				if err != nil || !containsAll(pids, st.Init.PID) {
					t.Fatalf("cgroup holds %v (%v), want the init %d", pids, err, st.Init.PID)
				}
				waitFor(t, 10*time.Second, "output", func() bool { return strings.Contains(logs(t, b, id), "up") })

				end, err := b.Stop(context.Background(), id, tt.grace)
				if err != nil {
					t.Fatal(err)
				}
				if end.State != backend.StateExited || end.Reason != backend.ReasonStopped || end.EndedAt.IsZero() {
					t.Errorf("Stop = %+v, want exited, stopped", end)
				}
				for _, p := range pids {
					if _, err := procStart(p); err == nil {
						t.Errorf("process %d survived Stop", p)
					}
				}
				if st.Cgroup.exists() {
					t.Errorf("cgroup %v survived Stop", st.Cgroup.Dirs)
				}
				for _, d := range []string{dirHome, fileHomeImage, dirConf} {
					if exists(filepath.Join(b.dir(id), d)) {
						t.Errorf("%s survived Stop", d)
					}
				}
				again, err := b.Stop(context.Background(), id, tt.grace)
				if err != nil || again != end {
					t.Errorf("second Stop = %+v, %v; want %+v", again, err, end)
				}
				if !strings.Contains(logs(t, b, id), "up") {
					t.Error("logs of a stopped sandbox are gone before Remove")
				}
				if _, err := b.Terminal(context.Background(), id, nil); !errors.Is(err, backend.ErrNotRunning) {
					t.Errorf("Terminal(stopped) = %v, want ErrNotRunning", err)
				}
				if err := b.Remove(context.Background(), id); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Inspect(context.Background(), id); !errors.Is(err, backend.ErrNotFound) {
					t.Errorf("Inspect(removed) = %v, want ErrNotFound", err)
				}
			})
		}
	})
}

// dockerCaps is CapEff of Docker's default capability set as a sandbox's /proc shows it. gVisor leaves
// out CAP_NET_RAW (runsc without --net-raw: no raw sockets at all), so its set is one smaller.
func dockerCaps(b testBackend) string {
	if b.gvisor() {
		return "00000000a80405fb"
	}
	return "00000000a80425fb"
}

func checkLimits(t *testing.T, cg cgroupSet, mem, cpuQuota, pids int64) {
	t.Helper()
	files := map[string]int64{}
	if cg.V2 {
		files[filepath.Join(cg.Dirs[0], "memory.max")] = mem
		files[filepath.Join(cg.Dirs[0], "pids.max")] = pids
	} else {
		files[filepath.Join(cg.Dirs[0], "memory.limit_in_bytes")] = mem
		files[filepath.Join(cg.Dirs[1], "pids.max")] = pids
		files[filepath.Join(cg.Dirs[2], "cpu.cfs_quota_us")] = cpuQuota
	}
	for f, want := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); got != want {
			t.Errorf("%s = %s, want %d", f, data, want)
		}
	}
}

func containsAll(have []int, want ...int) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		ctx := context.Background()
		start(t, b, backend.Spec{SandboxID: "dup", Command: []string{"sleep", "600"}})
		if _, err := b.Start(ctx, backend.Spec{SandboxID: "dup", Command: []string{"true"}}); !errors.Is(err, backend.ErrExists) {
			t.Errorf("Start(duplicate) = %v, want ErrExists", err)
		}
		if _, err := b.Start(ctx, backend.Spec{SandboxID: "../etc", Command: []string{"true"}}); !errors.Is(err, backend.ErrInvalidSpec) {
			t.Errorf("Start(bad id) = %v, want ErrInvalidSpec", err)
		}
		for _, id := range []string{"nope", "../../etc"} {
			if _, err := b.Inspect(ctx, id); !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("Inspect(%q) = %v, want ErrNotFound", id, err)
			}
		}
		if err := b.Remove(ctx, "dup"); !errors.Is(err, backend.ErrStillRunning) {
			t.Errorf("Remove(running) = %v, want ErrStillRunning", err)
		}
	})
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		st := start(t, b, backend.Spec{SandboxID: "term", Command: []string{"sleep", "600"}, Env: map[string]string{"GREETING": "hi"}, Limits: backend.Limits{MemoryBytes: 128 << 20}})
		ctx := context.Background()
		term, err := b.Terminal(ctx, st.SandboxID, []string{"/bin/bash", "--norc", "-i"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { term.Close() })
		if err := term.Resize(120, 40); err != nil {
			t.Fatal(err)
		}
		// Arithmetic so the answer differs from the echoed input.
		cmds := `echo "out=$GREETING-$((40+2))-$(hostname)-$$-$(stty size)-$(grep CapEff /proc/self/status | cut -f2)"; exit` + "\n"
		if _, err := io.WriteString(term, cmds); err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(term)
		if err != nil {
			t.Fatal(err)
		}
		// The same capabilities as the sandbox's command (Docker's set), in the same PID namespace: PID 1 is
		// the sandbox's init, so the shell is some later process of that namespace.
		if !strings.Contains(string(out), "out=hi-42-term-") || !strings.Contains(string(out), "-40 120-"+dockerCaps(b)) {
			t.Errorf("terminal output %q, want out=hi-42-term-<pid>-40 120-<Docker's caps>", out)
		}
		if strings.Contains(string(out), "out=hi-42-term-1-") {
			t.Errorf("terminal output %q: the shell is the sandbox's PID 1", out)
		}
	})
}

func TestDialPortWithoutNetwork(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		exe, _ := os.Executable()
		st := start(t, b, backend.Spec{SandboxID: "dial", Command: []string{exe}, Env: map[string]string{envHelper: "serve", "PORT": "8888"}, Ports: []int{8888}})
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return b.DialPort(ctx, st.SandboxID, 8888)
			},
		}}
		var body string
		waitFor(t, 10*time.Second, "the server in the sandbox", func() bool {
			resp, err := client.Get("http://sandbox/")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			body = string(data)
			return true
		})
		client.CloseIdleConnections()
		if body != "hello from dial" {
			t.Errorf("body %q, want hello from dial", body)
		}
	})
}

// TestRestartSurvival kills a stand-in serve with SIGKILL and checks that a new backend on the same root
// sees its sandboxes: one still running, one that ended while no serve was alive, with its true end.
func TestRestartSurvival(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		for _, id := range []string{"keep", "quit"} {
			cleanup(t, b, id)
		}
		exe, _ := os.Executable()
		ctl := exec.Command(exe)
		ctl.Env = append(os.Environ(), envHelper+"=control", "ROOT="+b.opts.Root, "CGROUP_PARENT="+b.opts.CgroupParent, "IDS=keep quit", "RUNTIME="+rt,
			"CMD_0=sleep 600",
			"CMD_1=while [ ! -e $HOME/go ]; do sleep 0.02; done; echo bye; exit 3")
		stdout, err := ctl.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := ctl.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ctl.Process.Kill(); _ = ctl.Wait() })
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if strings.TrimSpace(line) != "started" {
			t.Fatalf("control process said %q", line)
		}
		if err := ctl.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = ctl.Wait()

		// Nobody but the shims is watching now. Let "quit" end.
		trigger := time.Now().UTC()
		if err := os.WriteFile(filepath.Join(b.dir("quit"), dirHome, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// Without Options.Runsc: a sandbox is driven by the runtime its record names.
		restarted, err := New(Options{Root: b.opts.Root, CgroupParent: b.opts.CgroupParent})
		if err != nil {
			t.Fatal(err)
		}
		var list []backend.Status
		waitFor(t, 30*time.Second, "quit to end", func() bool {
			list, err = restarted.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return len(list) == 2 && list[1].Ended()
		})
		keep, quit := list[0], list[1]
		if keep.SandboxID != "keep" || keep.State != backend.StateRunning || keep.StartedAt.IsZero() || keep.StartedAt.After(trigger) {
			t.Errorf("keep = %+v, want running since before the restart", keep)
		}
		if quit.SandboxID != "quit" || quit.Reason != backend.ReasonExited || quit.ExitCode != 3 || quit.EndedAt.Before(trigger) || !quit.StartedAt.Before(trigger) {
			t.Errorf("quit = %+v, want exited 3, started before and ended after %v", quit, trigger)
		}
		if out := logs(t, testBackend{Backend: restarted, rt: rt}, "quit"); !strings.Contains(out, "bye") {
			t.Errorf("quit's logs %q lack its output", out)
		}
		// The restarted backend controls what it did not start.
		if st, err := restarted.Stop(context.Background(), "keep", 10*time.Second); err != nil || st.Reason != backend.ReasonStopped {
			t.Errorf("Stop(keep) after restart = %+v, %v", st, err)
		}
	})
}

// TestLostSupervisor: when the shim and the sandbox die without a word (host crash, OOM of the shim),
// List says lost, with the last sign of life as EndedAt, and Stop still cleans up.
func TestLostSupervisor(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		start(t, b, backend.Spec{SandboxID: "lost", Command: []string{"sleep", "600"}})
		var st state
		if err := readJSON(filepath.Join(b.dir("lost"), fileState), &st); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(st.Shim.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the shim to die", func() bool { return !st.Shim.alive(st.BootID) })
		// The sandbox outlives its shim, and says so.
		if got, err := b.Inspect(context.Background(), "lost"); err != nil || got.State != backend.StateRunning || got.Message == "" {
			t.Errorf("Inspect with shim gone = %+v, %v; want running with a message", got, err)
		}
		if err := syscall.Kill(st.Init.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		got := waitEndedT(t, b, "lost")
		if got.Reason != backend.ReasonLost || got.EndedAt.Before(got.StartedAt) || got.ExitCode != -1 {
			t.Errorf("status %+v, want lost with EndedAt >= StartedAt", got)
		}
		if _, err := b.Stop(context.Background(), "lost", 0); err != nil {
			t.Fatal(err)
		}
		if st.Cgroup.exists() {
			t.Errorf("cgroup of a lost sandbox survived Stop")
		}
	})
}

func TestLogsFollow(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		st := start(t, b, backend.Spec{SandboxID: "follow", Command: []string{"/bin/bash", "-c", "echo one; while [ ! -e $HOME/go ]; do sleep 0.02; done; echo two >&2"}})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rc, err := b.Logs(ctx, st.SandboxID, true)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		r := bufio.NewReader(rc)
		if line, err := r.ReadString('\n'); err != nil || line != "one\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		if err := os.WriteFile(filepath.Join(b.dir(st.SandboxID), dirHome, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(r) // ends only because the sandbox ends
		if err != nil || string(rest) != "two\n" {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})
}

// BenchmarkStartStop measures, on each runtime, Start until the sandbox runs (start-p50-ms) and, within
// it, the runtime's own create + start as the shim timed them (runtime-p50-ms), medians over the
// iterations (-benchtime=10x for ten); each sandbox is then stopped and removed.
func BenchmarkStartStop(bb *testing.B) {
	for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
		bb.Run(rt, func(bb *testing.B) {
			b := newBackend(bb, rt)
			ctx := context.Background()
			var starts, runtimes []time.Duration
			for i := 0; bb.Loop(); i++ {
				id := "bench-" + strconv.Itoa(i)
				t0 := time.Now()
				if _, err := b.Start(ctx, backend.Spec{SandboxID: id, Command: []string{"sleep", "600"}, Limits: backend.Limits{MemoryBytes: 256 << 20, Pids: 64, CPUMillis: 1000}}); err != nil {
					bb.Fatal(err)
				}
				starts = append(starts, time.Since(t0))
				runtimes = append(runtimes, shimRuntime(bb, b.dir(id)))
				if _, err := b.Stop(ctx, id, 5*time.Second); err != nil {
					bb.Fatal(err)
				}
				if err := b.Remove(ctx, id); err != nil {
					bb.Fatal(err)
				}
			}
			bb.ReportMetric(medianMS(starts), "start-p50-ms")
			bb.ReportMetric(medianMS(runtimes), "runtime-p50-ms")
		})
	}
}

// shimRuntime is how long the runtime's create and start took, from the shim's log.
func shimRuntime(tb testing.TB, dir string) time.Duration {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(dir, fileShim))
	if err != nil {
		tb.Fatal(err)
	}
	m := regexp.MustCompile(`msg="sandbox running".* runtime=(\S+)`).FindSubmatch(data)
	if m == nil {
		tb.Fatalf("no runtime time in %s", data)
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func medianMS(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1000
}

// BenchmarkTerminal measures, on each runtime, opening a terminal (the runtime's exec through the tty
// helper) that runs /bin/true until its output has ended (terminal-p50-ms), and the bare
// `<runtime> exec <id> /bin/true` (exec-p50-ms), medians over the iterations.
func BenchmarkTerminal(bb *testing.B) {
	for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
		bb.Run(rt, func(bb *testing.B) {
			b := newBackend(bb, rt)
			ctx := context.Background()
			if _, err := b.Start(ctx, backend.Spec{SandboxID: "bench-term", Command: []string{"sleep", "600"}}); err != nil {
				bb.Fatal(err)
			}
			bb.Cleanup(func() {
				_, _ = b.Stop(ctx, "bench-term", 0)
				_ = b.Remove(ctx, "bench-term")
			})
			runtime := b.launchOf("bench-term").Runtime
			var terms, execs []time.Duration
			for bb.Loop() {
				t0 := time.Now()
				term, err := b.Terminal(ctx, "bench-term", []string{"/bin/true"})
				if err != nil {
					bb.Fatal(err)
				}
				_, _ = io.ReadAll(term)
				term.Close()
				terms = append(terms, time.Since(t0))
				t0 = time.Now()
				if out, err := runtime.command(ctx, "exec", "bench-term", "/bin/true").CombinedOutput(); err != nil {
					bb.Fatalf("%s exec: %v: %s", rt, err, out)
				}
				execs = append(execs, time.Since(t0))
			}
			bb.ReportMetric(medianMS(terms), "terminal-p50-ms")
			bb.ReportMetric(medianMS(execs), "exec-p50-ms")
		})
	}
}

func TestShortLivedAndMissingCommand(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		start(t, b, backend.Spec{SandboxID: "true", Command: []string{"true"}})
		if end := waitEndedT(t, b, "true"); end.Reason != backend.ReasonExited || end.ExitCode != 0 {
			t.Errorf("true: %+v", end)
		}
		start(t, b, backend.Spec{SandboxID: "missing", Command: []string{"/usr/bin/no-such-program"}})
		// The init cannot exec it and says so; 127 as a shell would.
		if end := waitEndedT(t, b, "missing"); end.Reason != backend.ReasonExited || end.ExitCode != 127 {
			t.Errorf("missing: %+v", end)
		}
		if out := logs(t, b, "missing"); !strings.Contains(out, "no-such-program") {
			t.Errorf("missing: output %q does not say what failed", out)
		}
	})
}

// TestSpecEdits: the seam for CDI device edits and runtime annotations changes the spec runc runs.
func TestSpecEdits(t *testing.T) {
	t.Parallel()
	exe, _ := os.Executable()
	var saw backend.Spec
	edit := func(s backend.Spec, spec *specs.Spec) error {
		saw = s
		spec.Process.Env = append(spec.Process.Env, "EDITED=by-"+s.SandboxID)
		return nil
	}
	// The seam edits the spec whichever runtime runs it; runc is enough here.
	b := newBackendWith(t, RuntimeRunc, Options{Root: t.TempDir(), CgroupParent: cgroupParent, ReadOnlyPaths: []string{filepath.Dir(exe)}, SpecEdits: []SpecEdit{edit}})
	start(t, b, backend.Spec{SandboxID: "edited", Command: []string{"/bin/sh", "-c", "echo $EDITED"}})
	waitEndedT(t, b, "edited")
	if out := logs(t, b, "edited"); out != "by-edited\n" || saw.SandboxID != "edited" {
		t.Errorf("output %q, edit saw %q; want the edit applied", out, saw.SandboxID)
	}
	refuse := func(backend.Spec, *specs.Spec) error { return errors.New("no such CDI device") }
	b2, err := New(Options{Root: t.TempDir(), CgroupParent: cgroupParent, SpecEdits: []SpecEdit{refuse}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Start(context.Background(), backend.Spec{SandboxID: "refused-edit", Command: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "no such CDI device") {
		t.Errorf("Start with a failing edit = %v", err)
	}
	if exists(b2.dir("refused-edit")) {
		t.Error("a Start refused by an edit left its directory")
	}
}

// TestFailedStartEndsShim: a Start that fails after its shim was started but before it was told to go
// (here a spec edit refuses) leaves no shim behind, nor anything of the sandbox.
func TestFailedStartEndsShim(t *testing.T) {
	t.Parallel()
	refuse := func(backend.Spec, *specs.Spec) error { return errors.New("no such CDI device") }
	b := newBackendWith(t, RuntimeRunc, Options{Root: t.TempDir(), CgroupParent: runtimeParent(RuntimeRunc), SpecEdits: []SpecEdit{refuse}})
	if _, err := b.Start(context.Background(), backend.Spec{SandboxID: "refused", Command: []string{"true"}}); err == nil {
		t.Fatal("Start with a failing edit succeeded")
	}
	dir := b.dir("refused")
	// Its shim was this backend's only one: a failed Start leaves none waiting for the next.
	waitFor(t, 10*time.Second, "the shim to exit", func() bool { return len(shimsOf(b.opts.Root)) == 0 })
	if exists(dir) || len(loopDevices(dir)) > 0 {
		t.Errorf("a failed Start left its directory (%v) or loop devices %v", exists(dir), loopDevices(dir))
	}
}

// shimsOf lists the live shims of the backend at root (waiting or running a sandbox) by PID.
func shimsOf(root string) []int {
	var out []int
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range envs {
		data, err := os.ReadFile(p)
		if err == nil && slices.Contains(strings.Split(string(data), "\x00"), envShim+"="+root) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// TestWarmShim: a Start leaves one shim waiting, the next Start runs its sandbox with it, and Close ends
// the one then waiting; a waiting shim that was killed is replaced, not used.
func TestWarmShim(t *testing.T) {
	t.Parallel()
	b := newBackend(t, RuntimeRunc)
	root := b.opts.Root
	shimOf := func(id string) int {
		t.Helper()
		var st state
		if err := readJSON(filepath.Join(b.dir(id), fileState), &st); err != nil {
			t.Fatal(err)
		}
		return st.Shim.PID
	}
	// waiting is the shim that runs no sandbox: all of root's shims but those of the sandboxes named.
	waiting := func(running ...string) int {
		t.Helper()
		var idle []int
		waitFor(t, 30*time.Second, "one shim waiting", func() bool {
			idle = slices.DeleteFunc(shimsOf(root), func(pid int) bool {
				return slices.ContainsFunc(running, func(id string) bool { return shimOf(id) == pid })
			})
			return len(idle) == 1
		})
		return idle[0]
	}
	spec := func(id string) backend.Spec { return backend.Spec{SandboxID: id, Command: []string{"sleep", "600"}} }

	start(t, b, spec("first"))
	next := waiting("first")
	start(t, b, spec("second"))
	if got := shimOf("second"); got != next {
		t.Errorf("the second sandbox's shim is %d, want %d, the one left waiting", got, next)
	}
	// Killed while it waits: the next Start starts its own shim, and runs.
	killed := waiting("first", "second")
	if err := unix.Kill(killed, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the killed shim to be reaped", func() bool { return !slices.Contains(shimsOf(root), killed) })
	start(t, b, spec("third"))
	if got := shimOf("third"); got == killed {
		t.Errorf("the third sandbox ran with the killed shim %d", got)
	}
	// Close ends the waiting shim and no other.
	left := waiting("first", "second", "third")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the waiting shim to exit", func() bool { return !slices.Contains(shimsOf(root), left) })
	if n := len(shimsOf(root)); n != 3 {
		t.Errorf("%d shims after Close, want the 3 of the running sandboxes", n)
	}
	for _, id := range []string{"first", "second", "third"} {
		if st, err := b.Inspect(context.Background(), id); err != nil || st.State != backend.StateRunning {
			t.Errorf("%s after Close: %+v %v", id, st, err)
		}
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		backendtest.Run(t, backendtest.Harness{
			New:         func(t *testing.T) backend.Backend { return newBackend(t, rt) },
			LongRunning: []string{"sleep", "600"},
		})
	})
}

// TestCheckReportsMissingRuntime: `tamarack serve` must be able to tell the operator what to install.
func TestCheckReportsMissingRuntime(t *testing.T) {
	t.Parallel()
	b, err := New(Options{Root: t.TempDir(), Runtime: "/nonexistent/runc", Init: "/nonexistent/tini", CgroupParent: cgroupParent})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Check(context.Background())
	for _, want := range []string{"runc not found", "apt-get install runc", "apt-get install tini"} {
		if !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Errorf("Check() = %v, want ErrUnavailable saying %q", err, want)
		}
	}
	// Probe says the same, item by item, for tamarack doctor.
	for _, f := range b.Probe(context.Background()) {
		if (f.Name == "runtime" || f.Name == "init") && (f.Level != LevelFail || !strings.Contains(f.Detail, "apt-get install")) {
			t.Errorf("Probe: %s %s %q, want a failure saying what to install", f.Name, f.Level, f.Detail)
		}
	}
}

// TestRunscMissingOrTooOld: a pool on gVisor says what to do when runsc is not configured, is not there
// or is Debian's (2022: no systrap platform, no nvproxy), and an unknown runtime is an invalid spec.
func TestRunscMissingOrTooOld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	onRunsc := backend.Spec{SandboxID: "gvisor", Command: []string{"true"}, Settings: map[string]string{SettingRuntime: RuntimeRunsc}}
	b, err := New(Options{Root: t.TempDir(), CgroupParent: cgroupParent})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(ctx, onRunsc); !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), "infra/gvisor/build.sh") {
		t.Errorf("Start on runsc without Options.Runsc = %v, want ErrUnavailable saying how to build it", err)
	}
	if err := b.CheckRunsc(ctx); !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), "TAMARACK_RUNSC") {
		t.Errorf("CheckRunsc without Options.Runsc = %v, want ErrUnavailable naming the setting", err)
	}
	kata := onRunsc
	kata.Settings = map[string]string{SettingRuntime: "kata"}
	if _, err := b.Start(ctx, kata); !errors.Is(err, backend.ErrInvalidSpec) {
		t.Errorf("Start on runtime kata = %v, want ErrInvalidSpec", err)
	}
	if exists(b.dir("gvisor")) {
		t.Error("a refused Start left its directory")
	}

	if _, err := New(Options{Root: t.TempDir(), Runsc: "runsc"}); err == nil {
		t.Error(`New(Runsc: "runsc") accepted a name to look up in PATH, where Debian's runsc would be found`)
	}

	// What Debian's runsc 20221219 answers: no systrap, no --oci-seccomp, no nvproxy subcommand.
	old := filepath.Join(t.TempDir(), "runsc")
	script := "#!/bin/sh\n[ \"$1\" = flags ] && echo '-platform string: specifies which platform to use: ptrace (default), kvm.' && exit 0\nexit 2\n"
	if err := os.WriteFile(old, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/nonexistent/runsc": "not an executable file", old: "no systrap platform"} {
		b, err := New(Options{Root: t.TempDir(), CgroupParent: cgroupParent, Runsc: path})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.CheckRunsc(ctx); !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Debian") {
			t.Errorf("CheckRunsc(%s) = %v, want ErrUnavailable saying %q and that Debian's is too old", path, err, want)
		}
	}
}

// TestNoInheritedDescriptors: a descriptor serve inherited without close-on-exec must not reach the
// sandbox or a terminal in it.
func TestNoInheritedDescriptors(t *testing.T) {
	// Not parallel: it leaves a descriptor without close-on-exec in this process while it runs.
	for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			b := newBackend(t, rt)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil {
				t.Fatal(err)
			}
			start(t, b, backend.Spec{SandboxID: "fds", Command: []string{"/bin/bash", "-c", "ls /proc/self/fd >/dev/null; echo fds=$(ls /proc/self/fd | sort -n | tr '\\n' ' '); sleep 600"}})
			waitFor(t, 10*time.Second, "output", func() bool { return strings.Contains(logs(t, b, "fds"), "fds=") })
			// ls in the pipeline: 0 1 2 and its own directory descriptor.
			if out := logs(t, b, "fds"); !strings.Contains(out, "fds=0 1 2 3\n") {
				t.Errorf("sandbox descriptors: %q", out)
			}
			term, err := b.Terminal(context.Background(), "fds", []string{"/bin/ls", "/proc/self/fd"})
			if err != nil {
				t.Fatal(err)
			}
			defer term.Close()
			out, _ := io.ReadAll(term)
			if got := strings.Fields(string(out)); len(got) != 4 { // 0 1 2 and ls's directory
				t.Errorf("terminal descriptors: %q", out)
			}
		})
	}
}

// TestOutputCapped: a sandbox that prints far more than its log cap, partly without a newline, leaves at
// most the cap on disk with the newest output kept; a follower reads it in order, never a byte twice, and
// ends with the newest output; Remove deletes the log.
func TestOutputCapped(t *testing.T) {
	t.Parallel()
	eachRuntime(t, func(t *testing.T, rt string) {
		b := newBackend(t, rt)
		const capBytes = 64 << 10
		// 20000 numbered lines (320 kB), 256 KiB without a newline, then a last line. Each line is 16
		// bytes, so every half of the cap holds whole lines: a follower that falls a cap behind skips
		// whole lines, never splicing the head of one line onto the tail of another.
		script := `while [ ! -e $HOME/go ]; do sleep 0.02; done; seq -f 'line %010g' 1 20000; head -c 262144 /dev/zero | tr '\0' x; echo; echo last`
		var want strings.Builder
		for i := 1; i <= 20000; i++ {
			fmt.Fprintf(&want, "line %010d\n", i)
		}
		want.WriteString(strings.Repeat("x", 262144) + "\nlast\n")
		st := start(t, b, backend.Spec{SandboxID: "capped", Command: []string{"/bin/bash", "-c", script},
			Limits: backend.Limits{LogBytes: capBytes}})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rc, err := b.Logs(ctx, st.SandboxID, true)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if err := os.WriteFile(filepath.Join(b.dir(st.SandboxID), dirHome, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		followed, err := io.ReadAll(rc) // ends only because the sandbox ends
		if err != nil {
			t.Fatal(err)
		}
		if end := waitEndedT(t, b, st.SandboxID); end.Reason != backend.ReasonExited || end.ExitCode != 0 {
			t.Fatalf("ended %+v", end)
		}

		var kept int64
		for _, name := range []string{fileOutput, fileOutput + ".1"} {
			if fi, err := os.Stat(filepath.Join(b.dir(st.SandboxID), name)); err == nil {
				kept += fi.Size()
			}
		}
		stored := logs(t, b, st.SandboxID)
		if kept > capBytes || int64(len(stored)) != kept || len(stored) < capBytes/2 || !strings.HasSuffix(want.String(), stored) {
			t.Errorf("%d bytes printed, %d on disk, %d read back; want at most %d, the newest, at least half of it",
				want.Len(), kept, len(stored), capBytes)
		}
		// The follower got an in-order selection: its numbered lines increase, and it ends as the output does.
		last := 0
		for _, l := range strings.Split(string(followed), "\n") {
			var n int
			if _, err := fmt.Sscanf(l, "line %010d", &n); err == nil && len(l) == len("line 0000000000") {
				if n <= last {
					t.Fatalf("followed line %d after %d", n, last)
				}
				last = n
			}
		}
		if !strings.HasSuffix(string(followed), strings.Repeat("x", capBytes/4)+"\nlast\n") || len(followed) > want.Len() {
			t.Errorf("followed %d bytes ending %q; want at most %d ending with the last output", len(followed), followed[max(0, len(followed)-20):], want.Len())
		}

		if err := b.Remove(context.Background(), st.SandboxID); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(b.dir(st.SandboxID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("sandbox directory after Remove: %v", err)
		}
		if _, err := b.Logs(context.Background(), st.SandboxID, false); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Logs after Remove = %v, want ErrNotFound", err)
		}
	})
}

// TestProbe: what `tamarack doctor` prints for the local backend, one finding per thing Check needs; on
// a host that runs sandboxes none fails, and they say what was found.
func TestProbe(t *testing.T) {
	t.Parallel()
	b := newBackend(t, RuntimeRunc)
	var names []string
	for _, f := range b.Probe(context.Background()) {
		names = append(names, f.Name)
		if f.Level == LevelFail || f.Detail == "" {
			t.Errorf("%s: %s %q", f.Name, f.Level, f.Detail)
		}
		for name, want := range map[string]string{"runtime": "runc version", "cgroups": "controllers", "uid ranges": "free",
			"user namespaces": "a user namespace was made"} {
			if f.Name == name && !strings.Contains(f.Detail, want) {
				t.Errorf("%s: %q lacks %q", f.Name, f.Detail, want)
			}
		}
	}
	want := []string{"root", "runtime", "init", "tools", "user namespaces", "uid ranges", "loop devices", "host view", "cgroups"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("findings %v, want %v", names, want)
	}
}
