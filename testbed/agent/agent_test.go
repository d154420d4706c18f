package agent_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// serve runs an agent for pool/agent on bus in front of b, until the test ends.
func serve(t *testing.T, bus *eventbus.Bus, pool, id string, b backend.Backend) *agent.Server {
	t.Helper()
	return serveTB(t, bus, pool, id, b)
}

func serveTB(t testing.TB, bus *eventbus.Bus, pool, id string, b backend.Backend) *agent.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "agent.db"), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sqldb.Migrate(ctx, db, nil, agent.Migrations()); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, events.AgentStream); err != nil {
		t.Fatal(err)
	}
	srv, err := agent.NewServer(agent.Config{PoolID: pool, AgentID: id, Version: "test", Backend: b, DB: db, Bus: bus,
		Heartbeat: 100 * time.Millisecond, Watch: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
		_ = sqldb.Close(db)
	})
	return srv
}

// ready waits until the agent answers.
func ready(t *testing.T, c *agent.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The backend contract holds through the agent: every call crosses NATS to a simulator behind an agent.
func TestConformanceThroughAgent(t *testing.T) {
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		backendtest.Run(t, backendtest.Harness{
			New: func(t *testing.T) backend.Backend {
				serve(t, bus, "pool-a", "agent-1", sim.New(clock.System{}))
				c := agent.NewClient(bus, "pool-a", "agent-1", "simulator")
				ready(t, c)
				return c
			},
			LongRunning: []string{"sleep", "600"},
		})
	})
}

// Logs, a terminal and a port cross NATS as pipes.
func TestStreamsThroughAgent(t *testing.T) {
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		sb := sim.New(clock.System{})
		serve(t, bus, "pool-a", "agent-1", sb)
		c := agent.NewClient(bus, "pool-a", "agent-1", "simulator")
		ready(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Start(ctx, backend.Spec{SandboxID: "s1", Command: []string{"jupyter", "lab"}, Ports: []int{8888}}); err != nil {
			t.Fatal(err)
		}
		if err := sb.WriteLog("s1", "hello from the sandbox\n"); err != nil {
			t.Fatal(err)
		}
		rc, err := c.Logs(ctx, "s1", true)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(rc)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("logs ended before the sandbox's line: %v", err)
			}
			if line == "hello from the sandbox\n" {
				break
			}
		}
		if _, err := c.Stop(ctx, "s1", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(br); err != nil { // the follow ends with the sandbox
			t.Fatalf("following logs of a stopped sandbox: %v", err)
		}
		rc.Close()

		if _, err := c.Start(ctx, backend.Spec{SandboxID: "s2", Command: []string{"jupyter", "lab"}, Ports: []int{8888}}); err != nil {
			t.Fatal(err)
		}
		term, err := c.Terminal(ctx, "s2", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := term.Resize(120, 40); err != nil {
			t.Fatal(err)
		}
		if _, err := term.Write([]byte("echo hi\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := term.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), "echo hi") {
			t.Fatalf("terminal echo %q, %v", buf[:n], err)
		}
		term.Close()

		conn, err := c.DialPort(ctx, "s2", 8888)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", "http://sandbox/", nil)
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("proxied port: %v, %v", resp, err)
		}
		resp.Body.Close()
		conn.Close()
		if _, err := c.DialPort(ctx, "s2", 9999); err == nil {
			t.Error("a port the sandbox does not serve was dialled")
		}
		if _, err := c.Stop(ctx, "s2", 0); err != nil {
			t.Fatal(err)
		}
	})
}

// recording is a simulator that keeps the last spec it was asked to start.
type recording struct {
	*sim.Backend
	mu   sync.Mutex
	last backend.Spec
}

func (r *recording) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	r.mu.Lock()
	r.last = s
	r.mu.Unlock()
	return r.Backend.Start(ctx, s)
}

// A spec crosses NATS whole: what the agent's backend starts is what the testbed asked for, the booked
// duration (which Slurm turns into the job's time limit) included.
func TestSpecThroughAgent(t *testing.T) {
	bus := natstest.Start(t)
	rb := &recording{Backend: sim.New(clock.System{})}
	serve(t, bus, "pool-a", "agent-1", rb)
	c := agent.NewClient(bus, "pool-a", "agent-1", "simulator")
	ready(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := backend.Spec{SandboxID: "s1", Command: []string{"jupyter", "lab"}, Env: map[string]string{"A": "b"},
		Devices: []backend.Device{{Index: 1, UUID: "GPU-1", Model: "h100-80gb", Paths: []string{"/dev/nvidia1"}}},
		Network: true, Ports: []int{8888}, Limits: backend.Limits{MemoryBytes: 1 << 30, CPUMillis: 1500, Pids: 100, LogBytes: 1 << 20},
		Duration: 90 * time.Minute, Settings: map[string]string{"slurm.partition": "gpu"}}
	if _, err := c.Start(ctx, want); err != nil {
		t.Fatal(err)
	}
	rb.mu.Lock()
	got := rb.last
	rb.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the agent's backend started\n%+v\nwant\n%+v", got, want)
	}
}

// An agent whose backend pulls images on its own nodes (no Images: Kubernetes) hands the backend the image's
// reference; with no command of its own the sandbox runs the image's entrypoint.
func TestImageReferenceThroughAgent(t *testing.T) {
	bus := natstest.Start(t)
	rb := &recording{Backend: sim.New(clock.System{})}
	serve(t, bus, "pool-a", "agent-1", rb)
	c := agent.NewClient(bus, "pool-a", "agent-1", "kubernetes")
	ready(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref := "registry.example/tamarack/python@sha256:" + strings.Repeat("a", 64)
	if _, digest, err := c.StartImage(ctx, backend.Spec{SandboxID: "s1"}, ref, nil); err != nil || digest != "" {
		t.Fatalf("StartImage = %q, %v; want started, no digest (the node's pull is not the agent's)", digest, err)
	}
	rb.mu.Lock()
	got := rb.last
	rb.mu.Unlock()
	if got.Image != ref || got.RootFS != "" || len(got.Command) != 0 {
		t.Fatalf("the agent's backend started %+v, want image %s, no root filesystem, no command", got, ref)
	}
}

// An agent that is not there makes calls fail as unreachable (backend unavailable), not hang.
func TestUnreachableAgent(t *testing.T) {
	bus := natstest.Start(t)
	c := agent.NewClient(bus, "pool-a", "nobody", "local")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Inspect(ctx, "s1")
	if !errors.Is(err, agent.ErrUnreachable) || !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Inspect with no agent = %v, want ErrUnreachable wrapping ErrUnavailable", err)
	}
}

// Starts and ends reach JetStream through the agent's outbox, once each, on the agent's own subject.
func TestSandboxEventsThroughOutbox(t *testing.T) {
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) {
		sb := sim.New(clock.System{})
		serve(t, bus, "pool-a", "agent-1", sb)
		c := agent.NewClient(bus, "pool-a", "agent-1", "simulator")
		ready(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got := make(chan eventbus.Event[events.AgentSandboxV1], 16)
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			_ = eventbus.Consume(cctx, bus, events.AgentSandboxEvents, eventbus.ConsumeOptions{Durable: "test-agent-events"},
				func(_ context.Context, ev eventbus.Event[events.AgentSandboxV1]) error {
					got <- ev
					return nil
				})
		}()
		if _, err := c.Start(ctx, backend.Spec{SandboxID: "s1", Command: []string{"sleep", "600"}}); err != nil {
			t.Fatal(err)
		}
		if err := sb.Exit("s1", 3); err != nil {
			t.Fatal(err)
		}
		want := []string{"running", "exited"}
		for _, w := range want {
			select {
			case ev := <-got:
				if ev.Data.Status.State != w || ev.Data.Status.SandboxID != "s1" || ev.Subject != "tamarack.agent.pool-a.agent-1.evt.sandbox.v1" {
					t.Fatalf("event %+v on %s, want %s of s1 on the agent's subject", ev.Data, ev.Subject, w)
				}
				if w == "exited" && ev.Data.Status.ExitCode != 3 {
					t.Errorf("exit code %d, want 3", ev.Data.Status.ExitCode)
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", w)
			}
		}
	})
}

// blockingImages never finishes a pull until its context ends: a stop must cancel the start.
type blockingImages struct{ started chan struct{} }

func (b blockingImages) Rootfs(ctx context.Context, _ string, _ map[string]string, _ func(image.Progress)) (image.Rootfs, error) {
	close(b.started)
	<-ctx.Done()
	return image.Rootfs{}, ctx.Err()
}

// A stop of a sandbox whose image is still being prepared cancels its start: the start answers
// ErrStartCancelled and nothing runs.
func TestStopCancelsStartThroughAgent(t *testing.T) {
	bus := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "agent.db"), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close(db)
	if err := sqldb.Migrate(ctx, db, nil, agent.Migrations()); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, events.AgentStream); err != nil {
		t.Fatal(err)
	}
	sb := sim.New(clock.System{})
	imgs := blockingImages{started: make(chan struct{})}
	srv, err := agent.NewServer(agent.Config{PoolID: "pool-a", AgentID: "agent-1", Backend: sb, Images: imgs, DB: db, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	defer func() { stop(); <-done }()
	c := agent.NewClient(bus, "pool-a", "agent-1", "local")
	ready(t, c)
	res := make(chan error, 1)
	go func() {
		_, _, err := c.StartImage(ctx, backend.Spec{SandboxID: "s1", Command: []string{"sleep", "600"}}, "shell", nil)
		res <- err
	}()
	<-imgs.started
	if _, err := c.Stop(ctx, "s1", 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("stop of a sandbox still pulling: %v, want not found (nothing ran)", err)
	}
	if err := <-res; !errors.Is(err, agent.ErrStartCancelled) {
		t.Fatalf("the start answered %v, want ErrStartCancelled", err)
	}
	if _, err := sb.Inspect(ctx, "s1"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("something ran: %v", err)
	}
}

// An agent without an artifacts cache (its backend cannot bind this host's files: Slurm, Kubernetes) refuses
// a start with mounts (not_supported) instead of starting the sandbox without them; nothing is started.
func TestMountsRefusedWithoutArtifacts(t *testing.T) {
	bus := natstest.Start(t)
	rb := &recording{Backend: sim.New(clock.System{})}
	serve(t, bus, "pool-a", "agent-1", rb)
	c := agent.NewClient(bus, "pool-a", "agent-1", "slurm")
	ready(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mounts := []events.AgentMountV1{{ListingID: "lst-a", Target: "/artifacts/lst-a", Files: []events.AgentArtifactV1{
		{Name: "w.bin", SHA256: strings.Repeat("a", 64), SizeBytes: 1, URL: "/blob/w"}}}}
	_, _, err := c.StartMounted(ctx, backend.Spec{SandboxID: "s1", Command: []string{"true"}}, "", nil, mounts)
	if !errors.Is(err, backend.ErrNotSupported) {
		t.Fatalf("start with mounts on an agent without artifacts: %v; want not supported", err)
	}
	rb.mu.Lock()
	started := rb.last.SandboxID
	rb.mu.Unlock()
	if started != "" {
		t.Fatalf("the backend started %q anyway", started)
	}
}
