package billing

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

var sets = []sqldb.Migrations{Migrations()}

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

type fx struct {
	t    testing.TB
	s    *Service
	db   *gorm.DB
	bus  *eventbus.Bus
	clk  *clock.Manual
	mail *mail.Memory
}

func newFx(t testing.TB, db *gorm.DB, bus *eventbus.Bus, opts ...func(*Deps)) *fx {
	t.Helper()
	if bus == nil {
		bus = natstest.Start(t)
	}
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, events.AllStreams()...); err != nil {
		t.Fatal(err)
	}
	f := &fx{t: t, db: db, bus: bus, clk: clock.NewManual(t0), mail: &mail.Memory{}}
	d := Deps{DB: db, Bus: bus, Clock: f.clk, Mailer: f.mail, PublicURL: "http://tamarack.test",
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, o := range opts {
		o(&d)
	}
	s, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	f.s = s
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// org projects an organisation, optionally verified.
func (f *fx) org(id, kind string, verified bool) {
	f.t.Helper()
	must(f.t, f.s.ProjectOrg(context.Background(), id, id+" Inc.", kind))
	if verified {
		must(f.t, f.s.ProjectVerified(context.Background(), id, true))
	}
}

func (f *fx) buy(org string, credits int64) {
	f.t.Helper()
	_, err := f.s.RecordOfflinePayment(context.Background(), OfflinePaymentInput{OrganizationID: org, Credits: credits, Reference: "PO", ActorUserID: "staff"})
	must(f.t, err)
}

func (f *fx) balance(acct string) int64 {
	f.t.Helper()
	var a ledger.Account
	if err := f.db.Where("id = ?", acct).Take(&a).Error; err != nil {
		if sqldb.IsNotFound(err) {
			return 0
		}
		f.t.Fatal(err)
	}
	return a.Balance
}

func (f *fx) revenue() int64 {
	var sum int64
	for i := range f.s.cfg.RevenueShards {
		sum += f.balance(revenueAcct(i))
	}
	return sum
}

func (f *fx) verify() {
	f.t.Helper()
	diffs, _, err := ledger.Verify(f.db)
	must(f.t, err)
	for _, d := range diffs {
		f.t.Error("ledger difference:", d)
	}
}

func (f *fx) hold(sandbox, org, vendor string, price int64, gpus int, seconds int64) (events.HoldReplyV1, error) {
	return f.s.ServeHold(context.Background(), events.HoldRequestV1{Action: "place", SandboxID: sandbox, OrganizationID: org, ListingID: "lst-1",
		VendorOrgID: vendor, PoolID: "pool-1", GPUModel: "H100", GPUCount: gpus, PricePerGPUHour: price, Seconds: seconds})
}

func usageEv(sandbox, org, vendor string, seq uint64, start time.Time, millis int64, devices int) eventbus.Event[events.SandboxUsageV1] {
	return eventbus.Event[events.SandboxUsageV1]{ID: fmt.Sprintf("%s-%d", sandbox, seq), Data: events.SandboxUsageV1{
		SandboxID: sandbox, OrganizationID: org, ListingID: "lst-1", VendorOrgID: vendor, PoolID: "pool-1", GPUModel: "H100",
		DeviceCount: devices, Seq: seq, Start: start, End: start.Add(time.Duration(millis) * time.Millisecond), Millis: millis}}
}

func (f *fx) outboxCount(subject string) int64 {
	var n int64
	must(f.t, f.db.Table("billing_outbox").Where("subject = ?", subject).Count(&n).Error)
	return n
}

func eachDB(t *testing.T, fn func(t *testing.T, db *gorm.DB)) { dbtest.Each(t, sets, fn) }

// eachFx runs fn on every engine (eachDB), with a fixture on its own embedded NATS (newFx) on each.
func eachFx(t *testing.T, fn func(t *testing.T, f *fx)) {
	t.Helper()
	eachDB(t, func(t *testing.T, db *gorm.DB) { fn(t, newFx(t, db, nil)) })
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	webtest.EventuallyWithin(t, d, what, cond)
}

// eachBusDB runs fn on every NATS kind × database engine, each with its own fresh bus and database.
func eachBusDB(t *testing.T, fn func(t *testing.T, bus *eventbus.Bus, db *gorm.DB)) {
	for _, kind := range natstest.Kinds() {
		for _, d := range dbtest.Dialects() {
			t.Run("nats-"+kind+"/"+string(d), func(t *testing.T) {
				fn(t, natstest.Connect(t, kind), dbtest.Open(t, d, sets...))
			})
		}
	}
}
