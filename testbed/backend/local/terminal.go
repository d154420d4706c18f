package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Terminal starts cmd on a new PTY inside the sandbox. The process chain is
//
//	enter (joins the sandbox's cgroup) → nsenter (joins its namespaces and root, forks into its PID
//	namespace) → setpriv (drops every capability, sets no_new_privs) → cmd
//
// so the shell is limited, isolated and unprivileged exactly like the sandbox's own processes, and Stop
// kills it with the rest.
func (b *Backend) Terminal(ctx context.Context, id string, cmd []string) (backend.Terminal, error) {
	st, err := b.running(id)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	if b.opts.Nsenter == "" || b.opts.Setpriv == "" {
		return nil, fmt.Errorf("terminal %s: %w: nsenter or setpriv not found", id, backend.ErrUnavailable)
	}
	var l launch
	if err := readJSON(filepath.Join(b.dir(id), fileLaunch), &l); err != nil {
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	if len(cmd) == 0 {
		cmd = []string{"/bin/bash", "-l"}
	}
	argv := []string{b.opts.Nsenter,
		"--target", strconv.Itoa(st.Init.PID),
		"--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd", // the target's working directory: the sandbox home
		"--", b.opts.Setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
	}
	argv = append(argv, cmd...)
	c := exec.Command(b.opts.Executable, argv...)
	c.Env = append([]string{envEnter + "=" + strings.Join(st.Cgroup.procsFiles(), "\n"), envKeepFDs + "=3", "TERM=xterm-256color"}, l.Env...)
	// The init's identity was checked in running(); check again right after nsenter could have been
	// told a reused PID: if the init died in between, the new process is killed below.
	ptmx, err := pty.StartWithSize(c, &pty.Winsize{Cols: 80, Rows: 24})
	if err != nil {
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	if !st.Init.alive(st.BootID) {
		_ = c.Process.Kill()
		_ = c.Wait()
		ptmx.Close()
		return nil, fmt.Errorf("terminal %s: %w", id, backend.ErrNotRunning)
	}
	t := &terminal{ptmx: ptmx, cmd: c, done: make(chan struct{})}
	go func() {
		_ = c.Wait()
		close(t.done)
	}()
	return t, nil
}

type terminal struct {
	ptmx      *os.File
	cmd       *exec.Cmd
	done      chan struct{}
	closeOnce sync.Once
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

// Close hangs up the terminal and kills its process group, then waits for it.
func (t *terminal) Close() error {
	var err error
	t.closeOnce.Do(func() {
		err = t.ptmx.Close()
		// pty.Start made the process a session and group leader; SIGHUP lets shells exit cleanly,
		// SIGKILL makes sure. Anything a shell moved to another group is killed with the sandbox.
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGHUP)
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		<-t.done
	})
	return err
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
