// Package natspipe carries an ordered, flow-controlled, duplex byte stream between two processes over core
// NATS. It exists for the site agent: a sandbox's terminal, its log stream and its TCP ports have to travel
// between the agent, inside a vendor's network, and the testbed's gateway, and the platform never connects
// into that network; both ends only ever connect out to NATS.
//
// Core NATS has no streams: it delivers each message at most once, drops messages for a slow consumer and
// loses whatever was in flight across a reconnect. JetStream would add order and redelivery, but it does so by
// storing what it carries, and terminal bytes (a password typed at a prompt, a token printed in a log) must
// not be written to the platform's disks. So this package adds to core NATS exactly what a stream needs:
//
//   - a sequence number per direction, so that a lost or reordered message fails the pipe with ErrLost
//     instead of silently corrupting the stream;
//   - credit-based flow control, so that a reader that stops reading stalls its writer instead of growing
//     memory anywhere (each end holds at most about its window, plus a chunk);
//   - a start-up handshake, so that either end may start first and nothing it writes is lost;
//   - keepalives, so that a peer that vanished (process killed, network cut) fails the pipe with ErrPeerGone.
//
// The protocol, per direction (frame.go has the encoding): each end subscribes to its in subject, then
// publishes an unsequenced hello carrying its initial credit, and re-sends it until it hears anything from the
// peer. Hearing the peer proves its subscription exists, so only then does an end send sequenced frames
// (numbered from 1, every gap or repeat is ErrLost), starting with a grant, since the peer may have missed
// the hello. Data and control frames spend credit (their length plus a per-frame cost); the reader grants an
// absolute offset again each time it has freed half its window. An end quiet for half a keepalive interval
// pings. EOF half-closes, close ends both directions (with a reason when it is a reset).
//
// It must not retransmit: recovering a loss would mean keeping every unacknowledged byte, and the callers
// have cheaper recoveries of their own (a terminal reconnects, a log stream resumes from an offset, an HTTP
// client retries). It knows nothing about what it carries: subjects are chosen, and authorised, by the caller.
package natspipe

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Errors a pipe fails with. Read returns them after the data that arrived before the failure.
var (
	// ErrClosed is returned by operations on a pipe after its Close, and by Write after CloseWrite or after
	// the peer's Close. It matches net.ErrClosed, which net/http and io.Copy callers test for.
	ErrClosed = fmt.Errorf("natspipe: %w", net.ErrClosed)
	// ErrPeerGone means nothing was heard from the peer for three keepalive intervals: its process died, its
	// connection was cut, or it never joined.
	ErrPeerGone = errors.New("natspipe: peer gone")
	// ErrLost means a frame was lost or reordered on the way (core NATS drops messages for a slow consumer and
	// across reconnects); the stream can no longer be trusted past that point.
	ErrLost = errors.New("natspipe: frame lost or out of order")
	// ErrProtocol means the peer sent something this end does not understand or did not allow.
	ErrProtocol = errors.New("natspipe: protocol violation")
	// ErrReset means the peer gave up on the pipe (it failed on its side); the error carries its reason.
	ErrReset = errors.New("natspipe: reset by peer")
)

// MaxControl is the largest message SendControl accepts. Controls are for small things (a terminal resize);
// the limit keeps one well inside the smallest window.
const MaxControl = 4 << 10

const (
	minWindow    = 16 << 10
	minKeepalive = 10 * time.Millisecond
)

// Options configure one end of a pipe. The zero value is usable.
type Options struct {
	// Window is how many bytes this end buffers for its reader, and so how far the peer may write ahead of
	// it. Default 256 KiB, at least 16 KiB. Throughput over a path is at most Window per round trip.
	Window int
	// ChunkSize is the largest data frame; it must fit the server's max_payload. Default 32 KiB.
	ChunkSize int
	// Keepalive is how often an idle end proves it is alive. A peer silent for three intervals fails the pipe
	// with ErrPeerGone. Default 5s.
	Keepalive time.Duration
	// OnControl receives the peer's SendControl messages, on the goroutine calling Read, once Read has
	// returned all data sent before them (so a resize applies between the right bytes). Controls are only
	// delivered while someone reads. The slice is the callee's. Nil discards them.
	OnControl func([]byte)
	Logger    *slog.Logger
}

func (o Options) withDefaults(maxPayload int64) (Options, error) {
	if o.Window == 0 {
		o.Window = 256 << 10
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = 32 << 10
	}
	if o.Keepalive == 0 {
		o.Keepalive = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if o.Window < minWindow {
		errs = append(errs, fmt.Errorf("window %d is below the minimum %d", o.Window, minWindow))
	}
	if o.ChunkSize < 1 {
		errs = append(errs, fmt.Errorf("chunk size %d is not positive", o.ChunkSize))
	}
	if maxPayload > 0 && int64(o.ChunkSize)+headerLen > maxPayload {
		errs = append(errs, fmt.Errorf("chunk size %d plus a %d-byte header exceeds the server's max_payload %d",
			o.ChunkSize, headerLen, maxPayload))
	}
	if o.Keepalive < minKeepalive {
		errs = append(errs, fmt.Errorf("keepalive %s is below the minimum %s", o.Keepalive, minKeepalive))
	}
	return o, errors.Join(errs...)
}

// Pipe is one end of a pipe. One goroutine may read while another writes; Close, SendControl and the deadline
// setters may be called from anywhere. It implements net.Conn (and CloseWrite, as *net.TCPConn does).
type Pipe struct {
	nc       *nats.Conn
	in, out  string
	opt      Options
	log      *slog.Logger
	sub      *nats.Subscription
	done     chan struct{} // closed by Close: stops the keepalive loop
	loopDone chan struct{}

	// wmu serialises publishing so frames leave in sequence order; seqOut is only touched under it.
	wmu      sync.Mutex
	seqOut   uint64
	wbuf     []byte
	wEOF     bool         // an eof frame was published: no data or control may follow it
	wClosed  bool         // a close frame was published: nothing may follow it
	lastSent atomic.Int64 // since start, monotonic: a wall-clock jump must not stop the pings
	start    time.Time

	mu sync.Mutex
	// Receiving. Credit is counted in cost units (body bytes plus frameCost per data or control frame).
	heard     bool      // a frame from the peer arrived, so its subscription exists
	lastRecv  time.Time // for ErrPeerGone
	seqIn     uint64
	q         []segment // received data and controls not yet read, from qHead on
	qHead     int
	received  uint64 // credit the peer used
	consumed  uint64 // credit freed by Read
	granted   uint64 // the absolute offset last granted to the peer
	peerEOF   bool
	rdeadline time.Time
	rwake     chan struct{} // closed and replaced when a waiting reader should look again
	rwaiting  bool
	// Sending.
	limit      uint64 // the peer's latest grant
	sent       uint64 // credit this end used
	wroteEOF   bool
	wdeadline  time.Time
	wwake      chan struct{}
	wwaiting   int // writers blocked for credit (also read by tests)
	peerClosed bool
	// Both.
	closed    bool
	err       error // the failure Read (after buffered data) and Write report
	errRemote bool  // err came from the peer, so Close does not echo it back
}

type segment struct {
	b    []byte
	ctrl bool
}

var _ net.Conn = (*Pipe)(nil)

// New joins one end of a pipe: it publishes its frames on out and reads the peer's on in (full subjects, e.g.
// "tamarack.agent.<pool>.<agent>.pipe.<id>.up" and ".down"); the peer calls New with the two swapped. Either
// end may join first: each announces itself until it hears the other, and nothing is written before that.
// A peer that does not join within three keepalive intervals fails the pipe with ErrPeerGone.
func New(nc *nats.Conn, in, out string, opt Options) (*Pipe, error) {
	if nc == nil {
		return nil, errors.New("natspipe: no nats connection")
	}
	if in == "" || out == "" || in == out {
		return nil, fmt.Errorf("natspipe: in %q and out %q must be two different subjects", in, out)
	}
	opt, err := opt.withDefaults(nc.MaxPayload())
	if err != nil {
		return nil, fmt.Errorf("natspipe: options: %w", err)
	}
	p := &Pipe{
		nc: nc, in: in, out: out, opt: opt,
		log:      opt.Logger.With("pipe_in", in, "pipe_out", out),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
		start:    time.Now(),
		lastRecv: time.Now(),
		granted:  uint64(opt.Window),
		rwake:    make(chan struct{}),
		wwake:    make(chan struct{}),
	}
	p.sub, err = nc.Subscribe(in, p.receive)
	if err != nil {
		return nil, fmt.Errorf("natspipe: subscribe %s: %w", in, err)
	}
	// Credit bounds the peer's data and control frames to Window cost units, that is at most Window/frameCost
	// messages and Window bytes; the slack is for grants and pings. Anything beyond is a misbehaving peer, and
	// the client dropping it shows up here as ErrLost.
	const slackMsgs = 1024
	if err := p.sub.SetPendingLimits(opt.Window/frameCost+slackMsgs, opt.Window+slackMsgs*(headerLen+8)); err != nil {
		_ = p.sub.Unsubscribe()
		return nil, fmt.Errorf("natspipe: pending limits: %w", err)
	}
	if err := p.sendHello(); err != nil {
		_ = p.sub.Unsubscribe()
		return nil, err
	}
	go p.keepalive()
	return p, nil
}

// receive handles one frame from the peer, on the subscription's goroutine.
func (p *Pipe) receive(m *nats.Msg) {
	t, seq, body, perr := parseFrame(m.Data)
	p.mu.Lock()
	if p.closed || p.err != nil {
		p.mu.Unlock()
		return
	}
	if perr != nil {
		p.failLocked(perr, false)
		p.mu.Unlock()
		return
	}
	p.lastRecv = time.Now()
	first := !p.heard
	if first {
		p.heard = true
		p.wakeWriters() // CloseWrite waits for the peer
		p.log.Debug("natspipe: peer heard", "frame", t)
	}
	if err := p.applyLocked(m.Sub, t, seq, body); err != nil {
		p.failLocked(err, false)
	}
	p.mu.Unlock()
	if first {
		// The peer may have missed our hello (it subscribed after we sent it); this grant is the first frame
		// it can be sure to receive, and tells it our credit.
		p.sendGrant()
	}
}

// applyLocked takes sub from the message because p.sub is assigned only after Subscribe returns, and the
// peer's first frame may be quicker.
func (p *Pipe) applyLocked(sub *nats.Subscription, t frameType, seq uint64, body []byte) error {
	if t == frameHello {
		if seq != 0 {
			return fmt.Errorf("%w: hello with sequence %d", ErrProtocol, seq)
		}
		off, err := parseOffset(body)
		if err != nil {
			return err
		}
		p.raiseLimitLocked(off)
		return nil
	}
	if seq != p.seqIn+1 {
		dropped, _ := sub.Dropped()
		return fmt.Errorf("%w: expected frame %d, got %s frame %d (%d messages dropped by this client as a slow consumer)",
			ErrLost, p.seqIn+1, t, seq, dropped)
	}
	p.seqIn = seq
	switch t {
	case frameData, frameControl:
		if t == frameData && len(body) == 0 {
			return fmt.Errorf("%w: empty data frame", ErrProtocol)
		}
		if p.peerEOF {
			return fmt.Errorf("%w: %s frame after eof", ErrProtocol, t)
		}
		if t == frameControl && len(body) > MaxControl {
			return fmt.Errorf("%w: %d-byte control message exceeds %d", ErrProtocol, len(body), MaxControl)
		}
		cost := uint64(len(body)) + frameCost
		if p.received+cost > p.granted {
			return fmt.Errorf("%w: peer wrote %d units past its credit", ErrProtocol, p.received+cost-p.granted)
		}
		p.received += cost
		if p.qHead > 0 && len(p.q) == cap(p.q) {
			n := copy(p.q, p.q[p.qHead:])
			clear(p.q[n:])
			p.q, p.qHead = p.q[:n], 0
		}
		p.q = append(p.q, segment{b: body, ctrl: t == frameControl})
		p.wakeReaders()
	case frameGrant:
		off, err := parseOffset(body)
		if err != nil {
			return err
		}
		p.raiseLimitLocked(off)
	case frameEOF:
		p.peerEOF = true
		p.wakeReaders()
	case frameClose:
		p.peerClosed = true
		if len(body) > 0 {
			p.failLocked(fmt.Errorf("%w: %s", ErrReset, body), true)
			return nil
		}
		p.peerEOF = true
		p.wakeReaders()
		p.wakeWriters()
	case framePing:
	}
	return nil
}

func (p *Pipe) raiseLimitLocked(off uint64) {
	if off > p.limit {
		p.limit = off
		p.wakeWriters()
	}
}

func (p *Pipe) wakeReaders() {
	if p.rwaiting {
		close(p.rwake)
		p.rwake = make(chan struct{})
		p.rwaiting = false
	}
}

func (p *Pipe) wakeWriters() {
	if p.wwaiting > 0 {
		close(p.wwake)
		p.wwake = make(chan struct{})
	}
}

// failLocked records the pipe's first failure and wakes everyone to report it.
func (p *Pipe) failLocked(err error, remote bool) {
	if p.err != nil || p.closed {
		return
	}
	p.err, p.errRemote = err, remote
	p.log.Debug("natspipe: failed", "err", err)
	p.wakeReaders()
	p.wakeWriters()
}

func (p *Pipe) fail(err error) {
	p.mu.Lock()
	p.failLocked(err, false)
	p.mu.Unlock()
}

// failSend fails the pipe when a frame could not be published: its sequence number is spent, so the peer
// would see a gap anyway. ErrClosed only means Close or CloseWrite got there first.
func (p *Pipe) failSend(err error) {
	if !errors.Is(err, ErrClosed) {
		p.fail(err)
	}
}

// wait blocks until wake is closed, the deadline passes or the pipe is closed; callers re-check their state.
func wait(wake <-chan struct{}, deadline time.Time) {
	if deadline.IsZero() {
		<-wake
		return
	}
	d := time.Until(deadline)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
	}
}

func expired(deadline time.Time) bool { return !deadline.IsZero() && !time.Now().Before(deadline) }

// Read reads the peer's data. It returns io.EOF once the peer's CloseWrite or Close has been reached, and the
// pipe's failure once the data that arrived before it has been read.
func (p *Pipe) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return 0, ErrClosed
		}
		if expired(p.rdeadline) {
			p.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		if p.qHead < len(p.q) {
			s := &p.q[p.qHead]
			if s.ctrl {
				body := s.b
				p.popLocked(uint64(len(body)))
				grant := p.grantLocked()
				p.mu.Unlock()
				if grant {
					p.sendGrant()
				}
				if p.opt.OnControl != nil {
					p.opt.OnControl(body)
				}
				p.mu.Lock()
				continue
			}
			n := copy(b, s.b)
			s.b = s.b[n:]
			p.consumed += uint64(n)
			if len(s.b) == 0 {
				p.popLocked(0)
			}
			grant := p.grantLocked()
			p.mu.Unlock()
			if grant {
				p.sendGrant()
			}
			return n, nil
		}
		if p.peerEOF {
			p.mu.Unlock()
			return 0, io.EOF
		}
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			return 0, err
		}
		p.rwaiting = true
		wake, deadline := p.rwake, p.rdeadline
		p.mu.Unlock()
		wait(wake, deadline)
		p.mu.Lock()
	}
}

// popLocked drops the head segment, freeing its frame's credit and what is left of its body.
func (p *Pipe) popLocked(rest uint64) {
	p.q[p.qHead] = segment{}
	p.qHead++
	if p.qHead == len(p.q) {
		p.q, p.qHead = p.q[:0], 0
	}
	p.consumed += rest + frameCost
}

// grantLocked decides whether Read freed enough credit to be worth a grant: half a window, so that a steady
// stream costs two grants per window rather than one per frame.
func (p *Pipe) grantLocked() bool {
	next := p.consumed + uint64(p.opt.Window)
	if next-p.granted < uint64(p.opt.Window)/2 || p.err != nil {
		return false
	}
	p.granted = next
	return true
}

func (p *Pipe) sendGrant() {
	var buf [8]byte
	p.mu.Lock()
	off := p.granted
	p.mu.Unlock()
	if err := p.send(frameGrant, offsetBody(&buf, off)); err != nil {
		p.failSend(err)
	}
}

func (p *Pipe) sendHello() error {
	var buf [8]byte
	p.mu.Lock()
	off := p.granted
	p.mu.Unlock()
	return p.send(frameHello, offsetBody(&buf, off))
}

// send publishes one frame. Publishing copies the frame into the connection's buffer, so wbuf is reused.
func (p *Pipe) send(t frameType, body []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.wClosed || (p.wEOF && (t == frameData || t == frameControl || t == frameEOF)) {
		return ErrClosed
	}
	var seq uint64
	if t != frameHello {
		p.seqOut++
		seq = p.seqOut
	}
	switch t {
	case frameEOF:
		p.wEOF = true
	case frameClose:
		p.wClosed = true
	}
	p.wbuf = appendFrame(p.wbuf[:0], t, seq, body)
	p.lastSent.Store(int64(time.Since(p.start)))
	if err := p.nc.Publish(p.out, p.wbuf); err != nil {
		return fmt.Errorf("natspipe: publish %s frame on %s: %w", t, p.out, err)
	}
	return nil
}

// Write writes b to the peer, blocking while the peer has granted no credit. It never has more than the
// peer's window in flight.
func (p *Pipe) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		k, err := p.reserve(len(b), false)
		if err != nil {
			return n, err
		}
		if err := p.send(frameData, b[:k]); err != nil {
			p.failSend(err)
			return n, err
		}
		n += k
		b = b[k:]
	}
	return n, nil
}

// SendControl sends a small out-of-band message (at most MaxControl bytes) that the peer's OnControl
// receives in order with the data written before and after it. It blocks for credit like Write.
func (p *Pipe) SendControl(b []byte) error {
	if len(b) > MaxControl {
		return fmt.Errorf("natspipe: %d-byte control message exceeds %d", len(b), MaxControl)
	}
	if _, err := p.reserve(len(b), true); err != nil {
		return err
	}
	if err := p.send(frameControl, b); err != nil {
		p.failSend(err)
		return err
	}
	return nil
}

// reserve waits for credit and takes it: up to want body bytes (one chunk at most), or exactly want when
// whole, because a control message is never split.
func (p *Pipe) reserve(want int, whole bool) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if err := p.writeErrLocked(); err != nil {
			return 0, err
		}
		avail := int64(p.limit) - int64(p.sent) - frameCost
		k := int64(want)
		if !whole {
			k = min(k, int64(p.opt.ChunkSize), avail)
		}
		if (!whole && k > 0) || (whole && avail >= k) {
			p.sent += uint64(k) + frameCost
			return int(k), nil
		}
		p.wwaiting++
		wake, deadline := p.wwake, p.wdeadline
		p.mu.Unlock()
		wait(wake, deadline)
		p.mu.Lock()
		p.wwaiting--
	}
}

func (p *Pipe) writeErrLocked() error {
	switch {
	case p.closed:
		return ErrClosed
	case p.wroteEOF:
		return fmt.Errorf("%w: write after CloseWrite", ErrClosed)
	case p.err != nil:
		return p.err
	case p.peerClosed:
		return fmt.Errorf("%w: the peer closed the pipe", ErrClosed)
	case expired(p.wdeadline):
		return os.ErrDeadlineExceeded
	}
	return nil
}

// CloseWrite half-closes the pipe: the peer's Read returns io.EOF after the data written so far, while this
// end can still read. It waits for the peer to have joined (bounded by the write deadline), because an eof
// sent before that could be lost with the frames the peer was not yet subscribed to.
func (p *Pipe) CloseWrite() error {
	p.mu.Lock()
	for !p.heard {
		if err := p.writeErrLocked(); err != nil {
			p.mu.Unlock()
			return err
		}
		p.wwaiting++
		wake, deadline := p.wwake, p.wdeadline
		p.mu.Unlock()
		wait(wake, deadline)
		p.mu.Lock()
		p.wwaiting--
	}
	if p.wroteEOF {
		p.mu.Unlock()
		return nil
	}
	if err := p.writeErrLocked(); err != nil {
		p.mu.Unlock()
		return err
	}
	p.wroteEOF = true
	p.wakeWriters()
	p.mu.Unlock()
	if err := p.send(frameEOF, nil); err != nil {
		p.failSend(err)
		return err
	}
	return nil
}

// Close ends both directions and releases the subscription and the keepalive goroutine; it is idempotent.
// Blocked Reads and Writes return ErrClosed. The peer's Read returns io.EOF after the data already sent, its
// Write ErrClosed; if this end had failed, the peer gets ErrReset with the reason instead. A pipe whose peer
// was never heard closes silently, and the peer, if it joins later, sees ErrPeerGone.
func (p *Pipe) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	var reason []byte
	if p.err != nil && !p.errRemote {
		reason = []byte(p.err.Error())
	}
	notify := p.heard && !p.peerClosed
	p.closed = true
	p.wakeReaders()
	p.wakeWriters()
	p.mu.Unlock()
	close(p.done)
	<-p.loopDone
	var errs []error
	if notify {
		if err := p.send(frameClose, reason); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := p.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		errs = append(errs, fmt.Errorf("natspipe: unsubscribe %s: %w", p.in, err))
	}
	return errors.Join(errs...)
}

// keepalive re-sends the hello until the peer is heard, then pings when this end has been quiet, and fails
// the pipe when the peer has been silent for three intervals.
func (p *Pipe) keepalive() {
	defer close(p.loopDone)
	k := p.opt.Keepalive
	// The hello is re-sent soon, then less often: usually the peer's own hello is heard first and none of
	// this is needed, but a lost hello must not cost a whole keepalive interval.
	hello := min(20*time.Millisecond, k)
	t := time.NewTimer(hello)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.mu.Lock()
		if p.err != nil || p.peerClosed {
			p.mu.Unlock()
			return
		}
		heard := p.heard
		if silent := time.Since(p.lastRecv); silent >= 3*k {
			what := "nothing heard for " + silent.Round(time.Millisecond).String()
			if !heard {
				what = "peer did not join within " + silent.Round(time.Millisecond).String()
			}
			p.failLocked(fmt.Errorf("%w: %s", ErrPeerGone, what), false)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if !heard {
			if err := p.sendHello(); err != nil {
				p.fail(err)
				return
			}
			hello = min(2*hello, k)
			t.Reset(hello)
			continue
		}
		// Pinging when quiet for half an interval means the peer hears something at least every interval,
		// and a busy pipe sends no pings at all.
		if time.Since(p.start)-time.Duration(p.lastSent.Load()) >= k/2 {
			if err := p.send(framePing, nil); err != nil {
				p.failSend(err)
				return
			}
		}
		t.Reset(k / 2)
	}
}

// SetDeadline sets both deadlines (net.Conn).
func (p *Pipe) SetDeadline(t time.Time) error {
	_ = p.SetReadDeadline(t)
	return p.SetWriteDeadline(t)
}

// SetReadDeadline makes Read fail with os.ErrDeadlineExceeded from t on; the zero time removes it. A
// deadline does not fail the pipe: Read works again once it is moved.
func (p *Pipe) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	p.rdeadline = t
	p.wakeReaders()
	p.mu.Unlock()
	return nil
}

// SetWriteDeadline makes Write, SendControl and CloseWrite fail with os.ErrDeadlineExceeded from t on, while
// they wait for credit or for the peer. A Write that fails may have sent part of its data (see its count).
func (p *Pipe) SetWriteDeadline(t time.Time) error {
	p.mu.Lock()
	p.wdeadline = t
	p.wakeWriters()
	p.mu.Unlock()
	return nil
}

// Addr is a pipe end's address: the subject it reads (local) or publishes to (remote).
type Addr string

// Network is "nats".
func (Addr) Network() string { return "nats" }

func (a Addr) String() string { return string(a) }

// LocalAddr is the subject this end reads.
func (p *Pipe) LocalAddr() net.Addr { return Addr(p.in) }

// RemoteAddr is the subject this end publishes to.
func (p *Pipe) RemoteAddr() net.Addr { return Addr(p.out) }
