// Command marketplace is the catalogue load test: it seeds a fresh database with synthetic published listings,
// serves the marketplace in-process on loopback (or targets -url), and runs concurrent clients for a bounded
// time, each drawing varied queries from a fixed seed (English and French words from the catalogue's
// vocabulary, some typed half-way, filters, sorts, later pages through the cursor), then prints requests/s and
// latency percentiles; -json adds one JSON object of the figures as the last line.
//
//	go run ./bench/marketplace -listings 10000 -clients 200 -duration 20s                 # SQLite in a temp dir
//	go run ./bench/marketplace -db postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable   # fresh Postgres DB
//	go run ./bench/marketplace -cache-ttl=-1s -engine sql                                  # no answer cache, SQL search
//	go run ./bench/marketplace -url http://127.0.0.1:8080 -clients 50                      # an existing server
//	go run ./bench/marketplace -cache-ttl=-1s -rate 3000                                   # open loop: 3,000 requests/s offered
//	go run ./bench/marketplace -floor                                                      # the HTTP floor: no search at all
//	go run ./bench/marketplace -cache-ttl=-1s -listen 127.0.0.1:8080                       # only the server, for -url from another process
//
// Two modes separate what the search costs from what the test's shape costs. -rate sends at a fixed offered
// rate, spread over the clients, and times each request from when it was due, not from when it went (a late
// client's wait counts): the latency a user sees at that load. Without -rate each client sends its next request
// the moment the last one is answered, so the clients always queue and, by Little's law, the mean latency is
// clients / throughput whatever the server does. -floor answers every request with one fixed, pre-rendered
// search answer through the same middleware, HTTP server and clients: the latency of everything but the search.
package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

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
		engine   = flag.String("engine", "index", "search engine of the in-process server: index (in-process) or sql")
		fixed    = flag.Bool("fixed", false, "the old fixed query shape (one word + kind=model + license=Apache-2.0) instead of varied queries")
		seed     = flag.Uint64("seed", 99, "seed of the clients' query streams (client i uses PCG(i, seed))")
		asJSON   = flag.Bool("json", false, "print the figures as one JSON object on the last line")
		cpuProf  = flag.String("cpuprofile", "", "write a CPU profile to this file: of the measured phase, or with -listen of the server from its start")
		memProf  = flag.String("memprofile", "", "write an allocation profile (every allocation since the start) to this file at the end")
		rate     = flag.Float64("rate", 0, "open loop: requests/s offered over all clients, each timed from when it was due (0: closed loop)")
		floor    = flag.Bool("floor", false, "serve one fixed, pre-rendered answer on the same stack instead of searching (the HTTP floor)")
		listen   = flag.String("listen", "", "only seed and serve on this address until interrupted (no clients); load it with -url")
	)
	flag.Parse()
	log.SetFlags(0)
	base := *target
	switch {
	case base != "":
	case *listen != "":
		stop, u, err := serve(*dbURL, *listings, *cacheTTL, *engine, *floor, *listen)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			if err != nil {
				log.Fatal(err)
			}
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
		log.Printf("serving on %s until interrupted", u)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return
	default:
		stop, u, err := serve(*dbURL, *listings, *cacheTTL, *engine, *floor, "")
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
	load1Start := loadAvg()
	path := "/api/v1/marketplace/listings"
	if *floor {
		path = "/api/v1/marketplace/bench-floor"
	}
	if *memProf != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			f, err := os.Create(*memProf)
			if err == nil {
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}()
	}
	res := load(base+path, *clients, *warmup, *duration, *fixed, *seed, *rate)
	res.load1Start, res.load1End = load1Start, loadAvg()
	fmt.Println(res)
	if *asJSON {
		b, _ := json.Marshal(res.figures())
		fmt.Println(string(b))
	}
}

// serve seeds a fresh store and serves the marketplace on addr (a free loopback port when empty), returning its
// base URL.
func serve(dbURL string, n int, cacheTTL time.Duration, searchEngine string, floor bool, addr string) (func(), string, error) {
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
		Config: marketplace.Config{SearchCacheTTL: cacheTTL, SearchEngine: searchEngine}})
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
	if searchEngine != "sql" {
		// The index is built on the first search; build it before the clocks start.
		start = time.Now()
		if _, err := svc.Search(ctx, marketplace.SearchInput{Limit: 1}); err != nil {
			stop()
			return nil, "", err
		}
		log.Printf("catalogue index built in %s", time.Since(start).Round(time.Millisecond))
	}

	// The same middleware stack as tamarack serve: request IDs, recovery, access log, deadline, auth.
	app := web.New(web.Config{StreamRequestBody: true})
	api := app.Group("/api/v1", web.Auth(web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: noKeys{}}}))
	svc.Routes(api.Group("/marketplace"))
	if floor {
		// A typical answer: the first page of 20 of a one-word query, rendered once by the real handler.
		body, err := firstPage(app, "/api/v1/marketplace/listings?q=model&limit=20")
		if err != nil {
			stop()
			return nil, "", err
		}
		log.Printf("floor: every request gets the same %d-byte answer", len(body))
		api.Get("/marketplace/bench-floor", func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(body)
		})
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		stop()
		return nil, "", err
	}
	go func() { _ = app.Listener(ln) }()
	cleanup = append(cleanup, func() { _ = app.Shutdown() })
	return stop, "http://" + ln.Addr().String(), nil
}

// firstPage is the body of one GET through app.
func firstPage(app *fiber.App, target string) ([]byte, error) {
	resp, err := app.Test(httptest.NewRequest("GET", target, nil), -1)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %d %s", target, resp.StatusCode, body)
	}
	return body, err
}

type noKeys struct{}

func (noKeys) PublicKey(context.Context, string) (crypto.PublicKey, error) {
	return nil, jwtauth.ErrUnknownKey
}

type result struct {
	clients              int
	offered              float64 // requests/s of the open loop; 0 for the closed loop
	duration             time.Duration
	ok, failed           int64
	p50, p90, p99        time.Duration
	max                  time.Duration
	cpu                  time.Duration // this process's CPU time (server and clients) over the measured phase
	bytes                int64         // answer bodies' bytes over the measured phase
	load1Start, load1End float64
}

func (r result) String() string {
	mode := "closed-loop"
	if r.offered > 0 {
		mode = fmt.Sprintf("open-loop offered=%.0f/s", r.offered)
	}
	return fmt.Sprintf("%s clients=%d duration=%s requests=%d errors=%d rps=%.0f p50=%s p90=%s p99=%s max=%s cpu/req=%.3fms bytes/answer=%d load1=%.2f→%.2f",
		mode, r.clients, r.duration, r.ok, r.failed, float64(r.ok)/r.duration.Seconds(),
		r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.max.Round(10*time.Microsecond),
		r.cpuPerReq(), r.bytesPerAnswer(), r.load1Start, r.load1End)
}

func (r result) cpuPerReq() float64 {
	if r.ok == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / 1000 / float64(r.ok)
}

func (r result) bytesPerAnswer() int64 {
	if r.ok == 0 {
		return 0
	}
	return r.bytes / r.ok
}

// figures are the named numbers of -json (make perf takes the median of each over runs).
func (r result) figures() map[string]any {
	ms := func(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }
	return map[string]any{"req_per_s": math.Round(float64(r.ok) / r.duration.Seconds()), "p50_ms": ms(r.p50), "p90_ms": ms(r.p90),
		"p99_ms": ms(r.p99), "max_ms": ms(r.max), "errors": r.failed, "cpu_ms_per_req": math.Round(r.cpuPerReq()*1000) / 1000,
		"load1_start": r.load1Start, "load1_end": r.load1End, "offered_per_s": r.offered, "bytes_per_answer": r.bytesPerAnswer()}
}

// loadAvg is the machine's one-minute load average (0 where /proc/loadavg is missing).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The query vocabulary: the words the synthetic catalogue is written in (marketplace.BenchWords and
// BenchWordsFr), a few stop words of each language, and words it does not contain.
var (
	wordsEn = marketplace.BenchWords
	wordsFr = marketplace.BenchWordsFr
	stop    = []string{"the", "for", "and", "de", "la", "les", "pour", "des"}
	absent  = []string{"zeppelin", "quokka", "baguette", "hockey", "poutine"}
	kinds   = []string{"model", "dataset", "compute"}
	licence = []string{"Apache-2.0", "MIT", "CC-BY-4.0", "BSD-3-Clause", "custom"}
	resid   = []string{"CA", "US", "FR"}
	gpus    = marketplace.GPUModels
)

// appendQuery appends one catalogue request's query string: 85% with text (1–3 words, English twice as often
// as French, now and then a stop word or a word absent from the catalogue, a third with the last word cut short
// as while typing), each filter with its own probability, relevance (default with text), newest or price order,
// 20 or 50 a page.
func appendQuery(b []byte, rng *mrand.Rand) []byte {
	if rng.IntN(100) < 85 {
		n := 1 + rng.IntN(3)
		ws := make([]string, n)
		for i := range ws {
			switch p := rng.IntN(100); {
			case p < 60:
				ws[i] = wordsEn[rng.IntN(len(wordsEn))]
			case p < 90:
				ws[i] = wordsFr[rng.IntN(len(wordsFr))]
			case p < 96:
				ws[i] = stop[rng.IntN(len(stop))]
			default:
				ws[i] = absent[rng.IntN(len(absent))]
			}
		}
		if last := []rune(ws[n-1]); rng.IntN(3) == 0 && len(last) > 3 {
			ws[n-1] = string(last[:2+rng.IntN(len(last)-2)])
		}
		b = appendParam(b, "q", strings.Join(ws, " "))
	}
	if rng.IntN(100) < 45 {
		b = appendParam(b, "kind", kinds[rng.IntN(len(kinds))])
	}
	if rng.IntN(100) < 25 {
		b = appendParam(b, "license", licence[rng.IntN(len(licence))])
	}
	if rng.IntN(100) < 20 {
		b = appendParam(b, "residency", resid[rng.IntN(len(resid))])
	}
	if rng.IntN(100) < 10 {
		b = appendParam(b, "tag", wordsEn[rng.IntN(len(wordsEn))])
	}
	if rng.IntN(100) < 5 {
		b = appendParam(b, "gpu_model", gpus[rng.IntN(len(gpus))])
	}
	if rng.IntN(100) < 10 {
		b = appendParam(b, "price_max", strconv.Itoa(rng.IntN(200)*250_000))
	}
	switch p := rng.IntN(100); {
	case p < 20:
		b = appendParam(b, "sort", "newest")
	case p < 30:
		b = appendParam(b, "sort", "price")
	}
	return appendParam(b, "limit", []string{"20", "20", "20", "50"}[rng.IntN(4)])
}

// appendParam appends &key=value (no & first in an empty string), value escaped as url.QueryEscape does.
func appendParam(b []byte, key, value string) []byte {
	if len(b) > 0 && b[len(b)-1] != '?' {
		b = append(b, '&')
	}
	b = append(append(b, key...), '=')
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(value); i++ {
		switch c := value[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}

func load(endpoint string, clients int, warmup, d time.Duration, fixed bool, seed uint64, rate float64) result {
	// The clients share the server's two cores here, unlike real users: fasthttp's client (what Fiber serves
	// with) costs about half of net/http's per request, so less of the machine goes to the load itself.
	client := &fasthttp.Client{MaxConnsPerHost: clients, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		NoDefaultUserAgentHeader: true, MaxIdleConnDuration: time.Minute}
	defer client.CloseIdleConnections()
	var failed, nbytes atomic.Int64
	lat := make([][]time.Duration, clients)
	startAt := time.Now()
	measureAt := startAt.Add(warmup)
	endAt := measureAt.Add(d)
	var cpuStart atomic.Int64
	go func() {
		time.Sleep(time.Until(measureAt))
		cpuStart.Store(int64(cpuTime()))
	}()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i), seed))
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			// One request target, rebuilt in place: the clients' own garbage is collected on the server's cores.
			var target, qs []byte
			next := ""
			for k := 0; ; k++ {
				now := time.Now()
				if now.After(endAt) {
					return
				}
				// Open loop: client i's k-th request is due at (k·clients + i) / rate after the start.
				var due time.Time
				if rate > 0 {
					due = startAt.Add(time.Duration(float64(k*clients+i) / rate * float64(time.Second)))
					if due.After(endAt) {
						return
					}
					time.Sleep(time.Until(due))
				}
				target = append(append(target[:0], endpoint...), '?')
				switch {
				case fixed:
					qs = appendParam(append(qs[:0], "kind=model&license=Apache-2.0&limit=20"...), "q", wordsEn[rng.IntN(len(wordsEn))])
				case next != "":
					// The same query's next page.
					target = appendParam(append(target, qs...), "cursor", next)
				default:
					qs = appendQuery(qs[:0], rng)
				}
				if fixed || next == "" {
					target = append(target, qs...)
				}
				t0 := time.Now()
				if rate > 0 {
					t0 = due
				}
				body, err := get(client, req, resp, target)
				el := time.Since(t0)
				// The next page of this query a third of the time, while there is one. The choice is drawn
				// first, so that the answer is searched for its cursor only when it will be used: the clients
				// share the server's cores.
				next = ""
				if !fixed && err == nil && rng.IntN(100) < 35 {
					next = nextCursor(body)
				}
				n := len(body)
				if t0.Before(measureAt) {
					continue
				}
				if err != nil {
					if failed.Add(1) <= 3 {
						log.Printf("request failed: %v", err)
					}
					continue
				}
				lat[i] = append(lat[i], el)
				nbytes.Add(int64(n))
			}
		}(i)
	}
	wg.Wait()
	cpu := cpuTime() - time.Duration(cpuStart.Load())
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
	r := result{clients: clients, offered: rate, duration: d, ok: int64(len(all)), failed: failed.Load(), bytes: nbytes.Load(), p50: pct(0.50), p90: pct(0.90), p99: pct(0.99), cpu: cpu}
	if len(all) > 0 {
		r.max = all[len(all)-1]
	}
	return r
}

// get fetches a catalogue page and returns its body (valid until resp is reused).
func get(c *fasthttp.Client, req *fasthttp.Request, resp *fasthttp.Response, u []byte) ([]byte, error) {
	req.SetRequestURIBytes(u)
	if err := c.Do(req, resp); err != nil {
		return nil, err
	}
	body := resp.Body()
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("%d %s %s", resp.StatusCode(), u, body)
	}
	return body, nil
}

// nextCursor is the answer's next_cursor, or "".
func nextCursor(body []byte) string {
	// The answer ends `…],"next_cursor":"…","total":N,"facets":{…}}`. Neither key can stand inside a string
	// value (its quotes would be escaped there), so the last `,"total":` is the field, a few kB from the end,
	// and the cursor, when there is one, ends just before it: scanning the whole 30 kB body for it cost the
	// shared cores more than some of the server's own work.
	const key = `"next_cursor":"`
	t := bytes.LastIndex(body, []byte(`,"total":`))
	if t < 0 {
		return ""
	}
	from := max(0, t-1024)
	i := bytes.LastIndex(body[from:t], []byte(key))
	if i < 0 {
		return ""
	}
	i += from
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
