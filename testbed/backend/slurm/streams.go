package slurm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/logfile"
)

// followEvery is how often a follower looks for more output on the shared filesystem.
const followEvery = 250 * time.Millisecond

// Logs reads the job's output file, which the step fills with what the sandbox prints.
func (b *Backend) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	if _, err := b.status(ctx, id); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	f, err := logfile.Open(filepath.Join(b.dir(id), FileOutput))
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", id, err)
	}
	if !follow {
		return f, nil
	}
	return logfile.Follow(ctx, f, followEvery, func() bool {
		st, err := b.status(ctx, id)
		return err != nil || st.Ended()
	}), nil
}

// running returns the job of a running sandbox, or ErrNotRunning.
func (b *Backend) running(ctx context.Context, id string) (string, error) {
	st, err := b.status(ctx, id)
	if err != nil {
		return "", err
	}
	if st.State != backend.StateRunning {
		return "", fmt.Errorf("%s: %w", id, backend.ErrNotRunning)
	}
	raw, err := os.ReadFile(filepath.Join(b.dir(id), FileJob))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(raw)), nil
}

// srun is a command run by srun inside the sandbox's job, beside its batch step: `<StepCommand…>
// slurm-step <args…>` on the job's node.
func (b *Backend) srun(jobID string, pty bool, args ...string) *exec.Cmd {
	argv := []string{"--jobid=" + jobID, "--overlap", "--quiet"}
	if pty {
		argv = append(argv, "--pty")
	}
	argv = append(append(append(argv, b.opts.StepCommand...), "slurm-step"), args...)
	c := exec.Command(b.opts.Srun, argv...)
	if b.opts.SlurmConf != "" {
		c.Env = append(os.Environ(), "SLURM_CONF="+b.opts.SlurmConf)
	}
	// Its own session, so that it is srun's controlling terminal (--pty) and a signal to the agent's group
	// does not end every terminal.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if b.uid >= 0 {
		// Only the job's user may start steps in its job, root included.
		c.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(b.uid), Gid: uint32(b.gid)}
	}
	return c
}

// Terminal runs `srun --jobid --overlap --pty` into the job, where the step opens a terminal inside the
// sandbox through the local runtime; srun's own terminal is a PTY here whose size the caller sets.
func (b *Backend) Terminal(ctx context.Context, id string, cmd []string) (backend.Terminal, error) {
	jobID, err := b.running(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	args := []string{StepTerminal, b.dir(id)}
	if len(cmd) > 0 {
		args = append(append(args, "--"), cmd...)
	}
	c := b.srun(jobID, true, args...)
	ptmx, err := pty.StartWithSize(c, &pty.Winsize{Cols: 80, Rows: 24})
	if err != nil {
		return nil, fmt.Errorf("terminal %s: srun: %w", id, err)
	}
	t := &terminal{ptmx: ptmx, cmd: c, done: make(chan struct{})}
	go func() { _ = c.Wait(); close(t.done) }()
	return t, nil
}

type terminal struct {
	ptmx *os.File
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

func (t *terminal) Read(p []byte) (int, error) {
	n, err := t.ptmx.Read(p)
	if err != nil && errors.Is(err, syscall.EIO) {
		err = io.EOF // Linux: the other side of the PTY closed, srun has exited
	}
	return n, err
}

func (t *terminal) Write(p []byte) (int, error) { return t.ptmx.Write(p) }

func (t *terminal) Resize(cols, rows uint16) error {
	return pty.Setsize(t.ptmx, &pty.Winsize{Cols: cols, Rows: rows})
}

// Close ends srun, whose end ends the step's terminal in the sandbox (the PTY hangs up).
func (t *terminal) Close() error {
	t.once.Do(func() {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.done:
		case <-time.After(5 * time.Second):
			_ = t.cmd.Process.Kill()
			<-t.done
		}
		t.ptmx.Close()
	})
	return nil
}

// DialPort runs `srun --jobid --overlap` into the job, where the step connects to the port on the
// sandbox's loopback and copies between it and srun's standard input and output.
func (b *Backend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	jobID, err := b.running(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("dial %s: port %d out of range", id, port)
	}
	c := b.srun(jobID, false, StepDial, b.dir(id), strconv.Itoa(port))
	// Pipes of our own, not StdinPipe/StdoutPipe: Wait, which runs as soon as srun exits, would close
	// those under a reader that has not drained them yet.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c.Stdin, c.Stdout, c.Stderr = inR, outW, io.Discard
	err = c.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("dial %s: srun: %w", id, err)
	}
	conn := &stdioConn{in: inW, out: outR, cmd: c, port: port, done: make(chan struct{})}
	go func() { _ = c.Wait(); close(conn.done) }()
	return conn, nil
}

// stdioConn is a connection carried by srun's standard input and output.
type stdioConn struct {
	in   io.WriteCloser
	out  io.ReadCloser
	cmd  *exec.Cmd
	port int
	done chan struct{}
	once sync.Once
}

func (c *stdioConn) Read(p []byte) (int, error)  { return c.out.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error) { return c.in.Write(p) }

// CloseWrite closes srun's input: the step half-closes the sandbox's connection.
func (c *stdioConn) CloseWrite() error { return c.in.Close() }

func (c *stdioConn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		c.out.Close()
	})
	return nil
}

func (c *stdioConn) LocalAddr() net.Addr { return stdioAddr("srun") }
func (c *stdioConn) RemoteAddr() net.Addr {
	return stdioAddr("sandbox:" + strconv.Itoa(c.port))
}

// Deadlines are not supported: the stream is a pipe to srun. Callers close the connection instead.
func (c *stdioConn) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (c *stdioConn) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (c *stdioConn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }

type stdioAddr string

func (a stdioAddr) Network() string { return "srun" }
func (a stdioAddr) String() string  { return string(a) }
