package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/logfile"
)

// The binary that runs `tamarack serve` is re-executed in two helper roles, chosen by environment
// variable, so that the sandbox machinery ships as one file:
//
//   - shim (envShim=<sandbox dir>): the per-sandbox supervisor. Start launches it in its own session, so
//     it outlives serve; it starts bubblewrap, records the start, waits, records the end in state.json.
//   - enter (envEnter=<cgroup.procs files>): writes its own PID into the sandbox's cgroups and execs its
//     arguments. A Go program cannot run code between fork and exec, so this is how bubblewrap (and a
//     Terminal's nsenter) is already inside the cgroup before it runs: every descendant is limited.
const (
	envShim  = "TAMARACK_SANDBOX_SHIM"
	envEnter = "TAMARACK_SANDBOX_ENTER"
	// envKeepFDs is how many file descriptors (0..n-1) enter passes on; every other one is closed on
	// exec, so nothing serve happened to inherit (a pipe from its parent, a socket from systemd)
	// leaks into a sandbox.
	envKeepFDs = "TAMARACK_SANDBOX_KEEP_FDS"
)

// MaybeRunShim runs the shim or enter role if this process was started as one, and then exits; otherwise
// it returns at once. main must call it first, before flags, config or anything that starts goroutines
// with side effects; tests of this package call it from TestMain.
func MaybeRunShim() {
	if files := os.Getenv(envEnter); files != "" {
		keep, err := strconv.Atoi(os.Getenv(envKeepFDs))
		if err != nil {
			keep = 3
		}
		os.Exit(runEnter(strings.Split(files, "\n"), keep, os.Args[1:]))
	}
	if dir := os.Getenv(envShim); dir != "" {
		os.Exit(runShim(dir))
	}
}

func runEnter(procsFiles []string, keepFDs int, argv []string) int {
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, f := range procsFiles {
		if err := os.WriteFile(f, pid, 0); err != nil {
			fmt.Fprintf(os.Stderr, "tamarack: join sandbox cgroup %s: %v\n", f, err)
			return 125
		}
	}
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "tamarack: enter: no command")
		return 125
	}
	if err := cloexecFrom(keepFDs); err != nil {
		fmt.Fprintf(os.Stderr, "tamarack: close inherited descriptors: %v\n", err)
		return 125
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envEnter+"=") && !strings.HasPrefix(kv, envKeepFDs+"=") {
			env = append(env, kv)
		}
	}
	err := syscall.Exec(argv[0], argv, env)
	fmt.Fprintf(os.Stderr, "tamarack: exec %s: %v\n", argv[0], err)
	return 126
}

// runShim supervises one sandbox. Its stdout and stderr are <dir>/shim.log; fd 3 is the ready pipe to
// Start, which gets "ok\n" once the sandbox runs or one line of error. The shim must survive serve: it
// ignores the signals a dying terminal or process group would send it.
func runShim(dir string) int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// Processes orphaned inside the sandbox (bwrap's inner init when the outer bwrap dies first) come to
	// the shim instead of PID 1, which in a container may never reap them: the shim reaps them at the end.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("not a subreaper; orphans go to init", "error", err)
	}
	ready := os.NewFile(3, "ready")
	fail := func(st *state, msg string) int {
		log.Error("sandbox failed to start", "dir", dir, "error", msg)
		if st != nil {
			st.State, st.Reason, st.Message, st.EndedAt = backend.StateExited, backend.ReasonFailed, msg, time.Now().UTC()
			if err := writeJSON(filepath.Join(dir, fileState), st); err != nil {
				log.Error("write state", "error", err)
			}
		}
		if ready != nil {
			fmt.Fprintln(ready, "error: "+msg)
			ready.Close()
		}
		return 1
	}

	t0 := time.Now()
	var l launch
	if err := readJSON(filepath.Join(dir, fileLaunch), &l); err != nil {
		return fail(nil, err.Error())
	}
	self, err := identify(os.Getpid())
	if err != nil {
		return fail(nil, err.Error())
	}
	st := &state{ID: l.ID, BootID: bootID(), State: backend.StatePending, Shim: self, ExitCode: -1, Cgroup: l.Cgroup}
	// Recorded before anything can fail, so that a shim dying during setup is seen as such (pending
	// with a dead shim) instead of as a Start still in flight.
	if err := writeJSON(filepath.Join(dir, fileState), st); err != nil {
		return fail(nil, err.Error())
	}

	out, err := logfile.Create(filepath.Join(dir, fileOutput), l.LogBytes)
	if err != nil {
		return fail(st, err.Error())
	}
	defer out.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return fail(st, err.Error())
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(st, err.Error())
	}
	cmd := exec.Command(exe, l.Argv...)
	cmd.Env = []string{envEnter + "=" + strings.Join(l.Cgroup.procsFiles(), "\n"), envKeepFDs + "=4"}
	// The sandbox's stdout and stderr are one pipe that the shim copies into the capped log (a file would
	// grow without bound). Wait returns once the copy has drained it, so all the sandbox printed is in the
	// log before its end is recorded; WaitDelay bounds that should anything outside the sandbox's PID
	// namespace still hold the pipe.
	sink := &outputSink{w: out, log: log}
	cmd.Stdout, cmd.Stderr = sink, sink
	cmd.WaitDelay = 10 * time.Second
	cmd.ExtraFiles = []*os.File{statusW} // fd 3: bwrap --json-status-fd 3
	if err := cmd.Start(); err != nil {
		return fail(st, err.Error())
	}
	statusW.Close()

	// bwrap writes {"child-pid": N, ...} once the namespaces are set up and the sandbox's init runs,
	// then {"exit-code": N} when it ends. EOF without the first means it never started.
	dec := json.NewDecoder(statusR)
	var first struct {
		ChildPID int `json:"child-pid"`
	}
	if err := dec.Decode(&first); err != nil || first.ChildPID == 0 {
		_ = cmd.Wait()
		return fail(st, "bubblewrap did not start the sandbox: "+lastLine(filepath.Join(dir, fileOutput)))
	}
	tInit := time.Now()
	// bwrap reports the init's PID right after cloning it, before the init has built the sandbox's
	// filesystem. "Running" means the command itself runs, so wait for the init's child to have
	// exec'd it; until then nsenter would find a half-built root.
	if err := waitExec(first.ChildPID, l.Cgroup, 10*time.Second); err != nil {
		_ = l.Cgroup.killAll()
		_ = cmd.Wait()
		return fail(st, "sandbox did not start: "+err.Error()+": "+lastLine(filepath.Join(dir, fileOutput)))
	}
	st.StartedAt = time.Now().UTC()
	log.Info("sandbox running", "id", l.ID, "setup", time.Since(t0), "bwrap_init", tInit.Sub(t0))
	st.Bwrap, _ = identify(cmd.Process.Pid)
	st.Init, _ = identify(first.ChildPID)
	st.State = backend.StateRunning
	if err := writeJSON(filepath.Join(dir, fileState), st); err != nil {
		// Without a state file nobody can find this sandbox again: kill it rather than run blind.
		_ = l.Cgroup.killAll()
		_ = cmd.Wait()
		return fail(st, "write state: "+err.Error())
	}
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close() // serve may be gone already; nothing to do about EPIPE
	}

	var last struct {
		ExitCode *int `json:"exit-code"`
	}
	for dec.Decode(&last) == nil && last.ExitCode == nil {
	}
	waitErr := cmd.Wait()
	st.EndedAt = time.Now().UTC()
	switch {
	case last.ExitCode != nil:
		st.ExitCode = *last.ExitCode
	case cmd.ProcessState != nil:
		st.ExitCode = exitCode(cmd.ProcessState)
	}
	log.Info("sandbox ended", "id", l.ID, "exit_code", st.ExitCode, "wait", waitErr)

	// The sandbox's init has exited, so the kernel has killed its PID namespace; what may remain are
	// processes that joined the cgroup from outside it (a Terminal's nsenter). Kill them, wait until the
	// cgroup is empty, and only then read the OOM counter and remove it.
	deadline := time.Now().Add(30 * time.Second)
	for !l.Cgroup.empty() && time.Now().Before(deadline) {
		_ = l.Cgroup.killAll()
		reapOrphans()
		time.Sleep(5 * time.Millisecond)
	}
	reapOrphans()
	st.Reason = endReason(dir, st.ExitCode, l.Cgroup.oomKills())
	st.State = backend.StateExited
	for l.Cgroup.exists() && time.Now().Before(deadline) {
		if l.Cgroup.remove() == nil {
			break
		}
		time.Sleep(5 * time.Millisecond) // rmdir is EBUSY until the last exiting task is reaped
	}
	if err := writeJSON(filepath.Join(dir, fileState), st); err != nil {
		log.Error("write final state", "error", err)
		return 1
	}
	return 0
}

// outputSink takes the sandbox's output into its log and never fails: a copy that stopped would leave
// the sandbox blocked on a full pipe, so output the log cannot take (disk full) is dropped and said once
// per failure in shim.log.
type outputSink struct {
	w       *logfile.Writer
	log     *slog.Logger
	failing bool
}

func (s *outputSink) Write(p []byte) (int, error) {
	_, err := s.w.Write(p)
	if err != nil && !s.failing {
		s.log.Error("sandbox output dropped", "error", err)
	}
	s.failing = err != nil
	return len(p), nil
}

// reapOrphans collects every exited child the shim adopted as subreaper, without blocking.
func reapOrphans() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// endReason decides why a sandbox ended. OOM wins: a sandbox stopped while thrashing at its limit was
// still killed by its limit. bwrap reports death by signal N as 128+N, indistinguishable from a process
// that exits with that code; both count as killed.
func endReason(dir string, code, oomKills int) string {
	switch {
	case oomKills > 0:
		return backend.ReasonOOMKilled
	case exists(filepath.Join(dir, fileStop)):
		return backend.ReasonStopped
	case code > 128 || code < 0:
		return backend.ReasonKilled
	default:
		return backend.ReasonExited
	}
}

func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// lastLine returns the last non-empty line of a file, for error messages from bwrap.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 4096 {
		_, _ = f.Seek(-4096, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if s := lines[len(lines)-1]; s != "" {
		return s
	}
	return errors.New("no output").Error()
}

// waitExec polls until a child of the sandbox's init runs a program other than bwrap, or the init
// has exited (the command ran and ended, or could not be executed), or max passes.
func waitExec(initPID int, cg cgroupSet, max time.Duration) error {
	initExe, err := os.Stat("/proc/" + strconv.Itoa(initPID) + "/exe")
	if err != nil {
		return nil // the init is gone already: the command ran and ended, or never could
	}
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		pids, err := cg.pids()
		if err != nil {
			return err
		}
		for _, p := range pids {
			if ppid(p) != initPID {
				continue
			}
			exe, err := os.Stat("/proc/" + strconv.Itoa(p) + "/exe")
			if err == nil && !os.SameFile(exe, initExe) {
				return nil
			}
		}
		if _, err := procStart(initPID); err != nil {
			// It ran and is done already (or exec failed, which bwrap reports in the output and as
			// exit code 1): either way the caller reads the exit code next.
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("command not running after %v", max)
}

// ppid returns the parent PID of pid, or 0.
func ppid(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// cloexecFrom marks every descriptor from n up close-on-exec.
func cloexecFrom(n int) error {
	if err := unix.CloseRange(uint(n), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	// close_range appeared in Linux 5.11; walk /proc/self/fd before that.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < n {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return err
		}
	}
	return nil
}
