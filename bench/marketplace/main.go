// Command marketplace is the catalogue load test: it seeds a fresh database with synthetic published listings,
// serves the marketplace in-process on loopback (or targets -url), and runs concurrent clients searching with a
// text query and two filters for a bounded time, then prints requests/s and latency percentiles.
//
//	go run ./bench/marketplace -listings 10000 -clients 200 -duration 20s                 # SQLite in a temp dir
//	go run ./bench/marketplace -db postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable   # fresh Postgres DB
//	go run ./bench/marketplace -url http://127.0.0.1:8080 -clients 50                      # an existing server
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tamarack-ai/tamarack/marketplace"
	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

func main() {
	var (
		dbURL    = flag.String("db", "", "Postgres admin URL: a fresh database is created on that server and dropped after; empty uses SQLite in a temporary directory")
		target   = flag.String("url", "", "base URL of a running server to load instead of an in-process one (no seeding)")
		listings = flag.Int("listings", 10_000, "synthetic published listings to seed")
		clients  = flag.Int("clients", 200, "concurrent clients")
		duration = flag.Duration("duration", 20*time.Second, "measured duration")
		warmup   = flag.Duration("warmup", 3*time.Second, "unmeasured warm-up before")
		cacheTTL = flag.Duration("cache-ttl", 2*time.Second, "catalogue answer cache TTL of the in-process server; negative disables the cache")
		browse   = flag.Bool("browse", false, "query without text (filters only) instead of text + two filters")
		cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the measured phase to this file")
	)
	flag.Parse()
	log.SetFlags(0)
	base := *target
	if base == "" {
		stop, u, err := serve(*dbURL, *listings, *cacheTTL)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
		base = u
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			time.Sleep(*warmup)
			_ = pprof.StartCPUProfile(f)
		}()
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	res := load(base, *clients, *warmup, *duration, *browse)
	fmt.Println(res)
}

// serve seeds a fresh store and serves the marketplace on a loopback port, returning its base URL.
func serve(dbURL string, n int, cacheTTL time.Duration) (func(), string, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tamarack-bench-")
	if err != nil {
		return nil, "", err
	}
	var cleanup []func()
	stop := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	cleanup = append(cleanup, func() { _ = os.RemoveAll(dir) })
	dsn := filepath.Join(dir, "tamarack.db")
	engine := "sqlite"
	if dbURL != "" {
		engine = "postgres"
		admin, err := sqldb.Open(ctx, dbURL, sqldb.Options{MaxOpenConns: 1})
		if err != nil {
			stop()
			return nil, "", err
		}
		name := "bench_market_" + randomHex(4)
		if err := admin.Exec(`CREATE DATABASE "` + name + `"`).Error; err != nil {
			stop()
			return nil, "", err
		}
		cleanup = append(cleanup, func() {
			_ = admin.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`).Error
			_ = sqldb.Close(admin)
		})
		u, _ := url.Parse(dbURL)
		u.Path = "/" + name
		dsn = u.String()
	}
	db, err := sqldb.Open(ctx, dsn, sqldb.Options{MaxOpenConns: 20})
	if err != nil {
		stop()
		return nil, "", err
	}
	cleanup = append(cleanup, func() { _ = sqldb.Close(db) })
	if err := sqldb.Migrate(ctx, db, nil, marketplace.Migrations()); err != nil {
		stop()
		return nil, "", err
	}
	bus, err := eventbus.Connect(ctx, eventbus.Options{DataDir: filepath.Join(dir, "nats")})
	if err != nil {
		stop()
		return nil, "", err
	}
	cleanup = append(cleanup, bus.Close)
	blobs, err := marketplace.NewLocalStore(filepath.Join(dir, "blobs"))
	if err != nil {
		stop()
		return nil, "", err
	}
	svc, err := marketplace.New(marketplace.Deps{DB: db, Bus: bus, Blobs: blobs, Clock: clock.System{},
		Config: marketplace.Config{SearchCacheTTL: cacheTTL}})
	if err != nil {
		stop()
		return nil, "", err
	}
	start := time.Now()
	if err := svc.BulkPublish(ctx, n, mrand.New(mrand.NewPCG(1, 2))); err != nil {
		stop()
		return nil, "", err
	}
	if engine == "postgres" {
		_ = db.Exec("ANALYZE").Error
	}
	log.Printf("seeded %d listings on %s in %s (search cache TTL %s)", n, engine, time.Since(start).Round(time.Millisecond), cacheTTL)

	// The same middleware stack as tamarack serve: request IDs, recovery, access log, deadline, auth.
	app := web.New(web.Config{StreamRequestBody: true})
	api := app.Group("/api/v1", web.Auth(web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: noKeys{}}}))
	svc.Routes(api.Group("/marketplace"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stop()
		return nil, "", err
	}
	go func() { _ = app.Listener(ln) }()
	cleanup = append(cleanup, func() { _ = app.Shutdown() })
	return stop, "http://" + ln.Addr().String(), nil
}

type noKeys struct{}

func (noKeys) PublicKey(context.Context, string) (crypto.PublicKey, error) {
	return nil, jwtauth.ErrUnknownKey
}

// The bench vocabulary: the words the synthetic catalogue is written in (see marketplace.BulkPublish).
var words = strings.Fields(`language vision speech translation bilingual french english legal medical clinical finance
	fraud retail forecasting weather climate agriculture crops wheat canola forestry mining energy grid solar wind hydro
	traffic transit logistics satellite imagery robotics manufacturing anomaly detection segmentation embedding retrieval
	summarization reasoning diffusion audio genomics protein chemistry wildfire flood salmon maple canada quebec prairie`)

type result struct {
	clients       int
	duration      time.Duration
	ok, failed    int64
	p50, p90, p99 time.Duration
	max           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("clients=%d duration=%s requests=%d errors=%d rps=%.0f p50=%s p90=%s p99=%s max=%s",
		r.clients, r.duration, r.ok, r.failed, float64(r.ok)/r.duration.Seconds(),
		r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.max.Round(10*time.Microsecond))
}

func load(base string, clients int, warmup, d time.Duration, browse bool) result {
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var failed atomic.Int64
	lat := make([][]time.Duration, clients)
	startAt := time.Now()
	measureAt := startAt.Add(warmup)
	endAt := measureAt.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i), 99))
			for {
				now := time.Now()
				if now.After(endAt) {
					return
				}
				q := "kind=model&license=Apache-2.0&limit=20&q=" + words[rng.IntN(len(words))]
				if browse {
					q = "kind=dataset&residency=CA&limit=20"
				}
				t0 := time.Now()
				err := get(client, base+"/api/v1/marketplace/listings?"+q)
				el := time.Since(t0)
				if t0.Before(measureAt) {
					continue
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				lat[i] = append(lat[i], el)
			}
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	r := result{clients: clients, duration: d, ok: int64(len(all)), failed: failed.Load(), p50: pct(0.50), p90: pct(0.90), p99: pct(0.99)}
	if len(all) > 0 {
		r.max = all[len(all)-1]
	}
	return r
}

func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
