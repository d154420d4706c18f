package step

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Terminal runs cmd (a login shell when empty) on a terminal inside the job directory's running sandbox
// and bridges it to stdin and stdout, which are srun's pty: stdin goes raw while the bridge lasts (the inner
// terminal does the line editing and echo), and the inner terminal follows stdin's window size. It returns
// when the inner terminal's output ends (its process exited) or when stdin closes (the user's srun went
// away), closing the inner terminal either way; ctx ending closes it too.
func Terminal(ctx context.Context, c Config, dir string, cmd []string, stdin *os.File, stdout io.Writer) error {
	b, err := c.backend()
	if err != nil {
		return err
	}
	defer b.Close()
	t, err := b.Terminal(ctx, filepath.Base(dir), cmd)
	if err != nil {
		return err
	}
	defer t.Close()
	if restore, ok := makeRaw(stdin); ok {
		defer restore()
		resize := func() {
			if ws, err := pty.GetsizeFull(stdin); err == nil {
				_ = t.Resize(ws.Cols, ws.Rows)
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer func() {
			signal.Stop(winch) // before the close: a signal sent on a closed channel panics
			close(winch)
		}()
		go func() {
			for range winch {
				resize()
			}
		}()
	}
	out := make(chan struct{})
	go func() {
		defer close(out)
		_, _ = io.Copy(stdout, t)
	}()
	in := make(chan struct{})
	go func() {
		defer close(in)
		_, _ = io.Copy(t, stdin)
	}()
	select {
	case <-out:
	case <-in:
		t.Close() // hangs up the shell; its output then ends
		<-out
	case <-ctx.Done():
		t.Close()
		<-out
	}
	// Unblocks the stdin copy where stdin can be interrupted (a pipe or pty Go polls); elsewhere the
	// process is about to exit anyway.
	_ = stdin.SetReadDeadline(time.Now())
	return nil
}

// makeRaw puts f in raw mode when it is a terminal (cfmakeraw's settings) and returns how to undo it.
func makeRaw(f *os.File) (restore func(), ok bool) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, false
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, false
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, true
}

// Dial connects to port on the job directory's sandbox's loopback and copies stdin to the connection and
// the connection to stdout, as netcat does: stdin's end half-closes the connection where it can be (the
// other side still answers), and the connection's end is the end.
func Dial(ctx context.Context, c Config, dir string, port int, stdin io.Reader, stdout io.Writer) error {
	b, err := c.backend()
	if err != nil {
		return err
	}
	defer b.Close()
	conn, err := b.DialPort(ctx, filepath.Base(dir), port)
	if err != nil {
		return err
	}
	defer conn.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			sent <- err
			return
		}
		conn.Close() // no half-close: the end of stdin is the end
		sent <- err
	}()
	got := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdout, conn)
		got <- err
	}()
	select {
	case err = <-got:
	case <-ctx.Done():
		conn.Close()
		err = <-got
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("dial port %d: %w", port, err)
	}
	return nil
}
