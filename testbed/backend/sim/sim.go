// Package sim is an in-memory sandbox backend FOR TESTS AND DEMOS ONLY. It runs nothing: sandboxes are
// records whose fate the test decides (Exit, OOM, Kill, LoseNode), timed by an injected clock so tests of
// metering, expiry and reconciliation need no sleeping. Its Kind is "simulator" so it can never be
// mistaken for a real pool. Logs, Terminal and DialPort give small canned behaviour: a start line in the
// log, a terminal that echoes lines back, a port that answers HTTP with a fixed page.
//
// It must never be wired to a pool that users pay for.
package sim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Backend is the simulator. The zero value is not usable; call New.
type Backend struct {
	clock clock.Clock

	mu        sync.Mutex
	boxes     map[string]*box
	checkErr  error
	startErrs []error
}

type box struct {
	spec   backend.Spec
	status backend.Status
	log    []byte
	// changed is closed and replaced whenever log or status changes, waking followers.
	changed chan struct{}
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty simulator reading time from clk.
func New(clk clock.Clock) *Backend {
	return &Backend{clock: clk, boxes: map[string]*box{}}
}

// Kind returns "simulator".
func (b *Backend) Kind() string { return "simulator" }

// SetCheckError makes Check (and Start) fail with err wrapped in ErrUnavailable; nil heals it.
func (b *Backend) SetCheckError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checkErr = err
}

// FailNextStart makes the next Start fail with err, as a node refusing work would.
func (b *Backend) FailNextStart(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.startErrs = append(b.startErrs, err)
}

// Check fails only when SetCheckError says so.
func (b *Backend) Check(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.checkErr != nil {
		return fmt.Errorf("%w: simulator: %v", backend.ErrUnavailable, b.checkErr)
	}
	return nil
}

// Start records a running sandbox started now.
func (b *Backend) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	if err := s.Validate(); err != nil {
		return backend.Status{}, err
	}
	if err := ctx.Err(); err != nil {
		return backend.Status{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.checkErr != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w: %v", s.SandboxID, backend.ErrUnavailable, b.checkErr)
	}
	if len(b.startErrs) > 0 {
		err := b.startErrs[0]
		b.startErrs = b.startErrs[1:]
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if _, ok := b.boxes[s.SandboxID]; ok {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, backend.ErrExists)
	}
	x := &box{
		spec:    s,
		status:  backend.Status{SandboxID: s.SandboxID, State: backend.StateRunning, StartedAt: b.clock.Now().UTC(), ExitCode: -1},
		changed: make(chan struct{}),
	}
	x.log = fmt.Appendf(nil, "simulated sandbox %s: %s\n", s.SandboxID, strings.Join(s.Command, " "))
	b.boxes[s.SandboxID] = x
	return x.status, nil
}

// end moves a running sandbox to exited; b.mu must be held.
func (b *Backend) end(id string, code int, reason string) error {
	x, ok := b.boxes[id]
	if !ok {
		return fmt.Errorf("sandbox %s: %w", id, backend.ErrNotFound)
	}
	if x.status.Ended() {
		return nil
	}
	x.status.State = backend.StateExited
	x.status.EndedAt = b.clock.Now().UTC()
	x.status.ExitCode = code
	x.status.Reason = reason
	x.log = fmt.Appendf(x.log, "simulated sandbox %s ended: %s (exit code %d)\n", id, reason, code)
	close(x.changed)
	x.changed = make(chan struct{})
	return nil
}

// Exit makes the sandbox's main process exit with code now, as if it finished by itself.
func (b *Backend) Exit(id string, code int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end(id, code, backend.ReasonExited)
}

// OOM makes the sandbox die at its memory limit now.
func (b *Backend) OOM(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end(id, 137, backend.ReasonOOMKilled)
}

// Kill makes the sandbox die from a signal nobody asked the backend to send.
func (b *Backend) Kill(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end(id, 137, backend.ReasonKilled)
}

// LoseNode makes the sandbox vanish with its node: it is reported ended, Reason lost, EndedAt now.
func (b *Backend) LoseNode(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end(id, -1, backend.ReasonLost)
}

// WriteLog appends text to the sandbox's log, as its process printing would.
func (b *Backend) WriteLog(id, text string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.boxes[id]
	if !ok {
		return fmt.Errorf("sandbox %s: %w", id, backend.ErrNotFound)
	}
	x.log = append(x.log, text...)
	close(x.changed)
	x.changed = make(chan struct{})
	return nil
}

// Stop ends a running sandbox with Reason stopped at the current time; grace is ignored because nothing
// runs. Idempotent.
func (b *Backend) Stop(ctx context.Context, id string, grace time.Duration) (backend.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.end(id, 143, backend.ReasonStopped); err != nil {
		return backend.Status{}, fmt.Errorf("stop: %w", err)
	}
	return b.boxes[id].status, nil
}

// Remove forgets an ended sandbox.
func (b *Backend) Remove(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.boxes[id]
	if !ok {
		return nil
	}
	if !x.status.Ended() {
		return fmt.Errorf("remove %s: %w", id, backend.ErrStillRunning)
	}
	delete(b.boxes, id)
	return nil
}

// Inspect returns the recorded status.
func (b *Backend) Inspect(ctx context.Context, id string) (backend.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.boxes[id]
	if !ok {
		return backend.Status{}, fmt.Errorf("inspect %s: %w", id, backend.ErrNotFound)
	}
	return x.status, nil
}

// List returns every held sandbox in ID order.
func (b *Backend) List(ctx context.Context) ([]backend.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backend.Status, 0, len(b.boxes))
	for _, x := range b.boxes {
		out = append(out, x.status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SandboxID < out[j].SandboxID })
	return out, nil
}

// Logs returns the log so far; with follow it streams what WriteLog adds until the sandbox ends or ctx
// ends.
func (b *Backend) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	b.mu.Lock()
	x, ok := b.boxes[id]
	if !ok {
		b.mu.Unlock()
		return nil, fmt.Errorf("logs %s: %w", id, backend.ErrNotFound)
	}
	snapshot := slices.Clone(x.log)
	b.mu.Unlock()
	if !follow {
		return io.NopCloser(bytes.NewReader(snapshot)), nil
	}
	pr, pw := io.Pipe()
	go func() {
		off := 0
		for {
			b.mu.Lock()
			chunk := slices.Clone(x.log[off:])
			off = len(x.log)
			ended := x.status.Ended()
			changed := x.changed
			b.mu.Unlock()
			if len(chunk) > 0 {
				if _, err := pw.Write(chunk); err != nil {
					return // reader closed
				}
			}
			if ended {
				pw.Close()
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			}
		}
	}()
	return pr, nil
}

// Terminal returns a terminal that echoes each line written to it, prefixed by the sandbox ID; the line
// "exit" ends it.
func (b *Backend) Terminal(ctx context.Context, id string, cmd []string) (backend.Terminal, error) {
	if err := b.running(id); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() {
		sc := bufio.NewScanner(inR)
		for sc.Scan() {
			if sc.Text() == "exit" {
				break
			}
			if _, err := fmt.Fprintf(outW, "%s$ %s\r\n", id, sc.Text()); err != nil {
				break
			}
		}
		inR.Close()
		outW.Close()
	}()
	return &echoTerminal{r: outR, w: inW}, nil
}

type echoTerminal struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (t *echoTerminal) Read(p []byte) (int, error)  { return t.r.Read(p) }
func (t *echoTerminal) Write(p []byte) (int, error) { return t.w.Write(p) }
func (t *echoTerminal) Resize(cols, rows uint16) error {
	return nil
}
func (t *echoTerminal) Close() error {
	t.w.Close()
	return t.r.Close()
}

// DialPort returns an in-memory connection to a fake HTTP server that answers every request with a short
// page naming the sandbox and port. Ports not in the spec refuse, as a closed port would.
func (b *Backend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if err := b.running(id); err != nil {
		return nil, fmt.Errorf("dial %s port %d: %w", id, port, err)
	}
	b.mu.Lock()
	declared := slices.Contains(b.boxes[id].spec.Ports, port)
	b.mu.Unlock()
	if !declared {
		return nil, fmt.Errorf("dial %s port %d: %w", id, port, errConnRefused)
	}
	client, server := net.Pipe()
	go serveCanned(server, fmt.Sprintf("simulated sandbox %s port %d\n", id, port))
	return client, nil
}

var errConnRefused = errors.New("connection refused (simulator: port not declared)")

func serveCanned(c net.Conn, body string) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		resp := &http.Response{
			StatusCode:    http.StatusOK,
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			ContentLength: int64(len(body)),
			Body:          io.NopCloser(strings.NewReader(body)),
		}
		if err := resp.Write(c); err != nil {
			return
		}
	}
}

func (b *Backend) running(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.boxes[id]
	if !ok {
		return fmt.Errorf("sandbox %s: %w", id, backend.ErrNotFound)
	}
	if x.status.State != backend.StateRunning {
		return fmt.Errorf("sandbox %s: %w", id, backend.ErrNotRunning)
	}
	return nil
}
