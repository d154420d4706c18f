package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"github.com/tamarack-ai/tamarack/platform/natspipe"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// SFTP: served here, next to the sandbox, by pkg/sftp over a pipe, on the sandbox's home directory as the host
// sees it (backend.Homer), opened as an os.Root: no path, .. or symbolic link reaches outside it. Paths are the
// sandbox's own (/home/sandbox/…, or relative to it); anything outside the home is refused. The agent runs as
// host root, so what it creates is given to the sandbox's uid and gid at once, through the open file where
// there is one. The home's filesystem quota applies as to the sandbox itself.

// SFTP opens an SFTP session on the sandbox's home through the agent: the connection carries the SFTP
// protocol (an ssh "sftp" subsystem's bytes). A backend without homes on its host answers
// backend.ErrNotSupported.
func (c *Client) SFTP(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	return c.open(ctx, events.AgentOpSFTP, events.AgentStreamV1{SandboxID: id}, natspipe.Options{})
}

// sftp serves SFTP on the sandbox's home over the pipe until either side closes it.
func (s *Server) sftp(ctx context.Context, r events.AgentStreamV1) (events.AgentEmptyV1, error) {
	hb, ok := s.cfg.Backend.(backend.Homer)
	if !ok {
		return events.AgentEmptyV1{}, toProblem(fmt.Errorf("file transfer: %w", backend.ErrNotSupported))
	}
	home, err := hb.Home(ctx, r.SandboxID)
	if err != nil {
		return events.AgentEmptyV1{}, toProblem(err)
	}
	root, err := os.OpenRoot(home.Path)
	if err != nil {
		return events.AgentEmptyV1{}, toProblem(fmt.Errorf("home of %s: %w", r.SandboxID, err))
	}
	p, err := s.join(r, natspipe.Options{})
	if err != nil {
		root.Close()
		return events.AgentEmptyV1{}, err
	}
	h := &homeFS{root: root, home: home}
	srv := sftp.NewRequestServer(p, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h},
		sftp.WithStartDirectory(home.Inside))
	var once sync.Once
	end := func() { once.Do(func() { _ = srv.Close(); _ = p.Close() }) }
	stop := context.AfterFunc(ctx, end)
	s.pipes.Add(1)
	go func() {
		defer s.pipes.Done()
		defer stop()
		defer root.Close()
		if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
			s.cfg.Log.Debug("sftp ended", "sandbox", r.SandboxID, "err", err)
		}
		end()
	}()
	return events.AgentEmptyV1{}, nil
}

// homeFS implements pkg/sftp's handlers on a sandbox's home.
type homeFS struct {
	root *os.Root
	home backend.Home
}

var errOutside = fmt.Errorf("%w: only the sandbox's home directory is reachable over SFTP", fs.ErrPermission)

// rel maps a path as the sandbox sees it (cleaned and absolute: pkg/sftp resolves relative ones against the
// start directory, the home) to a name inside the root.
func (h *homeFS) rel(p string) (string, error) {
	p = path.Clean("/" + p)
	if p == h.home.Inside {
		return ".", nil
	}
	if r, ok := strings.CutPrefix(p, h.home.Inside+"/"); ok {
		return r, nil
	}
	return "", errOutside
}

func (h *homeFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	name, err := h.rel(r.Filepath)
	if err != nil {
		return nil, err
	}
	return h.root.Open(name)
}

func (h *homeFS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	name, err := h.rel(r.Filepath)
	if err != nil {
		return nil, err
	}
	pf := r.Pflags()
	flag := os.O_WRONLY
	if pf.Read {
		flag = os.O_RDWR
	}
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	_, statErr := h.root.Lstat(name)
	f, err := h.root.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := f.Chown(h.home.UID, h.home.GID); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func (h *homeFS) Filecmd(r *sftp.Request) error {
	name, err := h.rel(r.Filepath)
	if err != nil {
		return err
	}
	switch r.Method {
	case "Setstat":
		a, fl := r.Attributes(), r.AttrFlags()
		if fl.Size {
			f, err := h.root.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			err = f.Truncate(int64(a.Size))
			f.Close()
			if err != nil {
				return err
			}
		}
		if fl.Permissions {
			if err := h.root.Chmod(name, a.FileMode().Perm()); err != nil {
				return err
			}
		}
		if fl.Acmodtime {
			if err := h.root.Chtimes(name, a.AccessTime(), a.ModTime()); err != nil {
				return err
			}
		}
		return nil // owners stay the sandbox's
	case "Rename":
		target, err := h.rel(r.Target)
		if err != nil {
			return err
		}
		return h.root.Rename(name, target)
	case "Rmdir", "Remove":
		return h.root.Remove(name)
	case "Mkdir":
		if err := h.root.Mkdir(name, 0o755); err != nil {
			return err
		}
		return h.root.Lchown(name, h.home.UID, h.home.GID)
	case "Symlink":
		// r.Filepath is the target and r.Target the link (pkg/sftp's order); the target is kept as given: it
		// is read inside the sandbox, and os.Root never follows it out.
		link, err := h.rel(r.Target)
		if err != nil {
			return err
		}
		if err := h.root.Symlink(r.Filepath, link); err != nil {
			return err
		}
		return h.root.Lchown(link, h.home.UID, h.home.GID)
	case "Link":
		target, err := h.rel(r.Target)
		if err != nil {
			return err
		}
		return h.root.Link(name, target)
	}
	return sftp.ErrSSHFxOpUnsupported
}

func (h *homeFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	name, err := h.rel(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		d, err := h.root.Open(name)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		entries, err := d.Readdir(-1)
		if err != nil {
			return nil, err
		}
		return listerAt(entries), nil
	case "Stat":
		fi, err := h.root.Stat(name)
		if err != nil {
			return nil, err
		}
		return listerAt{fi}, nil
	case "Readlink":
		t, err := h.root.Readlink(name)
		if err != nil {
			return nil, err
		}
		return listerAt{linkInfo{name: t}}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat answers without following a final symbolic link.
func (h *homeFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	name, err := h.rel(r.Filepath)
	if err != nil {
		return nil, err
	}
	fi, err := h.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	return listerAt{fi}, nil
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

// linkInfo carries a link's target as the name pkg/sftp's Readlink answers.
type linkInfo struct{ name string }

func (l linkInfo) Name() string       { return l.name }
func (l linkInfo) Size() int64        { return 0 }
func (l linkInfo) Mode() fs.FileMode  { return fs.ModeSymlink | 0o777 }
func (l linkInfo) ModTime() time.Time { return time.Time{} }
func (l linkInfo) IsDir() bool        { return false }
func (l linkInfo) Sys() any           { return nil }
