package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tamarack-ai/tamarack/platform/natspipe"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Exec streams: a command without a terminal (ssh's exec requests, scp, rsync) needs its stdout and stderr
// apart, byte for byte, and its exit code. Down the pipe (testbed → agent) go the command's stdin bytes as they
// are, the client's CloseWrite being stdin's EOF; up it (agent → testbed) go frames: a kind byte, a big-endian
// uint32 length, the payload. Kinds: stdout and stderr data, then one exit frame (a big-endian int32) before
// the agent closes.

const (
	frameStdout byte = 1
	frameStderr byte = 2
	frameExit   byte = 3
	// frameMax bounds one frame's payload, so a peer's length cannot make the reader allocate without bound.
	frameMax = 1 << 20
)

var _ backend.Execer = (*Client)(nil)

// Exec runs cmd in the sandbox without a terminal through the agent. A backend that cannot answers
// backend.ErrNotSupported. ctx ending closes the stream, which kills the command.
func (c *Client) Exec(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	octx, cancel := context.WithTimeout(ctx, c.streamTimeout)
	p, err := c.open(octx, events.AgentOpExec, events.AgentStreamV1{SandboxID: id, Command: cmd}, natspipe.Options{})
	cancel()
	if err != nil {
		return -1, err
	}
	defer p.Close()
	stop := context.AfterFunc(ctx, func() { _ = p.Close() })
	defer stop()
	go func() {
		if stdin != nil {
			if _, err := io.Copy(p, stdin); err != nil {
				return
			}
		}
		_ = p.CloseWrite()
	}()
	var hdr [5]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(p, hdr[:]); err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, fmt.Errorf("exec %s: the stream ended without an exit status: %w", id, err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > frameMax {
			return -1, fmt.Errorf("exec %s: frame of %d bytes: %w", id, n, natspipe.ErrProtocol)
		}
		switch hdr[0] {
		case frameExit:
			var code [4]byte
			if n != 4 {
				return -1, fmt.Errorf("exec %s: exit frame of %d bytes: %w", id, n, natspipe.ErrProtocol)
			}
			if _, err := io.ReadFull(p, code[:]); err != nil {
				return -1, fmt.Errorf("exec %s: %w", id, err)
			}
			return int(int32(binary.BigEndian.Uint32(code[:]))), nil
		case frameStdout, frameStderr:
			w := stdout
			if hdr[0] == frameStderr {
				w = stderr
			}
			if w == nil {
				w = io.Discard
			}
			for n > 0 {
				m, err := io.ReadFull(p, buf[:min(int(n), len(buf))])
				if err != nil {
					return -1, fmt.Errorf("exec %s: %w", id, err)
				}
				if _, err := w.Write(buf[:m]); err != nil {
					return -1, fmt.Errorf("exec %s: %w", id, err)
				}
				n -= uint32(m)
			}
		default:
			return -1, fmt.Errorf("exec %s: frame kind %d: %w", id, hdr[0], natspipe.ErrProtocol)
		}
	}
}

// frameWriter writes one kind of frame to the pipe; the two writers of one stream share mu, so frames never
// interleave.
type frameWriter struct {
	p    io.Writer
	mu   *sync.Mutex
	kind byte
	fail func()
}

func (w frameWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), 32<<10)
		if err := w.frame(w.kind, b[:n]); err != nil {
			w.fail()
			return written, err
		}
		written += n
		b = b[n:]
	}
	return written, nil
}

func (w frameWriter) frame(kind byte, b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	msg := make([]byte, 5+len(b))
	msg[0] = kind
	binary.BigEndian.PutUint32(msg[1:], uint32(len(b)))
	copy(msg[5:], b)
	_, err := w.p.Write(msg)
	return err
}

// stdinReader is the pipe as the command's stdin: a failure other than the client's EOF (it closed the pipe,
// or vanished) ends the command.
type stdinReader struct {
	p    io.Reader
	fail func()
}

func (r stdinReader) Read(b []byte) (int, error) {
	n, err := r.p.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		r.fail()
	}
	return n, err
}

// exec runs the command in the sandbox with the pipe as its streams, then sends its exit code and closes.
func (s *Server) exec(ctx context.Context, r events.AgentStreamV1) (events.AgentEmptyV1, error) {
	ex, ok := s.cfg.Backend.(backend.Execer)
	if !ok {
		return events.AgentEmptyV1{}, toProblem(fmt.Errorf("exec without a terminal: %w", backend.ErrNotSupported))
	}
	if len(r.Command) == 0 {
		return events.AgentEmptyV1{}, toProblem(fmt.Errorf("exec: no command: %w", backend.ErrInvalidSpec))
	}
	if _, err := s.cfg.Backend.Inspect(ctx, r.SandboxID); err != nil {
		return events.AgentEmptyV1{}, toProblem(err)
	}
	p, err := s.join(r, natspipe.Options{})
	if err != nil {
		return events.AgentEmptyV1{}, err
	}
	run, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	var mu sync.Mutex
	s.pipes.Add(1)
	go func() {
		defer s.pipes.Done()
		defer stop()
		defer cancel()
		out := frameWriter{p: p, mu: &mu, kind: frameStdout, fail: cancel}
		errw := frameWriter{p: p, mu: &mu, kind: frameStderr, fail: cancel}
		code, err := ex.Exec(run, r.SandboxID, r.Command, stdinReader{p: p, fail: cancel}, out, errw)
		if err != nil {
			if run.Err() == nil {
				msg := "tamarack: the command could not run"
				if errors.Is(err, backend.ErrNotRunning) || errors.Is(err, backend.ErrNotFound) {
					msg = "tamarack: the sandbox is not running"
				}
				s.cfg.Log.Warn("exec", "sandbox", r.SandboxID, "err", err)
				_, _ = errw.Write([]byte(msg + "\n"))
			}
			code = 255
		}
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], uint32(int32(code)))
		_ = out.frame(frameExit, c[:])
		_ = p.CloseWrite()
		_ = p.Close()
	}()
	return events.AgentEmptyV1{}, nil
}
