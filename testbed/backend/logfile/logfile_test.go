package logfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// files returns what path and path.1 hold ("-" for a missing path.1).
func files(t *testing.T, path string) (cur, older string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o, err := os.ReadFile(path + Older)
	if errors.Is(err, fs.ErrNotExist) {
		return string(b), "-"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), string(o)
}

func TestWriter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		existing   string
		max        int64
		writes     []string
		cur, older string
	}{
		{"under half", "", 8, []string{"ab", "cd"}, "abcd", "-"},
		{"half full is not rotated yet", "", 8, []string{"abcd"}, "abcd", "-"},
		{"rotates at half", "", 8, []string{"abcd", "e"}, "e", "abcd"},
		{"a write is split at the rotation", "", 8, []string{"abc", "def"}, "ef", "abcd"},
		{"the oldest half is dropped", "", 8, []string{"abcd", "efgh", "ij"}, "ij", "efgh"},
		{"a write over the cap keeps its tail", "", 8, []string{"0123456789abcdefghij"}, "ghij", "cdef"},
		{"odd cap: halves round down", "", 9, []string{"abcdefghij"}, "ij", "efgh"},
		{"bytes already there count", "abc", 8, []string{"de"}, "e", "abcd"},
		{"more than half already there is rotated whole", "abcdef", 8, []string{"g"}, "g", "abcdef"},
		{"smallest cap", "", 2, []string{"abc"}, "c", "b"},
		{"empty writes", "", 8, []string{"", "a", ""}, "a", "-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "output.log")
			if c.existing != "" {
				if err := os.WriteFile(path, []byte(c.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			w, err := Create(path, c.max)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if cur, older := files(t, path); cur != c.cur || older != c.older {
				t.Errorf("path %q, path.1 %q; want %q, %q", cur, older, c.cur, c.older)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		max      int64
		wantHalf int64
		wantErr  bool
	}{{0, DefaultMax / 2, false}, {2, 1, false}, {1, 0, true}, {-1, 0, true}} {
		w, err := Create(filepath.Join(dir, "log"), c.max)
		if (err != nil) != c.wantErr || (err == nil && w.half != c.wantHalf) {
			t.Errorf("Create(max %d) = %+v, %v; want half %d, error %v", c.max, w, err, c.wantHalf, c.wantErr)
		}
		if w != nil {
			_ = w.Close()
		}
	}
	if _, err := Create(filepath.Join(dir, "no", "such", "log"), 8); err == nil {
		t.Errorf("Create in a missing directory succeeded")
	}
	w, err := Create(filepath.Join(dir, "closed"), 8)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
}

// TestWriterPathRemoved: a log file deleted under the writer (by hand, by a cleanup job) does not wedge
// it: the next rotation starts a new file.
func TestWriterPathRemoved(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "output.log")
	w, err := Create(path, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("abcd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("ef")); err != nil {
		t.Fatalf("Write after the file was removed: %v", err)
	}
	if cur, older := files(t, path); cur != "ef" || older != "-" {
		t.Errorf("path %q, path.1 %q; want the new bytes in a new path", cur, older)
	}
}

// TestWriterKeepsNewest: whatever the writes, the log never exceeds the cap on disk, and path.1 followed by
// path is the newest part of everything written, at least half the cap of it.
func TestWriterKeepsNewest(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, max := range []int64{2, 3, 16, 1000} {
		path := filepath.Join(t.TempDir(), "output.log")
		w, err := Create(path, max)
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		for range 200 {
			p := make([]byte, rng.IntN(int(max)*2))
			for i := range p {
				p[i] = byte('a' + rng.IntN(26))
			}
			if _, err := w.Write(p); err != nil {
				t.Fatal(err)
			}
			all = append(all, p...)
			cur, older := files(t, path)
			kept := strings.TrimPrefix(older, "-") + cur
			if int64(len(kept)) > max || int64(len(kept)) < min(int64(len(all)), max/2) || !bytes.HasSuffix(all, []byte(kept)) {
				t.Fatalf("cap %d: %d bytes written, %d kept (path.1 %d): want the newest %d to %d", max, len(all), len(kept), len(older), max/2, max)
			}
		}
		_ = w.Close()
	}
}

// readAvailable reads r until it has caught up with the writer.
func readAvailable(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 5) // small, so reads end inside files as well as at their ends
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	t.Run("before the writer", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "output.log")
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if got := readAvailable(t, r); len(got) != 0 {
			t.Fatalf("read %q from a new log", got)
		}
		w, err := Create(path, 8)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		_, _ = w.Write([]byte("hello"))
		if got := readAvailable(t, r); string(got) != "hello" {
			t.Errorf("read %q, want hello", got)
		}
	})
	t.Run("both halves in order", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "output.log")
		w, err := Create(path, 8)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte("0123456789"))
		_ = w.Close()
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if got := readAvailable(t, r); string(got) != "456789" {
			t.Errorf("read %q, want path.1 then path: 456789", got)
		}
	})
	t.Run("keeping up misses nothing", func(t *testing.T) {
		t.Parallel()
		// Each write is at most half the cap, so it rotates at most once: the file being read is path.1
		// at worst, still there. A reader that catches up after each write gets every byte, once.
		path := filepath.Join(t.TempDir(), "output.log")
		w, err := Create(path, 16)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rng := rand.New(rand.NewPCG(3, 4))
		var all, got []byte
		for i := range 300 {
			p := []byte(strings.Repeat(string(rune('a'+i%26)), 1+rng.IntN(8)))
			_, _ = w.Write(p)
			all = append(all, p...)
			got = append(got, readAvailable(t, r)...)
		}
		if !bytes.Equal(got, all) {
			t.Errorf("read %d bytes, wrote %d: not the same", len(got), len(all))
		}
	})
	t.Run("falling behind skips, never repeats", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "output.log")
		w, err := Create(path, 8)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		_, _ = w.Write([]byte("abcdef")) // path.1 abcd, path ef
		r, err := Open(path)             // on path.1
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 2)
		if n, _ := r.Read(buf); string(buf[:n]) != "ab" {
			t.Fatalf("first read %q", buf[:n])
		}
		_, _ = w.Write([]byte("ghijklmn")) // path.1 ijkl, path mn: abcd and efgh are gone
		// The open abcd is still readable to its end; efgh was dropped unread; then ijkl and mn.
		if got := readAvailable(t, r); string(got) != "cdijklmn" {
			t.Errorf("read %q, want cdijklmn", got)
		}
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		r, err := Open(filepath.Join(t.TempDir(), "output.log"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Read after Close = %v, want os.ErrClosed", err)
		}
	})
	t.Run("log removed", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "sandbox")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "output.log")
		w, err := Create(path, 8)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte("abcdef"))
		_ = w.Close()
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		// What was open is read; then the end, not an error.
		if got := readAvailable(t, r); string(got) != "abcd" {
			t.Errorf("read %q, want the open half", got)
		}
	})
}

// TestConcurrentFollower: a reader polling while the writer rotates many times reads an in-order
// selection of what was written, without a byte twice, and ends with exactly what the log keeps.
func TestConcurrentFollower(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "output.log")
	w, err := Create(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	all := make([]byte, 40_000)
	for i := range all {
		all[i] = byte(rng.IntN(256)) // random, so a repeated stretch could not match later by chance
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		for p := all; len(p) > 0; {
			n := min(len(p), 1+rand.IntN(40))
			if _, err := w.Write(p[:n]); err != nil {
				t.Error(err)
				return
			}
			p = p[n:]
		}
	}()
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
	var got []byte
	buf := make([]byte, 7)
	for done := false; ; {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			if done {
				break
			}
			select {
			case <-writing:
				done = true // one more pass: the writer's last bytes
			default:
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// got is all with stretches left out: match it greedily, in order.
	i := 0
	for _, b := range got {
		for i < len(all) && all[i] != b {
			i++
		}
		if i == len(all) {
			t.Fatalf("read %d bytes that are not an in-order selection of what was written", len(got))
		}
		i++
	}
	cur, older := files(t, path)
	kept := strings.TrimPrefix(older, "-") + cur
	if !bytes.HasSuffix(got, []byte(cur)) || !bytes.HasSuffix(all, []byte(kept)) {
		t.Errorf("the reader did not end with the log's newest bytes")
	}
	t.Logf("read %d of %d bytes written", len(got), len(all))
}

// TestFollow: a follower waits for what the writer adds and returns io.EOF once the writer has ended and its
// last bytes are read.
func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	w, err := Create(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	done := false
	f := Follow(context.Background(), r, time.Millisecond, func() bool { mu.Lock(); defer mu.Unlock(); return done })
	go func() {
		for i := range 50 {
			_, _ = fmt.Fprintf(w, "line %d\n", i)
			time.Sleep(time.Millisecond)
		}
		// The last line lands before the end is known: the follower must still read it.
		_, _ = io.WriteString(w, "last\n")
		mu.Lock()
		done = true
		mu.Unlock()
	}()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "line 0\n") || !strings.HasSuffix(string(got), "line 49\nlast\n") {
		t.Fatalf("followed %q", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

}

// TestCreateRefusesSymlink: a log whose path is a symbolic link is not opened, so the owner of a directory the
// writer (root, in a Slurm step) writes into cannot point the log at another file.
func TestCreateRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.log")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if w, err := Create(path, 0); err == nil {
		w.Close()
		t.Fatal("Create followed a symbolic link")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Fatalf("the link's target changed: %q", b)
	}
}
