package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
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

// The binary that runs `tamarack serve` is re-executed as the shim (envShim=<the backend's root>), the
// per-sandbox supervisor, so that the sandbox machinery ships as one file. It is started in its own
// session, so it outlives serve, and waits until Start gives it a sandbox (<root>/<id>); then it has runc
// create and start the sandbox, records the start, reaps the sandbox's init (it is the init's
// subreaper), frees what the sandbox held and records the end in state.json.
const envShim = "TAMARACK_SANDBOX_SHIM"

// MaybeRunShim runs the shim (or a Terminal's tty helper) if this process was started as one, and then
// exits; otherwise it returns at once. main must call it first, before flags, config or anything that
// starts goroutines with side effects; tests of this package call it from TestMain.
func MaybeRunShim() {
	if pidFile := os.Getenv(envTTY); pidFile != "" {
		os.Exit(runTTY(pidFile, os.Args[1:]))
	}
	if root := os.Getenv(envShim); root != "" {
		os.Exit(runShim(root))
	}
}

// runShim supervises one sandbox of the backend at root. fd 3 is the ready pipe to Start, which gets
// "ok\n" once the sandbox runs or one line of error; fd 4 is the go pipe from Start (waitGo), which names
// the sandbox; from then on its stdout and stderr are <root>/<id>/shim.log. The shim must survive serve:
// it ignores the signals a dying terminal or process group would send it.
func runShim(root string) int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	id, ok := waitGo(4)
	if !ok {
		return 0 // Start gave up before the launch record (or serve ended): nothing is the shim's to run
	}
	dir := filepath.Join(root, id)
	if err := validID(id); err != nil || !filepath.IsAbs(root) {
		fmt.Fprintf(os.NewFile(3, "ready"), "error: shim told sandbox %q of %q\n", id, root)
		return 1
	}
	if err := logTo(filepath.Join(dir, fileShim)); err != nil {
		fmt.Fprintln(os.NewFile(3, "ready"), "error: shim log: "+err.Error())
		return 1
	}
	_ = os.Chdir(dir)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// Nothing serve inherited (a pipe from its parent, a socket from systemd) reaches runc, and the
	// ready pipe stays with the shim.
	if err := cloexecFrom(3); err != nil {
		log.Warn("close inherited descriptors", "error", err)
	}
	// runc create leaves the sandbox's init orphaned: as subreaper the shim adopts and reaps it (and
	// runc's own short-lived helpers), instead of PID 1, which in a container may never reap them.
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
	st := pendingState(l, self) // as Start recorded it before the go

	out, err := logfile.Create(filepath.Join(dir, fileOutput), l.LogBytes)
	if err != nil {
		return fail(st, err.Error())
	}
	defer out.Close()
	// The sandbox's stdout and stderr are one pipe that the shim copies into the capped log (a file would
	// grow without bound). runc create builds the sandbox (namespaces, mounts, cgroup, seccomp) and
	// leaves its init waiting to exec the command, holding the pipe's write end as stdout and stderr (stdin
	// is /dev/null); runc's own errors go there too, where the user sees why their sandbox did not start.
	// Once runc create has exited only the sandbox holds the pipe, so the copy ends when the sandbox does.
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(st, err.Error())
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&outputSink{w: out, log: log}, outR)
		close(copied)
	}()
	// drain waits until all the sandbox printed is in the log, for at most max should anything outside
	// the sandbox's PID namespace still hold the pipe.
	drain := func(max time.Duration) {
		select {
		case <-copied:
		case <-time.After(max):
			log.Warn("sandbox output still open after its end; closing it")
		}
		outR.Close()
	}
	rt := l.Runtime
	release := func() {}
	if rt.gvisor() {
		if release, err = runscNetwork(dir); err != nil {
			outW.Close()
			drain(time.Second)
			return fail(st, "network: "+err.Error())
		}
	}
	create := rt.command(context.Background(), "create", "--bundle", dir, "--pid-file", filepath.Join(dir, filePID), l.ID)
	create.Stdout, create.Stderr = outW, outW
	tRuntime := time.Now()
	err = create.Run()
	release()
	outW.Close()
	if err != nil {
		_ = rt.delete(context.Background(), l.ID)
		drain(10 * time.Second)
		return fail(st, rt.name()+" create: "+lastLine(filepath.Join(dir, fileOutput)))
	}
	pid, err := readPID(filepath.Join(dir, filePID), time.Second)
	if err == nil {
		st.Init, err = identify(pid)
	}
	if err != nil {
		_ = rt.delete(context.Background(), l.ID)
		return fail(st, "sandbox init: "+err.Error())
	}
	tCreate := time.Now()
	if err := rt.run(context.Background(), "start", l.ID); err != nil {
		_ = rt.delete(context.Background(), l.ID)
		return fail(st, err.Error())
	}
	st.StartedAt = time.Now().UTC()
	log.Info("sandbox running", "id", l.ID, "setup", time.Since(t0), "create", tCreate.Sub(t0), "runtime", time.Since(tRuntime))
	st.State = backend.StateRunning
	if err := writeJSON(filepath.Join(dir, fileState), st); err != nil {
		// Without a state file nobody can find this sandbox again: kill it rather than run blind.
		_ = rt.delete(context.Background(), l.ID)
		return fail(st, "write state: "+err.Error())
	}
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close() // serve may be gone already; nothing to do about EPIPE
	}

	st.ExitCode = waitInit(pid, st.Init, st.BootID)
	st.EndedAt = time.Now().UTC()
	log.Info("sandbox ended", "id", l.ID, "exit_code", st.ExitCode)

	// The init has exited, so the kernel has killed its PID namespace, terminals included. Wait until
	// the cgroup is empty, and only then read the OOM counter and let runc delete it.
	deadline := time.Now().Add(30 * time.Second)
	for !l.Cgroup.empty() && time.Now().Before(deadline) {
		_ = l.Cgroup.killAll()
		reapOrphans()
		time.Sleep(5 * time.Millisecond)
	}
	reapOrphans()
	drain(10 * time.Second)
	st.Reason = endReason(dir, st.ExitCode, l.Cgroup.oomKills())
	st.State = backend.StateExited
	if err := teardown(context.Background(), dir, l); err != nil {
		log.Error("free the sandbox's resources", "error", err) // Stop and Remove try again
	}
	if err := writeJSON(filepath.Join(dir, fileState), st); err != nil {
		log.Error("write final state", "error", err)
		return 1
	}
	return 0
}

// shimGo starts what Start writes to the shim's go pipe once everything the shim reads is in place:
// "go <sandbox id>\n".
const shimGo = "go "

// waitGo waits on the go pipe fd until Start says go (the sandbox's ID, true) or closes it unsaid
// (false). The shim and its serve are the same binary, so there is always a pipe; a shim run by a serve
// from before it (the binary replaced under a running serve) finds none and refuses, and that Start
// fails with its error.
func waitGo(fd int) (string, bool) {
	f := os.NewFile(uintptr(fd), "go")
	defer f.Close()
	// At most one line of an ID's length: anything longer is not Start's.
	line, err := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	id, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), shimGo)
	return id, err == nil && ok
}

// logTo makes path (appended to) the shim's stdout and stderr.
func logTo(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return err
		}
	}
	return nil
}

// pendingState is the record of a sandbox whose shim has not yet reported it running.
func pendingState(l launch, shim procID) *state {
	return &state{ID: l.ID, BootID: bootID(), State: backend.StatePending, Shim: shim, ExitCode: -1, Cgroup: l.Cgroup, Slot: l.Slot, HostID: l.HostID}
}

// waitInit waits for the sandbox's init, which runc create left to the shim as subreaper, and returns
// its exit code (128+N when killed by signal N). If it is not the shim's child after all (a runtime that
// keeps its own parent process), it polls until the init is gone and returns -1.
func waitInit(pid int, init procID, boot string) int {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		switch {
		case err == nil && ws.Signaled():
			return 128 + int(ws.Signal())
		case err == nil && ws.Exited():
			return ws.ExitStatus()
		case errors.Is(err, unix.EINTR), err == nil:
			continue
		}
		for init.alive(boot) {
			time.Sleep(10 * time.Millisecond)
		}
		return -1
	}
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
// still killed by its limit. The init reports its command's death by signal N as 128+N,
// indistinguishable from a command that exits with that code; both count as killed.
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

// lastLine returns the last non-empty line of a file, for error messages from runc.
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
	if s := lastOf(string(data)); s != "" {
		return s
	}
	return "no output"
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
