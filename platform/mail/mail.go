// Package mail sends the platform's plain-text notifications (invitations, e-mail confirmations, credit
// warnings): one Mailer interface, an SMTP sender, a file writer for development and an in-memory one for tests.
// It knows nothing of what the messages say; bodies can carry secrets (invitation links, reset tokens), so no
// implementation logs them.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/smtp"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Message is one plain-text e-mail.
type Message struct {
	To      []string
	Subject string
	Body    string
}

// Mailer sends messages. Callers send after the commit that decided a message: a crash in between loses at
// most a notification, never state.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// Config picks a Mailer: SMTP when SMTPURL is set, else .eml files under Dir.
type Config struct {
	SMTPURL string // smtp://user:pass@host:port (STARTTLS when offered) or smtps://… (TLS from the start)
	Dir     string // where File writes when there is no SMTP server (<data>/outbox-mail)
	From    string
	Log     *slog.Logger
}

// New returns the Mailer c describes; a malformed SMTP URL is an error.
func New(c Config) (Mailer, error) {
	if c.SMTPURL == "" {
		return &File{Dir: c.Dir, From: c.From, Log: c.Log}, nil
	}
	u, err := url.Parse(c.SMTPURL)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", err)
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return nil, fmt.Errorf("smtp url: scheme %q is neither smtp nor smtps", u.Scheme)
	}
	return &SMTP{URL: c.SMTPURL, From: c.From}, nil
}

// File writes each message as an .eml file under Dir and logs only where it went: the default when no SMTP
// server is configured, so that a developer finds invitations in <data>/outbox-mail.
type File struct {
	Dir  string
	From string
	Log  *slog.Logger
}

// Send writes the message file.
func (f *File) Send(_ context.Context, m Message) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("mail dir: %w", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(b) + ".eml"
	path := filepath.Join(f.Dir, name)
	if err := os.WriteFile(path, render(f.From, m), 0o600); err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	if f.Log != nil {
		f.Log.Info("mail written", "path", path, "to", m.To, "subject", m.Subject)
	}
	return nil
}

// SMTP sends through an SMTP server given as smtp://user:pass@host:port (STARTTLS when offered) or
// smtps://… (TLS from the start).
type SMTP struct {
	URL  string
	From string
}

// Send delivers m to every recipient in one session.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if len(m.To) == 0 {
		return errors.New("mail: no recipient")
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("smtp url: %w", err)
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = map[bool]string{true: "465", false: "587"}[u.Scheme == "smtps"]
	}
	from, err := netmail.ParseAddress(s.From)
	if err != nil {
		return fmt.Errorf("mail from %q: %w", s.From, err)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	if u.Scheme == "smtps" {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}).
			DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	} else {
		conn, err = d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	}
	if err != nil {
		return fmt.Errorf("smtp dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer func() { _ = c.Close() }()
	if ok, _ := c.Extension("STARTTLS"); ok && u.Scheme == "smtp" {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		if err := c.Auth(smtp.PlainAuth("", u.User.Username(), pass, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp from: %w", err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp rcpt: %w", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if _, err := w.Write(render(s.From, m)); err != nil {
		return fmt.Errorf("smtp write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	return c.Quit()
}

// Memory keeps sent messages for a test to read; Fail makes Send refuse.
type Memory struct {
	mu   sync.Mutex
	sent []Message
	Fail bool
}

// Send records m, or fails with io.ErrClosedPipe when Fail is set.
func (m *Memory) Send(_ context.Context, msg Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail {
		return io.ErrClosedPipe
	}
	m.sent = append(m.sent, msg)
	return nil
}

// Sent returns a copy of the messages sent so far, oldest first.
func (m *Memory) Sent() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.sent...)
}

// Last returns the latest message sent; false when there is none.
func (m *Memory) Last() (Message, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sent) == 0 {
		return Message{}, false
	}
	return m.sent[len(m.sent)-1], true
}

// Discard drops every message (benchmarks).
type Discard struct{}

// Send does nothing.
func (Discard) Send(context.Context, Message) error { return nil }

// render builds the RFC 5322 message; CR and LF in header values become spaces, so a subject cannot add headers.
func render(from string, m Message) []byte {
	if from == "" {
		from = "Tamarack <noreply@tamarack.localhost>"
	}
	clean := strings.NewReplacer("\r", " ", "\n", " ").Replace
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		clean(from), clean(strings.Join(m.To, ", ")), clean(m.Subject), time.Now().UTC().Format(time.RFC1123Z))
	b.WriteString(strings.ReplaceAll(m.Body, "\n", "\r\n"))
	if !strings.HasSuffix(m.Body, "\n") {
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}
