package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Logs streams the Pod's output through pods/log while the Pod exists; once Stop has deleted it, the tail
// kept in the sandbox's record.
func (b *Backend) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	st, err := b.Inspect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", id, err)
	}
	pod, err := b.cs.CoreV1().Pods(b.opts.Namespace).Get(ctx, id, metav1.GetOptions{})
	if isNotFound(err) {
		cm, err := b.getRecord(ctx, id)
		if err != nil {
			return nil, err
		}
		var kept []byte
		if cm != nil {
			kept = cm.BinaryData[keyOutput]
		}
		return io.NopCloser(bytes.NewReader(kept)), nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", id, err)
	}
	for follow && st.State == backend.StatePending { // nothing to stream before the container runs
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if st, err = b.Inspect(ctx, id); err != nil {
			return nil, fmt.Errorf("logs %s: %w", id, err)
		}
	}
	if st.State == backend.StatePending || (st.Ended() && st.StartedAt.IsZero()) {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	rc, err := b.cs.CoreV1().Pods(b.opts.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Follow: follow && !st.Ended()}).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("logs %s: pods/log on node %s: %w", id, pod.Spec.NodeName, err)
	}
	return rc, nil
}

// outputTail is the newest LogKeep bytes of the Pod's output, nil when the API server gives none.
func (b *Backend) outputTail(ctx context.Context, id string) []byte {
	cx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := b.cs.CoreV1().Pods(b.opts.Namespace).GetLogs(id, &corev1.PodLogOptions{LimitBytes: &b.opts.LogKeep}).Stream(cx)
	if err != nil {
		return nil
	}
	defer rc.Close()
	out, err := io.ReadAll(io.LimitReader(rc, b.opts.LogKeep))
	if err != nil && len(out) == 0 {
		return nil
	}
	return out
}

// running returns the sandbox's Pod when the sandbox runs: ErrNotFound or ErrNotRunning otherwise.
func (b *Backend) running(ctx context.Context, id string) error {
	st, err := b.Inspect(ctx, id)
	if err != nil {
		return err
	}
	if st.State != backend.StateRunning {
		return fmt.Errorf("sandbox %s is %s: %w", id, st.State, backend.ErrNotRunning)
	}
	return nil
}

// Terminal runs cmd (a login shell when empty) on a TTY in the sandbox's container through pods/exec
// (WebSocket, falling back to SPDY for older API servers). It waits briefly for the exec to be refused, so
// that a kubelet that cannot be reached is an error here rather than on the first Read.
func (b *Backend) Terminal(ctx context.Context, id string, cmd []string) (backend.Terminal, error) {
	if err := b.running(ctx, id); err != nil {
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	if len(cmd) == 0 {
		cmd = []string{"/bin/sh", "-c", "cd; exec \"${SHELL:-/bin/sh}\" -l"}
	}
	req := b.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(b.opts.Namespace).Name(id).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "sandbox", Command: cmd, Stdin: true, Stdout: true, TTY: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(b.opts.Config, "GET", req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	sp, err := remotecommand.NewSPDYExecutor(b.opts.Config, "POST", req.URL())
	if err != nil {
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	sctx, cancel := context.WithCancel(context.Background())
	t := &terminal{in: inW, out: outR, cancel: cancel, sizes: make(chan remotecommand.TerminalSize, 4), done: make(chan struct{})}
	go func() {
		err := exec.StreamWithContext(sctx, remotecommand.StreamOptions{Stdin: inR, Stdout: outW, Tty: true, TerminalSizeQueue: t})
		t.err = err
		close(t.done)
		if err != nil && sctx.Err() == nil {
			outW.CloseWithError(fmt.Errorf("terminal %s: %w", id, err))
		} else {
			outW.Close()
		}
		inR.Close()
	}()
	select {
	case <-t.done:
		if t.err != nil {
			return nil, fmt.Errorf("terminal %s: pods/exec: %w", id, t.err)
		}
	case <-time.After(time.Second):
	case <-ctx.Done():
		t.Close()
		return nil, ctx.Err()
	}
	return t, nil
}

// terminal is an exec stream; it is its own TerminalSizeQueue.
type terminal struct {
	in     *io.PipeWriter
	out    *io.PipeReader
	cancel context.CancelFunc
	sizes  chan remotecommand.TerminalSize
	done   chan struct{}
	err    error
	once   sync.Once
}

func (t *terminal) Read(p []byte) (int, error)  { return t.out.Read(p) }
func (t *terminal) Write(p []byte) (int, error) { return t.in.Write(p) }

// Resize queues the new size; the newest wins when the stream is slow to take them.
func (t *terminal) Resize(cols, rows uint16) error {
	sz := remotecommand.TerminalSize{Width: cols, Height: rows}
	for {
		select {
		case <-t.done:
			return backend.ErrNotRunning
		case t.sizes <- sz:
			return nil
		default:
			select {
			case <-t.sizes:
			default:
			}
		}
	}
}

// Next is remotecommand's TerminalSizeQueue: nil ends the queue.
func (t *terminal) Next() *remotecommand.TerminalSize {
	select {
	case sz := <-t.sizes:
		return &sz
	case <-t.done:
		return nil
	}
}

// Close ends the exec: the API server closes the stream and the kubelet ends the process.
func (t *terminal) Close() error {
	t.once.Do(func() {
		t.in.Close()
		t.cancel()
		t.out.Close()
	})
	return nil
}

// DialPort opens a stream to port inside the sandbox's Pod through pods/portforward (SPDY): it reaches the
// Pod's own network namespace through the kubelet, so it works under a deny-all NetworkPolicy.
func (b *Backend) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if err := b.running(ctx, id); err != nil {
		return nil, fmt.Errorf("dial %s: %w", id, err)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("dial %s: port %d out of range", id, port)
	}
	req := b.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(b.opts.Namespace).Name(id).SubResource("portforward")
	tr, up, err := spdy.RoundTripperFor(b.opts.Config)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", id, err)
	}
	conn, _, err := spdy.NewDialer(up, &http.Client{Transport: tr}, "POST", req.URL()).Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("dial %s: pods/portforward: %w", id, err)
	}
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(h)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s: %w", id, err)
	}
	errStream.Close() // nothing to send on it; the kubelet writes why the port could not be reached
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s: %w", id, err)
	}
	c := &portConn{conn: conn, data: data, port: port, id: id}
	go func() {
		msg, _ := io.ReadAll(errStream)
		if len(msg) > 0 {
			c.fail(fmt.Errorf("dial %s port %d: %s", id, port, bytes.TrimSpace(msg)))
		}
	}()
	return c, nil
}

// portConn is one port-forward stream as a connection.
type portConn struct {
	conn     httpstream.Connection
	data     httpstream.Stream
	port     int
	id       string
	mu       sync.Mutex
	err      error
	closeOne sync.Once
}

func (c *portConn) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	c.Close()
}

func (c *portConn) Read(p []byte) (int, error) {
	n, err := c.data.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.err != nil {
			err = c.err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *portConn) Write(p []byte) (int, error) { return c.data.Write(p) }

func (c *portConn) Close() error {
	c.closeOne.Do(func() {
		c.data.Reset()
		c.conn.Close()
	})
	return nil
}

func (c *portConn) LocalAddr() net.Addr  { return portAddr("tamarack-agent") }
func (c *portConn) RemoteAddr() net.Addr { return portAddr("pod/" + c.id + ":" + strconv.Itoa(c.port)) }

// Deadlines are not supported on a port-forward stream: callers close the connection instead.
func (c *portConn) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (c *portConn) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (c *portConn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }

type portAddr string

func (a portAddr) Network() string { return "portforward" }
func (a portAddr) String() string  { return string(a) }
