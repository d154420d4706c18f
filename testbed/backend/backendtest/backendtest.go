// Package backendtest is the conformance suite of the backend.Backend contract: the behaviour every
// implementation (local, simulator, and later Slurm and Kubernetes) must share, so the testbed can
// treat them alike. Each implementation's tests call Run with a harness; a new backend is not done until
// Run passes against a real instance of the system it drives.
//
// It owns only contract-level checks (lifecycle, idempotency, error sentinels). What isolation means
// on a given system is tested by that implementation's own tests.
package backendtest

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Harness tells the suite how to drive one implementation.
type Harness struct {
	// New returns a fresh, empty backend; it registers its own cleanup with t.
	New func(t *testing.T) backend.Backend
	// LongRunning is a command that runs until stopped, e.g. {"sleep", "600"}.
	LongRunning []string
	// Timeout bounds each wait; default 30 s.
	Timeout time.Duration
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	t.Run("Lifecycle", func(t *testing.T) { lifecycle(t, h) })
	t.Run("Errors", func(t *testing.T) { errorSentinels(t, h) })
}

// startCleanly starts a sandbox and registers Stop and Remove for the end of the test.
func startCleanly(t *testing.T, h Harness, b backend.Backend, id string) backend.Status {
	t.Helper()
	return Started(t, b, backend.Spec{SandboxID: id, Command: h.LongRunning}, h.Timeout)
}

// Started starts s on b and stops and removes it when the test ends; timeout bounds the start and the cleanup.
func Started(t testing.TB, b backend.Backend, s backend.Spec, timeout time.Duration) backend.Status {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if _, err := b.Stop(ctx, s.SandboxID, 0); err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("cleanup Stop(%s): %v", s.SandboxID, err)
		}
		if err := b.Remove(ctx, s.SandboxID); err != nil {
			t.Errorf("cleanup Remove(%s): %v", s.SandboxID, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := b.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start(%s): %v", s.SandboxID, err)
	}
	return st
}

func lifecycle(t *testing.T, h Harness) {
	b := h.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()

	st := startCleanly(t, h, b, "conf-a")
	if st.SandboxID != "conf-a" || st.State != backend.StateRunning && st.State != backend.StatePending {
		t.Fatalf("Start = %+v, want conf-a running or pending", st)
	}
	if st.State == backend.StateRunning && st.StartedAt.IsZero() {
		t.Errorf("running sandbox without StartedAt: %+v", st)
	}
	startCleanly(t, h, b, "conf-b")

	list, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].SandboxID != "conf-a" || list[1].SandboxID != "conf-b" {
		t.Fatalf("List = %+v, want conf-a and conf-b in ID order", list)
	}
	in, err := b.Inspect(ctx, "conf-a")
	if err != nil || in.SandboxID != "conf-a" || in.Ended() {
		t.Fatalf("Inspect = %+v, %v", in, err)
	}

	if err := b.Remove(ctx, "conf-a"); !errors.Is(err, backend.ErrStillRunning) {
		t.Errorf("Remove(running) = %v, want ErrStillRunning", err)
	}
	end, err := b.Stop(ctx, "conf-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !end.Ended() || end.Reason != backend.ReasonStopped || end.EndedAt.Before(end.StartedAt) {
		t.Errorf("Stop = %+v, want exited, reason stopped, EndedAt >= StartedAt", end)
	}
	again, err := b.Stop(ctx, "conf-a", time.Second)
	if err != nil || again != end {
		t.Errorf("second Stop = %+v, %v; want the same final status %+v", again, err, end)
	}
	if in, err := b.Inspect(ctx, "conf-a"); err != nil || in != end {
		t.Errorf("Inspect(stopped) = %+v, %v; want %+v", in, err, end)
	}
	rc, err := b.Logs(ctx, "conf-a", true) // following an ended sandbox ends at once
	if err != nil {
		t.Fatalf("Logs(stopped): %v", err)
	}
	if _, err := io.ReadAll(rc); err != nil {
		t.Errorf("reading logs of a stopped sandbox: %v", err)
	}
	rc.Close()
	if _, err := b.Terminal(ctx, "conf-a", nil); !errors.Is(err, backend.ErrNotRunning) {
		t.Errorf("Terminal(stopped) = %v, want ErrNotRunning", err)
	}
	if _, err := b.DialPort(ctx, "conf-a", 8888); !errors.Is(err, backend.ErrNotRunning) {
		t.Errorf("DialPort(stopped) = %v, want ErrNotRunning", err)
	}
	if err := b.Remove(ctx, "conf-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Inspect(ctx, "conf-a"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Inspect(removed) = %v, want ErrNotFound", err)
	}
	if list, err := b.List(ctx); err != nil || len(list) != 1 || list[0].SandboxID != "conf-b" {
		t.Errorf("List after Remove = %+v, %v; want only conf-b", list, err)
	}
}

func errorSentinels(t *testing.T, h Harness) {
	b := h.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	startCleanly(t, h, b, "conf-dup")
	if _, err := b.Start(ctx, backend.Spec{SandboxID: "conf-dup", Command: h.LongRunning}); !errors.Is(err, backend.ErrExists) {
		t.Errorf("Start(existing) = %v, want ErrExists", err)
	}
	if _, err := b.Start(ctx, backend.Spec{SandboxID: "Bad_ID", Command: h.LongRunning}); !errors.Is(err, backend.ErrInvalidSpec) {
		t.Errorf("Start(invalid) = %v, want ErrInvalidSpec", err)
	}
	for name, call := range map[string]func() error{
		"Inspect": func() error { _, err := b.Inspect(ctx, "conf-none"); return err },
		"Stop":    func() error { _, err := b.Stop(ctx, "conf-none", 0); return err },
		"Logs":    func() error { _, err := b.Logs(ctx, "conf-none", false); return err },
		"Terminal": func() error {
			_, err := b.Terminal(ctx, "conf-none", nil)
			return err
		},
		"DialPort": func() error { _, err := b.DialPort(ctx, "conf-none", 80); return err },
	} {
		if err := call(); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s(unknown) = %v, want ErrNotFound", name, err)
		}
	}
	if err := b.Remove(ctx, "conf-none"); err != nil {
		t.Errorf("Remove(unknown) = %v, want nil", err)
	}
	if b.Kind() == "" {
		t.Error("Kind() is empty")
	}
	if err := b.Check(ctx); err != nil {
		t.Errorf("Check() = %v on a backend that starts sandboxes", err)
	}
}
