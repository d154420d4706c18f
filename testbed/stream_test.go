package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

// xs is a block of output without a newline.
var xs = bytes.Repeat([]byte("x"), 32<<10)

// endless yields left bytes of "x" and never a newline, produced as they are read: the output of a
// sandbox that prints a progress bar without ever ending the line, without holding it in the test.
type endless struct{ left int64 }

func (r *endless) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	for i := 0; i < len(p); i += copy(p[i:], xs) {
	}
	r.left -= int64(len(p))
	return len(p), nil
}

// hugeLogs is the simulator whose sandboxes have printed size bytes on one line.
type hugeLogs struct {
	*sim.Backend
	size int64
}

func (b hugeLogs) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	if _, err := b.Inspect(ctx, id); err != nil {
		return nil, err
	}
	return io.NopCloser(&endless{left: b.size}), nil
}

// serveHTTP serves the service on a real listener: app.Test would collect the whole response in memory.
func serveHTTP(t *testing.T, svc *Service) (base string, sign signer) {
	t.Helper()
	app, sign := newApp(t, svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String() + "/api/v1/testbed", sign
}

// heapPeak samples the heap in use until stop is called, which returns the largest sample.
func heapPeak() (sample func(), stop func() uint64) {
	var mu sync.Mutex
	var peak uint64
	sample = func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		peak = max(peak, m.HeapInuse)
		mu.Unlock()
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return sample, func() uint64 {
		close(done)
		<-finished
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// TestLogStreamMemoryBounded: a sandbox that printed 200 MB without a newline streams in bounded pieces:
// the heap in use while serving it grows by less than 32 MiB, and every byte arrives, in log events whose
// data lines are at most logEventMax long.
func TestLogStreamMemoryBounded(t *testing.T) {
	const size = 200 << 20
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 1, 30)
		svc, err := New(Deps{DB: f.db, Clock: f.clk, Holds: ApproveHolds{},
			Backends: map[string]backend.Backend{"simulator": hugeLogs{Backend: f.sim, size: size}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		base, sign := serveHTTP(t, svc)
		req, _ := http.NewRequest("GET", base+"/sandboxes/"+sb.ID+"/logs?follow=false", nil)
		req.Header.Set("Authorization", "Bearer "+sign.token(t, sme()))

		// Garbage counts in the heap in use until a collection: at the default GOGC it may reach the size of
		// whatever else this test process holds live, which made the bound flaky. Collecting at 10% growth keeps
		// the figure about what the stream itself holds on to.
		defer debug.SetGCPercent(debug.SetGCPercent(10))
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		sample, stop := heapPeak()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		got, events, err := readLogEvents(res.Body, 2*logEventMax, func(n int64) {
			if n%(4<<20) < logEventMax {
				sample()
			}
		})
		peak := stop()
		growth := int64(peak) - int64(before.HeapInuse)
		if growth >= 32<<20 {
			t.Errorf("heap in use grew by %d MiB while streaming %d MiB of output; want < 32 MiB", growth>>20, size>>20)
		}
		t.Logf("heap in use grew by at most %.1f MiB while streaming %d MiB", float64(growth)/(1<<20), size>>20)
		if res.StatusCode != 200 || err != nil {
			t.Fatalf("status %d, stream: %v", res.StatusCode, err)
		}
		if got != size || events < size/logEventMax {
			t.Errorf("streamed %d bytes in %d events, want %d in events of at most %d bytes", got, events, size, logEventMax)
		}
	})
}

// readLogEvents reads an SSE log stream whose output is only "x", checking its framing as it goes: the
// opening comment, log events whose data lines fit in max bytes, and the end event last. It returns how
// many bytes of output and how many log events arrived; progress is called after each event.
func readLogEvents(r io.Reader, max int, progress func(n int64)) (n, events int64, err error) {
	br := bufio.NewReaderSize(r, max)
	line := func() (string, error) {
		l, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("a line longer than %d bytes after %d bytes of output", max, n)
		}
		if err != nil {
			return "", fmt.Errorf("after %d bytes of output: %w", n, err)
		}
		return string(l), nil
	}
	if l, err := line(); err != nil || !strings.HasPrefix(l, ": sandbox ") {
		return n, events, fmt.Errorf("opening %q, %v", l, err)
	}
	if l, err := line(); err != nil || l != "\n" {
		return n, events, fmt.Errorf("after the opening %q, %v", l, err)
	}
	for {
		l, err := line()
		if err != nil {
			return n, events, err
		}
		switch l {
		case "event: end\n":
			if l, err := line(); err != nil || l != "data: {}\n" {
				return n, events, fmt.Errorf("end event data %q, %v", l, err)
			}
			if l, err := line(); err != nil || l != "\n" {
				return n, events, fmt.Errorf("after the end event %q, %v", l, err)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return n, events, fmt.Errorf("more after the end event: %v", err)
			}
			return n, events, nil
		case "event: log\n":
		default:
			return n, events, fmt.Errorf("unexpected line %.80q", l)
		}
		d, err := line()
		if err != nil {
			return n, events, err
		}
		data, ok := strings.CutPrefix(d, "data: ")
		data, ok2 := strings.CutSuffix(data, "\n")
		if !ok || !ok2 || strings.Trim(data, "x") != "" {
			return n, events, fmt.Errorf("data line %.80q", d)
		}
		if l, err := line(); err != nil || l != "\n" {
			return n, events, fmt.Errorf("after a log event %.80q, %v", l, err)
		}
		n += int64(len(data))
		events++
		progress(n)
	}
}

// TestLogPieces: lines go out whole with their line end; a line longer than the limit goes out in pieces
// that never split a UTF-8 sequence, and the line end that follows a cut is not sent as an empty line.
func TestLogPieces(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"lines", "a\nbc\n\nd", 8, []string{"a\n", "bc\n", "\n", "d"}},
		{"empty", "", 8, nil},
		{"exactly max", "abcdefg\n", 8, []string{"abcdefg\n"}},
		{"long line cut", "abcdefghij\nk\n", 4, []string{"abcd", "efgh", "ij\n", "k\n"}},
		{"cut before the line end", "abcd\nx\n", 4, []string{"abcd", "x\n"}},
		{"cut before \\r\\n", "abcd\r\nx\n", 4, []string{"abcd", "x\n"}},
		{"cut after \\r", "abc\r\nx\n", 4, []string{"abc\r", "x\n"}},
		{"cut at the end of output", "abcd", 4, []string{"abcd"}},
		{"cut then \\r at the end", "abcd\r", 4, []string{"abcd"}},
		{"empty line after a cut line is kept", "abcd\n\n", 4, []string{"abcd", "\n"}},
		{"\\r inside stays", "a\rb\n", 8, []string{"a\rb\n"}},
		{"rune not split", "abé\n", 3, []string{"ab", "é\n"}},
		{"4-byte rune not split", "ab\U0001F600cd", 5, []string{"ab", "\U0001F600c", "d"}},
		{"not UTF-8 cut anywhere", "\x80\x80\x80\x80\x80\n", 4, []string{"\x80\x80\x80\x80", "\x80\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			// One byte at a time as well as all at once: pieces must not depend on how reads fall.
			for _, r := range []io.Reader{strings.NewReader(c.in), iotest.OneByteReader(strings.NewReader(c.in))} {
				got = got[:0]
				err := logPieces(r, c.max, func(p []byte) bool {
					if len(p) > c.max {
						t.Errorf("piece %q longer than %d", p, c.max)
					}
					got = append(got, string(p))
					return true
				})
				if err != nil || !slices.Equal(got, c.want) {
					t.Errorf("logPieces(%q, %d) = %q, %v; want %q", c.in, c.max, got, err, c.want)
				}
			}
		})
	}
	t.Run("stops when emit says so", func(t *testing.T) {
		t.Parallel()
		calls := 0
		_ = logPieces(strings.NewReader("a\nb\nc\n"), 8, func([]byte) bool { calls++; return false })
		if calls != 1 {
			t.Errorf("emit called %d times after returning false, want 1", calls)
		}
	})
	t.Run("read error", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		var got []string
		err := logPieces(io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom)), 8, func(p []byte) bool {
			got = append(got, string(p))
			return true
		})
		if !errors.Is(err, boom) || !slices.Equal(got, []string{"a\n", "b"}) {
			t.Errorf("got %q, %v; want what was read, then the error", got, err)
		}
	})
}

// TestLogStreamFollowLongLine: following a running sandbox, a line longer than logEventMax arrives as
// several log events whose text joins up to the line, a multi-byte character is never split, the line's
// own end is not an extra event, and the stream ends with the sandbox.
func TestLogStreamFollowLongLine(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 1, 30)
		base, sign := serveHTTP(t, f.svc)
		req, _ := http.NewRequest("GET", base+"/sandboxes/"+sb.ID+"/logs", nil)
		req.Header.Set("Authorization", "Bearer "+sign.token(t, sme()))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		long := strings.Repeat("é", logEventMax) // 2 bytes each: 2*logEventMax bytes, an odd cut otherwise
		if err := f.sim.WriteLog(sb.ID, "x"+long+"\r\nafter\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.sim.Exit(sb.ID, 0); err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%d %v", res.StatusCode, err)
		}
		var texts []string
		events := strings.Split(strings.TrimSuffix(string(raw), "\n\n"), "\n\n")
		for _, ev := range events[1:] {
			if data, ok := strings.CutPrefix(ev, "event: log\ndata: "); ok {
				if strings.Contains(data, "\n") || len(data) > logEventMax || !utf8.ValidString(data) {
					t.Fatalf("log event %.80q: one data line of at most %d bytes of whole characters wanted", ev, logEventMax)
				}
				texts = append(texts, data)
			}
		}
		if last := events[len(events)-1]; last != "event: end\ndata: {}" {
			t.Errorf("last event %q, want the end", last)
		}
		after := slices.Index(texts, "after")
		if after < 3 || !strings.HasPrefix(texts[0], "simulated sandbox "+sb.ID) || strings.Join(texts[1:after], "") != "x"+long {
			t.Errorf("log events of %d bytes; want the start line, the long line in pieces, then \"after\"", lens(texts))
		}
	})
}

func lens(ss []string) []int {
	out := make([]int, len(ss))
	for i, s := range ss {
		out[i] = len(s)
	}
	return out
}

// TestTemplatesStateTheirLogCap: each template caps its sandboxes' output, hands the cap to the backend,
// and tells its users in the notes.
func TestTemplatesStateTheirLogCap(t *testing.T) {
	t.Parallel()
	svc := &Service{}
	for _, tpl := range Templates() {
		if tpl.LogBytes <= 0 || tpl.LogBytes%mib != 0 {
			t.Errorf("%s: LogBytes %d, want a whole number of MiB", tpl.Name, tpl.LogBytes)
		}
		if want := fmt.Sprintf("the newest %d MiB at most are kept (never less than the newest %d MiB)", tpl.LogBytes/mib, tpl.LogBytes/mib/2); !strings.Contains(tpl.Notes, want) {
			t.Errorf("%s: notes %q do not say %q", tpl.Name, tpl.Notes, want)
		}
		if got := svc.spec(Sandbox{ID: "sb-1", Template: tpl.Name}, Pool{}).Limits.LogBytes; got != tpl.LogBytes {
			t.Errorf("%s: spec's LogBytes %d, want %d", tpl.Name, got, tpl.LogBytes)
		}
	}
}
