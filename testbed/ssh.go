package testbed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// The SSH gateway (docs/ssh.md): `ssh <sandbox-id>@<host> -p <port>` reaches a running sandbox as the browser
// terminal does. The user is whoever registered the offered public key on their profile (identity owns keys;
// the gateway asks it on every connection, SSHKeys), and may enter only the sandboxes of organisations they are
// a member of, staff included: being staff opens nothing here. A session channel gives a shell (with a pty),
// an exec (with or without one: without, the command gets binary-clean stdin, stdout and stderr and its exit
// status travels back, which scp, rsync and VS Code need) or the sftp subsystem (served next to the sandbox on
// its home); direct-tcpip forwards to the ports the sandbox's template declares, and no other. Every channel
// is audited when it opens and when it ends (testbed_audit: who, key fingerprint, sandbox, kind).

// Audit actions of the SSH gateway.
const (
	AuditSSHStarted = "ssh_session_started"
	AuditSSHEnded   = "ssh_session_ended"
)

// SSHKeys says who an SSH public key belongs to, now: an unknown (or deleted) key answers an error. probe
// leaves the key's last use unrecorded (asked before the client has proven it holds the private key).
type SSHKeys interface {
	LookupSSHKey(ctx context.Context, fingerprint string, probe bool) (events.SSHKeyOwnerV1, error)
}

// BusSSHKeys asks identity over NATS (events.SSHKeyLookup); a timeout or no answer refuses the key.
type BusSSHKeys struct {
	Bus     *eventbus.Bus
	Timeout time.Duration // default 5s
}

func (k BusSSHKeys) LookupSSHKey(ctx context.Context, fp string, probe bool) (events.SSHKeyOwnerV1, error) {
	return eventbus.CallWithin(ctx, k.Bus, k.Timeout, events.SSHKeyLookup, events.SSHKeyLookupV1{Fingerprint: fp, Probe: probe})
}

// SSHConfig configures the gateway.
type SSHConfig struct {
	HostKey ssh.Signer
	Keys    SSHKeys
	Log     *slog.Logger
}

// HostKey loads the gateway's Ed25519 host key from path, creating it (0600) on first use, so that clients'
// known_hosts stay valid across restarts.
func HostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		blk, merr := ssh.MarshalPrivateKey(priv, "tamarack ssh gateway")
		if merr != nil {
			return nil, merr
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, oerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if oerr != nil {
			return nil, fmt.Errorf("ssh host key: %w", oerr)
		}
		if _, err := f.Write(pem.EncodeToMemory(blk)); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return ssh.NewSignerFromKey(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	return s, nil
}

// ServeSSH runs the SSH gateway on ln until ctx ends; then it closes the listener and every connection.
func (s *Service) ServeSSH(ctx context.Context, ln net.Listener, cfg SSHConfig) error {
	if cfg.HostKey == nil || cfg.Keys == nil {
		return errors.New("ssh gateway: a host key and a key lookup are required")
	}
	log := cfg.Log
	if log == nil {
		log = s.log
	}
	g := &gateway{s: s, keys: cfg.Keys, log: log.With("component", "ssh")}
	conf := &ssh.ServerConfig{
		PublicKeyCallback: g.authorise,
		ServerVersion:     "SSH-2.0-Tamarack",
		MaxAuthTries:      6,
	}
	conf.AddHostKey(cfg.HostKey)
	var wg sync.WaitGroup
	conns := map[net.Conn]struct{}{}
	var mu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); _ = c.Close() }()
			g.serve(ctx, c, conf)
		}()
	}
}

type gateway struct {
	s    *Service
	keys SSHKeys
	log  *slog.Logger
}

// errSSHRefused is what a refused key or sandbox gets: which one failed is not told.
var errSSHRefused = errors.New("refused")

// authorise maps the offered key to its owner and refuses a user who may not enter the sandbox named by the
// SSH user name: unknown key, unknown sandbox, or not a member of its organisation (staff too).
func (g *gateway) authorise(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fp := ssh.FingerprintSHA256(key)
	owner, err := g.keys.LookupSSHKey(ctx, fp, true)
	if err != nil {
		if p, ok := problem.From(err); !ok || p.Status >= 500 {
			g.log.Warn("ssh key lookup failed", "err", err)
		}
		return nil, errSSHRefused
	}
	sb, err := g.sandbox(ctx, meta.User(), owner)
	if err != nil {
		g.log.Info("ssh refused", "user_id", owner.UserID, "fingerprint", fp, "sandbox", meta.User(), "remote", meta.RemoteAddr().String())
		return nil, errSSHRefused
	}
	return &ssh.Permissions{Extensions: map[string]string{"fingerprint": fp, "user_id": owner.UserID, "sandbox": sb.ID}}, nil
}

// sandbox returns the sandbox id if owner is a member of its organisation.
func (g *gateway) sandbox(ctx context.Context, id string, owner events.SSHKeyOwnerV1) (Sandbox, error) {
	orgs := make([]string, 0, len(owner.Memberships))
	for _, m := range owner.Memberships {
		orgs = append(orgs, m.OrgID)
	}
	return sandboxOfOrgs(g.s.db.WithContext(ctx), orgs, id)
}

// sshSession is one authenticated connection.
type sshSession struct {
	g      *gateway
	conn   *ssh.ServerConn
	owner  events.SSHKeyOwnerV1
	fp     string
	caller web.Principal
}

func (g *gateway) serve(ctx context.Context, c net.Conn, conf *ssh.ServerConfig) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake and authentication
	sc, chans, reqs, err := ssh.NewServerConn(c, conf)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	fp := sc.Permissions.Extensions["fingerprint"]
	// The client proved it holds the key: look it up again (records its use, and a key deleted meanwhile or a
	// membership just ended counts now).
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	owner, err := g.keys.LookupSSHKey(lctx, fp, false)
	var sb Sandbox
	if err == nil {
		sb, err = g.sandbox(lctx, sc.User(), owner)
	}
	cancel()
	if err != nil {
		return
	}
	role := ""
	for _, m := range owner.Memberships {
		if m.OrgID == sb.OrgID {
			role = m.Role
		}
	}
	ss := &sshSession{g: g, conn: sc, owner: owner, fp: fp,
		caller: web.Principal{UserID: owner.UserID, OrgID: sb.OrgID, Role: role}}
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			wg.Add(1)
			go func() { defer wg.Done(); ss.session(ctx, nc) }()
		case "direct-tcpip":
			wg.Add(1)
			go func() { defer wg.Done(); ss.forward(ctx, nc) }()
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions and local port forwarding are served")
		}
	}
}

// running returns the session's sandbox, read now, with its backend, or the reason it cannot be entered.
func (ss *sshSession) running(ctx context.Context) (Sandbox, backend.Backend, string) {
	sb, err := ss.g.s.getOwn(ctx, ss.caller, ss.conn.User())
	if err != nil {
		return Sandbox{}, nil, "no such sandbox"
	}
	if sb.State != StateRunning {
		return Sandbox{}, nil, fmt.Sprintf("the sandbox is %s", sb.State)
	}
	b := ss.g.s.backendOf(sb)
	if b == nil {
		return Sandbox{}, nil, "the sandbox's backend is unavailable here"
	}
	return sb, b, ""
}

// audit records a channel's start or end.
func (ss *sshSession) audit(action, sandboxID, kind string, started time.Time) {
	d := map[string]any{"fingerprint": ss.fp, "kind": kind, "email": ss.owner.Email, "key_id": ss.owner.KeyID,
		"remote": ss.conn.RemoteAddr().String(), "started_at": started.UTC().Format(time.RFC3339)}
	if action == AuditSSHEnded {
		d["ended_at"] = ss.g.s.clock.Now().UTC().Format(time.RFC3339)
	}
	detail, _ := json.Marshal(d)
	s := ss.g.s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := createAudit(s.db.WithContext(ctx), &AuditEntry{ID: newID("aud"), At: stamp(s.clock.Now()), ActorUserID: ss.owner.UserID,
		ActorOrgID: ss.caller.OrgID, Action: action, Target: sandboxID, Detail: string(detail)}); err != nil {
		ss.g.log.Error("ssh audit", "err", err)
	}
}

type ptyReq struct {
	Term          string
	Cols, Rows    uint32
	Width, Height uint32
	Modes         string
}

type winChange struct {
	Cols, Rows    uint32
	Width, Height uint32
}

// session serves one session channel: it waits for the request that says what to run (shell, exec or the
// sftp subsystem), runs it, and reports its exit status.
func (ss *sshSession) session(ctx context.Context, nc ssh.NewChannel) {
	sb, b, why := ss.running(ctx)
	if why != "" {
		_ = nc.Reject(ssh.Prohibited, why)
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var pty *ptyReq
	var term backend.Terminal
	var termMu sync.Mutex
	started := make(chan struct{})
	var once sync.Once
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			var p ptyReq
			if ssh.Unmarshal(req.Payload, &p) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			pty = &p
			_ = req.Reply(true, nil)
		case "window-change":
			var w winChange
			if ssh.Unmarshal(req.Payload, &w) == nil {
				termMu.Lock()
				if term != nil && w.Cols > 0 && w.Rows > 0 {
					_ = term.Resize(uint16(min(w.Cols, 1000)), uint16(min(w.Rows, 1000)))
				} else if pty != nil {
					pty.Cols, pty.Rows = w.Cols, w.Rows
				}
				termMu.Unlock()
			}
		case "env":
			_ = req.Reply(true, nil) // accepted, not passed: the sandbox's environment is its template's
		case "shell", "exec", "subsystem":
			var run func() (int, error)
			kind := req.Type
			switch req.Type {
			case "shell":
				run = func() (int, error) { return ss.terminal(ctx, sb, b, nil, pty, ch, &term, &termMu) }
			case "exec":
				var p struct{ Command string }
				if ssh.Unmarshal(req.Payload, &p) != nil {
					_ = req.Reply(false, nil)
					continue
				}
				cmd := []string{"/bin/sh", "-c", p.Command}
				if pty != nil {
					run = func() (int, error) { return ss.terminal(ctx, sb, b, cmd, pty, ch, &term, &termMu) }
				} else {
					ex, ok := b.(backend.Execer)
					if !ok { // accepted, so that the client shows why and exits 1
						_ = req.Reply(true, nil)
						ss.fail(ch, "commands without a terminal are not supported on this pool (use ssh -t)")
						return
					}
					run = func() (int, error) { return ex.Exec(ctx, sb.ID, cmd, ch, ch, ch.Stderr()) }
				}
			case "subsystem":
				var p struct{ Name string }
				if ssh.Unmarshal(req.Payload, &p) != nil || p.Name != "sftp" {
					_ = req.Reply(false, nil)
					continue
				}
				kind = "sftp"
				op, ok := b.(interface {
					SFTP(ctx context.Context, id string) (io.ReadWriteCloser, error)
				})
				if !ok {
					_ = req.Reply(true, nil)
					ss.fail(ch, "file transfer is not supported on this pool")
					return
				}
				run = func() (int, error) { return ss.sftp(ctx, sb, op.SFTP, ch) }
			}
			ran := false
			once.Do(func() {
				ran = true
				_ = req.Reply(true, nil)
				close(started)
				go func() {
					start := ss.g.s.clock.Now()
					ss.audit(AuditSSHStarted, sb.ID, kind, start)
					ss.g.s.Touch(context.Background(), sb.ID)
					code, err := run()
					if err != nil {
						ss.g.log.Warn("ssh "+kind, "sandbox", sb.ID, "err", err)
						msg := "tamarack: the command could not run"
						if errors.Is(err, backend.ErrNotSupported) {
							msg = "tamarack: not supported on this pool"
						} else if errors.Is(err, backend.ErrNotRunning) || errors.Is(err, backend.ErrNotFound) {
							msg = "tamarack: the sandbox is not running"
						}
						_, _ = io.WriteString(ch.Stderr(), msg+"\r\n")
						code = 255
					}
					ss.audit(AuditSSHEnded, sb.ID, kind, start)
					_ = ch.CloseWrite()
					_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
					_ = ch.Close()
				}()
			})
			if !ran {
				_ = req.Reply(false, nil)
			}
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	termMu.Lock()
	if term != nil {
		_ = term.Close()
	}
	termMu.Unlock()
}

// fail tells the client why on stderr and ends the channel with status 1.
func (ss *sshSession) fail(ch ssh.Channel, msg string) {
	_, _ = io.WriteString(ch.Stderr(), "tamarack: "+msg+"\r\n")
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
	_ = ch.Close()
}

// terminal runs cmd (a login shell when nil) on a terminal in the sandbox, as the browser's: its output and
// input both ways until it ends; a terminal has no exit code to pass on, so it reports 0.
func (ss *sshSession) terminal(ctx context.Context, sb Sandbox, b backend.Backend, cmd []string, pty *ptyReq, ch ssh.Channel,
	termp *backend.Terminal, mu *sync.Mutex) (int, error) {
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t, err := b.Terminal(tctx, sb.ID, cmd)
	cancel()
	if err != nil {
		return 0, err
	}
	mu.Lock()
	*termp = t
	if pty != nil && pty.Cols > 0 && pty.Rows > 0 {
		_ = t.Resize(uint16(min(pty.Cols, 1000)), uint16(min(pty.Rows, 1000)))
	}
	mu.Unlock()
	defer t.Close()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := ch.Read(buf)
			if n > 0 {
				ss.g.s.Touch(context.Background(), sb.ID)
				if _, werr := t.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = t.Close() })
	defer stop()
	_, _ = io.Copy(ch, t)
	return 0, nil
}

// sftp connects the channel to an SFTP server on the sandbox's home.
func (ss *sshSession) sftp(ctx context.Context, sb Sandbox, open func(context.Context, string) (io.ReadWriteCloser, error), ch ssh.Channel) (int, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	rw, err := open(octx, sb.ID)
	cancel()
	if err != nil {
		return 0, err
	}
	splice(ctx, ch, rw)
	return 0, nil
}

// splice copies both ways until the remote side ends, then closes rw.
func splice(ctx context.Context, ch ssh.Channel, rw io.ReadWriteCloser) {
	stop := context.AfterFunc(ctx, func() { _ = rw.Close(); _ = ch.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(rw, ch)
		if cw, ok := rw.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, _ = io.Copy(ch, rw)
	_ = rw.Close()
	_ = ch.CloseWrite()
}

// forward serves a direct-tcpip channel (ssh -L): to a port the sandbox's template declares, on the
// sandbox's own loopback, and nowhere else.
func (ss *sshSession) forward(ctx context.Context, nc ssh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed request")
		return
	}
	sb, b, why := ss.running(ctx)
	if why != "" {
		_ = nc.Reject(ssh.Prohibited, why)
		return
	}
	switch p.Host {
	case "localhost", "127.0.0.1", "::1", sb.ID:
	default:
		_ = nc.Reject(ssh.Prohibited, "only the sandbox itself is reachable: forward to localhost:<port>")
		return
	}
	if p.Port > 65535 || !slices.Contains(sb.template().Ports, int(p.Port)) {
		_ = nc.Reject(ssh.Prohibited, fmt.Sprintf("port %d is not one the sandbox's template exposes", p.Port))
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := b.DialPort(dctx, sb.ID, int(p.Port))
	cancel()
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "the sandbox did not answer on port "+strconv.Itoa(int(p.Port)))
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	kind := "port:" + strconv.Itoa(int(p.Port))
	start := ss.g.s.clock.Now()
	ss.audit(AuditSSHStarted, sb.ID, kind, start)
	ss.g.s.Touch(context.Background(), sb.ID)
	splice(ctx, ch, conn)
	_ = ch.Close()
	ss.audit(AuditSSHEnded, sb.ID, kind, start)
}
