package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Sandbox tokens: short-lived credentials for one sandbox's streams, for a browser tab or a shared link
// that must not carry the organisation's token. Stored hashed.

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// IssueToken returns a new sandbox token for a live sandbox of the caller's organisation.
func (s *Service) IssueToken(ctx context.Context, c web.Principal, id string) (string, time.Time, error) {
	sb, err := s.getOwn(ctx, c, id)
	if err != nil {
		return "", time.Time{}, err
	}
	if sb.Terminal() {
		return "", time.Time{}, ErrSandboxEnded
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := "sbt_" + hex.EncodeToString(b[:])
	exp := s.clock.Now().Add(s.opts.SandboxTokenTTL)
	if err := createSandboxToken(s.db.WithContext(ctx), &SandboxToken{TokenHash: hashToken(tok), SandboxID: id, ExpiresAt: stamp(exp)}); err != nil {
		return "", time.Time{}, err
	}
	_ = dropExpiredSandboxTokens(s.db.WithContext(ctx), s.clock.Now())
	return tok, exp, nil
}

// sandboxByToken returns the sandbox a valid token opens.
func (s *Service) sandboxByToken(ctx context.Context, id, tok string) (Sandbox, error) {
	t, err := sandboxTokenByHash(s.db.WithContext(ctx), hashToken(tok))
	if err != nil || t.SandboxID != id || t.ExpiresAt.Before(stamp(s.clock.Now())) {
		return Sandbox{}, ErrBadSandboxToken
	}
	return anySandbox(s.db.WithContext(ctx), id) // the token, issued to the sandbox's organisation, names it
}

// streamSandbox authorises a stream request: a sandbox token (?token=) or the organisation's credentials
// (Authorization header, or ?access_token= which the auth middleware accepts on stream paths). scope is what
// the organisation's credentials need: "read" for output, "write" for a shell or a port.
func (h handler) streamSandbox(c *fiber.Ctx, scope string) (Sandbox, error) {
	id := c.Params("id")
	if tok := c.Query("token"); tok != "" {
		return h.svc.sandboxByToken(c.UserContext(), id, tok)
	}
	p := web.PrincipalOf(c)
	if !p.Authenticated() {
		return Sandbox{}, problem.ErrUnauthorized
	}
	if !p.HasScope(scope) {
		return Sandbox{}, problem.ErrForbidden.WithDetailMsg("problem.forbidden.scope", problem.Args{"Scope": scope})
	}
	return h.svc.getOwn(c.UserContext(), callerOf(c), id)
}

// logs streams the sandbox's output as Server-Sent Events: one "log" event per line (a line longer than
// logEventMax in pieces of at most that), then "end" when the sandbox ends (follow, the default) or the
// output so far is sent (?follow=false).
func (h handler) logs(c *fiber.Ctx) error {
	sb, err := h.streamSandbox(c, "read")
	if err != nil {
		return err
	}
	b := h.svc.backendOf(sb)
	if b == nil || sb.State == StateRequested || sb.State == StateScheduled {
		return ErrNotRunning.WithDetailMsg("problem.sandbox_not_running.no_output", nil)
	}
	follow := c.Query("follow") != "false" && !sb.Terminal()
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := b.Logs(ctx, sb.ID, follow)
	if err != nil {
		cancel()
		if errors.Is(err, backend.ErrNotFound) {
			switch {
			case sb.State == StateProvisioning: // its image is being pulled, or the backend is starting it
				return ErrNotRunning.WithDetailMsg("problem.sandbox_not_running.starting", nil)
			case sb.StartedAt == nil:
				return ErrNotRunning.WithDetailMsg("problem.sandbox_not_running.never_ran", nil)
			}
			return ErrNotRunning.WithDetailMsg("problem.sandbox_not_running.logs_gone", nil)
		}
		if errors.Is(err, backend.ErrUnavailable) {
			// The backend (a site agent that does not answer, slurmrestd down) is away, not broken: 503, retry.
			return ErrBackendUnavailable.WithDetailMsg("problem.backend_unavailable.no_answer", problem.Args{"Error": err.Error()})
		}
		return err
	}
	h.svc.Touch(c.UserContext(), sb.ID)
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		defer rc.Close()
		// Lines are read in their own goroutine so that a keep-alive comment goes out every 15 s while the
		// sandbox is quiet: a client that went away makes that write fail, which cancels the backend reader.
		// The channel and the reader's buffer bound what one stream holds: about 17 pieces of logEventMax.
		lines := make(chan string, 16)
		go func() {
			defer close(lines)
			_ = logPieces(rc, logEventMax, func(piece []byte) bool {
				select {
				case lines <- string(piece):
					return true
				case <-ctx.Done():
					return false
				}
			})
		}()
		_, _ = fmt.Fprintf(w, ": sandbox %s\n\n", sb.ID)
		if w.Flush() != nil {
			return
		}
		keep := time.NewTicker(15 * time.Second)
		defer keep.Stop()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					_, _ = w.WriteString("event: end\ndata: {}\n\n")
					_ = w.Flush()
					return
				}
				writeLogEvent(w, line)
			case <-keep.C:
				_, _ = w.WriteString(": keep-alive\n\n")
			}
			if w.Flush() != nil {
				return
			}
		}
	})
	return nil
}

// logEventMax is the most output one "log" event carries. A longer line (a progress bar redrawn with \r
// for hours, a binary blob) goes out as several events, so a stream's memory does not depend on what the
// sandbox prints.
const logEventMax = 64 << 10

// logPieces reads r to its end and calls emit with each line, its line end included, or, for a line longer
// than max, with consecutive pieces of at most max bytes; it stops early when emit returns false. A piece
// is never cut inside a UTF-8 sequence, and a line end that follows a cut alone is not emitted (it would
// show as an empty line). The slice is valid only during the call. It holds one buffer of max bytes.
func logPieces(r io.Reader, max int, emit func([]byte) bool) error {
	buf := make([]byte, max)
	n := 0       // bytes in buf
	cut := false // the last piece emitted ended a cut, not a line
	for {
		m, err := r.Read(buf[n:])
		n += m
		start := 0
		for {
			i := bytes.IndexByte(buf[start:n], '\n')
			if i < 0 {
				break
			}
			line := buf[start : start+i+1]
			start += i + 1
			if cut && len(bytes.TrimLeft(line, "\r\n")) == 0 {
				cut = false
				continue
			}
			cut = false
			if !emit(line) {
				return nil
			}
		}
		if start == 0 && n == max { // a line longer than max: send what fits, whole runes only
			end := runeCut(buf[:n])
			if !emit(buf[:end]) {
				return nil
			}
			cut = true
			start = end
		}
		n = copy(buf, buf[start:n])
		if err != nil {
			if n > 0 && !(cut && len(bytes.TrimLeft(buf[:n], "\r")) == 0) {
				emit(buf[:n])
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// runeCut returns where to cut b so that no UTF-8 sequence is split: len(b), or the start of an incomplete
// sequence at its end. Bytes that are not UTF-8 at all are cut anywhere.
func runeCut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if i > 0 && !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// writeLogEvent writes one output line as an SSE "log" event. EventSource ends a line at \r, \n or \r\n:
// each piece becomes a data line of its own, so nothing the sandbox prints can start another field.
func writeLogEvent(w io.StringWriter, line string) {
	line = strings.TrimRight(line, "\r\n")
	_, _ = w.WriteString("event: log\n")
	for {
		i := strings.IndexAny(line, "\r\n")
		if i < 0 {
			break
		}
		_, _ = w.WriteString("data: ")
		_, _ = w.WriteString(line[:i])
		_, _ = w.WriteString("\n")
		if line[i] == '\r' && i+1 < len(line) && line[i+1] == '\n' {
			i++
		}
		line = line[i+1:]
	}
	_, _ = w.WriteString("data: ")
	_, _ = w.WriteString(line)
	_, _ = w.WriteString("\n\n")
}

// terminalUpgrade authorises the terminal and refuses non-WebSocket requests and ended sandboxes before
// the upgrade, so errors are ordinary problems.
func (h handler) terminalUpgrade(c *fiber.Ctx) error {
	sb, err := h.streamSandbox(c, "write")
	if err != nil {
		return err
	}
	if sb.State != StateRunning {
		return ErrNotRunning.WithDetailMsg("problem.sandbox_not_running.state", problem.Args{"State": string(sb.State)})
	}
	cmd, err := terminalCommand(c)
	if err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return problem.New(426, "upgrade_required", "Open this URL as a WebSocket.")
	}
	c.Locals("testbed_sandbox", sb)
	c.Locals("testbed_cmd", cmd)
	return c.Next()
}

// Limits of a terminal's ?cmd= (what `tamarack sandbox exec` runs instead of a login shell). The request line
// and headers must fit the server's 4 KiB read buffer anyway; the byte limit leaves room for the headers.
const (
	terminalCmdArgs  = 64
	terminalCmdBytes = 2 << 10
)

// terminalCommand is the command the terminal runs: the ?cmd= parameters in order, one per argument; none
// gives a login shell. It runs exactly as the shell would (same scope, same user, same limits): it adds no
// power, it only saves typing into a shell.
func terminalCommand(c *fiber.Ctx) ([]string, error) {
	var cmd []string
	n := 0
	for _, a := range c.Context().QueryArgs().PeekMulti("cmd") {
		n += len(a)
		cmd = append(cmd, string(a))
	}
	switch {
	case len(cmd) > terminalCmdArgs || n > terminalCmdBytes:
		return nil, problem.Fields{{Field: "cmd", Code: "too_long",
			Message: fmt.Sprintf("at most %d arguments of %d bytes in all", terminalCmdArgs, terminalCmdBytes)}}.Err()
	case len(cmd) > 0 && cmd[0] == "":
		return nil, problem.Fields{{Field: "cmd", Code: "required", Message: "the first cmd names the program"}}.Err()
	}
	return cmd, nil
}

// terminalUnavailable is the close reason of a terminal whose sandbox backend does not answer: the problem
// code, then what to do.
const terminalUnavailable = "unavailable: the sandbox's backend is not answering; try again later"

type resizeMsg struct {
	Type string `json:"type"`
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// terminal bridges a WebSocket and a pseudo-terminal inside the sandbox: binary frames carry bytes both
// ways; a text frame {"type":"resize","cols":..,"rows":..} resizes the terminal.
func (h handler) terminal() fiber.Handler {
	return websocket.New(func(conn *websocket.Conn) {
		sb, _ := conn.Locals("testbed_sandbox").(Sandbox)
		cmd, _ := conn.Locals("testbed_cmd").([]string)
		b := h.svc.backendOf(sb)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		term, err := b.Terminal(ctx, sb.ID, cmd)
		cancel()
		if err != nil {
			// The reason reaches the client: the host's error (paths, tools) stays in the log. A close
			// reason is also limited to 123 bytes, which a host error easily exceeds.
			code, reason, level := websocket.CloseInternalServerErr, "the terminal could not start", slog.LevelError
			switch {
			case errors.Is(err, backend.ErrNotRunning) || errors.Is(err, backend.ErrNotFound):
				reason = "the sandbox is not running"
			case errors.Is(err, backend.ErrUnavailable):
				// The backend (a site agent that does not answer) is away, not broken, as for logs' 503:
				// 1013 Try Again Later, the reason starting with the problem code the web UI reads.
				code, reason, level = websocket.CloseTryAgainLater, terminalUnavailable, slog.LevelWarn
			}
			h.svc.log.Log(context.Background(), level, "terminal", "sandbox", sb.ID, "err", err)
			_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
			return
		}
		defer term.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 32<<10)
			for {
				n, err := term.Read(buf)
				if n > 0 {
					if werr := conn.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "terminal closed"))
					return
				}
			}
		}()
		reading := make(chan struct{})
		go func() {
			defer close(reading)
			for {
				mt, msg, err := conn.ReadMessage()
				if err != nil {
					_ = term.Close()
					return
				}
				switch mt {
				case websocket.BinaryMessage:
					h.svc.Touch(context.Background(), sb.ID)
					if _, err := term.Write(msg); err != nil {
						return
					}
				case websocket.TextMessage:
					var r resizeMsg
					if json.Unmarshal(msg, &r) == nil && r.Type == "resize" && r.Cols > 0 && r.Rows > 0 {
						_ = term.Resize(r.Cols, r.Rows)
					}
				}
			}
		}()
		<-done
		// The connection is released for reuse when this handler returns: the reader must stop first. A read
		// deadline in the past ends its ReadMessage (the client may never send another frame).
		_ = conn.SetReadDeadline(time.Now())
		<-reading
	})
}

// proxyMaxBody caps a proxied request's body: JupyterLab uploads a file of up to 15 MB in one request, as
// base64 in JSON (larger files go in chunks of 1 MiB).
const proxyMaxBody = 24 << 20

// proxyCSP confines a proxied page to an opaque origin (no allow-same-origin).
const proxyCSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"

// proxy forwards an HTTP request to a port the sandbox's template exposes, through the backend's
// DialPort (works without network in the sandbox). The /api/v1/testbed/sandboxes/<id>/proxy/<port> prefix
// is stripped; the credentials (?token=, ?access_token=) are not forwarded.
func (h handler) proxy(c *fiber.Ctx) error {
	sb, err := h.streamSandbox(c, "write")
	if err != nil {
		return err
	}
	if sb.State != StateRunning {
		return ErrNotRunning.WithDetailMsg("problem.sandbox_not_running.state", problem.Args{"State": string(sb.State)})
	}
	port, err := strconv.Atoi(c.Params("port"))
	if err != nil || !slices.Contains(sb.template().Ports, port) {
		return problem.New(404, "port_not_exposed", "The sandbox's template does not expose this port.")
	}
	if c.Query("token") == "" && c.Query("access_token") != "" && c.Get(fiber.HeaderAuthorization) == "" {
		// The page the sandbox serves sees its own URL (and gets it as Referer): trade the organisation's
		// token for a sandbox token at once, so its code never holds more than the sandbox's own credential.
		tok, _, err := h.svc.IssueToken(c.UserContext(), callerOf(c), sb.ID)
		if err != nil {
			return err
		}
		q := url.Values{}
		c.Context().QueryArgs().VisitAll(func(k, v []byte) {
			if key := string(k); key != "access_token" && key != "token" {
				q.Add(key, string(v))
			}
		})
		q.Set("token", tok)
		c.Set(fiber.HeaderCacheControl, "no-store")
		path, _, _ := strings.Cut(c.OriginalURL(), "?")
		return c.Redirect(path+"?"+q.Encode(), fiber.StatusTemporaryRedirect)
	}
	// Read only now that the caller may use this sandbox: the adaptor below holds the body in memory.
	if err := web.ReadBody(c, proxyMaxBody); err != nil {
		return err
	}
	b := h.svc.backendOf(sb)
	h.svc.Touch(c.UserContext(), sb.ID)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "sandbox"
			r.Out.URL.Path = "/" + strings.TrimPrefix(c.Params("*"), "/")
			r.Out.URL.RawPath = ""
			q := r.Out.URL.Query()
			q.Del("token")
			q.Del("access_token")
			r.Out.URL.RawQuery = q.Encode()
			r.Out.Header.Del("Authorization")
			r.Out.Host = "localhost:" + strconv.Itoa(port)
		},
		// What the sandbox serves is its user's code, answered on the platform's origin, where the web UI
		// keeps its tokens: a sandboxed, opaque origin lets its scripts run without reaching them, and the
		// sandbox cannot set cookies on the platform.
		ModifyResponse: func(r *http.Response) error {
			r.Header.Set("Content-Security-Policy", proxyCSP)
			r.Header.Del("Set-Cookie")
			return nil
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return b.DialPort(ctx, sb.ID, port)
			},
			DisableKeepAlives: true,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, `{"type":"https://tamarack.dev/problems/sandbox_port_unreachable","title":"The sandbox did not answer on this port.","status":502,"code":"sandbox_port_unreachable"}`)
		},
	}
	// The adaptor's request context is fasthttp's RequestCtx, recycled after the handler returns while
	// net/http's transport may still look at it: give the proxied request a context of its own.
	return adaptor.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		rp.ServeHTTP(w, r.WithContext(ctx))
	}))(c)
}
