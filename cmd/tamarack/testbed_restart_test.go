package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/image"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// The test binary doubles as `tamarack` (TAMARACK_TEST_MAIN=1) and as the local backend's shim.
func TestMain(m *testing.M) {
	local.MaybeRunShim()
	if os.Getenv("TAMARACK_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type serverProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	addr string
	data string
	log  *bytes.Buffer
	args []string
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *serverProc) start() {
	s.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		s.t.Fatal(err)
	}
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(exe, append([]string{"serve"}, s.args...)...)
	s.cmd.Env = append(os.Environ(), "TAMARACK_TEST_MAIN=1")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server not ready: %v\n%s", err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *serverProc) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func (s *serverProc) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.kill()
	}
}

func (s *serverProc) bus(ctx context.Context) *eventbus.Bus {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "nats.url"))
	if err != nil {
		s.t.Fatal(err)
	}
	bus, err := eventbus.Connect(ctx, eventbus.Options{URL: strings.TrimSpace(string(b)), Name: "test",
		Creds: filepath.Join(s.data, "nats-auth", "platform.creds")})
	if err != nil {
		s.t.Fatal(err)
	}
	return bus
}

// do is a request to the testbed's API (path under /api/v1/testbed).
func (s *serverProc) do(method, path, tok, body string, out any) int {
	s.t.Helper()
	return s.call(method, "/api/v1/testbed"+path, tok, body, out)
}

type sandboxView struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	StopReason string     `json:"stop_reason"`
}

func (s *serverProc) waitState(tok, id, state string) sandboxView {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // the first sandbox pulls and unpacks its image: slow under -race
	for {
		var v sandboxView
		s.do("GET", "/sandboxes/"+id, tok, "", &v)
		if v.State == state {
			return v
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sandbox %s is %s (%s), want %s\n%s", id, v.State, v.StopReason, state, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishCompute announces, as the marketplace does, a compute listing of vendorOrg that sells pool's GPUs of
// model.
func publishCompute(ctx context.Context, t testing.TB, bus *eventbus.Bus, listing, vendorOrg, pool, model string) {
	t.Helper()
	if err := eventbus.Publish(ctx, bus, events.ListingPublished, "tamarack/marketplace", listing+"-published-1", time.Now(), events.ListingChangedV1{
		ListingID: listing, Version: 1, VendorOrgID: vendorOrg, Kind: "compute", At: time.Now(),
		Compute: &events.ComputeV1{PoolID: pool, GPUModel: model, MaxDurationMinutes: 60, PricePerGPUHour: 1_000_000}}); err != nil {
		t.Fatal(err)
	}
}

// launchBody asks for one h100-80gb of listing for 30 minutes, from template.
func launchBody(listing, template string) string {
	return `{"listing_id":"` + listing + `","gpu_model":"h100-80gb","gpu_count":1,"template":"` + template + `","duration_minutes":30}`
}

// launchListed launches a sandbox (launchBody) as tok, again while the testbed answers 404: until it has
// projected the listing's event.
func (s *serverProc) launchListed(tok, listing, template string) sandboxView {
	s.t.Helper()
	var sb sandboxView
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := s.do("POST", "/sandboxes", tok, launchBody(listing, template), &sb)
		if code == 202 {
			return sb
		}
		if code != 404 || time.Now().After(deadline) {
			s.t.Fatalf("launch of %s: %d", listing, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeSIGKILLRestart runs `tamarack serve` (testbed only, local backend) as a child process, launches
// a real sandbox, kills the server with SIGKILL, starts it again on the same data directory and checks
// reconciliation: the sandbox is still running (it survives restarts), stops cleanly, and its usage
// samples in JetStream are contiguous across the restart and sum to its running time exactly.
func TestServeSIGKILLRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	requireLocalHost(ctx, t)
	jwks, token := testIdentity(t) // this process runs --only=testbed
	staff := token("u-staff", "org-programme", "partner", true)
	sme := token("u-sme", "org-sme", "sme", false)

	// The data directory as an operator's would be: reachable by the sandboxes' uids (their images are
	// unpacked in it), with the built-in images seeded into its registry store as `tamarack seed` does.
	data := seededDataDir(ctx, t)
	cleanupSandboxes(t, data)
	s := &serverProc{t: t, data: data, addr: freePort(t)}
	s.args = []string{"--data=" + data, "--addr=" + s.addr, "--only=testbed", "--identity-url=" + jwks.URL,
		"--usage-interval=1s", "--sandbox-backend=local", "--log-level=warn"}
	s.start()
	defer func() {
		if s.cmd.ProcessState == nil {
			s.stop()
		}
	}()

	// Billing stand-in: approves every hold over NATS request/reply.
	holds := func(bus *eventbus.Bus) {
		if _, err := eventbus.Serve(ctx, bus, events.Hold, "billing", func(_ context.Context, r events.HoldRequestV1) (events.HoldReplyV1, error) {
			return events.HoldReplyV1{HoldID: "hold-" + r.SandboxID}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	bus := s.bus(ctx)
	holds(bus)

	var pool struct {
		ID string `json:"id"`
	}
	if code := s.do("POST", "/pools", staff, `{"name":"Restart pool","region":"here","backend":"local","vendor_org_id":"org-vendor"}`, &pool); code != 201 {
		t.Fatalf("create pool: %d", code)
	}
	if code := s.do("POST", "/pools/"+pool.ID+"/nodes", staff, `{"name":"n1","cpu_millis":64000,"memory_bytes":68719476736,"devices":[{"index":0,"gpu_model":"h100-80gb"},{"index":1,"gpu_model":"h100-80gb"}]}`, nil); code != 201 {
		t.Fatalf("add node: %d", code)
	}
	publishCompute(ctx, t, bus, "lst-restart", "org-vendor", pool.ID, "h100-80gb")
	sb := s.launchListed(sme, "lst-restart", "shell")
	running := s.waitState(sme, sb.ID, "running")
	// A second sandbox will end while the server is down.
	var sb2 sandboxView
	if code := s.do("POST", "/sandboxes", sme, launchBody("lst-restart", "shell"), &sb2); code != 202 {
		t.Fatalf("launch 2: %d", code)
	}
	running2 := s.waitState(sme, sb2.ID, "running")
	usage2 := collectUsage(ctx, t, bus, sb2.ID)
	usage2.waitSeq(t, 1)

	// Usage samples arrive while it runs; then the server is killed without any chance to clean up.
	usage := collectUsage(ctx, t, bus, sb.ID)
	usage.waitSeq(t, 2)
	s.kill()
	bus.Close()
	time.Sleep(1500 * time.Millisecond) // the sandbox keeps running while the server is down (the point of the test)
	// Kill the second sandbox's main process; its shim records the true end.
	stateFile := filepath.Join(data, "sandboxes", sb2.ID, "state.json")
	var st struct {
		State   string            `json:"state"`
		Init    struct{ PID int } `json:"init"`
		EndedAt time.Time         `json:"ended_at"`
	}
	readState := func() {
		b, err := os.ReadFile(stateFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
	}
	readState()
	if err := syscall.Kill(st.Init.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill sandbox init %d: %v", st.Init.PID, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for readState(); st.State != "exited"; readState() {
		if time.Now().After(deadline) {
			t.Fatalf("sandbox 2 never recorded its end: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	trueEnd := st.EndedAt.Truncate(time.Millisecond)
	time.Sleep(time.Second) // the server stays down a while after the end: nothing of this second may be billed

	s.start()
	bus = s.bus(ctx)
	defer bus.Close()
	holds(bus)
	after := s.waitState(sme, sb.ID, "running")
	if !after.StartedAt.Equal(*running.StartedAt) {
		t.Fatalf("start time changed across restart: %v → %v", running.StartedAt, after.StartedAt)
	}
	usage = collectUsage(ctx, t, bus, sb.ID) // a fresh consumer reads the stream from the start
	ended := s.waitState(sme, sb2.ID, "stopped")
	if !ended.EndedAt.Equal(trueEnd) || !ended.StartedAt.Equal(*running2.StartedAt) {
		t.Fatalf("sandbox 2 ended at %v, true end %v", ended.EndedAt, trueEnd)
	}
	usage2 = collectUsage(ctx, t, bus, sb2.ID)
	var sum2 int64
	for _, u := range usage2.waitFinal(t) {
		sum2 += u.Millis
	}
	if want := trueEnd.Sub(*running2.StartedAt).Milliseconds(); sum2 != want {
		t.Fatalf("sandbox 2 usage %d ms, true running time %d ms", sum2, want)
	}
	t.Logf("sandbox 2 ended while the server was down (%s): usage %d ms to the true end", ended.StopReason, sum2)
	usage.waitSeq(t, 4)
	if code := s.do("POST", "/sandboxes/"+sb.ID+"/stop", sme, "", nil); code != 202 {
		t.Fatalf("stop: %d", code)
	}
	final := s.waitState(sme, sb.ID, "stopped")
	want := final.EndedAt.Sub(*final.StartedAt).Milliseconds()
	samples := usage.waitFinal(t)
	var sum int64
	prev := *final.StartedAt
	for i, u := range samples {
		if u.Seq != uint64(i+1) || !u.Start.Equal(prev) {
			t.Fatalf("sample %d: seq %d start %v, want start %v", i, u.Seq, u.Start, prev)
		}
		prev = u.End
		sum += u.Millis
	}
	if sum != want {
		t.Fatalf("usage %d ms in %d samples, running time %d ms", sum, len(samples), want)
	}
	// Nothing of the sandbox runs any more: the backend on the same root reports it ended.
	lb, err := local.New(local.Options{Root: filepath.Join(data, "sandboxes")})
	if err != nil {
		t.Fatal(err)
	}
	list, err := lb.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if !st.Ended() {
			t.Fatalf("backend still runs %s", st.SandboxID)
		}
	}
	t.Logf("%d usage samples across a SIGKILL restart, %d ms", len(samples), sum)
}

// requireLocalHost fails the test (or skips it, as backendtest.RequireHost decides) when this host cannot run
// local sandboxes.
func requireLocalHost(ctx context.Context, t testing.TB) {
	t.Helper()
	probe, err := local.New(local.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RequireHost(t, probe.Check(ctx))
}

// seededDataDir is a data directory that sandboxes can reach, with the built-in images seeded into its registry
// store as `tamarack seed` does.
func seededDataDir(ctx context.Context, t testing.TB) string {
	t.Helper()
	data := imagetest.ReachableDir(t)
	store, err := image.OpenRegistry(filepath.Join(data, "registry"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PushBuild(ctx, imagetest.Build(t)); err != nil {
		t.Fatal(err)
	}
	return data
}

// cleanupSandboxes stops and removes, when the test ends, every local sandbox under data: sandboxes outlive the
// server by design, but none may outlive the test.
func cleanupSandboxes(t testing.TB, data string) {
	t.Cleanup(func() {
		lb, err := local.New(local.Options{Root: filepath.Join(data, "sandboxes")})
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		list, _ := lb.List(ctx)
		for _, st := range list {
			_, _ = lb.Stop(ctx, st.SandboxID, time.Second)
			_ = lb.Remove(ctx, st.SandboxID)
		}
	})
}

// testIdentity stands in for identity in tests of `serve --only=testbed`: a JWKS endpoint with a test key, and
// a function that signs access tokens with it.
func testIdentity(t testing.TB) (*httptest.Server, func(user, org, kind string, staff bool) string) {
	t.Helper()
	sign := webtest.NewSigner()
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(sign.JWKS())
	}))
	t.Cleanup(jwks.Close)
	return jwks, func(user, org, kind string, staff bool) string {
		return sign.Token(t, webtest.Principal{User: user, Org: org, OrgKind: kind, Role: "owner", Staff: staff})
	}
}

type usageLog struct {
	mu      sync.Mutex
	samples map[uint64]events.SandboxUsageV1
}

func collectUsage(ctx context.Context, t *testing.T, bus *eventbus.Bus, id string) *usageLog {
	u := &usageLog{samples: map[uint64]events.SandboxUsageV1{}}
	durable := fmt.Sprintf("test-usage-%d", time.Now().UnixNano())
	go func() {
		_ = eventbus.Consume(ctx, bus, events.SandboxUsage, eventbus.ConsumeOptions{Durable: durable, IdleWait: 100 * time.Millisecond},
			func(_ context.Context, ev eventbus.Event[events.SandboxUsageV1]) error {
				if ev.Data.SandboxID == id {
					u.mu.Lock()
					if old, dup := u.samples[ev.Data.Seq]; dup && old != ev.Data {
						t.Errorf("seq %d published twice with different intervals", ev.Data.Seq)
					}
					u.samples[ev.Data.Seq] = ev.Data
					u.mu.Unlock()
				}
				return nil
			})
	}()
	return u
}

func (u *usageLog) waitSeq(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		u.mu.Lock()
		_, ok := u.samples[n]
		u.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage sample %d never arrived", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (u *usageLog) waitFinal(t *testing.T) []events.SandboxUsageV1 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		u.mu.Lock()
		var out []events.SandboxUsageV1
		final := false
		for i := uint64(1); ; i++ {
			s, ok := u.samples[i]
			if !ok {
				break
			}
			out = append(out, s)
			final = s.Final
		}
		u.mu.Unlock()
		if final {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final usage sample (have %d)", len(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
