package sim_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func start(t *testing.T, b *sim.Backend, id string, ports ...int) backend.Status {
	t.Helper()
	st, err := b.Start(context.Background(), backend.Spec{SandboxID: id, Command: []string{"jupyter", "lab"}, Ports: ports})
	if err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	return st
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewManual(t0)
	b := sim.New(clk)
	if b.Kind() != "simulator" {
		t.Fatalf("Kind() = %q", b.Kind())
	}

	st := start(t, b, "a")
	if st.State != backend.StateRunning || !st.StartedAt.Equal(t0) {
		t.Fatalf("Start status = %+v, want running at %v", st, t0)
	}
	if _, err := b.Start(ctx, backend.Spec{SandboxID: "a", Command: []string{"x"}}); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("second Start = %v, want ErrExists", err)
	}
	if _, err := b.Start(ctx, backend.Spec{SandboxID: "A"}); !errors.Is(err, backend.ErrInvalidSpec) {
		t.Fatalf("Start(bad spec) = %v, want ErrInvalidSpec", err)
	}
	start(t, b, "b")
	start(t, b, "c")
	start(t, b, "d")

	clk.Advance(time.Minute)
	for id, fate := range map[string]func(string) error{
		"a": func(id string) error { return b.Exit(id, 3) },
		"b": b.OOM,
		"c": b.LoseNode,
	} {
		if err := fate(id); err != nil {
			t.Fatalf("fate of %s: %v", id, err)
		}
	}
	clk.Advance(time.Minute)
	stopped, err := b.Stop(ctx, "d", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Stop(ctx, "d", time.Second)
	if err != nil || again != stopped {
		t.Fatalf("second Stop = %+v, %v; want %+v (idempotent)", again, err, stopped)
	}

	list, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id     string
		reason string
		code   int
		ended  time.Time
	}{
		{"a", backend.ReasonExited, 3, t0.Add(time.Minute)},
		{"b", backend.ReasonOOMKilled, 137, t0.Add(time.Minute)},
		{"c", backend.ReasonLost, -1, t0.Add(time.Minute)},
		{"d", backend.ReasonStopped, 143, t0.Add(2 * time.Minute)},
	}
	if len(list) != len(want) {
		t.Fatalf("List() has %d entries, want %d", len(list), len(want))
	}
	for i, w := range want {
		got := list[i]
		if got.SandboxID != w.id || got.State != backend.StateExited || got.Reason != w.reason || got.ExitCode != w.code || !got.EndedAt.Equal(w.ended) {
			t.Errorf("List()[%d] = %+v, want %s exited %s code %d at %v", i, got, w.id, w.reason, w.code, w.ended)
		}
	}

	if _, err := b.Terminal(ctx, "a", nil); !errors.Is(err, backend.ErrNotRunning) {
		t.Errorf("Terminal(ended) = %v, want ErrNotRunning", err)
	}
	if err := b.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Inspect(ctx, "a"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Inspect(removed) = %v, want ErrNotFound", err)
	}
	start(t, b, "e")
	if err := b.Remove(ctx, "e"); !errors.Is(err, backend.ErrStillRunning) {
		t.Errorf("Remove(running) = %v, want ErrStillRunning", err)
	}
}

func TestCheckAndFailedStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := sim.New(clock.NewManual(t0))
	b.SetCheckError(errors.New("node drained"))
	if err := b.Check(ctx); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Check = %v, want ErrUnavailable", err)
	}
	b.SetCheckError(nil)
	boom := errors.New("boom")
	b.FailNextStart(boom)
	if _, err := b.Start(ctx, backend.Spec{SandboxID: "x", Command: []string{"x"}}); !errors.Is(err, boom) {
		t.Fatalf("Start = %v, want boom", err)
	}
	start(t, b, "x") // the failure was used up
}

func TestLogsFollowUntilExit(t *testing.T) {
	t.Parallel()
	b := sim.New(clock.NewManual(t0))
	start(t, b, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := b.Logs(ctx, "a", true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := b.WriteLog("a", "epoch 1 loss 0.3\n"); err != nil {
		t.Fatal(err)
	}
	if err := b.Exit("a", 0); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(rc) // returns only because the sandbox ended
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"simulated sandbox a: jupyter lab", "epoch 1 loss 0.3", "ended: exited"} {
		if !strings.Contains(string(all), w) {
			t.Errorf("logs %q lack %q", all, w)
		}
	}
}

func TestTerminalAndPort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := sim.New(clock.NewManual(t0))
	start(t, b, "a", 8888)

	term, err := b.Terminal(ctx, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	go func() { _, _ = io.WriteString(term, "echo hi\nexit\n") }()
	out, err := io.ReadAll(term)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "a$ echo hi\r\n" {
		t.Errorf("terminal output %q", out)
	}

	if _, err := b.DialPort(ctx, "a", 22); err == nil {
		t.Error("DialPort(undeclared) succeeded")
	}
	conn, err := b.DialPort(ctx, "a", 8888)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://sandbox/lab", nil)
	go func() { _ = req.Write(conn) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "port 8888") {
		t.Errorf("response %d %q", resp.StatusCode, body)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, backendtest.Harness{
		New:         func(*testing.T) backend.Backend { return sim.New(clock.NewManual(t0)) },
		LongRunning: []string{"sleep", "600"},
	})
}
