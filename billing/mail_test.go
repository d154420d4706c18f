package billing

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileMailer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox-mail")
	m := &FileMailer{Dir: dir, From: "Tamarack <noreply@tamarack.test>"}
	must(t, m.Send(context.Background(), Mail{To: []string{"a@x.test", "b@x.test"}, Subject: "Hello", Body: "line 1\nline 2"}))
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	must(t, err)
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	b, err := os.ReadFile(files[0])
	must(t, err)
	for _, want := range []string{"From: Tamarack <noreply@tamarack.test>\r\n", "To: a@x.test, b@x.test\r\n", "Subject: Hello\r\n", "\r\n\r\nline 1\r\nline 2\r\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("mail lacks %q:\n%s", want, b)
		}
	}
}
