package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Terminal starts cmd on a new PTY inside the sandbox through the runtime's own exec:
//
//	tty helper (subreaper) → runc exec --detach --tty --console-socket <socket> <id> cmd…
//
// runc joins the sandbox's user, PID, mount, network, IPC and UTS namespaces and its cgroup, and applies
// its capabilities, no_new_privs and seccomp filter before anything from the sandbox's filesystem runs;
// the process is the sandbox's root user (an unprivileged host uid), with the environment of config.json
// plus TERM and nothing of serve's. Inside, runc opens the PTY and sends its master end over the socket
// (SCM_RIGHTS) to this process; no host-root process ever enters the sandbox. runc accepts a console
// socket only when it detaches, leaving the process to whoever adopts orphans: the tty helper (this
// binary, envTTY) is a subreaper that runs runc and reaps the process, as containerd's shim does, so no
// zombie is left to serve or to PID 1. Stop kills the terminal with the rest of the sandbox.
//
// Under runsc the same exec runs the process as a task of the sandbox's Sentry, under the same
// capabilities, no_new_privs and seccomp profile: runsc opens the PTY on the host, sends its master end
// over the socket and gives the other end to the Sentry. Its pid file names runsc's own waiter, a host
// process outside the sandbox that runs nothing of it; Close kills the group inside with `runsc kill`.
func (b *Backend) Terminal(ctx context.Context, id string, cmd []string) (backend.Terminal, error) {
	st, err := b.running(id)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	l := b.launchOf(id)
	if len(cmd) == 0 {
		cmd = []string{"/bin/bash", "-l"}
	}
	// A private directory: sun_path holds 108 bytes, and nobody else may connect in between.
	// It lives until the helper has read runc's pid file and exited.
	tmp, err := os.MkdirTemp("", "tamarack-tty-")
	if err != nil {
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	sock := filepath.Join(tmp, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	defer ln.Close()
	pidFile, internalPIDFile := filepath.Join(tmp, "pid"), filepath.Join(tmp, "internal-pid")
	args := []string{"exec", "--detach", "--console-socket", sock, "--pid-file", pidFile}
	if l.Runtime.gvisor() {
		// runsc makes a terminal of its own whenever it gets a console socket (it has no --tty); its pid
		// file names its waiter on the host, the internal one the process inside the Sentry.
		args = append(args, "--internal-pid-file", internalPIDFile)
	} else {
		args = append(args, "--tty")
	}
	args = append(append(args, "--env", "TERM=xterm-256color", id), cmd...)
	c := exec.Command(b.opts.Executable, l.Runtime.argv(args...)...) // ctx bounds only the start, below
	c.Env = []string{envTTY + "=" + pidFile, "PATH=" + hostPath}
	// Its own session: no signal aimed at serve's process group reaches it; if serve dies, the PTY's
	// hang-up ends the shell and the helper with it.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var errOut strings.Builder
	c.Stdout, c.Stderr = &errOut, &errOut
	if err := c.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	done := make(chan struct{})
	go func() {
		_ = c.Wait()
		os.RemoveAll(tmp)
		close(done)
	}()
	fail := func(err error) (backend.Terminal, error) {
		_ = c.Process.Kill()
		<-done
		if msg := lastOf(errOut.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	ptmx, err := receiveConsole(ctx, ln, done)
	if err != nil {
		return fail(err)
	}
	pid, err := readPID(pidFile, 10*time.Second)
	if err != nil {
		ptmx.Close()
		return fail(err)
	}
	// A command that has already ended leaves nothing to kill on Close: proc stays zero, and its
	// output is still in the PTY to be read.
	proc, _ := identify(pid)
	internalPID := 0
	if l.Runtime.gvisor() {
		// runsc writes it before the pid file.
		internalPID, _ = readPID(internalPIDFile, 0)
	}
	// The init's identity was checked in running(); if the sandbox ended in between, runc exec failed
	// or its process dies with the PID namespace: either way, no terminal.
	if !st.Init.alive(st.BootID) {
		ptmx.Close()
		return fail(backend.ErrNotRunning)
	}
	t := &terminal{ptmx: ptmx, proc: proc, boot: st.BootID, helper: c, done: done, rt: l.Runtime, id: id, internalPID: internalPID}
	if err := t.Resize(80, 24); err != nil {
		t.Close()
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	return t, nil
}

// receiveConsole accepts runc's connection on ln and returns the PTY master it sends, or fails when
// ctx ends or runc exits first.
func receiveConsole(ctx context.Context, ln *net.UnixListener, runcDone <-chan struct{}) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			ch <- result{err: fmt.Errorf("receive console: %w", err)}
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			ch <- result{err: fmt.Errorf("receive console: no descriptor (%v)", err)}
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			ch <- result{err: fmt.Errorf("receive console: want one descriptor (%v)", err)}
			return
		}
		unix.CloseOnExec(fds[0])
		ch <- result{f: os.NewFile(uintptr(fds[0]), "ptmx")}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-runcDone:
		return nil, errors.New("runc exec did not send the console")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type terminal struct {
	ptmx *os.File
	// proc is the process runc exec started in the sandbox, seen from the host; under runsc, which runs
	// it inside the Sentry, the `runsc exec` process on the host that waits for it.
	proc      procID
	boot      string
	helper    *exec.Cmd
	done      chan struct{}
	closeOnce sync.Once
	// Under runsc: the runtime, the sandbox and the process's PID inside the sandbox.
	rt          ociRuntime
	id          string
	internalPID int
}

// Read returns io.EOF once the process has exited and its output is drained (Linux reports EIO then).
func (t *terminal) Read(p []byte) (int, error) {
	n, err := t.ptmx.Read(p)
	if errors.Is(err, syscall.EIO) {
		return n, io.EOF
	}
	return n, err
}

func (t *terminal) Write(p []byte) (int, error) { return t.ptmx.Write(p) }

func (t *terminal) Resize(cols, rows uint16) error {
	return pty.Setsize(t.ptmx, &pty.Winsize{Cols: cols, Rows: rows})
}

// Close hangs up the terminal and kills its process group, then waits for the helper to reap it.
func (t *terminal) Close() error {
	var err error
	t.closeOnce.Do(func() {
		err = t.ptmx.Close() // the hang-up: the shell's session gets SIGHUP
		if t.rt.gvisor() && t.proc.alive(t.boot) {
			killTerminal(t.rt, t.id, t.internalPID)
		}
		// runc exec made the process a session and group leader; SIGKILL makes sure. Anything a shell
		// moved to another group is killed with the sandbox.
		if t.proc.alive(t.boot) {
			_ = syscall.Kill(-t.proc.PID, syscall.SIGKILL)
			_ = syscall.Kill(t.proc.PID, syscall.SIGKILL)
		}
		<-t.done
	})
	return err
}

// envTTY selects the tty helper role (MaybeRunShim); its value is runc's pid file.
const envTTY = "TAMARACK_SANDBOX_TTY"

// runTTY is the tty helper: a subreaper that runs `runc exec --detach …` (argv), adopts the process runc
// leaves behind, reaps it and everything it orphans, and exits with its exit code (125 when runc
// failed; runc's error is on stderr).
func runTTY(pidFile string, argv []string) int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "tamarack: tty helper: subreaper: %v\n", err)
		return 125
	}
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "tamarack: tty helper: no command")
		return 125
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = []string{"PATH=" + hostPath}
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		return 125
	}
	// runc wrote it before returning; the caller removes it only once this helper has exited.
	pid, err := readPID(pidFile, time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tamarack: tty helper: %v\n", err)
	}
	code := -1
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: nothing left
			if code < 0 {
				code = 125
			}
			return code
		}
		if got == pid {
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
}

// DialPort connects to 127.0.0.1:port inside the sandbox's network namespace. The socket is created by
// a goroutine locked to an OS thread that has entered that namespace; a socket belongs to the namespace
// it was created in, so the connection keeps working after the thread returns to the host's.
func (b *Backend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("dial %s: port %d out of range", id, port)
	}
	st, err := b.running(id)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if l := b.launchOf(id); l.Runtime.gvisor() {
		c, err := dialRunsc(ctx, l.Runtime, id, port)
		if err != nil {
			return nil, fmt.Errorf("dial %s port %d: %w", id, port, err)
		}
		return c, nil
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(st.Init.PID) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", id, backend.ErrNotRunning)
	}
	defer ns.Close()
	// Opened, then verified: if the PID was reused between running() and Open, this catches it.
	if !st.Init.alive(st.BootID) {
		return nil, fmt.Errorf("dial %s: %w", id, backend.ErrNotRunning)
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer host.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		// Only a thread back in the host namespace may run other goroutines; if the way back fails,
		// stay locked so the runtime discards the thread when this goroutine ends.
		if unix.Setns(int(host.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("dial %s port %d: %w", id, port, r.err)
	}
	return r.c, nil
}
