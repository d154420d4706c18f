package identity

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileMailerKeepsBodiesOutOfTheLog(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox-mail")
	var logs bytes.Buffer
	m := FileMailer{Dir: dir, From: "Tamarack <noreply@tamarack.test>", Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := m.Send(t.Context(), Mail{To: "a@example.com", Subject: "Invitation\r\nBcc: evil@example.com", Body: "token SECRET-123\n"}); err != nil {
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
