package mail

import (
	"bufio"
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFileKeepsBodiesOutOfTheLog(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox-mail")
	var logs bytes.Buffer
	m := &File{Dir: dir, From: "Tamarack <noreply@tamarack.test>", Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := m.Send(t.Context(), Message{To: []string{"a@example.com"}, Subject: "Invitation\r\nBcc: evil@example.com", Body: "token SECRET-123\n"}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("files: %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "SECRET-123") || !strings.Contains(string(b), "To: a@example.com\r\n") {
		t.Fatalf("mail file: %q", b)
	}
	if strings.Contains(string(b), "\r\nBcc:") {
		t.Fatal("header injection through the subject")
	}
	if strings.Contains(logs.String(), "SECRET-123") || !strings.Contains(logs.String(), files[0]) {
		t.Fatalf("log: %s", logs.String())
	}
}

// fakeSMTP accepts one session and records the envelope, the AUTH line and the data.
type fakeSMTP struct {
	addr string
	mu   sync.Mutex
	got  []string
	done chan struct{}
}

func startFakeSMTP(t *testing.T) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{addr: ln.Addr().String(), done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		defer close(f.done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(conn)
		say := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
		say("220 fake ESMTP")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			f.mu.Lock()
			f.got = append(f.got, line)
			f.mu.Unlock()
			switch {
			case inData:
				if line == "." {
					inData = false
					say("250 queued")
				}
			case strings.HasPrefix(line, "EHLO"):
				say("250-fake\r\n250 AUTH PLAIN")
			case strings.HasPrefix(line, "AUTH"):
				say("235 ok")
			case strings.HasPrefix(line, "MAIL"), strings.HasPrefix(line, "RCPT"):
				say("250 ok")
			case line == "DATA":
				inData = true
				say("354 go on")
			case line == "QUIT":
				say("221 bye")
				return
			default:
				say("500 what")
			}
		}
	}()
	return f
}

func TestSMTP(t *testing.T) {
	t.Parallel()
	f := startFakeSMTP(t)
	m := &SMTP{URL: "smtp://mailer:pw@" + f.addr, From: "Tamarack <noreply@tamarack.test>"}
	if err := m.Send(t.Context(), Message{To: []string{"a@example.com", "b@example.com"}, Subject: "Hello", Body: "line one\nline two"}); err != nil {
		t.Fatal(err)
	}
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	all := strings.Join(f.got, "\n")
	for _, wantLine := range []string{"MAIL FROM:<noreply@tamarack.test>", "RCPT TO:<a@example.com>", "RCPT TO:<b@example.com>", "To: a@example.com, b@example.com", "Subject: Hello", "line two", "QUIT"} {
		if !strings.Contains(all, wantLine) {
			t.Fatalf("session lacks %q:\n%s", wantLine, all)
		}
	}
	if !strings.Contains(all, "AUTH PLAIN") {
		t.Fatalf("no authentication:\n%s", all)
	}
}

func TestFileRendersEveryRecipient(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox-mail")
	m := &File{Dir: dir, From: "Tamarack <noreply@tamarack.test>"}
	if err := m.Send(t.Context(), Message{To: []string{"a@x.test", "b@x.test"}, Subject: "Hello", Body: "line 1\nline 2"}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("files %v, %v", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"From: Tamarack <noreply@tamarack.test>\r\n", "To: a@x.test, b@x.test\r\n", "Subject: Hello\r\n", "\r\n\r\nline 1\r\nline 2\r\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("mail lacks %q:\n%s", want, b)
		}
	}
}

func TestNewPicksTheSender(t *testing.T) {
	t.Parallel()
	if m, err := New(Config{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*File); !ok {
		t.Fatalf("no SMTP URL: %T, want *File", m)
	}
	if m, err := New(Config{SMTPURL: "smtps://u:p@mail.example.com"}); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*SMTP); !ok {
		t.Fatalf("smtps URL: %T, want *SMTP", m)
	}
	if _, err := New(Config{SMTPURL: "http://mail.example.com"}); err == nil {
		t.Fatal("an http URL was accepted")
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	var m Memory
	if _, ok := m.Last(); ok {
		t.Fatal("Last on an empty Memory")
	}
	if err := m.Send(t.Context(), Message{To: []string{"a@x.test"}, Subject: "one"}); err != nil {
		t.Fatal(err)
	}
	m.Fail = true
	if err := m.Send(t.Context(), Message{Subject: "two"}); err == nil {
		t.Fatal("Fail did not fail")
	}
	if last, _ := m.Last(); last.Subject != "one" || len(m.Sent()) != 1 {
		t.Fatalf("sent %+v", m.Sent())
	}
}
