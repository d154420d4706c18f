package identity

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"github.com/emersion/go-smtp"

	"github.com/tamarack-ai/tamarack/platform/jwtauth"
)

// smtpSink is a real SMTP server (github.com/emersion/go-smtp) on a loopback port that keeps each message.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []sinkMsg
}

type sinkMsg struct {
	from string
	to   []string
	data string
}

type sinkSession struct {
	sink *smtpSink
	cur  sinkMsg
}

func (s *sinkSession) Reset()        { s.cur = sinkMsg{} }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, s.cur)
	s.sink.mu.Unlock()
	return nil
}

type sinkBackend struct{ sink *smtpSink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &sinkSession{sink: b.sink}, nil
}

func startSMTP(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &smtpSink{addr: ln.Addr().String()}
	srv := smtp.NewServer(sinkBackend{sink})
	srv.Domain = "localhost"
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("smtp server: %v", err)
		}
	})
	return sink
}

// useSMTP points the environment's service at sink through the real SMTPMailer.
func (e *tenv) useSMTP(sink *smtpSink) {
	e.svc.mailer = &mail.SMTP{URL: "smtp://" + sink.addr, From: "Tamarack <noreply@tamarack.test>"}
	e.t.Cleanup(e.svc.mailing.Wait)
}

// to returns the messages received for rcpt.
func (s *smtpSink) to(rcpt string) []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sinkMsg
	for _, m := range s.msgs {
		for _, r := range m.to {
			if r == rcpt {
				out = append(out, m)
			}
		}
	}
	return out
}

// awaitLink polls until n messages with a link to page reached rcpt and returns the token of the last one.
func (s *smtpSink) awaitLink(t *testing.T, rcpt, page string, n int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var links []sinkMsg
		for _, m := range s.to(rcpt) {
			if strings.Contains(m.data, "/"+page+"?token=") {
				links = append(links, m)
			}
		}
		if len(links) >= n {
			return linkToken(t, links[len(links)-1].data, page)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s messages to %s, want %d", len(links), page, rcpt, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func linkToken(t *testing.T, body, page string) string {
	t.Helper()
	mark := "/" + page + "?token="
	i := strings.Index(body, mark)
	if i < 0 {
		t.Fatalf("no %s link in %q", page, body)
	}
	tok := body[i+len(mark):]
	if j := strings.IndexAny(tok, " \r\n"); j >= 0 {
		tok = tok[:j]
	}
	return tok
}

func claimsOf(t *testing.T, access string) jwtauth.Claims {
	t.Helper()
	var c jwtauth.Claims
	if _, _, err := jwtParser.ParseUnverified(access, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// auditCount counts entries of action in the audit table.
func (e *tenv) auditCount(action string) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Model(&AuditEntry{}).Where("action = ?", action).Count(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return n
}
