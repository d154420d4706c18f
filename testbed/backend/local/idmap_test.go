package local

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

func TestIDRegistry(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	r := idRegistry{dir: filepath.Join(root, "idmap"), base: 1_000_000_000, slots: 3}
	owner := func(name string) string {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c, d := owner("a"), owner("b"), owner("c"), owner("d")
	claim := func(o string, want int) {
		t.Helper()
		if got, err := r.claim(o); err != nil || got != want {
			t.Fatalf("claim(%s) = %d, %v; want slot %d", filepath.Base(o), got, err, want)
		}
	}
	claim(a, 0)
	claim(b, 1)
	claim(c, 2)
	if _, err := r.claim(d); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("claim with every slot held = %v, want ErrUnavailable", err)
	}
	// Only the owner releases; the lowest free slot goes first.
	if err := r.release(1, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.claim(d); err == nil {
		t.Fatal("a slot released by a non-owner was handed out")
	}
	if err := r.release(1, b); err != nil {
		t.Fatal(err)
	}
	claim(d, 1)
	// A slot whose owner directory is gone is free again; its old owner cannot release the new one's.
	if err := os.RemoveAll(a); err != nil {
		t.Fatal(err)
	}
	e := owner("e")
	claim(e, 0)
	if err := r.release(0, a); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(r.dir, "0")); string(data) != e {
		t.Errorf("slot 0 held by %q after the stale owner's release, want %q", data, e)
	}
	if got := r.hostID(2); got != 1_000_000_000+2*65536 {
		t.Errorf("hostID(2) = %d", got)
	}
}
