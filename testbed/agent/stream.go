package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natspipe"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Streams: logs, terminals and ports cross NATS as natspipe pipes. The client joins its end of a new pipe
// first, then asks the agent to join the other end and connect it to the sandbox; the agent answers once it
// has, or with the error that stops it (the sandbox is not running, the port refuses).

// resize is the terminal's control message.
type resize struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

func newPipeID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// open joins the client's end of a new pipe and asks the agent to join the other with op.
func (c *Client) open(ctx context.Context, op string, r events.AgentStreamV1, opt natspipe.Options) (*natspipe.Pipe, error) {
	r.Pipe = newPipeID()
	up, down := events.AgentPipe(c.pool, c.agent, r.Pipe)
	p, err := natspipe.New(c.bus.Conn(), c.bus.Subject(up), c.bus.Subject(down), opt)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.streamTimeout)
		defer cancel()
	}
	if _, err := call[events.AgentStreamV1, events.AgentEmptyV1](ctx, c, op, r); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// Logs streams the sandbox's output from the agent. ctx ending closes the stream.
func (c *Client) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	p, err := c.open(ctx, events.AgentOpLogs, events.AgentStreamV1{SandboxID: id, Follow: follow}, natspipe.Options{})
	if err != nil {
		return nil, err
	}
	// Nothing goes to the agent, but the write side stays open: the agent takes the end of this direction
	// for the reader's going away (natspipe's EOF does not tell a half-close from a close).
	stop := context.AfterFunc(ctx, func() { _ = p.Close() })
	return &logReader{Pipe: p, stop: stop}, nil
}

type logReader struct {
	*natspipe.Pipe
	stop func() bool
}

func (r *logReader) Close() error {
	r.stop()
	return r.Pipe.Close()
}

// Terminal opens a terminal in the sandbox through the agent; its size follows Resize.
func (c *Client) Terminal(ctx context.Context, id string, cmd []string) (backend.Terminal, error) {
	p, err := c.open(ctx, events.AgentOpTerminal, events.AgentStreamV1{SandboxID: id, Command: cmd}, natspipe.Options{})
	if err != nil {
		return nil, err
	}
	return &terminal{Pipe: p}, nil
}

type terminal struct{ *natspipe.Pipe }

func (t *terminal) Resize(cols, rows uint16) error {
	b, _ := json.Marshal(resize{Cols: cols, Rows: rows})
	return t.SendControl(b)
}

// DialPort connects to a port of the sandbox through the agent.
func (c *Client) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	return c.open(ctx, events.AgentOpDial, events.AgentStreamV1{SandboxID: id, Port: port}, natspipe.Options{})
}

// serveStreams subscribes to the stream commands.
func (s *Server) serveStreams(ctx context.Context, add func(*nats.Subscription, error) error) []error {
	p, a := s.cfg.PoolID, s.cfg.AgentID
	q := "agent-" + a
	ep := func(op string) eventbus.Endpoint[events.AgentStreamV1, events.AgentEmptyV1] {
		return events.AgentCommand[events.AgentStreamV1, events.AgentEmptyV1](p, a, op)
	}
	return []error{
		add(eventbus.Serve(ctx, s.cfg.Bus, ep(events.AgentOpLogs), q, s.logs)),
		add(eventbus.Serve(ctx, s.cfg.Bus, ep(events.AgentOpTerminal), q, s.terminal)),
		add(eventbus.Serve(ctx, s.cfg.Bus, ep(events.AgentOpDial), q, s.dial)),
		add(eventbus.Serve(ctx, s.cfg.Bus, ep(events.AgentOpExec), q, s.exec)),
		add(eventbus.Serve(ctx, s.cfg.Bus, ep(events.AgentOpSFTP), q, s.sftp)),
	}
}

// join joins the agent's end of the pipe a stream request names.
func (s *Server) join(r events.AgentStreamV1, opt natspipe.Options) (*natspipe.Pipe, error) {
	up, down := events.AgentPipe(s.cfg.PoolID, s.cfg.AgentID, r.Pipe)
	return natspipe.New(s.cfg.Bus.Conn(), s.cfg.Bus.Subject(down), s.cfg.Bus.Subject(up), opt)
}

// logs copies the sandbox's output into the pipe until it ends (or, following, the sandbox ends) or the
// client goes away.
func (s *Server) logs(ctx context.Context, r events.AgentStreamV1) (events.AgentEmptyV1, error) {
	rc, err := s.cfg.Backend.Logs(ctx, r.SandboxID, r.Follow)
	if err != nil {
		return events.AgentEmptyV1{}, toProblem(err)
	}
	p, err := s.join(r, natspipe.Options{})
	if err != nil {
		rc.Close()
		return events.AgentEmptyV1{}, err
	}
	s.pipes.Add(2)
	go func() { // the client's close (or the agent's end) unblocks a follow that has nothing to say
		defer s.pipes.Done()
		_, _ = io.Copy(io.Discard, p)
		rc.Close()
	}()
	go func() {
		defer s.pipes.Done()
		_, _ = io.Copy(p, rc)
		rc.Close()
		_ = p.CloseWrite()
	}()
	context.AfterFunc(ctx, func() { _ = p.Close() })
	return events.AgentEmptyV1{}, nil
}

// terminal connects a new terminal in the sandbox to the pipe; control messages resize it.
func (s *Server) terminal(ctx context.Context, r events.AgentStreamV1) (events.AgentEmptyV1, error) {
	term, err := s.cfg.Backend.Terminal(ctx, r.SandboxID, r.Command)
	if err != nil {
		return events.AgentEmptyV1{}, toProblem(err)
	}
	if r.Cols > 0 && r.Rows > 0 {
		_ = term.Resize(r.Cols, r.Rows)
	}
	p, err := s.join(r, natspipe.Options{OnControl: func(b []byte) {
		var rs resize
		if json.Unmarshal(b, &rs) == nil && rs.Cols > 0 && rs.Rows > 0 {
			_ = term.Resize(rs.Cols, rs.Rows)
		}
	}})
	if err != nil {
		term.Close()
		return events.AgentEmptyV1{}, err
	}
	s.splice(ctx, p, term)
	return events.AgentEmptyV1{}, nil
}

// dial connects a TCP connection to the sandbox's port to the pipe.
func (s *Server) dial(ctx context.Context, r events.AgentStreamV1) (events.AgentEmptyV1, error) {
	conn, err := s.cfg.Backend.DialPort(ctx, r.SandboxID, r.Port)
	if err != nil {
		return events.AgentEmptyV1{}, toProblem(err)
	}
	p, err := s.join(r, natspipe.Options{})
	if err != nil {
		conn.Close()
		return events.AgentEmptyV1{}, err
	}
	s.splice(ctx, p, conn)
	return events.AgentEmptyV1{}, nil
}

// splice copies both ways between the pipe and rw until either side ends, then closes both.
func (s *Server) splice(ctx context.Context, p *natspipe.Pipe, rw io.ReadWriteCloser) {
	var once sync.Once
	end := func() {
		once.Do(func() {
			_ = rw.Close()
			_ = p.Close()
		})
	}
	s.pipes.Add(2)
	go func() {
		defer s.pipes.Done()
		_, err := io.Copy(rw, p)
		if err == nil || errors.Is(err, io.EOF) {
			// The client closed its side for writing: let the output drain, the other copy ends it.
			if cw, ok := rw.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
				return
			}
		}
		end()
	}()
	go func() {
		defer s.pipes.Done()
		_, _ = io.Copy(p, rw)
		end()
	}()
	context.AfterFunc(ctx, end)
}
