package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

const eoPrice = 2_345_678 // micro-credits per GPU-hour

// usagePlan publishes n usage events spread over sandboxes, with dup extra copies that JetStream stores
// again (same ce-id, no Nats-Msg-Id) so the consumer itself must drop them. It returns the expected charge.
func publishUsage(t testing.TB, bus *eventbus.Bus, org string, sandboxes, n, dup int) int64 {
	t.Helper()
	ctx := context.Background()
	js := bus.JetStream()
	subject := bus.Subject(events.SandboxUsage.Name)
	ms := map[string]int64{}
	at := map[string]time.Time{}
	var futures []jetstream.PubAckFuture
	pub := func(id string, d events.SandboxUsageV1, withMsgID bool) {
		body, _ := json.Marshal(d)
		m := nats.NewMsg(subject)
		m.Header.Set("ce-specversion", "1.0")
		m.Header.Set("ce-id", id)
		m.Header.Set("ce-type", events.SandboxUsage.Name)
		m.Header.Set("ce-source", "tamarack/testbed")
		m.Header.Set("ce-time", d.End.Format(time.RFC3339Nano))
		if withMsgID {
			m.Header.Set(jetstream.MsgIDHeader, id)
		}
		m.Data = body
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	var all []eventbus.Event[events.SandboxUsageV1]
	for i := range n {
		sb := fmt.Sprintf("sb-%d", i%sandboxes)
		seq := uint64(i/sandboxes + 1)
		millis := int64(1000 + (i*7919)%60000)
		if at[sb].IsZero() {
			at[sb] = t0
		}
		ev := usageEv(sb, org, "ven", seq, at[sb], millis, 2)
		at[sb] = ev.Data.End
		ms[sb] += millis
		all = append(all, ev)
		pub(ev.ID, ev.Data, true)
	}
	for i := range dup {
		ev := all[(i*31)%len(all)]
		pub(ev.ID, ev.Data, false)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
		}
	}
	var want int64
	for _, v := range ms {
		c, err := money.PerGPUHour(eoPrice, 2, v)
		must(t, err)
		want += int64(c)
	}
	return want
}

func (f *fx) listing() {
	f.t.Helper()
	must(f.t, f.s.ProjectListing(context.Background(), events.ListingChangedV1{ListingID: "lst-1", VendorOrgID: "ven", Kind: "compute", At: t0,
		Compute: &events.ComputeV1{PoolID: "pool-1", GPUModel: "H100", PricePerGPUHour: eoPrice}}, true))
}

func usageTotals(t testing.TB, db *gorm.DB) (n, sum int64) {
	t.Helper()
	var r struct{ N, S int64 }
	must(t, db.Model(&Usage{}).Select("COUNT(*) AS n, COALESCE(SUM(charge),0) AS s").Scan(&r).Error)
	return r.N, r.S
}

func (f *fx) checkCharged(n int, want int64) {
	f.t.Helper()
	_, sum := usageTotals(f.t, f.db)
	spent := int64(money.Credits(1_000_000)) - f.balance(walletAcct("sme"))
	if sum != want || spent != want || f.balance(vendorAcct("ven"))+f.revenue() != want {
		f.t.Fatalf("charged %d, spent %d, vendor+platform %d; want %d", sum, spent, f.balance(vendorAcct("ven"))+f.revenue(), want)
	}
	f.verify()
}

// TestExactlyOnceCancelMidBatch cancels the consumer inside a batch's transaction, restarts it, and checks
// that duplicates and the aborted batch are charged exactly once.
func TestExactlyOnceCancelMidBatch(t *testing.T) {
	eachBusDB(t, func(t *testing.T, bus *eventbus.Bus, db *gorm.DB) {
		{
			f := newFx(t, db, bus, func(d *Deps) { d.UsageBatch = 16; d.UsageAckWait = time.Second })
			f.org("sme", "sme", false)
			f.buy("sme", 1_000_000)
			f.listing()
			const n = 400
			want := publishUsage(t, bus, "sme", 4, n, 60)

			ctx1, cancel1 := context.WithCancel(context.Background())
			var batches atomic.Int64
			f.s.beforeCommit = func(context.Context) {
				if batches.Add(1) == 3 {
					cancel1() // the third batch's commit fails: nothing of it may stick
				}
			}
			done := make(chan error, 1)
			go func() { done <- f.s.ConsumeUsage(ctx1) }()
			select {
			case err := <-done:
				must(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("consumer did not stop")
			}
			if got, _ := usageTotals(t, db); got != 32 {
				t.Fatalf("%d events charged before the cancel, want 2 batches of 16", got)
			}
			f.s.beforeCommit = nil
			ctx2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			go func() { done <- f.s.ConsumeUsage(ctx2) }()
			waitFor(t, "every event charged", 60*time.Second, func() bool { got, _ := usageTotals(t, db); return got == n })
			cancel2()
			<-done
			f.checkCharged(n, want)
		}
	})
}

// The helper process of TestExactlyOnceSIGKILL: consume usage until killed.
func consumeHelper() {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, os.Getenv("BILLING_HELPER_DSN"), sqldb.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bus, err := eventbus.Connect(ctx, eventbus.Options{URL: os.Getenv("BILLING_HELPER_NATS"), Prefix: os.Getenv("BILLING_HELPER_PREFIX")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := New(Deps{DB: db, Bus: bus, Clock: fixedClock{}, Mailer: mail.Discard{}, PublicURL: "http://x", UsageBatch: 50, UsageAckWait: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("consuming")
	if err := s.ConsumeUsage(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

type fixedClock struct{}

func (fixedClock) Now() time.Time { return t0 }

// TestExactlyOnceSIGKILL runs the consumer in a separate process, kills it with SIGKILL while it charges,
// restarts it, and checks the charges equal the expected total exactly.
func TestExactlyOnceSIGKILL(t *testing.T) {
	if os.Getenv("BILLING_HELPER") == "consume" {
		consumeHelper()
		return
	}
	for _, kind := range natstest.Kinds() {
		t.Run("nats-"+kind, func(t *testing.T) {
			for _, d := range dbtest.Dialects() {
				t.Run(string(d), func(t *testing.T) {
					bus := natstest.Connect(t, kind)
					url := bus.ClientURL()
					if kind == "server" {
						url = os.Getenv(natstest.EnvNATS)
					}
					prefix := strings.TrimSuffix(bus.Subject("x"), ".x")
					dsn := dbtest.DSN(t, d, sets...)
					ctx := context.Background()
					db, err := sqldb.Open(ctx, dsn, sqldb.Options{})
					must(t, err)
					t.Cleanup(func() { _ = sqldb.Close(db) })
					must(t, sqldb.Migrate(ctx, db, nil, sets...))
					f := newFx(t, db, bus)
					f.org("sme", "sme", false)
					f.buy("sme", 1_000_000)
					f.listing()
					const n = 4000
					want := publishUsage(t, bus, "sme", 20, n, 400)

					start := func() *exec.Cmd {
						cmd := exec.Command(os.Args[0], "-test.run=^TestExactlyOnceSIGKILL$", "-test.count=1")
						cmd.Env = append(os.Environ(), "BILLING_HELPER=consume", "BILLING_HELPER_DSN="+dsn, "BILLING_HELPER_NATS="+url, "BILLING_HELPER_PREFIX="+prefix)
						cmd.Stderr = os.Stderr
						must(t, cmd.Start())
						t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
						return cmd
					}
					first := start()
					waitFor(t, "the helper to charge some events", 60*time.Second, func() bool { got, _ := usageTotals(t, db); return got >= 300 })
					must(t, first.Process.Signal(syscall.SIGKILL))
					_ = first.Wait()
					if got, _ := usageTotals(t, db); got >= n {
						t.Logf("the helper finished before the kill (%d events)", got)
					}
					second := start()
					waitFor(t, "every event charged after the restart", 120*time.Second, func() bool { got, _ := usageTotals(t, db); return got == n })
					must(t, second.Process.Signal(syscall.SIGKILL))
					_ = second.Wait()
					f.checkCharged(n, want)
				})
			}
		})
	}
}
