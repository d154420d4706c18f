// Command billing-bench measures end-to-end metering: usage events published to JetStream until they are
// charged in the ledger, on SQLite or Postgres, with exactly-once checked at the end (every event charged
// once, charges equal the expected total to the micro-credit, ledger verify clean).
//
//	go run ./bench/billing -db sqlite -events 100000
//	go run ./bench/billing -db 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' -events 500000
//
// -json adds, as the last line of stdout, one JSON object of the run's figures (events_per_s, lag_p50_ms,
// lag_p99_ms, lag_max_ms, publish_s, and the 1-minute load average at start and end: load1_start, load1_end).
//
// With a postgres:// DSN a fresh database bench_<random> is created on that server and dropped afterwards.
// -nats names an external server (a random subject prefix keeps runs apart); empty embeds one.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tamarack-ai/tamarack/platform/mail"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tamarack-ai/tamarack/billing"
	"github.com/tamarack-ai/tamarack/billing/ledger"
	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
)

type nopMailer struct{}

func (nopMailer) Send(context.Context, mail.Message) error { return nil }

func main() {
	dbFlag := flag.String("db", "sqlite", "sqlite, or a postgres:// DSN of a server to create a scratch database on")
	natsURL := flag.String("nats", "", "external NATS URL; empty embeds a server")
	n := flag.Int("events", 100_000, "usage events to publish")
	orgs := flag.Int("orgs", 10, "organisations")
	sandboxes := flag.Int("sandboxes", 200, "sandboxes (spread over the organisations)")
	batch := flag.Int("batch", 2000, "events per fetch and transaction")
	workers := flag.Int("workers", 2, "usage batches in flight")
	drain := flag.Bool("drain", false, "publish everything first, then start the consumer (measures the consumer alone)")
	rate := flag.Int("rate", 0, "publish at most this many events per second (0: as fast as possible); a sustainable rate gives meaningful lag")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	asJSON := flag.Bool("json", false, "print the named figures as one JSON object on the last line of stdout")
	flag.Parse()
	load1Start := load1()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	var fig figures
	if err := run(*dbFlag, *natsURL, *n, *orgs, *sandboxes, *batch, *workers, *drain, *rate, &fig); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "billing-bench:", err)
		os.Exit(1)
	}
	if *asJSON {
		fig.Load1Start, fig.Load1End = load1Start, load1()
		b, err := json.Marshal(fig)
		if err != nil {
			fmt.Fprintln(os.Stderr, "billing-bench:", err)
			os.Exit(1)
		}
		fmt.Println(string(b))
	}
}

// figures are a run's named results, printed by -json for runners that take medians over runs.
type figures struct {
	EventsPerS float64 `json:"events_per_s"`
	LagP50Ms   float64 `json:"lag_p50_ms"`
	LagP99Ms   float64 `json:"lag_p99_ms"`
	LagMaxMs   float64 `json:"lag_max_ms"`
	PublishS   float64 `json:"publish_s"`
	Load1Start float64 `json:"load1_start"`
	Load1End   float64 `json:"load1_end"`
}

// load1 is the 1-minute load average from /proc/loadavg (-1 where there is none).
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func randHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func openDB(ctx context.Context, spec string) (dsn string, cleanup func(), err error) {
	if !sqldb.IsPostgresDSN(spec) {
		dir, err := os.MkdirTemp("", "billing-bench-")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(dir, "bench.db"), func() { _ = os.RemoveAll(dir) }, nil
	}
	admin, err := sqldb.Open(ctx, spec, sqldb.Options{MaxOpenConns: 1})
	if err != nil {
		return "", nil, err
	}
	name := "bench_" + randHex()
	if err := admin.Exec(fmt.Sprintf(`CREATE DATABASE %q`, name)).Error; err != nil {
		return "", nil, err
	}
	u, _ := url.Parse(spec)
	u.Path = "/" + name
	return u.String(), func() {
		_ = admin.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)).Error
		_ = sqldb.Close(admin)
	}, nil
}

func run(dbSpec, natsURL string, n, nOrgs, nSandboxes, batch, workers int, drain bool, rate int, fig *figures) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dsn, cleanup, err := openDB(ctx, dbSpec)
	if err != nil {
		return err
	}
	defer cleanup()
	db, err := sqldb.Open(ctx, dsn, sqldb.Options{MaxOpenConns: 8})
	if err != nil {
		return err
	}
	defer func() { _ = sqldb.Close(db) }()
	if err := sqldb.Migrate(ctx, db, nil, billing.Migrations()); err != nil {
		return err
	}
	opt := eventbus.Options{URL: natsURL, Prefix: "bench" + randHex(), Logger: log}
	if natsURL == "" {
		dir, err := os.MkdirTemp("", "billing-bench-nats-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		opt.DataDir = dir
	}
	bus, err := eventbus.Connect(ctx, opt)
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := bus.EnsureStreams(ctx, events.TestbedStream, events.BillingStream); err != nil {
		return err
	}
	defer bus.DeleteStreams(context.Background(), events.StreamTestbed, events.StreamBilling)

	var (
		mu       sync.Mutex
		pubAt    = make([]time.Time, n)
		lags     = make([]time.Duration, 0, n)
		charged  int
		batches  int
		finished = make(chan struct{})
		lastAt   time.Time
	)
	idx := func(id string) int {
		var sb, seq int
		_, _ = fmt.Sscanf(id, "sb%d-%d", &sb, &seq)
		return (seq-1)*nSandboxes + sb
	}
	svc, err := billing.New(billing.Deps{DB: db, Bus: bus, Clock: clock.System{}, Log: log, Mailer: nopMailer{}, PublicURL: "http://bench",
		UsageBatch: batch, UsageWorkers: workers, AfterBatch: func(ids []string) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if i := idx(id); i >= 0 && i < n && !pubAt[i].IsZero() {
					lags = append(lags, now.Sub(pubAt[i]))
				}
			}
			charged += len(ids)
			batches++
			lastAt = now
			if charged == n {
				close(finished)
			}
		}})
	if err != nil {
		return err
	}
	if err := svc.Setup(ctx); err != nil {
		return err
	}
	const price = 2_500_000 // 2.5 credits per GPU-hour
	for o := range nOrgs {
		org := fmt.Sprintf("org%d", o)
		if err := svc.ProjectOrg(ctx, org, org, "sme"); err != nil {
			return err
		}
		if _, err := svc.RecordOfflinePayment(ctx, billing.OfflinePaymentInput{OrganizationID: org, Credits: 1_000_000, Reference: "bench"}); err != nil {
			return err
		}
	}
	for sb := range nSandboxes {
		if _, err := svc.ServeHold(ctx, events.HoldRequestV1{Action: "place", SandboxID: fmt.Sprintf("sb%d", sb), OrganizationID: fmt.Sprintf("org%d", sb%nOrgs),
			ListingID: "lst", VendorOrgID: "vendor", PoolID: "pool", GPUModel: "H100", GPUCount: 1, PricePerGPUHour: price, Seconds: 3600}); err != nil {
			return err
		}
	}
	consumeDone := make(chan error, 1)
	if !drain {
		go func() { consumeDone <- svc.ConsumeUsage(ctx) }()
	}

	// Messages as the testbed publishes them (CloudEvents headers, Nats-Msg-Id = event ID). The payloads are
	// encoded before the clock starts (the benchmark measures transport and billing, not payload encoding) into
	// one pointer-free slab: 300k prebuilt *nats.Msg with their header maps were ~300 MB of pointers that the
	// collector scanned on every cycle, a cost no billing process has (the publisher is the testbed, elsewhere).
	js := bus.JetStream()
	subject := bus.Subject(events.SandboxUsage.Name)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	totalMs := make([]int64, nSandboxes)
	var slab []byte
	ends := make([]int, n)
	for i := range n {
		sb, seq := i%nSandboxes, i/nSandboxes+1
		ms := int64(1000 + (i*7919)%9000)
		st := t0.Add(time.Duration(totalMs[sb]) * time.Millisecond)
		totalMs[sb] += ms
		u := events.SandboxUsageV1{SandboxID: fmt.Sprintf("sb%d", sb), OrganizationID: fmt.Sprintf("org%d", sb%nOrgs), ListingID: "lst", VendorOrgID: "vendor",
			PoolID: "pool", GPUModel: "H100", DeviceCount: 1, Seq: uint64(seq), Start: st, End: st.Add(time.Duration(ms) * time.Millisecond), Millis: ms}
		body, _ := json.Marshal(u)
		slab = append(slab, body...)
		ends[i] = len(slab)
	}
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		id := "sb" + strconv.Itoa(i%nSandboxes) + "-" + strconv.Itoa(i/nSandboxes+1)
		m := nats.NewMsg(subject)
		m.Header.Set("ce-specversion", "1.0")
		m.Header.Set("ce-id", id)
		m.Header.Set("ce-type", events.SandboxUsage.Name)
		m.Header.Set("ce-source", "tamarack/testbed")
		m.Header.Set(jetstream.MsgIDHeader, id)
		from := 0
		if i > 0 {
			from = ends[i-1]
		}
		m.Data = slab[from:ends[i]]
		mu.Lock()
		pubAt[i] = time.Now()
		mu.Unlock()
		for {
			if _, err := js.PublishMsgAsync(m); err == nil {
				break
			} else if !strings.Contains(err.Error(), "too many") {
				return err
			}
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	pubDone := time.Since(start)
	if drain {
		start = time.Now()
		mu.Lock()
		for i := range pubAt {
			pubAt[i] = start
		}
		mu.Unlock()
		go func() { consumeDone <- svc.ConsumeUsage(ctx) }()
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("timed out: %d of %d charged", charged, n)
	}
	elapsed := lastAt.Sub(start)
	cancel()
	<-consumeDone

	// Exactly once: every event once, the expected total, a clean ledger.
	vctx := context.Background()
	var r struct{ N, S int64 }
	if err := db.WithContext(vctx).Table("billing_usage").Select("COUNT(*) AS n, SUM(charge) AS s").Scan(&r).Error; err != nil {
		return err
	}
	var want int64
	for sb, ms := range totalMs {
		c, err := money.PerGPUHour(price, 1, ms)
		if err != nil {
			return fmt.Errorf("expected charge of sb%d: %w", sb, err)
		}
		want += int64(c)
	}
	diffs, _, err := ledger.Verify(db.WithContext(vctx))
	if err != nil {
		return err
	}
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[min(len(lags)-1, int(float64(len(lags))*q))] }
	engine := "sqlite"
	if sqldb.IsPostgresDSN(dbSpec) {
		engine = "postgres"
	}
	mode := "concurrent"
	if drain {
		mode = "drain"
	}
	if rate > 0 {
		mode += fmt.Sprintf(" rate=%d/s", rate)
	}
	fmt.Printf("mode=%s engine=%s events=%d batch=%d workers=%d orgs=%d sandboxes=%d\n", mode, engine, n, batch, workers, nOrgs, nSandboxes)
	fmt.Printf("published in %.2fs; all charged in %.2fs: %.0f events/s end to end; %d transactions (%.0f events each)\n",
		pubDone.Seconds(), elapsed.Seconds(), float64(n)/elapsed.Seconds(), batches, float64(n)/float64(max(batches, 1)))
	fmt.Printf("lag publish→charged: p50 %v p99 %v max %v\n", p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
	fmt.Printf("exactly once: %d usage rows for %d events; charged %d µcr, expected %d; ledger differences: %d\n", r.N, n, r.S, want, len(diffs))
	if r.N != int64(n) || r.S != want || len(diffs) > 0 {
		return fmt.Errorf("exactly-once check failed")
	}
	ms := func(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/100) / 10 }
	*fig = figures{EventsPerS: math.Round(float64(n) / elapsed.Seconds()), LagP50Ms: ms(p(0.5)), LagP99Ms: ms(p(0.99)), LagMaxMs: ms(lags[len(lags)-1]),
		PublishS: math.Round(pubDone.Seconds()*100) / 100}
	return nil
}
