// Command testbed-bench measures the testbed's API-to-running latency on the local (runc) backend and, in the
// same run, what the runtime underneath takes, so that the platform's own overhead is visible. It runs the
// testbed service in process on a temporary SQLite database with a real HTTP listener and the built-in images
// served by a registry store on loopback (as `tamarack serve` does), then:
//
//  1. launches one sandbox first: its image is pulled and unpacked (reported apart, not in the figures);
//  2. launches sandboxes one after another (or -c at once) through POST /api/v1/testbed/sandboxes, waits
//     until each is running with GET ?wait_until=running (or polls GET every -poll), stops it and waits
//     for stopped;
//  3. times the backend's own Start of each (Backend.Start: uid range, home filesystem, bundle, shim, runc),
//     through a wrapper of the backend;
//  4. reads, for each launch, how long the runtime's own create + start took inside it, as the shim timed
//     them (shim.log);
//  5. times bare `runc create` + `runc start` of a copy of a running sandbox's bundle (same root filesystem,
//     mounts, user namespace, seccomp profile and limits), -bare times, after the launches.
//
// It prints p50/p90/p99 of (a) the client-observed time from sending the POST to seeing running, (b) the
// server-recorded time from acceptance to the backend-observed start, (c) Backend.Start, (d) the runtime
// inside each launch, (e) bare runc, the platform's overhead per sandbox (a − c: HTTP, validation, hold,
// scheduling, database, polling) and everything around the runtime per sandbox (a − d, the same launch on
// both sides, so no drift of the host between the launches and the bare runs), then the load average
// before and after.
//
// By default the client waits as a script would, with one GET ?wait_until=running that the server answers
// when the sandbox runs. -poll makes it ask every interval instead, as the bench did before the wait
// existed: on a small host a GET every millisecond (HTTP, token check, database read) also takes CPU while
// the sandbox starts, and with a longer interval the client figure includes up to one interval of waiting
// for the next GET (the server and backend figures do not).
//
// With -json its last line of standard output is one JSON object of the run's figures (milliseconds; the
// load averages as /proc/loadavg gives them), for bench/perf (`make perf`), which runs it three times:
// client_p50_ms/p90/p99, backend_start_p50_ms, runtime_p50_ms (runc create+start inside the launches),
// bare_runc_p50_ms, platform_over_runtime_ms (client p50 − runtime p50, the same launches),
// platform_over_bare_runc_ms (client p50 − bare runc p50, the same run), load1_start, load1_end.
//
//	go run ./bench/testbed -n 50
//	go run ./bench/testbed -n 50 -runsc "$(infra/gvisor/build.sh)"
//	go run ./bench/testbed -n 20 -json
package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

type keys struct{ pub ed25519.PublicKey }

func (k keys) PublicKey(context.Context, string) (crypto.PublicKey, error) { return k.pub, nil }

func main() {
	local.MaybeRunShim() // this binary is the local backend's shim too
	n := flag.Int("n", 50, "sandboxes to launch")
	conc := flag.Int("c", 1, "launches in flight at once (each worker launches, waits for running, stops, repeats)")
	bare := flag.Int("bare", 0, "bare runc create+start runs of a sandbox's bundle (default: n)")
	template := flag.String("template", "shell", "template to launch")
	images := flag.String("images", "/var/cache/tamarack-images/current", "built-in images (infra/images/build.sh's output)")
	runsc := flag.String("runsc", "", "path of gVisor's runsc (infra/gvisor/build.sh): the pool runs its sandboxes on it instead of runc (no bare-runc figure then)")
	viaAgent := flag.Bool("agent", false, "run sandboxes through the site agent protocol, as tamarack serve does (its embedded agent, over an in-process embedded NATS) instead of calling the backend in process")
	poll := flag.Duration("poll", 0, "poll GET every interval while waiting for running, instead of one GET ?wait_until=running (0)")
	asJSON := flag.Bool("json", false, "print the figures as one JSON object on the last line of standard output (bench/perf reads it)")
	flag.Parse()
	if *bare <= 0 {
		*bare = *n
	}
	if err := run(*n, *conc, *bare, *template, *images, *runsc, *poll, *viaAgent, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "testbed-bench:", err)
		os.Exit(1)
	}
}

func run(n, conc, bare int, template, imagesDir, runsc string, poll time.Duration, viaAgent, asJSON bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load0 := loadAverage()
	dir, err := os.MkdirTemp("", "testbed-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o711); err != nil { // sandboxes' uids reach their images under it
		return err
	}
	images, err := serveImages(ctx, dir, imagesDir)
	if err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, filepath.Join(dir, "bench.db"), sqldb.Options{})
	if err != nil {
		return err
	}
	if err := sqldb.Migrate(ctx, db, nil, testbed.Migrations()); err != nil {
		return err
	}
	root := filepath.Join(dir, "sandboxes")
	lb, err := local.New(local.Options{Root: root, Runsc: runsc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := lb.Check(ctx); err != nil {
		return err
	}
	rt := local.RuntimeRunc
	if runsc != "" {
		rt = local.RuntimeRunsc
		if err := lb.CheckRunsc(ctx); err != nil {
			return err
		}
	}
	// Sandboxes outlive this process by design: whatever happens, stop and remove every one it started
	// before the directory goes.
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		list, _ := lb.List(cctx)
		for _, st := range list {
			_, _ = lb.Stop(cctx, st.SandboxID, time.Second)
			_ = lb.Remove(cctx, st.SandboxID)
		}
	}()
	tb := &timedBackend{Backend: lb, starts: map[string]time.Duration{}}
	deps := testbed.Deps{DB: db, Clock: clock.System{}, Holds: testbed.ApproveHolds{},
		Backends: map[string]backend.Backend{"local": tb}, Images: images, Options: testbed.Options{SuperviseInterval: 100 * time.Millisecond, StopGrace: time.Second}}
	path := "backend in process"
	if viaAgent {
		bus, err := startAgent(ctx, dir, tb, images)
		if err != nil {
			return err
		}
		defer bus.Close()
		deps.Bus, deps.Backends, deps.EmbeddedAgent = bus, map[string]backend.Backend{}, true
		path = "through the embedded site agent over NATS"
	}
	svc, err := testbed.New(deps)
	if err != nil {
		return err
	}
	staff := web.Principal{UserID: "u-staff", Staff: true} // local pools are the programme's to declare
	p, err := svc.CreatePool(ctx, staff, testbed.CreatePoolInput{VendorOrgID: "org-v", Name: "bench", Region: "here", Backend: "local",
		Settings: map[string]string{local.SettingRuntime: rt}})
	if err != nil {
		return err
	}
	node := testbed.AddNodeInput{Name: "n1", CPUMillis: 1 << 30, MemoryBytes: 1 << 50}
	for i := range 64 { // more devices than sandboxes in flight: the benchmark measures starts, not waiting
		node.Devices = append(node.Devices, testbed.DeviceInput{Index: i, GPUModel: "h100-80gb"})
	}
	if _, _, err := svc.AddNode(ctx, staff, p.ID, node); err != nil {
		return err
	}
	if err := svc.ApplyListing(ctx, "ev-bench", "published", events.ListingChangedV1{ListingID: "lst-bench", Version: 1,
		VendorOrgID: "org-v", Kind: "compute", At: time.Now(), Compute: &events.ComputeV1{PoolID: p.ID, GPUModel: "h100-80gb",
			MaxDurationMinutes: 60, PricePerGPUHour: 1}}); err != nil {
		return err
	}
	go func() { _ = svc.Run(ctx) }()

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	app := web.New(web.Config{})
	svc.Routes(app.Group("/api/v1", web.Auth(web.Chain{JWT: web.JWTAuthenticator{Verifier: jwtauth.Verifier{Keys: keys{pub}}}})).Group("/testbed"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.Shutdown() }()
	now := time.Now()
	tok, err := jwtauth.Sign(jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-sme", Issuer: jwtauth.Issuer,
		Audience: jwt.ClaimStrings{jwtauth.Audience}, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		Org: "org-sme", OrgKind: "sme", Role: "owner", EmailVerified: true}, "k", priv)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String() + "/api/v1/testbed/sandboxes"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	call := func(method, url, body string, out any) (int, error) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil {
			_ = json.Unmarshal(b, out)
		}
		return resp.StatusCode, nil
	}
	type view struct {
		ID        string     `json:"id"`
		State     string     `json:"state"`
		CreatedAt time.Time  `json:"created_at"`
		StartedAt *time.Time `json:"started_at"`
		Reason    string     `json:"stop_reason"`
		Message   string     `json:"message"`
	}
	// launch starts a sandbox and waits until it runs: its ID, the client's and the server's times.
	launch := func() (string, time.Duration, time.Duration, error) {
		t0 := time.Now()
		var v view
		code, err := call("POST", base, fmt.Sprintf(`{"listing_id":"lst-bench","gpu_model":"h100-80gb","gpu_count":1,"template":%q,"duration_minutes":5}`, template), &v)
		if err != nil || code != 202 {
			return "", 0, 0, fmt.Errorf("launch: %d %v", code, err)
		}
		get := base + "/" + v.ID
		if poll == 0 {
			get += "?wait_until=running&timeout=25"
		}
		for {
			var g view
			if _, err := call("GET", get, "", &g); err != nil {
				return "", 0, 0, err
			}
			if g.State == testbed.StateRunning {
				return v.ID, time.Since(t0), g.StartedAt.Sub(g.CreatedAt), nil
			}
			if g.State == testbed.StateFailed || time.Since(t0) > 5*time.Minute {
				return "", 0, 0, fmt.Errorf("sandbox %s: %s %s %s", v.ID, g.State, g.Reason, g.Message)
			}
			time.Sleep(poll)
		}
	}
	stop := func(id string) error {
		if code, err := call("POST", base+"/"+id+"/stop", "", nil); err != nil || code != 202 {
			return fmt.Errorf("stop: %d %v", code, err)
		}
		for { // wait for the stop so that at most conc sandboxes exist at once
			var g view
			_, _ = call("GET", base+"/"+id+"?wait_until=stopped&timeout=25", "", &g)
			if g.State == testbed.StateStopped || g.State == testbed.StateFailed {
				return nil
			}
		}
	}

	// The first sandbox pulls and unpacks the image: reported apart.
	id, first, _, err := launch()
	if err != nil {
		return err
	}
	if err := stop(id); err != nil {
		return err
	}

	var mu sync.Mutex
	var clientT, serverT, startT, overT, inT, aroundT []time.Duration
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	errs := make(chan error, conc)
	for range conc {
		go func() {
			for range jobs {
				id, c, s, err := launch()
				var in time.Duration
				if err == nil {
					in, err = shimRuntime(filepath.Join(root, id, "shim.log"))
				}
				if err == nil {
					mu.Lock()
					start := tb.start(id)
					clientT, serverT, startT, overT = append(clientT, c), append(serverT, s), append(startT, start), append(overT, c-start)
					inT, aroundT = append(inT, in), append(aroundT, c-in)
					mu.Unlock()
					err = stop(id)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range conc {
		if err := <-errs; err != nil {
			return err
		}
	}

	// The runtime alone: bare runc on a copy of a running sandbox's bundle (runc pools only).
	var bareT []time.Duration
	if runsc == "" {
		ref, _, _, err := launch()
		if err != nil {
			return err
		}
		if bareT, err = bareRunc(ctx, filepath.Join(root, ref, "config.json"), filepath.Join(dir, "bare"), bare); err != nil {
			return err
		}
		if err := stop(ref); err != nil {
			return err
		}
	}

	waited := "one GET ?wait_until=running"
	if poll > 0 {
		waited = fmt.Sprintf("GET every %v", poll)
	}
	fmt.Printf("testbed API-to-running, local backend on %s (%s), template %s, %d sandboxes, %d in flight, client waits with %s, %d CPUs (%s/%s)\n",
		rt, path, template, n, conc, waited, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("  first sandbox, image pulled and unpacked from the registry store: %.0f ms (not in the figures below)\n", ms(first))
	report("client: POST sent → GET shows running", clientT)
	report("server: accepted → backend-observed start", serverT)
	report("backend: Backend.Start (runtime included)", startT)
	report("runtime: "+rt+" create+start inside the launch", inT)
	if len(bareT) > 0 {
		report("runtime: bare runc create+start, same bundle", bareT)
	}
	report("platform: client − Backend.Start, each", overT)
	report("around the runtime: client − runtime inside, each", aroundT)
	if len(bareT) > 0 {
		fmt.Printf("  p50 client − p50 bare runc: %.1f ms (of which the backend's own work, p50 Backend.Start − p50 bare runc: %.1f ms)\n",
			ms(p50(clientT)-p50(bareT)), ms(p50(startT)-p50(bareT)))
	}
	load1 := loadAverage()
	fmt.Printf("  load average (1 min): %s before, %s after\n", load0, load1)
	if !asJSON {
		return nil
	}
	figures := map[string]float64{
		"client_p50_ms": ms(pct(clientT, 0.50)), "client_p90_ms": ms(pct(clientT, 0.90)), "client_p99_ms": ms(pct(clientT, 0.99)),
		"backend_start_p50_ms": ms(p50(startT)), "runtime_p50_ms": ms(p50(inT)),
		"platform_over_runtime_ms": ms(p50(clientT) - p50(inT)), "first_sandbox_ms": ms(first),
		"load1_start": loadNumber(load0), "load1_end": loadNumber(load1),
	}
	if len(bareT) > 0 {
		figures["bare_runc_p50_ms"] = ms(p50(bareT))
		figures["platform_over_bare_runc_ms"] = ms(p50(clientT) - p50(bareT))
	}
	b, err := json.Marshal(figures)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// loadNumber is a /proc/loadavg figure as a number (-1 when it could not be read).
func loadNumber(s string) float64 {
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		return -1
	}
	return f
}

// pct is the p-th quantile of d as report prints it (d sorted or not).
func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// startAgent runs what tamarack serve runs for its own host: an embedded NATS JetStream (in-process) and the
// site agent of the platform host's nodes in front of b, which prepares images with images.
func startAgent(ctx context.Context, dir string, b backend.Backend, images *image.Provider) (*eventbus.Bus, error) {
	bus, err := eventbus.Connect(ctx, eventbus.Options{DataDir: filepath.Join(dir, "nats"), Name: "bench"})
	if err != nil {
		return nil, err
	}
	if err := bus.EnsureStreams(ctx, events.AllStreams()...); err != nil {
		return nil, err
	}
	adb, err := sqldb.Open(ctx, filepath.Join(dir, "agent.db"), sqldb.Options{})
	if err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, adb, nil, agent.Migrations()); err != nil {
		return nil, err
	}
	srv, err := agent.NewServer(agent.Config{PoolID: events.EmbeddedAgent, AgentID: events.EmbeddedAgent, Version: "bench",
		Backend: b, Images: images, DB: adb, Bus: bus})
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Run(ctx) }()
	return bus, nil
}

// shimRuntime is how long the runtime's create + start took in a launch, as its shim logged it.
func shimRuntime(log string) (time.Duration, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`msg="sandbox running".* runtime=(\S+)`).FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no runtime time in %s", log)
	}
	return time.ParseDuration(string(m[1]))
}

// timedBackend times each Start of the backend it wraps: the backend's own start, runtime included.
type timedBackend struct {
	backend.Backend
	mu     sync.Mutex
	starts map[string]time.Duration
}

func (b *timedBackend) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	t0 := time.Now()
	st, err := b.Backend.Start(ctx, s)
	b.mu.Lock()
	b.starts[s.SandboxID] = time.Since(t0)
	b.mu.Unlock()
	return st, err
}

func (b *timedBackend) start(id string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starts[id]
}

// bareRunc times `runc create` + `runc start` of copies of a running sandbox's bundle (config.json at
// config): the same root filesystem, mounts (its home and generated files included), user namespace,
// seccomp profile and limits, in a cgroup of its own; each copy is killed and deleted before the next.
func bareRunc(ctx context.Context, config, dir string, n int) ([]time.Duration, error) {
	b, err := os.ReadFile(config)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	stateDir := filepath.Join(dir, "runc")
	// Output goes to a file, not a pipe: the container's init inherits runc create's stdio and keeps it open.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "runc.out")
	runc := func(args ...string) error {
		f, err := os.Create(logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd := exec.CommandContext(ctx, "runc", append([]string{"--root", stateDir}, args...)...)
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("runc %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	var out []time.Duration
	for i := range n {
		id := fmt.Sprintf("bare-%d", i)
		bundle := filepath.Join(dir, id)
		if err := os.MkdirAll(bundle, 0o700); err != nil {
			return nil, err
		}
		copy := spec
		if copy.Linux != nil {
			l := *copy.Linux
			l.CgroupsPath = filepath.Join(filepath.Dir(l.CgroupsPath), id)
			copy.Linux = &l
		}
		copy.Hostname = id
		cb, _ := json.Marshal(copy)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), cb, 0o600); err != nil {
			return nil, err
		}
		t0 := time.Now()
		err := runc("create", "--bundle", bundle, id)
		if err == nil {
			err = runc("start", id)
		}
		d := time.Since(t0)
		_ = runc("kill", id, "KILL")
		_ = runc("delete", "--force", id)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(name string, d []time.Duration) {
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	fmt.Printf("  %-46s p50 %7.1f ms  p90 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n", name,
		ms(q(0.50)), ms(q(0.90)), ms(q(0.99)), ms(d[len(d)-1]))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// serveImages pushes the built-in images into a registry store under dir, serves it on loopback as the
// platform does, and returns a Provider on a cache under dir.
func serveImages(ctx context.Context, dir, build string) (*image.Provider, error) {
	store, err := image.OpenRegistry(filepath.Join(dir, "registry"), nil)
	if err != nil {
		return nil, err
	}
	pushed, err := store.PushBuild(ctx, build)
	if err != nil {
		return nil, err
	}
	if len(pushed) == 0 {
		return nil, fmt.Errorf("no built-in images in %s: run infra/images/build.sh", build)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: store.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	cache, err := image.New(image.Options{Dir: filepath.Join(dir, "images")})
	if err != nil {
		return nil, err
	}
	return &image.Provider{Cache: cache, Registry: ln.Addr().String(), Builtin: store.Builtin}, nil
}
