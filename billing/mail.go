package billing

import (
	"context"
	"fmt"
	"log/slog"
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
	Dir string
	Log *slog.Logger
	n   atomic.Int64
}

// Send writes m to a new file.
func (f *FileMailer) Send(_ context.Context, m Mail) error {
	if err := os.MkdirAll(f.Dir, 0o750); err != nil {
		return err
	}
	name := filepath.Join(f.Dir, fmt.Sprintf("%s-%04d.eml", time.Now().UTC().Format("20060102T150405.000000000"), f.n.Add(1)))
	body := fmt.Sprintf("From: Tamarack <billing@tamarack.local>\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		strings.Join(m.To, ", "), m.Subject, time.Now().UTC().Format(time.RFC1123Z), m.Body)
	if err := os.WriteFile(name, []byte(body), 0o640); err != nil {
		return err
	}
	if f.Log != nil {
		f.Log.Info("mail written", "path", name, "to", m.To, "subject", m.Subject)
	}
	return nil
}
