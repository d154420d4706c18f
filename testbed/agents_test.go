package testbed

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// agentFixture is a fixture whose testbed commands an agent (in front of the fixture's simulator) over an
// embedded NATS; the test hands the testbed that agent's heartbeats itself, node states and all.
type agentFixture struct {
	*fixture
	ctx context.Context
}

func newAgentFixture(t *testing.T, db *gorm.DB, agents ...string) agentFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := newFixture(t, db, 0, 0, Options{})
	bus := natstest.Start(t)
	svc, err := New(Deps{DB: db, Bus: bus, Clock: f.clk, Holds: ApproveHolds{}, Backends: f.svc.backends})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	t.Cleanup(svc.Wait)
	for _, id := range agents {
		if err := db.Create(&Agent{ID: id, PoolID: f.pool.ID, Name: id, CreatedAt: stamp(f.clk.Now())}).Error; err != nil {
			t.Fatal(err)
		}
		serveAgent(t, ctx, bus, f.pool.ID, id, f.sim)
	}
	return agentFixture{fixture: f, ctx: ctx}
}

// serveAgent runs a site agent for pool/id in front of b until ctx ends; opts change its configuration.
func serveAgent(t *testing.T, ctx context.Context, bus *eventbus.Bus, pool, id string, b backend.Backend, opts ...func(*agent.Config)) {
	t.Helper()
	adb, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "agent.db"), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sqldb.Migrate(ctx, adb, nil, agent.Migrations()); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, events.AgentStream); err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{PoolID: pool, AgentID: id, Version: "test", Backend: b, DB: adb, Bus: bus, Heartbeat: time.Hour}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := agent.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(actx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
		_ = sqldb.Close(adb)
	})
}

// heartbeat hands the testbed one heartbeat of agentID reporting nodes.
func (f agentFixture) heartbeat(t *testing.T, agentID string, nodes ...events.AgentNodeV1) {
	t.Helper()
	body, err := json.Marshal(events.AgentHeartbeatV1{AgentID: agentID, PoolID: f.pool.ID, Version: "test", Boot: "boot-1",
		Backend: "simulator", Nodes: nodes, Running: []string{}, At: f.clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.onHeartbeat(f.ctx, events.AgentBase(f.pool.ID, agentID)+".heartbeat.v1", body)
	f.svc.Wait() // the reconciliation a first heartbeat starts
}

func (f agentFixture) nodeNamed(t *testing.T, name string) Node {
	t.Helper()
	var n Node
	if err := f.db.First(&n, "pool_id = ? AND name = ?", f.pool.ID, name).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func (f agentFixture) tryLaunch() (Sandbox, error) {
	sb, err := f.svc.Launch(f.ctx, sme(), LaunchInput{ListingID: f.listing.ID, GPUModel: "h100-80gb", GPUCount: 1,
		Template: "shell", DurationMinutes: 30})
	f.svc.Wait()
	return sb, err
}

func withState(n events.AgentNodeV1, state string) events.AgentNodeV1 {
	n.State = state
	return n
}

// A node the agent reports draining or down (as Slurm drains or loses it) takes no new sandbox, as when staff
// drain it, until the agent reports it ready again; down stays down across heartbeats; a drain staff set is
// not lifted by the agent; an agent speaks for its own nodes only.
func TestAgentReportsNodeState(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newAgentFixture(t, db, "agent-1", "agent-2")
		node := agentNode("gpu-01")
		// Another agent's node, drained by that agent: the only other capacity, never placeable here.
		f.heartbeat(t, "agent-2", withState(agentNode("gpu-99"), events.AgentNodeDraining))

		// Reported draining from its first heartbeat: registered draining, no window where it takes work.
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeDraining))
		if n := f.nodeNamed(t, "gpu-01"); n.Health != NodeDraining || n.AgentID != "agent-1" {
			t.Fatalf("node reported draining: %s of %s", n.Health, n.AgentID)
		}
		if _, err := f.tryLaunch(); asProblem(t, err).Code != "no_capacity" {
			t.Fatalf("launch with the only node draining: %v, want no_capacity", err)
		}

		// Ready again: it takes the launch.
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeReady))
		sb, err := f.tryLaunch()
		if err != nil {
			t.Fatalf("launch once the node is ready: %v", err)
		}
		if got := f.get(t, sb.ID); got.NodeID != f.nodeNamed(t, "gpu-01").ID || got.State != StateRunning {
			t.Fatalf("sandbox on %s, %s; want running on gpu-01", got.NodeID, got.State)
		}

		// Down: no launch, and a heartbeat does not bring it back while the agent says down, nor one that
		// does not mention the node.
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeDown))
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeDown))
		f.heartbeat(t, "agent-1")
		if n := f.nodeNamed(t, "gpu-01"); n.Health != NodeDown {
			t.Fatalf("node reported down: %s", n.Health)
		}
		if _, err := f.tryLaunch(); asProblem(t, err).Code != "no_capacity" {
			t.Fatalf("launch with the only node down: %v, want no_capacity", err)
		}
		// Its sandbox is the agent's to report on while the agent answers (Slurm ends the job): not unreachable.
		f.tick(t)
		if got := f.get(t, sb.ID); got.State != StateRunning || got.UnreachableAt != nil {
			t.Fatalf("sandbox on a node its answering agent reports down: %s, unreachable since %v", got.State, got.UnreachableAt)
		}
		// Once the agent falls silent, it is unreachable like any other.
		f.clk.Advance(f.svc.opts.NodeTimeout + time.Second)
		f.tick(t)
		if got := f.get(t, sb.ID); got.UnreachableAt == nil {
			t.Fatalf("sandbox on a down node of a silent agent: %s, not unreachable", got.State)
		}
		// A restarted testbed loads the same: the index follows the database.
		f.svc = f.restart(t, Options{})
		if _, err := f.tryLaunch(); asProblem(t, err).Code != "no_capacity" {
			t.Fatalf("launch after a restart with the only node down: %v, want no_capacity", err)
		}
	})
}

// The rest of the story, on a testbed that keeps its agent: the agent lifts only what it imposed.
func TestAgentNodeStateAndStaff(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newAgentFixture(t, db, "agent-1", "agent-2")
		node := agentNode("gpu-01")
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeDown))
		f.heartbeat(t, "agent-2", agentNode("gpu-99"))
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeReady), withState(agentNode("gpu-99"), events.AgentNodeDown))
		if n := f.nodeNamed(t, "gpu-01"); n.Health != NodeReady {
			t.Fatalf("node reported ready after down: %s", n.Health)
		}
		if n := f.nodeNamed(t, "gpu-99"); n.Health != NodeReady || n.AgentID != "agent-2" {
			t.Fatalf("agent-1 reported agent-2's node down: now %s of %s", n.Health, n.AgentID)
		}
		// Keep the test to gpu-01: agent-2's node drained by its own agent.
		f.heartbeat(t, "agent-2", withState(agentNode("gpu-99"), events.AgentNodeDraining))

		// Staff drain the node: the agent's "ready" does not lift that; staff do.
		n := f.nodeNamed(t, "gpu-01")
		if _, err := f.svc.SetNodeHealth(f.ctx, vendor(), f.pool.ID, n.ID, NodeHealthInput{Health: NodeDraining}); err != nil {
			t.Fatal(err)
		}
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeReady))
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeDraining))
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeReady))
		if got := f.nodeNamed(t, "gpu-01").Health; got != NodeDraining {
			t.Fatalf("staff's drain after the agent's ready: %s", got)
		}
		if _, err := f.tryLaunch(); asProblem(t, err).Code != "no_capacity" {
			t.Fatalf("launch on a node staff drained: %v, want no_capacity", err)
		}
		if _, err := f.svc.SetNodeHealth(f.ctx, vendor(), f.pool.ID, n.ID, NodeHealthInput{Health: NodeReady}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.tryLaunch(); err != nil {
			t.Fatalf("launch once staff lift the drain: %v", err)
		}
		// Staff's manual heartbeat does not bring back a node its agent reports down.
		f.heartbeat(t, "agent-1", withState(node, events.AgentNodeDown))
		if _, err := f.svc.SetNodeHealth(f.ctx, vendor(), f.pool.ID, n.ID, NodeHealthInput{}); err != nil {
			t.Fatal(err)
		}
		if got := f.nodeNamed(t, "gpu-01").Health; got != NodeDown {
			t.Fatalf("a manual heartbeat of a node its agent reports down: %s", got)
		}
	})
}

// A heartbeat with a node state the protocol does not know is refused whole.
func TestAgentNodeStateValidated(t *testing.T) {
	hb := events.AgentHeartbeatV1{AgentID: "a", PoolID: "p", Boot: "b", At: time.Now(),
		Nodes: []events.AgentNodeV1{withState(agentNode("gpu-01"), "drained")}}
	if hb.Validate() == nil {
		t.Fatal("a heartbeat with node state \"drained\" passed validation")
	}
	for _, s := range []string{"", events.AgentNodeReady, events.AgentNodeDraining, events.AgentNodeDown} {
		hb.Nodes[0].State = s
		if err := hb.Validate(); err != nil {
			t.Errorf("state %q: %v", s, err)
		}
	}
}
