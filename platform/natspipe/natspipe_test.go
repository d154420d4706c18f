package natspipe_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natspipe"
	"github.com/tamarack-ai/tamarack/platform/natstest"
)

// dial opens a connection of its own to b's server, so that the two ends of a pipe are two clients as the
// gateway and the agent are, and one of them can be cut without the other.
func dial(t testing.TB, b *eventbus.Bus) *nats.Conn {
	t.Helper()
	url := b.ClientURL()
	if url == "" {
		url = os.Getenv(natstest.EnvNATS)
	}
	nc, err := nats.Connect(url, nats.Name("natspipe-test"))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

type end struct {
	nc *nats.Conn
	p  *natspipe.Pipe
}

// pair joins two ends on their own connections; a is New'd first, so its hello goes out before z exists.
func pair(t testing.TB, b *eventbus.Bus, name string, oa, oz natspipe.Options) (a, z end) {
	t.Helper()
	up, down := b.Subject("pipe."+name+".up"), b.Subject("pipe."+name+".down")
	a.nc, z.nc = dial(t, b), dial(t, b)
	var err error
	if a.p, err = natspipe.New(a.nc, down, up, oa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.p.Close() })
	if z.p, err = natspipe.New(z.nc, up, down, oz); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = z.p.Close() })
	return a, z
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// result waits for the error a goroutine sends, failing the test if it never comes.
func result(t testing.TB, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

// send writes n pseudo-random bytes from seed, then half-closes, and returns their hash.
func send(w *natspipe.Pipe, seed uint64, n int64) ([32]byte, error) {
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8(seedBytes(seed)), n), h)
	if _, err := io.Copy(w, src); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, w.CloseWrite()
}

func seedBytes(seed uint64) (s [32]byte) {
	for i := range s {
		s[i] = byte(seed >> (8 * (i % 8)))
	}
	return s
}

// drain reads to EOF and returns the hash and count of what it read.
func drain(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

// 64 MiB cross in both directions at once, intact, each direction ending in EOF.
func TestPipeCarriesBothWaysConcurrently(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		const size = 64 << 20
		a, z := pair(t, b, "both", natspipe.Options{}, natspipe.Options{})
		type got struct {
			sum [32]byte
			n   int64
			err error
		}
		var wg sync.WaitGroup
		sent := make([][32]byte, 2)
		sendErr := make([]error, 2)
		recv := make([]got, 2)
		for i, e := range []end{a, z} {
			wg.Add(2)
			go func() {
				defer wg.Done()
				sent[i], sendErr[i] = send(e.p, uint64(i+1), size)
			}()
			go func() {
				defer wg.Done()
				var g got
				g.sum, g.n, g.err = drain(e.p)
				recv[1-i] = g // what e reads, the other end sent
			}()
		}
		wg.Wait()
		for i := range 2 {
			if sendErr[i] != nil {
				t.Fatalf("end %d write: %v", i, sendErr[i])
			}
			if recv[i].err != nil || recv[i].n != size || recv[i].sum != sent[i] {
				t.Fatalf("what end %d sent arrived as %d bytes, err %v, hash match %v", i, recv[i].n, recv[i].err,
					recv[i].sum == sent[i])
			}
		}
	})
}

// A reader that stops reading stalls its writer: the writer blocks with no more than the reader's window in
// flight, and everything arrives once the reader reads again.
func TestPipeBackpressureBoundsWriter(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		const window, size = 64 << 10, 8 << 20
		a, z := pair(t, b, "stall", natspipe.Options{}, natspipe.Options{Window: window})
		wrote := make(chan error, 1)
		sum := make(chan [32]byte, 1)
		go func() {
			s, err := send(a.p, 7, size)
			sum <- s
			wrote <- err
		}()
		// Stable once the writer waits and everything it sent has reached the reader's buffer.
		waitFor(t, "the writer to block for credit", func() bool {
			return a.p.WaitingForCredit() && z.p.Buffered() == a.p.Sent()
		})
		if got := z.p.Buffered(); got > window {
			t.Fatalf("reader buffers %d, more than its window %d", got, window)
		}
		if got := a.p.Sent(); got > window {
			t.Fatalf("writer sent %d before any read, more than the window %d", got, window)
		}
		if n := z.p.PendingMsgs(); n != 0 {
			t.Fatalf("%d messages still queued in the subscription", n)
		}
		select {
		case err := <-wrote:
			t.Fatalf("writer returned (%v) although the reader read nothing", err)
		default:
		}
		got, n, err := drain(z.p)
		if err := result(t, "the writer", wrote); err != nil {
			t.Fatal(err)
		}
		if want := <-sum; err != nil || n != size || got != want {
			t.Fatalf("after the stall: %d bytes, err %v, hash match %v", n, err, got == want)
		}
	})
}

// Many small writes into the smallest window, read with odd buffer sizes: the per-frame cost of credit keeps
// the accounts of both ends in step, so neither stalls nor overruns.
func TestPipeSmallWritesSmallWindow(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		opt := natspipe.Options{Window: 16 << 10}
		a, z := pair(t, b, "small", opt, opt)
		rng := rand.New(rand.NewPCG(1, 2))
		var want []byte
		for range 5000 {
			want = append(want, bytes.Repeat([]byte{byte(rng.Uint32())}, 1+rng.IntN(300))...)
		}
		wrote := make(chan error, 1)
		go func() {
			rest := want
			for len(rest) > 0 {
				n := min(len(rest), 1+rng.IntN(300))
				if _, err := a.p.Write(rest[:n]); err != nil {
					wrote <- err
					return
				}
				rest = rest[n:]
			}
			wrote <- a.p.CloseWrite()
		}()
		var got []byte
		buf := make([]byte, 777)
		for {
			n, err := z.p.Read(buf[:1+len(got)%len(buf)])
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := result(t, "the writer", wrote); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, want %d, equal %v", len(got), len(want), bytes.Equal(got, want))
		}
	})
}

// CloseWrite ends one direction only: the peer reads EOF after the data, and can still answer.
func TestPipeHalfClose(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		a, z := pair(t, b, "half", natspipe.Options{}, natspipe.Options{})
		if _, err := a.p.Write([]byte("question")); err != nil {
			t.Fatal(err)
		}
		if err := a.p.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := a.p.CloseWrite(); err != nil {
			t.Fatalf("second CloseWrite: %v", err)
		}
		if _, err := a.p.Write([]byte("more")); !errors.Is(err, natspipe.ErrClosed) {
			t.Fatalf("write after CloseWrite: %v, want ErrClosed", err)
		}
		q, err := io.ReadAll(z.p)
		if err != nil || string(q) != "question" {
			t.Fatalf("read %q, %v", q, err)
		}
		if _, err := z.p.Write([]byte("answer")); err != nil {
			t.Fatalf("write back after the peer's CloseWrite: %v", err)
		}
		if err := z.p.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		ans, err := io.ReadAll(a.p)
		if err != nil || string(ans) != "answer" {
			t.Fatalf("read back %q, %v", ans, err)
		}
	})
}

// Controls reach OnControl on the reading goroutine, exactly between the bytes written before and after them.
func TestPipeControlInOrderWithData(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		var log []string // only the reading goroutine touches it: OnControl runs inside Read
		a, z := pair(t, b, "ctl", natspipe.Options{}, natspipe.Options{
			OnControl: func(m []byte) { log = append(log, "ctl:"+string(m)) },
		})
		var want []string
		for i := range 50 {
			data := strings.Repeat(string(rune('a'+i%26)), 1+i*97)
			if _, err := a.p.Write([]byte(data)); err != nil {
				t.Fatal(err)
			}
			ctl := fmt.Sprintf("resize %d", i)
			if err := a.p.SendControl([]byte(ctl)); err != nil {
				t.Fatal(err)
			}
			want = append(want, "data:"+data, "ctl:"+ctl)
		}
		if err := a.p.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		var data []byte
		for {
			n, err := z.p.Read(buf)
			if n > 0 {
				// Data read since the last control coalesces into one entry.
				if len(log) == 0 || !strings.HasPrefix(log[len(log)-1], "data:") {
					log = append(log, "data:")
				}
				data = append(data[:0], log[len(log)-1]...)
				log[len(log)-1] = string(append(data, buf[:n]...))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if strings.Join(log, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got %d entries, want %d; first difference:\n%s", len(log), len(want), firstDiff(log, want))
		}
		if err := a.p.SendControl(make([]byte, natspipe.MaxControl+1)); err == nil {
			t.Fatal("an oversized control message was accepted")
		}
	})
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("entry %d: got %.60q, want %.60q", i, got[i], want[i])
		}
	}
	return "one is a prefix of the other"
}

// A peer whose connection is cut (no close frame, as when its process is killed) fails Read and Write on the
// other end with ErrPeerGone.
func TestPipePeerGone(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		opt := natspipe.Options{Keepalive: 50 * time.Millisecond}
		a, z := pair(t, b, "gone", opt, opt)
		if _, err := a.p.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(z.p, make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
		read := make(chan error, 1)
		go func() {
			_, err := z.p.Read(make([]byte, 10))
			read <- err
		}()
		// a is the killed end: its connection goes and its pipe is never closed, as in a killed process.
		a.nc.Close()
		if err := result(t, "the reader to notice", read); !errors.Is(err, natspipe.ErrPeerGone) {
			t.Fatalf("read: %v, want ErrPeerGone", err)
		}
		if _, err := z.p.Write([]byte("x")); !errors.Is(err, natspipe.ErrPeerGone) {
			t.Fatalf("write: %v, want ErrPeerGone", err)
		}
	})
}

// A peer that never joins is reported the same way, so a caller waiting on a sandbox that never answers is
// not stuck forever.
func TestPipePeerNeverJoins(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		nc := dial(t, b)
		p, err := natspipe.New(nc, b.Subject("pipe.lonely.down"), b.Subject("pipe.lonely.up"),
			natspipe.Options{Keepalive: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, err := p.Write([]byte("anyone?")); !errors.Is(err, natspipe.ErrPeerGone) {
			t.Fatalf("write: %v, want ErrPeerGone", err)
		}
	})
}

// The second end may join long after the first has started writing; nothing written is lost.
func TestPipeLateJoiner(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		ncA, ncZ := dial(t, b), dial(t, b)
		up, down := b.Subject("pipe.late.up"), b.Subject("pipe.late.down")
		a, err := natspipe.New(ncA, down, up, natspipe.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		wrote := make(chan error, 1)
		go func() {
			_, err := a.Write([]byte("early bird"))
			if err == nil {
				err = a.CloseWrite()
			}
			wrote <- err
		}()
		waitFor(t, "the writer to wait for its peer", a.Blocked)
		z, err := natspipe.New(ncZ, up, down, natspipe.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		got, err := io.ReadAll(z)
		if err != nil || string(got) != "early bird" {
			t.Fatalf("read %q, %v", got, err)
		}
		if err := result(t, "the writer", wrote); err != nil {
			t.Fatal(err)
		}
	})
}

// Close is idempotent, unblocks its own reader, ends the peer's stream with EOF and its writes with
// ErrClosed, and leaves no goroutine behind.
func TestPipeCloseReleasesEverything(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		ncA, ncZ := dial(t, b), dial(t, b)
		before := runtime.NumGoroutine()
		for i := range 10 {
			up, down := b.Subject(fmt.Sprintf("pipe.close%d.up", i)), b.Subject(fmt.Sprintf("pipe.close%d.down", i))
			a, err := natspipe.New(ncA, down, up, natspipe.Options{})
			if err != nil {
				t.Fatal(err)
			}
			z, err := natspipe.New(ncZ, up, down, natspipe.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Write([]byte("last words")); err != nil {
				t.Fatal(err)
			}
			blocked := make(chan error, 1)
			go func() {
				_, err := a.Read(make([]byte, 1))
				blocked <- err
			}()
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := result(t, "the blocked Read", blocked); !errors.Is(err, natspipe.ErrClosed) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read blocked during Close: %v, want ErrClosed", err)
			}
			got, err := io.ReadAll(z)
			if err != nil || string(got) != "last words" {
				t.Fatalf("peer read %q, %v", got, err)
			}
			if _, err := z.Write([]byte("hello?")); !errors.Is(err, natspipe.ErrClosed) {
				t.Fatalf("peer write after Close: %v, want ErrClosed", err)
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if n, m := ncA.NumSubscriptions(), ncZ.NumSubscriptions(); n+m != 0 {
			t.Fatalf("%d subscriptions left after Close", n+m)
		}
		waitFor(t, "the pipes' goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	})
}

// A frame missing from the sequence or repeated fails the pipe with ErrLost rather than passing corrupted
// data on; one the pipe cannot parse fails it with ErrProtocol. The data before it is still read.
func TestPipeDetectsBrokenSequence(t *testing.T) {
	const window = 16 << 10
	cases := []struct {
		name string
		seq  func(last uint64) uint64
		ver  byte
		body []byte
		want error
	}{
		{"gap", func(last uint64) uint64 { return last + 2 }, 1, []byte("evil"), natspipe.ErrLost},
		{"replay", func(last uint64) uint64 { return last }, 1, []byte("evil"), natspipe.ErrLost},
		{"reordered", func(last uint64) uint64 { return last - 1 }, 1, []byte("evil"), natspipe.ErrLost},
		{"unknown version", func(last uint64) uint64 { return last + 1 }, 9, []byte("evil"), natspipe.ErrProtocol},
		{"over credit", func(last uint64) uint64 { return last + 1 }, 1, make([]byte, window), natspipe.ErrProtocol},
	}
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				// No pings in the way while the forged frame's number is chosen.
				opt := natspipe.Options{Keepalive: time.Hour, Window: window}
				a, z := pair(t, b, strings.ReplaceAll(tc.name, " ", "_"), opt, opt)
				// A round trip first: once a has read z's data, a's answer to z's hello has been sent, so
				// nothing but the forged frame can take the next number.
				if _, err := z.p.Write([]byte("ok")); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(a.p, make([]byte, 2)); err != nil {
					t.Fatal(err)
				}
				if _, err := a.p.Write([]byte("good")); err != nil {
					t.Fatal(err)
				}
				forged := natspipe.Forge(tc.ver, tc.seq(a.p.SeqOut()), tc.body)
				if err := a.nc.Publish(b.Subject("pipe."+strings.ReplaceAll(tc.name, " ", "_")+".up"), forged); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(z.p)
				if string(got) != "good" || !errors.Is(err, tc.want) {
					t.Fatalf("read %q, %v; want \"good\" then %v", got, err, tc.want)
				}
				if _, err := z.p.Write([]byte("x")); !errors.Is(err, tc.want) {
					t.Fatalf("write: %v, want %v", err, tc.want)
				}
				// The broken end tells its peer why when it closes.
				if err := z.p.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadAll(a.p); !errors.Is(err, natspipe.ErrReset) {
					t.Fatalf("peer of the broken end read: %v, want ErrReset", err)
				}
			})
		}
	})
}

// Deadlines behave as net.Conn's: a passed deadline fails with a timeout without breaking the pipe.
func TestPipeDeadlines(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		a, z := pair(t, b, "deadline", natspipe.Options{}, natspipe.Options{Window: 16 << 10})
		// A round trip first, so that a has z's credit before its write deadline starts running.
		if _, err := z.p.Write([]byte("?")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(a.p, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		_ = z.p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := z.p.Read(make([]byte, 1))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past the deadline: %v, want a timeout", err)
		}
		_ = z.p.SetReadDeadline(time.Time{})
		// Writing more than the window with a deadline: the write stops at the deadline, part written.
		_ = a.p.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := a.p.Write(make([]byte, 1<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 16<<10 {
			t.Fatalf("write past the deadline: %d bytes, %v", n, err)
		}
		_ = a.p.SetWriteDeadline(time.Time{})
		go func() { _, _ = a.p.Write([]byte("!")); _ = a.p.CloseWrite() }()
		got, err := io.ReadAll(z.p)
		if err != nil || len(got) != n+1 || got[n] != '!' {
			t.Fatalf("after the deadlines: %d bytes, %v; want %d", len(got), err, n+1)
		}
	})
}

// A pipe is a net.Conn good enough for net/http, as the gateway's proxy to a sandbox's port uses it.
func TestPipeCarriesHTTP(t *testing.T) {
	natstest.Each(t, func(t *testing.T, b *eventbus.Bus) {
		a, z := pair(t, b, "http", natspipe.Options{}, natspipe.Options{})
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
		})}
		l := &oneConn{c: z.p, done: make(chan struct{})}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(context.Context, string, string) (net.Conn, error) { return a.p, nil },
		}}
		for range 3 { // keep-alive: the same pipe carries each request
			resp, err := client.Post("http://sandbox/lab", "text/plain", bytes.NewReader(make([]byte, 300<<10)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(got) != "POST /lab 307200" {
				t.Fatalf("response %q, %v", got, err)
			}
		}
	})
}

// oneConn is a listener that accepts one connection, then blocks until closed.
type oneConn struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *oneConn) Addr() net.Addr { return natspipe.Addr("test") }

func TestNewRejectsBadOptions(t *testing.T) {
	nc := natstest.Start(t).Conn()
	cases := []struct {
		name    string
		in, out string
		opt     natspipe.Options
		want    string
	}{
		{"same subjects", "a", "a", natspipe.Options{}, "two different subjects"},
		{"no subject", "", "b", natspipe.Options{}, "two different subjects"},
		{"small window", "a", "b", natspipe.Options{Window: 1024}, "window 1024"},
		{"chunk over max_payload", "a", "b", natspipe.Options{ChunkSize: 64 << 20}, "max_payload"},
		{"tiny keepalive", "a", "b", natspipe.Options{Keepalive: time.Microsecond}, "keepalive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := natspipe.New(nc, tc.in, tc.out, tc.opt)
			if err == nil {
				p.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
