package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
)

var (
	_ backend.Execer = (*Backend)(nil)
	_ backend.Homer  = (*Backend)(nil)
)

// execKillDelay is how long a cancelled Exec waits after asking runc to end the command (SIGTERM, which runc
// passes on to it) before it kills runc and closes the streams.
const execKillDelay = 5 * time.Second

// Exec runs cmd in the sandbox without a terminal through the runtime's exec in the foreground:
//
//	runc exec <id> cmd…
//
// runc joins the sandbox exactly as for Terminal (namespaces, cgroup, capabilities, no_new_privs, seccomp,
// the sandbox's root user) and hands the command this process's pipes as its stdin, stdout and stderr, so
// bytes pass unchanged; it waits for the command, forwards the signals it gets to it, and exits with the
// command's exit status. Cancelling ctx sends runc SIGTERM (passed on), then kills it after execKillDelay.
func (b *Backend) Exec(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if _, err := b.running(id); err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return -1, fmt.Errorf("exec %s: empty command", id)
	}
	l := b.launchOf(id)
	c := l.Runtime.command(ctx, append([]string{"exec", id}, cmd...)...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = execKillDelay
	c.Stdout, c.Stderr = stdout, stderr
	in, err := c.StdinPipe()
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	if err := c.Start(); err != nil {
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	// Not waited for: a reader that never ends (an idle SSH channel) must not hold the command's end. Closing
	// the pipe after the end makes its next write fail.
	go func() {
		if stdin != nil {
			_, _ = io.Copy(in, stdin)
		}
		_ = in.Close()
	}()
	err = c.Wait()
	_ = in.Close()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", id, err)
	}
	return 0, nil
}

// Home returns the running sandbox's home on this host: <dir>/home, the mount of its home filesystem, owned
// by the host uid and gid of the sandbox's root.
func (b *Backend) Home(ctx context.Context, id string) (backend.Home, error) {
	if _, err := b.running(id); err != nil {
		return backend.Home{}, fmt.Errorf("home: %w", err)
	}
	l := b.launchOf(id)
	return backend.Home{Path: filepath.Join(b.dir(id), "home"), UID: int(l.HostID), GID: int(l.HostID), Inside: ocispec.HomeDir}, nil
}
