// Command testbed-bench measures the testbed's API-to-running latency on the local (runc) backend:
// it runs the testbed service in process on a temporary SQLite database with a real HTTP listener, then
// launches sandboxes one after another through POST /api/v1/testbed/sandboxes and polls GET until each is
// running, and stops it. It prints p50/p90/p99 of (a) the client-observed time from sending the POST to
// seeing running and (b) the server-recorded time from acceptance to the backend-observed start.
//
//	go run ./bench/testbed -n 50
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
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/jwtauth"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed"
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
	template := flag.String("template", "shell", "template to launch")
	images := flag.String("images", "/var/cache/tamarack-images/current", "built-in images (infra/images/build.sh's output)")
	flag.Parse()
	if err := run(*n, *conc, *template, *images); err != nil {
		fmt.Fprintln(os.Stderr, "testbed-bench:", err)
		os.Exit(1)
	}
}

func run(n, conc int, template, imagesDir string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	lb, err := local.New(local.Options{Root: filepath.Join(dir, "sandboxes"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := lb.Check(ctx); err != nil {
		return err
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
	svc, err := testbed.New(testbed.Deps{DB: db, Clock: clock.System{}, Holds: testbed.ApproveHolds{},
		Backends: map[string]backend.Backend{"local": lb}, Images: images, Options: testbed.Options{SuperviseInterval: 100 * time.Millisecond, StopGrace: time.Second}})
	if err != nil {
		return err
	}
	staff := testbed.Caller{UserID: "u-staff", Staff: true} // local pools are the programme's to declare
	p, err := svc.CreatePool(ctx, staff, testbed.CreatePoolInput{VendorOrgID: "org-v", Name: "bench", Region: "here", Backend: "local"})
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
		Org: "org-sme", OrgKind: "sme", Role: "owner"}, "k", priv)
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
	var mu sync.Mutex
	var client50, server50 []time.Duration
	one := func() error {
		t0 := time.Now()
		var v view
		code, err := call("POST", base, fmt.Sprintf(`{"listing_id":"lst-bench","gpu_model":"h100-80gb","gpu_count":1,"template":%q,"duration_minutes":5}`, template), &v)
		if err != nil || code != 202 {
			return fmt.Errorf("launch: %d %v", code, err)
		}
		for {
			var g view
			if _, err := call("GET", base+"/"+v.ID, "", &g); err != nil {
				return err
			}
			if g.State == testbed.StateRunning {
				mu.Lock()
				client50 = append(client50, time.Since(t0))
				server50 = append(server50, g.StartedAt.Sub(g.CreatedAt))
				mu.Unlock()
				break
			}
			if g.State == testbed.StateFailed || time.Since(t0) > 30*time.Second {
				return fmt.Errorf("sandbox %s: %s %s %s", v.ID, g.State, g.Reason, g.Message)
			}
			time.Sleep(time.Millisecond)
		}
		if code, err := call("POST", base+"/"+v.ID+"/stop", "", nil); err != nil || code != 202 {
			return fmt.Errorf("stop: %d %v", code, err)
		}
		for { // wait for the stop so that at most conc sandboxes exist at once
			var g view
			_, _ = call("GET", base+"/"+v.ID, "", &g)
			if g.State == testbed.StateStopped {
				return nil
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	errs := make(chan error, conc)
	for range conc {
		go func() {
			for range jobs {
				if err := one(); err != nil {
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
	fmt.Printf("testbed API-to-running, local backend, template %s, %d sandboxes, %d in flight, %d CPUs (%s/%s)\n", template, n, conc, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	report("client: POST sent → GET shows running", client50)
	report("server: accepted → backend-observed start", server50)
	return nil
}

func report(name string, d []time.Duration) {
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	fmt.Printf("  %-44s p50 %7.1f ms  p90 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n", name,
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
