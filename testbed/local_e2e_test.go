package testbed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natstest"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// TestLocalBackendEndToEnd launches a real runc sandbox through the HTTP API (from the built-in shell image,
// pulled from a registry store over the distribution API), sees it running, reads its logs (SSE), runs echo
// in its terminal (WebSocket), reaches a port through the proxy (python image), stops it, and finds its
// usage events in JetStream summing to its running time.
func TestLocalBackendEndToEnd(t *testing.T) {
	images, _ := imagetest.Serve(t, imagetest.Build(t), nil).Provider(t) // one cache: both runs share the unpacked images
	natstest.Each(t, func(t *testing.T, bus *eventbus.Bus) { localEndToEnd(t, bus, images, local.RuntimeRunc) })
}

// TestLocalBackendEndToEndGVisor is the same journey on a pool whose settings choose gVisor: the
// setting reaches the backend and everything works the same through runsc. TAMARACK_TEST_RUNSC names
// runsc (infra/gvisor/build.sh); without it the test fails under TAMARACK_TEST_SANDBOX=required.
func TestLocalBackendEndToEndGVisor(t *testing.T) {
	images, _ := imagetest.Serve(t, imagetest.Build(t), nil).Provider(t)
	localEndToEnd(t, natstest.Start(t), images, local.RuntimeRunsc)
}

func localEndToEnd(t *testing.T, bus *eventbus.Bus, images Images, runtime string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := dbtest.Open(t, sqldb.SQLite, migrations()...)
	if err := bus.EnsureStreams(ctx, events.TestbedStream); err != nil {
		t.Fatal(err)
	}
	runsc := os.Getenv("TAMARACK_TEST_RUNSC")
	lb, err := local.New(local.Options{Root: t.TempDir(), Runsc: runsc})
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RequireHost(t, lb.Check(ctx))
	if runtime == local.RuntimeRunsc {
		if runsc == "" {
			backendtest.RequireHost(t, fmt.Errorf("%w: TAMARACK_TEST_RUNSC is not set: build runsc with infra/gvisor/build.sh", backend.ErrUnavailable))
		}
		backendtest.RequireHost(t, lb.CheckRunsc(ctx))
	}
	t.Cleanup(func() { // sandboxes outlive their starter: none may outlive the test, nor its waiting shim
		stopAll(lb)
		_ = lb.Close()
	})
	svc, err := New(Deps{DB: db, Bus: bus, Clock: clock.System{}, Holds: ApproveHolds{},
		Backends: map[string]backend.Backend{"local": lb}, Images: images,
		Options: Options{UsageInterval: 300 * time.Millisecond, SuperviseInterval: 50 * time.Millisecond, StopGrace: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "Local", Region: "here", Backend: "local",
		Settings: map[string]string{"runtime": runtime}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.AddNode(ctx, hostStaff(), p.ID, AddNodeInput{Name: "this-host", CPUMillis: 64000, MemoryBytes: 256 << 30,
		Devices: []DeviceInput{{Index: 0, GPUModel: "l4-24gb"}, {Index: 1, GPUModel: "l4-24gb"}}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.ApplyListing(ctx, "ev-l4", "published", events.ListingChangedV1{ListingID: "lst-l4", Version: 1,
		VendorOrgID: vendorOrg, Kind: "compute", At: time.Now(), Compute: &events.ComputeV1{PoolID: p.ID,
			GPUModel: "l4-24gb", MaxDurationMinutes: 60, PricePerGPUHour: 900_000}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	defer func() {
		cancel()
		wg.Wait()
	}()

	app, sign := newApp(t, svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.Shutdown() }()
	base := "http://" + ln.Addr().String() + "/api/v1/testbed"
	tok := sign.token(t, sme())

	// Launch a shell and a "jupyterlab" (python3 http.server stand-in) sandbox.
	launch := func(template string) sandboxJSON {
		var sb sandboxJSON
		code := doJSON(t, "POST", base+"/sandboxes", tok, fmt.Sprintf(`{"listing_id":"lst-l4","gpu_model":"l4-24gb","gpu_count":1,"template":%q,"duration_minutes":10}`, template), &sb)
		if code != 202 || sb.State != StateRequested {
			t.Fatalf("launch %s: %d %+v", template, code, sb)
		}
		return waitState(t, base, tok, sb.ID, StateRunning)
	}
	sb := launch("shell")
	if len(sb.Devices) != 1 || !sb.Devices[0].Declared || sb.StartedAt == nil {
		t.Fatalf("running sandbox %+v", sb)
	}

	// Logs (SSE, what is there so far): the template's start line.
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := get(t, base+"/sandboxes/"+sb.ID+"/logs?follow=false", tok)
		if strings.Contains(body, "event: log\ndata: sandbox "+sb.ID+" ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs: %q", body)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}

	// Terminal over WebSocket, authorised by a short-lived sandbox token.
	var tj tokenJSON
	if code := doJSON(t, "POST", base+"/sandboxes/"+sb.ID+"/token", tok, "", &tj); code != 201 {
		t.Fatalf("token: %d", code)
	}
	wsURL := "ws://" + ln.Addr().String() + "/api/v1/testbed/sandboxes/" + sb.ID + "/terminal?token=" + tj.Token
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"resize","cols":120,"rows":40}`))
	// The kernel it reports says which runtime the pool's setting chose: the host's under runc, gVisor's
	// own under runsc.
	_ = conn.WriteMessage(websocket.BinaryMessage, []byte("echo hello-$((40+2))-kernel-$(uname -r)-end$((1+1)); exit\n"))
	var out bytes.Buffer
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for !strings.Contains(out.String(), "-end2") {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("terminal read: %v (got %q)", err, out.String())
		}
		out.Write(msg)
	}
	_ = conn.Close()
	var host unix.Utsname
	if err := unix.Uname(&host); err != nil {
		t.Fatal(err)
	}
	onHost := strings.Contains(out.String(), "hello-42-kernel-"+unix.ByteSliceToString(host.Release[:])+"-end2")
	if !strings.Contains(out.String(), "hello-42-kernel-") || onHost != (runtime == local.RuntimeRunc) {
		t.Fatalf("terminal on %s said %q (host kernel %s)", runtime, out.String(), unix.ByteSliceToString(host.Release[:]))
	}

	// Proxy to the stand-in of JupyterLab on port 8888, with the org token as ?access_token=.
	jl := launch("jupyterlab")
	deadline = time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/sandboxes/" + jl.ID + "/proxy/8888/?access_token=" + tok)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), "Directory listing") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Stop both; the terminal of a stopped sandbox is refused.
	deadline = time.Now().Add(10 * time.Second)
	for { // let two usage samples be published before stopping
		var row Sandbox
		if err := db.First(&row, "id = ?", sb.ID).Error; err != nil {
			t.Fatal(err)
		}
		if row.UsageSeq >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usage samples while running (seq %d)", row.UsageSeq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A following log stream ends with an end event when the sandbox stops.
	followed := make(chan string, 1)
	go func() { // no t.Fatal off the test goroutine: errors arrive as the body
		req, _ := http.NewRequest("GET", base+"/sandboxes/"+sb.ID+"/logs", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			followed <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		followed <- string(b)
	}()
	for _, id := range []string{sb.ID, jl.ID} {
		if code := doJSON(t, "POST", base+"/sandboxes/"+id+"/stop", tok, "", nil); code != 202 {
			t.Fatalf("stop: %d", code)
		}
	}
	final := waitState(t, base, tok, sb.ID, StateStopped)
	select {
	case body := <-followed:
		if !strings.Contains(body, "ready") || !strings.HasSuffix(body, "event: end\ndata: {}\n\n") {
			t.Fatalf("followed logs: %q", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the followed log stream did not end with the sandbox")
	}
	waitState(t, base, tok, jl.ID, StateStopped)
	var prob map[string]any
	if code := doJSON(t, "GET", base+"/sandboxes/"+sb.ID+"/terminal", tok, "", &prob); code != 409 || prob["code"] != "sandbox_not_running" {
		t.Fatalf("terminal of a stopped sandbox: %d %v", code, prob)
	}

	// Usage events in JetStream: contiguous and summing to the recorded running time.
	want := final.EndedAt.Sub(*final.StartedAt).Milliseconds()
	got := make(chan events.SandboxUsageV1, 100)
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	go func() {
		_ = eventbus.Consume(cctx, bus, events.SandboxUsage, eventbus.ConsumeOptions{Durable: "test-usage", IdleWait: 100 * time.Millisecond},
			func(_ context.Context, ev eventbus.Event[events.SandboxUsageV1]) error {
				if ev.Data.SandboxID == sb.ID {
					if ev.ID != fmt.Sprintf("%s-%d", sb.ID, ev.Data.Seq) {
						t.Errorf("event id %s", ev.ID)
					}
					got <- ev.Data
				}
				return nil
			})
	}()
	var sum int64
	var n int
	timeout := time.After(20 * time.Second)
	for {
		select {
		case u := <-got:
			sum += u.Millis
			n++
			if u.Final {
				if sum != want {
					t.Fatalf("usage in JetStream: %d samples, %d ms; running time %d ms", n, sum, want)
				}
				t.Logf("%d usage samples, %d ms", n, sum)
				return
			}
		case <-timeout:
			t.Fatalf("final usage event not in JetStream (%d samples, %d ms)", n, sum)
		}
	}
}

func doJSON(t *testing.T, method, url, tok, body string, out any) int {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func get(t *testing.T, url, tok string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

func waitState(t *testing.T, base, tok, id, state string) sandboxJSON {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a first pull and unpack is slow under the race detector
	for {
		var sb sandboxJSON
		doJSON(t, "GET", base+"/sandboxes/"+id, tok, "", &sb)
		if sb.State == state {
			return sb
		}
		if sb.State == StateFailed || time.Now().After(deadline) {
			t.Fatalf("sandbox %s: state %s (%s %s), want %s", id, sb.State, sb.StopReason, sb.Message, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stopAll(b backend.Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, _ := b.List(ctx)
	for _, st := range list {
		_, _ = b.Stop(ctx, st.SandboxID, time.Second)
		_ = b.Remove(ctx, st.SandboxID)
	}
}
