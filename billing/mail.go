package billing

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/mail"
	"net/smtp"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Mail is one notification e-mail.
type Mail struct {
	To      []string
	Subject string
	Body    string
}

// Mailer sends notifications. Sending happens after the commit that decided it: a crash in between loses at
// most a notification, never money.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// FileMailer writes each mail as an .eml file under Dir (the default: <data>/outbox-mail) and logs its path.
type FileMailer struct {
	Dir  string
	From string
	Log  *slog.Logger
	n    atomic.Int64
}

// Send writes m to a new file.
func (f *FileMailer) Send(_ context.Context, m Mail) error {
	if err := os.MkdirAll(f.Dir, 0o750); err != nil {
		return err
	}
	name := filepath.Join(f.Dir, fmt.Sprintf("%s-%04d.eml", time.Now().UTC().Format("20060102T150405.000000000"), f.n.Add(1)))
	if err := os.WriteFile(name, render(f.From, m), 0o640); err != nil {
		return err
	}
	if f.Log != nil {
		f.Log.Info("mail written", "path", name, "to", m.To, "subject", m.Subject)
	}
	return nil
}

func render(from string, m Mail) []byte {
	if from == "" {
		from = "Tamarack <noreply@tamarack.localhost>"
	}
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, strings.Join(m.To, ", "), m.Subject, time.Now().UTC().Format(time.RFC1123Z), strings.ReplaceAll(m.Body, "\n", "\r\n")))
}

// SMTPMailer sends through an SMTP server given as smtp://user:pass@host:port (STARTTLS when offered) or
// smtps://... (implicit TLS).
type SMTPMailer struct {
	URL  *url.URL
	From string
}

// Send delivers m.
func (s *SMTPMailer) Send(ctx context.Context, m Mail) error {
	addr, err := mail.ParseAddress(s.From)
	if err != nil {
		return fmt.Errorf("mail from %q: %w", s.From, err)
	}
	host := s.URL.Hostname()
	var auth smtp.Auth
	if u := s.URL.User; u != nil {
		pass, _ := u.Password()
		auth = smtp.PlainAuth("", u.Username(), pass, host)
	}
	if s.URL.Scheme != "smtps" {
		return smtp.SendMail(s.URL.Host, auth, addr.Address, m.To, render(s.From, m))
	}
	d := tls.Dialer{Config: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", s.URL.Host)
	if err != nil {
		return err
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.Mail(addr.Address); err != nil {
		return err
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(render(s.From, m)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
