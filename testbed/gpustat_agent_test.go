package testbed

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/gpustat"
)

// fakeNvidiaSMI puts on PATH an nvidia-smi that answers the testbed's query as driver 550 does on a host with
// the two H100s of agentNode and a third GPU no sandbox holds; any other query fails, as a changed one would.
func fakeNvidiaSMI(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
if [ "$1" != "--query-gpu=uuid,utilization.gpu,memory.used,memory.total" ] || [ "$2" != "--format=csv,noheader,nounits" ]; then
	echo "unexpected query: $*" >&2
	exit 2
fi
cat <<'OUT'
GPU-aaaa, 87, 61234, 81559
GPU-bbbb, 12, 1024, 81559
GPU-cccc, 100, 80000, 81559
OUT
`
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestAgentGPUSamples: a site agent on another host measures its own GPUs (its nvidia-smi, parsed as the
// testbed parses the platform host's) and sends the measurements with its heartbeats; the testbed charts each
// of the agent's running sandboxes from its own devices, at most once per GPUSampleInterval, in the same
// table as the platform host's samples. Until the agent says it measures, its sandboxes are "not measured".
func TestAgentGPUSamples(t *testing.T) {
	fakeNvidiaSMI(t)
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := newFixture(t, db, 0, 0, Options{})
		bus := natstest.Start(t)
		svc, err := New(Deps{DB: db, Bus: bus, Clock: f.clk, Holds: ApproveHolds{}, Backends: f.svc.backends,
			Options: Options{GPUSampleInterval: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Load(ctx); err != nil {
			t.Fatal(err)
		}
		f.svc = svc
		t.Cleanup(svc.Wait)
		af := agentFixture{fixture: f, ctx: ctx}
		if err := db.Create(&Agent{ID: "agent-1", PoolID: f.pool.ID, Name: "agent-1", CreatedAt: stamp(f.clk.Now())}).Error; err != nil {
			t.Fatal(err)
		}
		// Heartbeats go out every 20 ms; the test hands each to the testbed, as listenAgents would.
		sub, err := bus.Conn().SubscribeSync(bus.Subject(events.AgentBase(f.pool.ID, "agent-1") + ".heartbeat.v1"))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		sampler := gpustat.NvidiaSMI(nil)
		if sampler == nil {
			t.Fatal("the fake nvidia-smi on PATH was not found")
		}
		serveAgent(t, ctx, bus, f.pool.ID, "agent-1", f.sim, func(c *agent.Config) { c.Heartbeat, c.GPUStats = 20*time.Millisecond, sampler })
		// Its first heartbeat follows its subscriptions: from then on it answers the launch's start.
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			t.Fatalf("the agent never sent a heartbeat: %v", err)
		}

		// The node as the agent's inventory reports it; the launch lands on it, through the agent.
		af.heartbeat(t, "agent-1", agentNode("gpu-01"))
		sb, err := af.tryLaunch()
		if err != nil {
			t.Fatal(err)
		}
		sb = f.get(t, sb.ID)
		devs := sb.DeviceList()
		if sb.State != StateRunning || sb.AgentID != "agent-1" || len(devs) != 1 {
			t.Fatalf("sandbox %s (%s %s) on %q with %d device(s)", sb.State, sb.StopReason, sb.Message, sb.AgentID, len(devs))
		}
		m, err := svc.GPUMetricsOf(ctx, sme(), sb.ID)
		if err != nil || m.Measured || m.Reason != NotMeasuredNoTool {
			t.Fatalf("before the agent said it measures: %+v %v", m, err)
		}
		want := map[string]GPUSample{"GPU-aaaa": {UtilizationPct: 87, MemoryUsedMiB: 61234, MemoryTotalMiB: 81559},
			"GPU-bbbb": {UtilizationPct: 12, MemoryUsedMiB: 1024, MemoryTotalMiB: 81559}}[devs[0].UUID]
		want.SandboxID = sb.ID

		// relay hands the testbed the agent's heartbeats until one carrying GPU measurements was applied.
		prefix := strings.TrimSuffix(bus.Subject("x"), "x")
		relay := func() {
			t.Helper()
			for range 500 {
				msg, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("no heartbeat: %v", err)
				}
				var hb events.AgentHeartbeatV1
				if err := json.Unmarshal(msg.Data, &hb); err != nil {
					t.Fatal(err)
				}
				svc.onHeartbeat(ctx, strings.TrimPrefix(msg.Subject, prefix), msg.Data)
				svc.Wait()
				if !hb.GPUSampler {
					t.Fatalf("heartbeat of an agent with nvidia-smi: %+v", hb)
				}
				if len(hb.GPUs) == 3 {
					return
				}
			}
			t.Fatal("no heartbeat carried the GPUs")
		}
		relay()
		first := stamp(f.clk.Now())
		relay() // the same instant: not due again
		f.clk.Advance(10 * time.Second)
		relay()

		m, err = svc.GPUMetricsOf(ctx, sme(), sb.ID)
		if err != nil || !m.Measured || len(m.Samples) != 2 {
			t.Fatalf("after the agent's measurements: %+v %v", m, err)
		}
		for i, s := range m.Samples {
			w := want
			w.At = first.Add(time.Duration(i) * 10 * time.Second)
			if s != w {
				t.Errorf("sample %d: %+v, want %+v", i, s, w)
			}
		}
		if m, err := svc.GPUMetricsOf(ctx, other(), sb.ID); err == nil {
			t.Errorf("another organisation read the samples: %+v", m)
		}
	})
}

// TestGPUSamplesPruned: the supervisor's collect drops the GPU samples of sandboxes that ended more than
// GPUSampleRetention ago, at most once per PruneInterval; those of running sandboxes and of sandboxes ended
// within the retention stay.
func TestGPUSamplesPruned(t *testing.T) {
	eachFixture(t, 1, 2, Options{GPUSampleRetention: 48 * time.Hour, PruneInterval: time.Hour}, func(t *testing.T, f *fixture) {
		running := f.launch(t, sme(), 1, 60) // runs, then ends at its expiry: within the retention all along
		now := f.clk.Now()
		for _, sb := range []Sandbox{
			{ID: "sb-ended-long-ago", State: StateStopped, EndedAt: stampPtr(now.Add(-72 * time.Hour))},
			{ID: "sb-failed-long-ago", State: StateFailed, EndedAt: stampPtr(now.Add(-49 * time.Hour))},
			{ID: "sb-ended-recently", State: StateStopped, EndedAt: stampPtr(now.Add(-47 * time.Hour))},
		} {
			sb.OrgID, sb.PoolID, sb.Backend, sb.BackendRemoved = smeOrg, f.pool.ID, "simulator", true
			if err := f.db.Create(&sb).Error; err != nil {
				t.Fatal(err)
			}
		}
		sample := func(id string, at time.Time) {
			t.Helper()
			if err := f.db.Create(&GPUSample{SandboxID: id, At: stamp(at), UtilizationPct: 50, MemoryUsedMiB: 1, MemoryTotalMiB: 2}).Error; err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{running.ID, "sb-ended-long-ago", "sb-failed-long-ago", "sb-ended-recently"} {
			sample(id, now.Add(-100*time.Hour))
			sample(id, now.Add(-80*time.Hour))
		}
		left := func() map[string]int {
			t.Helper()
			var rows []GPUSample
			if err := f.db.Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			out := map[string]int{}
			for _, r := range rows {
				out[r.SandboxID]++
			}
			return out
		}

		f.tick(t)
		if got := left(); len(got) != 2 || got[running.ID] != 2 || got["sb-ended-recently"] != 2 {
			t.Fatalf("after the first pruning: %v", got)
		}
		// Within the prune interval nothing more goes, not even a sample written late (a heartbeat in flight);
		// a day later the recently ended sandbox is past the retention too, and its samples go with the late one.
		f.clk.Advance(30 * time.Minute)
		sample("sb-ended-long-ago", now)
		f.tick(t)
		if got := left(); got["sb-ended-recently"] != 2 || got["sb-ended-long-ago"] != 1 {
			t.Fatalf("within the prune interval: %v", got)
		}
		f.clk.Advance(24 * time.Hour)
		f.tick(t)
		if got := left(); len(got) != 1 || got[running.ID] < 2 {
			t.Fatalf("after the second pruning: %v", got)
		}
	})
}
