package testbed

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tamarack-ai/tamarack/services/events"
)

// Enrolment tokens are for a pool's managers, single use, expire, and can be revoked; revoking an agent
// takes its nodes down.
func TestAgentEnrolment(t *testing.T) {
	eachFixture(t, 0, 0, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		p, err := f.svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "Rack 2", Region: "ca-montreal", Backend: "local"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.CreateAgentToken(ctx, sme(), p.ID, AgentTokenInput{}); asProblem(t, err).Code != "pool_not_found" {
			t.Errorf("a stranger's token: %v, want pool_not_found", err)
		}
		if _, _, err := f.svc.CreateAgentToken(ctx, hostStaff(), f.pool.ID, AgentTokenInput{}); asProblem(t, err).Code != "pool_not_agent_run" {
			t.Errorf("a token for a simulator pool: %v, want pool_not_agent_run", err)
		}
		tok, secret, err := f.svc.CreateAgentToken(ctx, vendor(), p.ID, AgentTokenInput{Note: "gpu rack 2"})
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenHash == secret || tok.TokenHash == "" {
			t.Fatal("the token is not stored hashed")
		}
		if _, err := f.svc.Enrol(ctx, EnrolInput{Token: "tmk_enrol_wrong", Name: "gpu-01"}); asProblem(t, err).Code != "invalid_enrolment_token" {
			t.Errorf("a wrong token: %v", err)
		}
		e, err := f.svc.Enrol(ctx, EnrolInput{Token: secret, Name: "gpu-01", Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if e.Agent.PoolID != p.ID || e.Agent.ID == "" {
			t.Fatalf("enrolment %+v", e.Agent)
		}
		if _, err := f.svc.Enrol(ctx, EnrolInput{Token: secret, Name: "gpu-02"}); asProblem(t, err).Code != "invalid_enrolment_token" {
			t.Errorf("a token used twice: %v", err)
		}
		// Expired and revoked tokens are refused too.
		_, late, _ := f.svc.CreateAgentToken(ctx, vendor(), p.ID, AgentTokenInput{})
		revoked, gone, _ := f.svc.CreateAgentToken(ctx, vendor(), p.ID, AgentTokenInput{})
		if _, err := f.svc.RevokeAgentToken(ctx, vendor(), p.ID, revoked.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Enrol(ctx, EnrolInput{Token: gone, Name: "gpu-03"}); asProblem(t, err).Code != "invalid_enrolment_token" {
			t.Errorf("a revoked token: %v", err)
		}
		f.clk.Advance(agentTokenTTL + time.Minute)
		if _, err := f.svc.Enrol(ctx, EnrolInput{Token: late, Name: "gpu-04"}); asProblem(t, err).Code != "invalid_enrolment_token" {
			t.Errorf("an expired token: %v", err)
		}
		list, err := f.svc.AgentTokens(ctx, vendor(), p.ID)
		if err != nil || len(list) != 3 {
			t.Fatalf("tokens: %d, %v", len(list), err)
		}
		// A node the agent registers is its own; revoking the agent takes it down.
		a := e.Agent
		if err := f.svc.registerNode(ctx, a, agentNode("gpu-01"), f.clk.Now()); err != nil {
			t.Fatal(err)
		}
		views, err := f.svc.Agents(ctx, vendor(), p.ID)
		if err != nil || len(views) != 1 || len(views[0].Nodes) != 1 || views[0].Devices != 2 {
			t.Fatalf("agents: %+v, %v", views, err)
		}
		if _, err := f.svc.RevokeAgent(ctx, vendor(), p.ID, a.ID); err != nil {
			t.Fatal(err)
		}
		var n Node
		if err := f.db.First(&n, "agent_id = ?", a.ID).Error; err != nil || n.Health != NodeDown {
			t.Errorf("revoked agent's node: %+v, %v", n, err)
		}
	})
}

func agentNode(name string) events.AgentNodeV1 {
	return events.AgentNodeV1{Name: name, CPUMillis: 64_000, MemoryBytes: 1 << 40, Devices: []events.AgentDeviceV1{
		{Index: 0, UUID: "GPU-aaaa", GPUModel: "h100-80gb"}, {Index: 1, UUID: "GPU-bbbb", GPUModel: "h100-80gb"}}}
}

// An agent's report about a sandbox another agent runs is refused and alerted, never applied: usage (and the
// end that closes it) comes only from the agent of the pool that owns the sandbox.
func TestAgentReportsOnlyItsOwnSandboxes(t *testing.T) {
	eachFixture(t, 0, 0, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		now := f.clk.Now()
		sb := Sandbox{ID: "sb-owned", OrgID: smeOrg, PoolID: "pool-a", Backend: "local", AgentID: "agent-a", State: StateRunning,
			GPUCount: 1, CreatedAt: stamp(now), UpdatedAt: stamp(now), StartedAt: stampPtr(now), UsageEndAt: stampPtr(now), ExpiresAt: stampPtr(now.Add(time.Hour))}
		if err := f.db.Create(&sb).Error; err != nil {
			t.Fatal(err)
		}
		end := events.AgentStatusV1{SandboxID: sb.ID, State: "exited", StartedAt: now, EndedAt: now.Add(time.Minute), Reason: "exited"}
		for _, forged := range []struct{ pool, agent string }{{"pool-b", "agent-b"}, {"pool-a", "agent-other"}, {events.EmbeddedAgent, events.EmbeddedAgent}} {
			subj := events.AgentSandboxEvent(forged.pool, forged.agent).Name
			ev := events.AgentSandboxV1{AgentID: forged.agent, PoolID: forged.pool, Status: end, At: now}
			if err := f.svc.applyAgentSandbox(ctx, subj, ev); err != nil {
				t.Fatal(err)
			}
		}
		// The payload cannot claim another agent than its subject either.
		if err := f.svc.applyAgentSandbox(ctx, events.AgentSandboxEvent("pool-b", "agent-b").Name,
			events.AgentSandboxV1{AgentID: "agent-a", PoolID: "pool-a", Status: end, At: now}); err != nil {
			t.Fatal(err)
		}
		if got := f.get(t, sb.ID); got.State != StateRunning || got.UsageSeq != 0 {
			t.Fatalf("a forged report changed the sandbox: %s, %d samples", got.State, got.UsageSeq)
		}
		if n := testutil.ToFloat64(f.svc.metrics.agentRefused.WithLabelValues("sandbox event")); n != 4 {
			t.Errorf("refused reports counted %v, want 4", n)
		}
		if err := f.svc.applyAgentSandbox(ctx, events.AgentSandboxEvent("pool-a", "agent-a").Name,
			events.AgentSandboxV1{AgentID: "agent-a", PoolID: "pool-a", Status: end, At: now}); err != nil {
			t.Fatal(err)
		}
		got := f.get(t, sb.ID)
		if got.State != StateStopped || got.EndedAt == nil || !got.EndedAt.Equal(stamp(end.EndedAt)) {
			t.Fatalf("the owning agent's end: %s at %v, want stopped at %v", got.State, got.EndedAt, end.EndedAt)
		}
	})
}
