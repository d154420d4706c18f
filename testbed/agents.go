package testbed

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// The testbed's side of the site agents: which agent runs a sandbox, what their heartbeats, progress and
// sandbox events say, and reconciliation with each agent. Commands go out through agent.Client.

// agentRun reports whether sandboxes of a backend kind run in site agents (the platform host's own nodes in
// the agent tamarack serve embeds).
func agentRun(kind string) bool { return kind == "local" || kind == "slurm" || kind == "kubernetes" }

// agentTarget is one agent the testbed commands: an enrolled agent of a pool, or the embedded one.
type agentTarget struct{ pool, agent, kind string }

func (t agentTarget) embedded() bool { return t.agent == events.EmbeddedAgent }

// agentClient returns the (cached) client of one agent.
func (s *Service) agentClient(t agentTarget) *agent.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[t]; c != nil {
		return c
	}
	c := agent.NewClient(s.bus, t.pool, t.agent, t.kind)
	s.clients[t] = c
	return c
}

// embeddedTarget is the agent tamarack serve runs for the platform host's own nodes.
var embeddedTarget = agentTarget{pool: events.EmbeddedAgent, agent: events.EmbeddedAgent, kind: "local"}

// targetOf is the agent that runs sb, if one does.
func (s *Service) targetOf(sb Sandbox) (agentTarget, bool) {
	switch {
	case sb.AgentID != "":
		return agentTarget{pool: sb.PoolID, agent: sb.AgentID, kind: sb.Backend}, true
	case s.backends[sb.Backend] != nil:
		return agentTarget{}, false
	case s.embedded && sb.Backend == "local":
		return embeddedTarget, true
	}
	return agentTarget{}, false
}

// backendOf is what runs sb: its agent's client, or a backend of this process (the simulator; tests' local);
// nil when nothing here can.
func (s *Service) backendOf(sb Sandbox) backend.Backend {
	if t, ok := s.targetOf(sb); ok && s.bus != nil {
		return s.agentClient(t)
	}
	return s.backends[sb.Backend]
}

// canRun reports whether sandboxes of pool can be started from this deployment, and if not, why.
func (s *Service) canRun(ctx context.Context, pool Pool) (bool, error) {
	if s.backends[pool.Backend] != nil || (s.embedded && pool.Backend == "local") {
		return true, nil
	}
	if !agentRun(pool.Backend) || s.bus == nil {
		return false, nil
	}
	n, err := activeAgentCount(s.db.WithContext(ctx), pool.ID)
	return n > 0, err
}

// agentTargets are the agents to reconcile with: the embedded one when this process runs it, and every
// enrolled agent not revoked.
func (s *Service) agentTargets(ctx context.Context) ([]agentTarget, error) {
	var out []agentTarget
	if s.bus == nil {
		return nil, nil
	}
	if s.embedded {
		out = append(out, embeddedTarget)
	}
	agents, err := activeAgents(s.db.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		pool, err := poolByID(s.db.WithContext(ctx), a.PoolID, false)
		if err != nil {
			continue
		}
		out = append(out, agentTarget{pool: a.PoolID, agent: a.ID, kind: pool.Backend})
	}
	return out, nil
}

// reconcileAgent reconciles the records of the sandboxes one agent runs with what it holds. An agent that
// does not answer is left alone: its heartbeat, when it comes back, asks for this again.
func (s *Service) reconcileAgent(ctx context.Context, t agentTarget) error {
	c := s.agentClient(t)
	err := s.reconcileWith(ctx, "agent "+t.agent, c, t)
	if errors.Is(err, agent.ErrUnreachable) {
		s.log.Info("agent unreachable: reconciled when it comes back", "pool", t.pool, "agent", t.agent)
		return nil
	}
	return err
}

// listenAgents follows every agent's heartbeats and pull progress (core NATS, one testbed replica each) and
// consumes their sandbox events (JetStream), until ctx ends.
func (s *Service) listenAgents(ctx context.Context) error {
	nc := s.bus.Conn()
	prefix := strings.TrimSuffix(s.bus.Subject("x"), "x")
	hb, err := nc.QueueSubscribe(s.bus.Subject(events.AgentHeartbeats), "testbed", func(m *nats.Msg) {
		s.onHeartbeat(ctx, strings.TrimPrefix(m.Subject, prefix), m.Data)
	})
	if err != nil {
		return err
	}
	defer hb.Unsubscribe()
	pr, err := nc.QueueSubscribe(s.bus.Subject(events.AgentProgress), "testbed", func(m *nats.Msg) {
		s.onProgress(ctx, strings.TrimPrefix(m.Subject, prefix), m.Data)
	})
	if err != nil {
		return err
	}
	defer pr.Unsubscribe()
	return eventbus.Consume(ctx, s.bus, events.AgentSandboxEvents, eventbus.ConsumeOptions{Durable: "testbed-agent-sandbox"},
		func(ctx context.Context, ev eventbus.Event[events.AgentSandboxV1]) error {
			return s.applyAgentSandbox(ctx, ev.Subject, ev.Data)
		})
}

// refuseAgent records that an agent sent something about what it does not own: NATS permissions should
// have made that impossible, so it is an alert, not a retry.
func (s *Service) refuseAgent(pool, agentID, what, why string) {
	s.metrics.agentRefused.WithLabelValues(what).Inc()
	s.log.Error("ALERT: agent message refused", "pool", pool, "agent", agentID, "message", what, "why", why)
}

// onHeartbeat records an agent's sign of life: its nodes' heartbeats and the states it reports for them
// (registering nodes it reports for the first time), its version and backend problem, the GPU measurements
// of its running sandboxes (the embedded agent sends none: this host samples its own); a new boot (a restarted agent) or the return of an agent
// that was down makes the testbed reconcile with it.
func (s *Service) onHeartbeat(ctx context.Context, subject string, data []byte) {
	pool, agentID, ok := events.AgentOf(subject)
	if !ok {
		return
	}
	var hb events.AgentHeartbeatV1
	if err := json.Unmarshal(data, &hb); err != nil || hb.Validate() != nil || hb.PoolID != pool || hb.AgentID != agentID {
		s.refuseAgent(pool, agentID, "heartbeat", "malformed, or names another pool or agent than its subject")
		return
	}
	now := s.clock.Now()
	t := agentTarget{pool: pool, agent: agentID}
	if t.embedded() {
		t = embeddedTarget
		if !s.embedded {
			return // another process's embedded agent: its own testbed follows it
		}
		nodes, err := embeddedAgentNodes(s.db.WithContext(ctx))
		back := false
		if err == nil {
			back, err = s.heartbeatNodes(ctx, nodes, nil, now)
		}
		if err != nil {
			s.log.Warn("record embedded agent heartbeat", "err", err)
		}
		s.afterHeartbeat(t, hb.Boot, back)
		return
	}
	a, err := agentOfPool(s.db.WithContext(ctx), pool, agentID)
	if err != nil || a.RevokedAt != nil {
		s.refuseAgent(pool, agentID, "heartbeat", "no such agent enrolled for this pool, or revoked")
		return
	}
	p, err := poolByID(s.db.WithContext(ctx), pool, false)
	if err != nil {
		return
	}
	t.kind = p.Backend
	reboot := a.Boot != hb.Boot
	wasDown := a.HeartbeatAt == nil || now.Sub(*a.HeartbeatAt) > s.opts.NodeTimeout
	if err := setAgentColumns(s.db.WithContext(ctx), a.ID, map[string]any{"heartbeat_at": stamp(now),
		"version": hb.Version, "boot": hb.Boot, "backend": hb.Backend, "problem": hb.Problem, "gpu_sampler": hb.GPUSampler}); err != nil {
		s.log.Warn("record agent heartbeat", "agent", a.ID, "err", err)
		return
	}
	reported := map[string]string{}
	for _, n := range hb.Nodes {
		reported[strings.TrimSpace(n.Name)] = n.State
		if err := s.registerNode(ctx, a, n, now); err != nil {
			s.log.Warn("register agent node", "agent", a.ID, "node", n.Name, "err", err)
		}
	}
	nodes, err := agentNodes(s.db.WithContext(ctx), a.ID, pool)
	back := false
	if err == nil {
		back, err = s.heartbeatNodes(ctx, nodes, reported, now)
	}
	if err != nil {
		s.log.Warn("record agent heartbeat", "agent", a.ID, "err", err)
	}
	if err := s.recordAgentGPUs(ctx, a, hb, now); err != nil {
		s.log.Warn("record agent gpu samples", "agent", a.ID, "err", err)
	}
	s.afterHeartbeat(t, hb.Boot, back || reboot || wasDown)
}

// afterHeartbeat clears the unreachable mark of an agent's sandboxes and, when the agent restarted or came
// back, reconciles with it (in the background: the heartbeat handler must not wait on the agent).
func (s *Service) afterHeartbeat(t agentTarget, boot string, reconcile bool) {
	s.mu.Lock()
	if s.boots[t] != boot {
		s.boots[t] = boot
		reconcile = true
	}
	s.mu.Unlock()
	if err := clearUnreachable(s.db, t.embedded(), t.agent, t.pool); err != nil {
		s.log.Warn("clear unreachable sandboxes", "agent", t.agent, "err", err)
	}
	if !reconcile {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.reconcileAgent(ctx, t); err != nil {
			s.log.Warn("reconcile with agent", "pool", t.pool, "agent", t.agent, "err", err)
		}
	}()
}

// heartbeatNodes marks nodes alive now and applies the states their agent reported (reported, by node name;
// nil for the embedded agent, which reports none); back is true when one of them was down and is no longer.
// Nodes must be only the reporting agent's (agentNodes, embeddedAgentNodes): an agent speaks for no other.
func (s *Service) heartbeatNodes(ctx context.Context, nodes []Node, reported map[string]string, now time.Time) (back bool, err error) {
	for _, n := range nodes {
		state, carried := reported[n.Name]
		if !carried {
			state = n.AgentHealth // no word on it in this heartbeat: what the agent said last holds
		}
		health, agentHealth := reportedHealth(n, state)
		cols := map[string]any{"heartbeat_at": stamp(now)}
		if health != n.Health {
			cols["health"] = health
		}
		if agentHealth != n.AgentHealth {
			cols["agent_health"] = agentHealth
		}
		if err := setNodeColumns(s.db.WithContext(ctx), n.ID, cols); err != nil {
			return back, err
		}
		if health == n.Health {
			continue
		}
		back = back || n.Health == NodeDown
		switch {
		case n.Health == NodeDown && state == "":
			s.log.Info("node back: its agent answers again", "node", n.ID, "health", health)
		default:
			s.log.Info("node health changed: its agent reports it "+cmp.Or(state, events.AgentNodeReady), "node", n.ID,
				"agent", n.AgentID, "from", n.Health, "to", health)
		}
		s.index().setHealth(n.ID, health)
	}
	return back, nil
}

// reportedHealth is n's health once its agent, answering now, says state ("" or ready: up; draining; down),
// and the health the agent imposes on it (Node.AgentHealth). Draining and down are the agent's to impose and
// lift; a drain staff set stays until staff lift it, whatever the agent says; a node down because its agent
// was silent comes back.
func reportedHealth(n Node, state string) (health, agentHealth string) {
	switch state {
	case events.AgentNodeDown:
		return NodeDown, NodeDown
	case events.AgentNodeDraining:
		if n.Health == NodeDraining {
			return n.Health, n.AgentHealth // already draining: a drain staff set stays theirs
		}
		return NodeDraining, NodeDraining
	}
	switch {
	case n.Health == NodeDown:
		return NodeReady, ""
	case n.Health == NodeDraining && n.AgentHealth == NodeDraining:
		return NodeReady, ""
	}
	return n.Health, ""
}

// registerNode adds a node an agent reports for the first time, with its devices. A node of that name that
// belongs to another agent (or to the platform) is refused: agents cannot take over each other's nodes.
func (s *Service) registerNode(ctx context.Context, a Agent, in events.AgentNodeV1, now time.Time) error {
	existing, err := nodeNamed(s.db.WithContext(ctx), a.PoolID, in.Name)
	switch {
	case err == nil && existing.AgentID == a.ID:
		return nil
	case err == nil:
		s.refuseAgent(a.PoolID, a.ID, "node", fmt.Sprintf("node %q belongs to another agent", in.Name))
		return nil
	case !sqldb.IsNotFound(err):
		return err
	}
	input := AddNodeInput{Name: in.Name, CPUMillis: in.CPUMillis, MemoryBytes: in.MemoryBytes}
	declared := false
	for _, d := range in.Devices {
		input.Devices = append(input.Devices, DeviceInput{Index: d.Index, UUID: d.UUID, GPUModel: d.GPUModel})
		declared = declared || d.Declared
	}
	if err := input.Validate(); err != nil {
		s.refuseAgent(a.PoolID, a.ID, "node", err.Error())
		return nil
	}
	n, devs := newNode(a.PoolID, input, declared, now)
	n.AgentID = a.ID
	n.Health, n.AgentHealth = reportedHealth(n, in.State) // a node Slurm has drained takes no sandbox meanwhile
	err = s.insertNode(ctx, web.Principal{}, n, devs, func(tx *gorm.DB) (Pool, error) {
		return poolByID(tx, a.PoolID, true) // the agent's own pool
	})
	if err == nil {
		s.log.Info("agent registered a node", "agent", a.ID, "node", n.ID, "name", n.Name, "devices", len(devs), "health", n.Health)
	}
	return err
}

// onProgress records how far a starting sandbox's image is, when the agent that sent it runs the sandbox.
func (s *Service) onProgress(ctx context.Context, subject string, data []byte) {
	pool, agentID, ok := events.AgentOf(subject)
	if !ok {
		return
	}
	var p events.AgentProgressV1
	if err := json.Unmarshal(data, &p); err != nil || p.Validate() != nil {
		return
	}
	sb, err := anySandbox(s.db.WithContext(ctx), p.SandboxID) // checked against the agent that sent it below
	if err != nil {
		return
	}
	if !s.runs(sb, pool, agentID) {
		s.refuseAgent(pool, agentID, "progress", "sandbox "+p.SandboxID+" is not its own")
		return
	}
	_, digest, _ := strings.Cut(p.Ref, "@")
	if _, err := s.setProgress(ctx, sb.ID, Progress{Phase: p.Phase, Done: p.Done, Total: p.Total, Digest: digest}, nil); err != nil {
		s.log.Warn("record sandbox image progress", "sandbox", sb.ID, "err", err)
	}
}

// runs reports whether the agent (pool, agentID) of a subject is the one that runs sb.
func (s *Service) runs(sb Sandbox, pool, agentID string) bool {
	if pool == events.EmbeddedAgent && agentID == events.EmbeddedAgent {
		t, ok := s.targetOf(sb)
		return ok && t.embedded()
	}
	return sb.AgentID == agentID && sb.PoolID == pool
}

// applyAgentSandbox applies an agent's report that one of its sandboxes started or ended, as the supervisor
// would had it asked. Reports about sandboxes the agent does not run are refused (alerted, never applied):
// billing trusts usage only from the pool that owns the sandbox.
func (s *Service) applyAgentSandbox(ctx context.Context, subject string, ev events.AgentSandboxV1) error {
	pool, agentID, ok := events.AgentOf(subject)
	if !ok || ev.PoolID != pool || ev.AgentID != agentID {
		s.refuseAgent(pool, agentID, "sandbox event", "names another pool or agent than its subject")
		return nil
	}
	sb, err := anySandbox(s.db.WithContext(ctx), ev.Status.SandboxID) // checked against the agent that sent it below
	if err != nil {
		if errors.Is(err, ErrSandboxNotFound) {
			s.refuseAgent(pool, agentID, "sandbox event", "unknown sandbox "+ev.Status.SandboxID)
			return nil
		}
		return err
	}
	if !s.runs(sb, pool, agentID) {
		s.refuseAgent(pool, agentID, "sandbox event", "sandbox "+sb.ID+" is not its own")
		return nil
	}
	st := agent.FromStatusV1(ev.Status)
	switch {
	case st.Ended():
		if sb.Terminal() {
			return nil
		}
		if sb.State == StateProvisioning && s.isInflight(sb.ID) {
			return nil // the start in progress here records it
		}
		return s.finish(ctx, sb.ID, st)
	case sb.State == StateProvisioning && !s.isInflight(sb.ID):
		return s.started(ctx, sb.ID, st)
	}
	return nil
}
