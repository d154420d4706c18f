package testbed

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/services/events"
)

func TestLaunchRunStop(t *testing.T) {
	eachFixture(t, 2, 8, Options{UsageInterval: 15 * time.Second}, func(t *testing.T, f *fixture) {
		sb := f.launch(t, sme(), 2, 60)
		if sb.State != StateRequested {
			t.Fatalf("accepted state %s", sb.State)
		}
		got := f.get(t, sb.ID)
		if got.State != StateRunning || !equalAt(got.StartedAt, t0) || !equalAt(got.ExpiresAt, t0.Add(time.Hour)) {
			t.Fatalf("after provisioning: %+v", got)
		}
		if len(got.DeviceList()) != 2 || got.NodeID == "" {
			t.Fatalf("devices %s node %q", got.Devices, got.NodeID)
		}
		for range 5 {
			f.clk.Advance(7*time.Second + 333*time.Millisecond)
			f.tick(t)
		}
		if _, err := f.svc.Stop(context.Background(), sme(), sb.ID); err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		got = f.get(t, sb.ID)
		if got.State != StateStopped || got.StopReason != ReasonUser || got.Message != "" {
			t.Fatalf("after stop: %s %s %q (a stop's own TERM is no failure to report)", got.State, got.StopReason, got.Message)
		}
		if sum := checkUsage(t, f.db, got); sum != 5*7333 {
			t.Fatalf("usage %d", sum)
		}
		want := []string{"requested", "scheduled", "provisioning", "running", "stopping", "stopped"}
		if st := stateOf(t, f.db, sb.ID); !slices.Equal(st, want) {
			t.Fatalf("events %v", st)
		}
		var claims int64
		f.db.Model(&DeviceClaim{}).Where("sandbox_id = ?", sb.ID).Count(&claims)
		if claims != 0 {
			t.Fatalf("%d claims left", claims)
		}
		// Another org cannot see it; stopping again says it ended.
		if _, err := f.svc.Get(context.Background(), other(), sb.ID); !errors.Is(err, ErrSandboxNotFound) {
			t.Fatalf("other org: %v", err)
		}
		if _, err := f.svc.Stop(context.Background(), sme(), sb.ID); !errors.Is(err, ErrSandboxEnded) {
			t.Fatalf("stop twice: %v", err)
		}
	})
}

func TestStopConditions(t *testing.T) {
	eachFixture(t, 2, 8, Options{UsageInterval: 15 * time.Second, WalletGrace: time.Minute}, func(t *testing.T, f *fixture) {
		ctx := context.Background()

		expiring := f.launch(t, sme(), 1, 10)
		f.clk.Advance(9 * time.Minute)
		f.tick(t)
		if s := f.get(t, expiring.ID); s.State != StateRunning {
			t.Fatalf("expired early: %s", s.State)
		}
		// Extend by 5 minutes: the hold is extended (approve provider) and the expiry moves.
		ext, err := f.svc.Extend(ctx, sme(), expiring.ID, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !equalAt(ext.ExpiresAt, t0.Add(15*time.Minute)) {
			t.Fatalf("extended expiry %v", ext.ExpiresAt)
		}
		if _, err := f.svc.Extend(ctx, sme(), expiring.ID, 240); !isField(err, "minutes") {
			t.Fatalf("extend beyond listing max: %v", err)
		}
		f.clk.Advance(6 * time.Minute) // 15 min after start
		f.tick(t)
		s := f.get(t, expiring.ID)
		if s.State != StateStopped || s.StopReason != ReasonExpired {
			t.Fatalf("expiry: %s %s", s.State, s.StopReason)
		}
		checkUsage(t, f.db, s)

		// Idle: the shell template stops after 30 minutes without activity.
		idle := f.launch(t, sme(), 1, 120)
		f.clk.Advance(20 * time.Minute)
		f.tick(t)
		f.svc.Touch(ctx, idle.ID)
		f.clk.Advance(29 * time.Minute)
		f.tick(t)
		if s := f.get(t, idle.ID); s.State != StateRunning {
			t.Fatalf("idle stop despite activity: %s %s", s.State, s.StopReason)
		}
		f.clk.Advance(2 * time.Minute)
		f.tick(t)
		if s := f.get(t, idle.ID); s.State != StateStopped || s.StopReason != ReasonIdle {
			t.Fatalf("idle: %s %s", s.State, s.StopReason)
		}

		// Wallet exhausted: that org's sandboxes stop after the grace period, with the reason; others run on.
		mine := f.launch(t, sme(), 1, 120)
		theirs := f.launch(t, other(), 1, 120)
		ev := events.WalletExhaustedV1{OrganizationID: smeOrg, At: f.clk.Now()}
		for range 2 { // redelivered: idempotent
			if err := f.svc.WalletExhausted(ctx, "wallet-ev-1", ev); err != nil {
				t.Fatal(err)
			}
		}
		f.clk.Advance(30 * time.Second)
		f.tick(t)
		if s := f.get(t, mine.ID); s.State != StateRunning {
			t.Fatalf("stopped before grace: %s", s.State)
		}
		f.clk.Advance(31 * time.Second)
		f.tick(t)
		s = f.get(t, mine.ID)
		if s.State != StateStopped || s.StopReason != ReasonWalletExhausted {
			t.Fatalf("wallet: %s %s", s.State, s.StopReason)
		}
		checkUsage(t, f.db, s)
		if s := f.get(t, theirs.ID); s.State != StateRunning {
			t.Fatalf("other org's sandbox: %s", s.State)
		}

		// Node loss reported by the backend.
		if err := f.sim.LoseNode(theirs.ID); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Second)
		f.tick(t)
		s = f.get(t, theirs.ID)
		if s.State != StateStopped || s.StopReason != ReasonNodeLost {
			t.Fatalf("node lost: %s %s", s.State, s.StopReason)
		}
		checkUsage(t, f.db, s)

		// Node marked down by its vendor: its sandboxes stop with node_lost and it takes no new ones.
		onNode := f.launch(t, sme(), 8, 60)
		node := f.get(t, onNode.ID).NodeID
		if _, err := f.svc.SetNodeHealth(ctx, vendor(), f.pool.ID, node, NodeHealthInput{Health: NodeDown}); err != nil {
			t.Fatal(err)
		}
		f.tick(t)
		s = f.get(t, onNode.ID)
		if s.State != StateStopped || s.StopReason != ReasonNodeLost {
			t.Fatalf("node down: %s %s", s.State, s.StopReason)
		}
		// A process exiting by itself ends the sandbox with its exit code.
		exiting := f.launch(t, sme(), 1, 60)
		f.clk.Advance(3 * time.Second)
		if err := f.sim.Exit(exiting.ID, 3); err != nil {
			t.Fatal(err)
		}
		f.tick(t)
		s = f.get(t, exiting.ID)
		if s.State != StateStopped || s.StopReason != ReasonExited || s.Message != "exit code 3" || s.UsageMillis() != 3000 {
			t.Fatalf("exit: %+v", s)
		}
	})
}

func isField(err error, field string) bool {
	p, ok := problem.From(err)
	if !ok {
		return false
	}
	for _, f := range p.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

// TestUsageAcrossRestart: a sandbox keeps running while the testbed restarts twice (on the same database,
// the backend keeping the sandbox), and its usage samples still sum to the backend-observed running time
// to the millisecond, with contiguous sequence numbers.
func TestUsageAcrossRestart(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		opts := Options{UsageInterval: 10 * time.Second}
		f := newFixture(t, db, 1, 8, opts)
		sb := f.launch(t, sme(), 4, 120)
		steps := []time.Duration{3*time.Second + 17*time.Millisecond, 11 * time.Second, 10*time.Second + 999*time.Millisecond, 25 * time.Second}
		for round := range 3 {
			for _, d := range steps {
				f.clk.Advance(d)
				f.tick(t)
			}
			// Restart: the process dies (no stop), the backend keeps running the sandbox.
			f.clk.Advance(42*time.Second + 5*time.Millisecond)
			svc := f.restart(t, opts)
			if err := svc.Reconcile(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s := f.get(t, sb.ID); s.State != StateRunning {
				t.Fatalf("round %d: after restart %s", round, s.State)
			}
		}
		f.clk.Advance(1234 * time.Millisecond)
		// The process exits while the testbed is down; the restarted testbed finds the true end.
		if err := f.sim.Exit(sb.ID, 0); err != nil {
			t.Fatal(err)
		}
		end := f.clk.Now()
		f.clk.Advance(time.Minute)
		svc := f.restart(t, opts)
		if err := svc.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := f.get(t, sb.ID)
		if s.State != StateStopped || !equalAt(s.EndedAt, end) {
			t.Fatalf("after reconcile: %s ended %v want %v", s.State, s.EndedAt, end)
		}
		st, err := f.sim.Inspect(context.Background(), sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		sum := checkUsage(t, db, s)
		if want := st.EndedAt.Sub(st.StartedAt).Milliseconds(); sum != want {
			t.Fatalf("usage %d ms, backend observed %d ms", sum, want)
		}
		// The stopped event carries the total and the last sequence.
		rows := outbox(t, db, events.SandboxSubject(StateStopped).Name)
		if len(rows) != 1 {
			t.Fatalf("%d stopped events", len(rows))
		}
	})
}

// TestReconcile: orphans are stopped, records of vanished sandboxes are ended, nothing shows running that
// is not.
func TestReconcile(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		keep := f.launch(t, sme(), 1, 60)
		gone := f.launch(t, sme(), 1, 60)
		f.clk.Advance(20 * time.Second)
		f.tick(t)
		// gone vanishes from the backend entirely; an orphan appears that has no record.
		if _, err := f.sim.Stop(ctx, gone.ID, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.sim.Remove(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		orphan := f.svc.spec(Sandbox{ID: "sb-orphan", Template: "shell", Devices: "[]"}, Pool{Settings: "{}"})
		if _, err := f.sim.Start(ctx, orphan); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(5 * time.Second)
		svc := f.restart(t, Options{})
		if err := svc.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if s := f.get(t, keep.ID); s.State != StateRunning {
			t.Fatalf("kept: %s", s.State)
		}
		s := f.get(t, gone.ID)
		if s.State != StateStopped || s.StopReason != ReasonNodeLost || !equalAt(s.EndedAt, t0.Add(20*time.Second)) {
			t.Fatalf("gone: %s %s %v", s.State, s.StopReason, s.EndedAt)
		}
		checkUsage(t, f.db, s)
		if _, err := f.sim.Inspect(ctx, "sb-orphan"); err == nil {
			t.Fatal("orphan still held by the backend")
		}
		// Its devices are free again: an 7-GPU request fits next to keep.
		f.launch(t, sme(), 7, 60)
	})
}

// TestStartFailure: a backend refusing the start fails the sandbox with start_failed and frees its devices.
func TestStartFailure(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		f.sim.FailNextStart(errors.New("node refused the job"))
		sb := f.launch(t, sme(), 8, 30)
		got := f.get(t, sb.ID)
		if got.State != StateFailed || got.StopReason != ReasonStartFailed || got.Message == "" {
			t.Fatalf("after a refused start: %+v", got)
		}
		if st := stateOf(t, f.db, sb.ID); !slices.Equal(st, []string{"requested", "scheduled", "provisioning", "failed"}) {
			t.Fatalf("events %v", st)
		}
		f.launch(t, sme(), 8, 30) // the devices are free again
	})
}
