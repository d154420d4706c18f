// Package logfile keeps a sandbox's output on disk within a size cap, and reads it back while it grows.
//
// A log is two files: path, which is written, and path.1, the half before it. When path reaches half the
// cap it is renamed to path.1 (replacing the older half, whose bytes are dropped) and a new path starts.
// Disk use is at most the cap (a reader still on a dropped half keeps its space until it moves on), the
// newest half of it is always kept, and neither side holds more than a read buffer in memory. A reader never reads a byte twice or out of order, and misses nothing unless it
// falls more than the cap behind the writer: then it skips what the cap dropped (the file it has open it
// still reads to the end).
//
// It owns those two files and nothing else: it knows nothing of sandboxes, processes or streams, so any
// runtime that supervises a sandbox's output (the local backend's shim, whatever runtime it drives) can
// use it.
package logfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// DefaultMax is the cap of a log created with max 0: 16 MiB.
const DefaultMax = 16 << 20

// Older is the suffix of the half before the current one.
const Older = ".1"

// Writer appends to a log, rotating it at half the cap. Safe for concurrent use.
type Writer struct {
	path string
	half int64

	mu     sync.Mutex
	f      *os.File // nil after a failed rotation: the next Write opens path again
	size   int64    // bytes in f
	closed bool
}

// Create opens the log at path for appending, creating it if needed, capped at max bytes (DefaultMax when
// 0; at least 2). Bytes already in path count towards the cap; if they are more than half of it, path is
// rotated whole at the first Write.
func Create(path string, max int64) (*Writer, error) {
	if max == 0 {
		max = DefaultMax
	}
	if max < 2 {
		return nil, fmt.Errorf("log %s: cap %d bytes: want at least 2", path, max)
	}
	w := &Writer{path: path, half: max / 2}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	// Readable by whoever may enter the directory, which is what guards the log: the local runtime's is
	// root's alone, a Slurm job directory is the agent's user's, and there the writer is the step, as root.
	// Never through a symbolic link: whoever owns the directory could point the log at a file of root's.
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log: %w", err)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Write appends p, rotating as often as it needs: a write larger than the cap leaves only its own tail.
// On an error the bytes before it are written and counted in n; a later Write tries again.
func (w *Writer) Write(p []byte) (n int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, os.ErrClosed
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			return 0, err
		}
	}
	for len(p) > 0 {
		if w.size >= w.half {
			if err := w.rotate(); err != nil {
				return n, err
			}
		}
		k, err := w.f.Write(p[:min(int64(len(p)), w.half-w.size)])
		n += k
		w.size += int64(k)
		p = p[k:]
		if err != nil {
			return n, fmt.Errorf("log: %w", err)
		}
	}
	return n, nil
}

// rotate moves path to path.1 and starts a new path. The rename comes first: a reader that finds path
// is no longer its file knows that file is complete. A path deleted under the writer is simply started
// again.
func (w *Writer) rotate() error {
	if err := os.Rename(w.path, w.path+Older); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("log: rotate: %w", err)
	}
	old := w.f
	w.f = nil
	_ = old.Close()
	return w.open()
}

// Close closes the file being written. Later Writes fail with os.ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f == nil {
		return nil
	}
	return w.f.Close()
}

// Reader reads a log from its oldest kept byte: path.1, then path, then each path the writer starts
// after it. Read returns io.EOF once it has caught up with the writer; a later Read returns what was
// written since, as an *os.File does, which is how a follower polls. Safe for concurrent use: Close may
// be called while another goroutine reads.
type Reader struct {
	path string

	mu     sync.Mutex
	f      *os.File
	done   bool // f is no longer path: nothing more will be written to it
	closed bool
}

// Open opens the log at path for reading. A log not created yet is created empty, so a reader may come
// before the writer.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path + Older)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return &Reader{path: path, f: f}, nil
}

// Read reads the next bytes of the log.
func (r *Reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	for {
		n, err := r.f.Read(p)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		if !r.done {
			// Caught up. If the writer has moved on, what it wrote before moving is in f: read f
			// to its end once more before going on to the next file.
			moved, err := r.moved()
			if err != nil {
				return 0, err
			}
			if !moved {
				return 0, io.EOF
			}
			r.done = true
			continue
		}
		next, err := r.next()
		if err != nil || next == nil {
			return 0, err
		}
		_ = r.f.Close()
		r.f, r.done = next, false
	}
}

// moved reports whether path is a file other than r.f: the writer rotated since r.f was path. A missing
// path (the writer between rename and create, or the log removed) is not a move, and reads as the end.
func (r *Reader) moved() (bool, error) {
	cur, err := r.f.Stat()
	if err != nil {
		return false, fmt.Errorf("log: %w", err)
	}
	now, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, io.EOF
	}
	if err != nil {
		return false, fmt.Errorf("log: %w", err)
	}
	return !os.SameFile(cur, now), nil
}

// next opens the file written after r.f: path when r.f is path.1 now, else path.1 (r.f was dropped by a
// later rotation, so path.1 is the oldest file newer than it). It returns nil while the writer is
// between rename and create.
func (r *Reader) next() (*os.File, error) {
	cur, err := r.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	for {
		name := r.path + Older
		older, err := os.Stat(name)
		switch {
		case err == nil && os.SameFile(older, cur):
			name = r.path
		case errors.Is(err, fs.ErrNotExist):
			name = r.path
		case err != nil:
			return nil, fmt.Errorf("log: %w", err)
		}
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
		if name == r.path {
			// A rotation between the Stat and the Open would make f the file after the one we want,
			// which is path.1 now: look again.
			if again, err := os.Stat(r.path + Older); err == nil && !os.SameFile(again, older) {
				_ = f.Close()
				continue
			}
		}
		return f, nil
	}
}

// Close releases the file being read.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.f.Close()
}

// Follow reads r like tail -F: at the end of what is written so far it waits, looking again every interval,
// until ended reports that the writer has finished (then it drains what was written before, and returns
// io.EOF), ctx ends, or Close is called. Polling, not inotify: cheap at this rate, and it works on every
// filesystem, a cluster's shared one included.
func Follow(ctx context.Context, r *Reader, interval time.Duration, ended func() bool) io.ReadCloser {
	return &follower{r: r, ctx: ctx, every: interval, ended: ended, closed: make(chan struct{})}
}

type follower struct {
	r      *Reader
	ctx    context.Context
	every  time.Duration
	ended  func() bool
	once   sync.Once
	closed chan struct{}
}

func (f *follower) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		if f.ended() {
			// Whatever it wrote before ending is in the file now: drain that, then stop.
			n, err := f.r.Read(p)
			if n > 0 {
				return n, nil
			}
			if err == nil {
				err = io.EOF
			}
			return 0, err
		}
		t := time.NewTimer(f.every)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return 0, f.ctx.Err()
		case <-f.closed:
			t.Stop()
			return 0, os.ErrClosed
		case <-t.C:
		}
	}
}

func (f *follower) Close() error {
	f.once.Do(func() { close(f.closed) })
	return f.r.Close()
}
