package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
	"github.com/tamarack-ai/tamarack/testbed/image"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// TestLaunchFromImage launches sandboxes of a local (runc) pool through the HTTP API: the first pulls the
// built-in shell image from the platform's registry store over the distribution API (the registry holds
// the layer mid-way, so the pull is seen in the sandbox's progress), then runs; inside it /etc/os-release is
// the image's Debian, and the host's files are not there. A second shell sandbox starts from the image
// already unpacked (the cache unpacks nothing more); the pytorch template runs python3 from the python
// image. The second database engine's run finds both images unpacked.
func TestLaunchFromImage(t *testing.T) {
	build := imagetest.Build(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	hold := newPullGate()
	reg := imagetest.Serve(t, build, hold.wrap)
	t.Cleanup(hold.open) // before the registry closes: its held handlers must end
	// One cache for both engines' runs: the first pulls and unpacks each image once, the second finds them
	// unpacked (unpacking is engine-blind; the progress writes are checked on both by TestStopDuringPull).
	images, cache := reg.Provider(t)
	builtin, err := reg.Store.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		cold := cache.Unpacks() == 0
		lb := newLocalBackend(t)
		svc, listing := newImageTestbed(t, db, clock.System{}, lb, images)
		app, sign := newApp(t, svc)
		tok := sign.token(t, sme())
		defer func() {
			for _, id := range sandboxIDs(t, db) {
				_, _ = svc.Stop(ctx, sme(), id)
			}
			svc.Wait()
		}()

		sb := apiLaunch(t, app, tok, listing, "shell")
		if cold {
			pulling := apiWait(t, app, tok, sb.ID, func(v sandboxJSON) bool {
				return v.Progress != nil && v.Progress.Phase == PhasePulling && v.Progress.DoneBytes > 0
			})
			if p := pulling.Progress; pulling.State != StateProvisioning || pulling.Image != "shell" || p.TotalBytes <= p.DoneBytes ||
				p.ImageDigest != builtin["shell"].Digest || pulling.ImageDigest != "" {
				t.Fatalf("while pulling: %+v, progress %+v", pulling, p)
			}
			hold.open()
		}
		running := apiWait(t, app, tok, sb.ID, func(v sandboxJSON) bool { return v.State == StateRunning })
		if running.Progress != nil || running.ImageDigest != builtin["shell"].Digest {
			t.Fatalf("running: progress %+v, image digest %q (want %s)", running.Progress, running.ImageDigest, builtin["shell"].Digest)
		}
		root, err := images.Rootfs(ctx, "shell", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		release, err := os.ReadFile(filepath.Join(root.Path, "etc", "os-release"))
		if err != nil {
			t.Fatal(err)
		}
		out := terminalRun(t, lb, sb.ID, "/bin/sh", "-c", "cat /etc/os-release; test -e "+runc+" && echo host-files || echo no-host-files")
		for _, line := range strings.Split(strings.TrimSpace(string(release)), "\n") {
			if !strings.Contains(out, line) {
				t.Errorf("the sandbox's /etc/os-release lacks the image's %q:\n%s", line, out)
			}
		}
		if !strings.Contains(out, "ID=debian") || !strings.Contains(out, "no-host-files") {
			t.Fatalf("inside the sandbox:\n%s", out)
		}

		again := apiLaunch(t, app, tok, listing, "shell")
		again = apiWait(t, app, tok, again.ID, func(v sandboxJSON) bool { return v.State == StateRunning })
		if again.ImageDigest != running.ImageDigest || cold && cache.Unpacks() != 1 {
			t.Fatalf("second shell sandbox: digest %s, %d unpacks (want the first one's root, 1 unpack)", again.ImageDigest, cache.Unpacks())
		}

		py := apiLaunch(t, app, tok, listing, "pytorch")
		py = apiWait(t, app, tok, py.ID, func(v sandboxJSON) bool { return v.State == StateRunning })
		if py.Image != "python" || py.ImageDigest != builtin["python"].Digest {
			t.Fatalf("pytorch sandbox: image %q digest %q, want python %s", py.Image, py.ImageDigest, builtin["python"].Digest)
		}
		if out := terminalRun(t, lb, py.ID, "python3", "-c", "print(6*7)"); strings.TrimSpace(out) != "42" {
			t.Fatalf("python3 in the sandbox printed %q", out)
		}
		if n := cache.Unpacks(); n != 2 {
			t.Fatalf("%d unpacks after the python image, want 2 (one per image, whatever the runs)", n)
		}
		if _, err := svc.Stop(ctx, sme(), py.ID); err != nil {
			t.Fatal(err)
		}
		apiWait(t, app, tok, py.ID, func(v sandboxJSON) bool { return v.State == StateStopped })
		logs, err := lb.Logs(ctx, py.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(logs)
		logs.Close()
		if !strings.Contains(string(b), "python 3.11") || !strings.Contains(string(b), "no PyTorch in this image") {
			t.Fatalf("pytorch sandbox's output: %q", b)
		}
	})
}

// TestImageRefusedFailsTheSandbox: an image that is not pinned by digest, not on the pool's allow-list, in a
// registry nobody answers on, or a built-in image never seeded fails the sandbox before anything starts,
// with the reason and a message for its owner; its devices are free again and its failed event (which
// makes billing release the hold) is written. With the image on the allow-list the same launch runs.
func TestImageRefusedFailsTheSandbox(t *testing.T) {
	build := imagetest.Build(t)
	ctx := context.Background()
	reg := imagetest.Serve(t, build, nil)
	provider, _ := reg.Provider(t)
	builtin, err := reg.Store.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	list, err := image.ReadBuiltin(filepath.Join(build, image.BuildListFile))
	if err != nil {
		t.Fatal(err)
	}
	shell, err := image.ReadLayout(filepath.Join(build, list["shell"].Layout), list["shell"].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Store.Push(ctx, "vendor/shell", "latest", shell); err != nil { // outside the built-in prefix
		t.Fatal(err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nobody listens there any more
	unreachable, _ := reg.Provider(t)
	unreachable.Registry = strings.TrimPrefix(closed.URL, "http://")
	unseeded, _ := reg.Provider(t)
	unseeded.Builtin = func() (image.Builtin, error) { return image.Builtin{}, nil }
	vendorImage := reg.Host + "/vendor/shell@" + builtin["shell"].Digest

	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		for _, tc := range []struct {
			name         string
			images       Images
			reason, text string
		}{
			{"not pinned", imageAs{provider, reg.Host + "/tamarack/shell:latest"}, ReasonImageNotAllowed, "pinned by digest"},
			{"not allowed", imageAs{provider, vendorImage}, ReasonImageNotAllowed, "allow-list"},
			{"registry unreachable", unreachable, ReasonImageUnavailable, "connection refused"},
			{"built-in image not seeded", unseeded, ReasonImageUnavailable, "tamarack seed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stand := simLocal{sim.New(clock.System{})}
				svc, listing := newImageTestbed(t, db, clock.System{}, stand, tc.images)
				sb, err := svc.Launch(ctx, sme(), LaunchInput{ListingID: listing, GPUModel: "l4-24gb", GPUCount: 2, Template: "shell", DurationMinutes: 10})
				if err != nil {
					t.Fatal(err)
				}
				svc.Wait()
				got, err := svc.Get(ctx, sme(), sb.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != StateFailed || got.StopReason != tc.reason || !strings.Contains(got.Message, tc.text) ||
					!strings.Contains(got.Message, "image shell") || got.ImageDigest != "" || got.StartedAt != nil {
					t.Fatalf("sandbox %s %s: %q (digest %q); want failed %s saying %q", got.State, got.StopReason, got.Message, got.ImageDigest, tc.reason, tc.text)
				}
				checkReleased(t, db, stand.Backend, sb.ID, StateFailed)
			})
		}

		t.Run("allowed by the pool", func(t *testing.T) {
			stand := simLocal{sim.New(clock.System{})}
			svc, listing := newImageTestbed(t, db, clock.System{}, stand, imageAs{provider, vendorImage})
			var l Listing
			if err := db.First(&l, "id = ?", listing).Error; err != nil {
				t.Fatal(err)
			}
			if _, err := svc.UpdatePool(ctx, hostStaff(), l.PoolID, UpdatePoolInput{Settings: map[string]string{image.SettingAllow: reg.Host + "/vendor/"}}); err != nil {
				t.Fatal(err)
			}
			sb, err := svc.Launch(ctx, sme(), LaunchInput{ListingID: listing, GPUModel: "l4-24gb", GPUCount: 1, Template: "shell", DurationMinutes: 10})
			if err != nil {
				t.Fatal(err)
			}
			svc.Wait()
			got, err := svc.Get(ctx, sme(), sb.ID)
			if err != nil || got.State != StateRunning || got.ImageDigest != builtin["shell"].Digest {
				t.Fatalf("sandbox %+v, %v; want running from %s", got, err, builtin["shell"].Digest)
			}
		})
	})
}

// TestStopDuringPull: a sandbox stopped while its image is being pulled ends stopped at once, without
// waiting for the pull and without anything started, its devices and hold released. A testbed shut down
// during a pull returns without waiting for it; after the restart the sandbox ends as interrupted.
func TestStopDuringPull(t *testing.T) {
	build := imagetest.Build(t)
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		hold := newPullGate()
		reg := imagetest.Serve(t, build, hold.wrap)
		t.Cleanup(hold.cut)
		images, _ := reg.Provider(t)
		stand := simLocal{sim.New(clock.System{})}
		svc, listing := newImageTestbed(t, db, clock.System{}, stand, images)
		launch := func(svc *Service) Sandbox {
			t.Helper()
			sb, err := svc.Launch(ctx, sme(), LaunchInput{ListingID: listing, GPUModel: "l4-24gb", GPUCount: 1, Template: "shell", DurationMinutes: 10})
			if err != nil {
				t.Fatal(err)
			}
			waitRow(t, db, sb.ID, func(sb Sandbox) bool { p, _ := sb.ProgressOf(); return p.Phase == PhasePulling && p.Done > 0 })
			return sb
		}

		sb := launch(svc)
		if _, err := svc.Stop(ctx, sme(), sb.ID); err != nil {
			t.Fatal(err)
		}
		svc.Wait() // the provisioning ends with the stop, though the registry still holds the layer
		got := waitRow(t, db, sb.ID, func(sb Sandbox) bool { return sb.Terminal() })
		if p, _ := got.ProgressOf(); got.State != StateStopped || got.StopReason != ReasonUser || got.StartedAt != nil || p.Phase != PhasePulling {
			t.Fatalf("stopped during its pull: %+v", got)
		}
		checkReleased(t, db, stand.Backend, sb.ID, StateStopped)

		// Shutdown while a pull is held: Run returns; the sandbox stays provisioning until the next start.
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(rctx) }()
		sb = launch(svc)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run waited for the image pull")
		}
		if got := waitRow(t, db, sb.ID, func(Sandbox) bool { return true }); got.State != StateProvisioning {
			t.Fatalf("after shutdown during the pull: %s", got.State)
		}
		restarted, err := New(Deps{DB: db, Clock: clock.System{}, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"local": stand}, Images: images})
		if err != nil {
			t.Fatal(err)
		}
		if err := restarted.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if err := restarted.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if got := waitRow(t, db, sb.ID, func(sb Sandbox) bool { return sb.Terminal() }); got.StopReason != ReasonInterrupted {
			t.Fatalf("after the restart: %s %s", got.State, got.StopReason)
		}
		checkReleased(t, db, stand.Backend, sb.ID, StateFailed)

		// The pull both sandboxes abandoned went on in the image cache for whoever asks next; cut it now
		// (and wait for its end), the test has seen what it needs.
		hold.cut()
		if _, err := images.Rootfs(ctx, "shell", nil, nil); err == nil {
			t.Fatal("the cut pull succeeded")
		}
	})
}

// TestImageProgressShape pins the JSON of a sandbox whose image is being pulled.
func TestImageProgressShape(t *testing.T) {
	db := dbtestOpenSQLite(t)
	clk := clock.NewManual(t0)
	pulling := &heldImages{p: image.Progress{Ref: "registry.test/tamarack/shell@sha256:" + strings.Repeat("5e", 32),
		Phase: image.PhasePulling, Done: 12 << 20, Total: 23 << 20}, release: make(chan struct{})}
	svc, listing := newImageTestbed(t, db, clk, simLocal{sim.New(clk)}, pulling)
	sb, err := svc.Launch(context.Background(), sme(), LaunchInput{ListingID: listing, GPUModel: "l4-24gb", GPUCount: 1, Template: "shell", DurationMinutes: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Wait()
	defer close(pulling.release)
	waitRow(t, db, sb.ID, func(sb Sandbox) bool { return sb.Progress != "" })
	app, sign := newApp(t, svc)
	req := httptest.NewRequest("GET", "/api/v1/testbed/sandboxes/"+sb.ID, nil)
	req.Header.Set("Authorization", "Bearer "+sign.token(t, sme()))
	res, err := app.Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	golden(t, "sandbox_pulling", b)

	// No output while the image is pulled: the logs say it is starting, not that they are gone.
	var prob map[string]any
	if code := apiDo(t, app, "GET", "/sandboxes/"+sb.ID+"/logs", sign.token(t, sme()), "", &prob); code != 409 ||
		prob["code"] != "sandbox_not_running" || !strings.Contains(fmt.Sprint(prob["detail"]), "starting") {
		t.Fatalf("logs while pulling: %d %v", code, prob)
	}
}

// TestProgressWritesAreBounded: however often a pull reports, its progress is written at most once per
// progressInterval (plus the first write), and the newest value is what is written.
func TestProgressWritesAreBounded(t *testing.T) {
	db := dbtestOpenSQLite(t)
	f := newFixture(t, db, 1, 1, Options{})
	sb := f.launch(t, sme(), 1, 10)
	if err := db.Model(&Sandbox{}).Where("id = ?", sb.ID).Update("state", StateProvisioning).Error; err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	writes := 0
	if err := db.Callback().Update().After("gorm:update").Register("count_progress", func(tx *gorm.DB) {
		if _, ok := tx.Statement.Dest.(map[string]any)["progress"]; ok && tx.Statement.Table == "testbed_sandboxes" {
			mu.Lock()
			writes++
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	w := f.svc.newProgressWriter(sb.ID)
	start := time.Now()
	const n = 20_000
	for i := range n {
		w.report(image.Progress{Ref: "r.test/x@sha256:" + strings.Repeat("0", 64), Phase: image.PhasePulling, Done: int64(i + 1), Total: n})
	}
	// The last value is written within an interval.
	got := waitRow(t, db, sb.ID, func(sb Sandbox) bool { p, _ := sb.ProgressOf(); return p.Done == n })
	w.close()
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if most := 2 + int(elapsed/progressInterval); writes < 1 || writes > most {
		t.Fatalf("%d progress writes for %d reports in %v; at most %d", writes, n, elapsed, most)
	}
	if p, _ := got.ProgressOf(); p.Phase != PhasePulling || p.Total != n || p.Digest != "sha256:"+strings.Repeat("0", 64) {
		t.Fatalf("progress %+v", p)
	}
}

// The image's environment is under the template's, and the testbed's own variables win over both; the
// template's command is used, the image's entrypoint and command only when the template has none.
func TestImageSpec(t *testing.T) {
	s := &Service{}
	sb := Sandbox{ID: "sb-1", Template: "pytorch", GPUModel: "h100-80gb", Devices: "[]"}
	root := image.Rootfs{Path: "/images/roots/abc/rootfs", Config: image.Config{
		Env: []string{"PATH=/opt/bin:/usr/bin", "LANG=C.UTF-8", "PYTHONUNBUFFERED=0", "TAMARACK_SANDBOX_ID=image", "BROKEN"},
		Cmd: []string{"/bin/bash"}}}
	spec := withImage(s.spec(sb, Pool{}), root)
	want := map[string]string{"PATH": "/opt/bin:/usr/bin", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color",
		"TAMARACK_SANDBOX_ID": "sb-1", "TAMARACK_GPU_MODEL": "h100-80gb", "TAMARACK_PROXY_BASE": "/api/v1/testbed/sandboxes/sb-1/proxy/0/"}
	if fmt.Sprint(spec.Env) != fmt.Sprint(want) || spec.RootFS != root.Path || spec.Command[0] != "/bin/sh" {
		t.Fatalf("spec env %v, root %q, command %q", spec.Env, spec.RootFS, spec.Command)
	}
	spec.Command = nil
	root.Config.Entrypoint = []string{"/entry"}
	if got := withImage(spec, root).Command; fmt.Sprint(got) != "[/entry /bin/bash]" {
		t.Fatalf("command without the template's: %q", got)
	}
}

// The booked duration reaches the backend (Slurm makes it the job's time limit).
func TestSpecDuration(t *testing.T) {
	s := &Service{}
	sb := Sandbox{ID: "sb-1", Template: "pytorch", GPUModel: "h100-80gb", Devices: "[]", DurationMinutes: 90}
	if got := s.spec(sb, Pool{}).Duration; got != 90*time.Minute {
		t.Fatalf("spec duration %v, want 1h30m", got)
	}
}

// A try-it image without a command of its own runs its entrypoint where the backend gets the image (local,
// Slurm: withImage fills the command in, here or on the agent); the simulator shows what it would run.
func TestTryItCommandByBackend(t *testing.T) {
	s := &Service{}
	for kind, want := range map[string]string{"local": "[]", "slurm": "[]", "simulator": "[<entrypoint of ghcr.io/x/y:1>]"} {
		sb := Sandbox{ID: "sb-1", Template: "tryit", Backend: kind, Devices: "[]", ImageListingID: "lst-img", Image: "ghcr.io/x/y:1"}
		if got := fmt.Sprint(s.spec(sb, Pool{}).Command); got != want {
			t.Errorf("%s: command %s, want %s", kind, got, want)
		}
	}
}

// Each kind of image error is told apart for the sandbox's owner.
func TestImageFailure(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{fmt.Errorf("x: %w", image.ErrNotPinned), ReasonImageNotAllowed},
		{fmt.Errorf("x: %w", image.ErrNotAllowed), ReasonImageNotAllowed},
		{fmt.Errorf("x: %w", image.ErrVerify), ReasonImageInvalid},
		{fmt.Errorf("x: %w", image.ErrUnsafe), ReasonImageInvalid},
		{fmt.Errorf("x: %w", image.ErrUnsupported), ReasonImageInvalid},
		{fmt.Errorf("x: %w", image.ErrTooLarge), ReasonImageInvalid},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), ReasonImageUnavailable},
		{fmt.Errorf("not pulled and unpacked within 30m0s: %w", context.DeadlineExceeded), ReasonImageUnavailable},
	} {
		reason, msg := imageFailure("python", tc.err)
		if reason != tc.reason || !strings.Contains(msg, "image python") || !strings.Contains(msg, tc.err.Error()) {
			t.Errorf("%v: %s %q, want %s", tc.err, reason, msg, tc.reason)
		}
	}
}

// simLocal stands in for the local backend where a test is about what happens before anything starts: the
// simulator runs nothing, but under the local backend's kind the testbed prepares images for it.
type simLocal struct{ *sim.Backend }

func (simLocal) Kind() string { return "local" }

// imageAs gives every template the root of another image: what a template naming that image would get.
type imageAs struct {
	Images
	img string
}

func (a imageAs) Rootfs(ctx context.Context, _ string, settings map[string]string, p func(image.Progress)) (image.Rootfs, error) {
	return a.Images.Rootfs(ctx, a.img, settings, p)
}

// heldImages reports one progress and waits until released (or its caller gives up).
type heldImages struct {
	p       image.Progress
	release chan struct{}
}

func (h *heldImages) Rootfs(ctx context.Context, _ string, _ map[string]string, progress func(image.Progress)) (image.Rootfs, error) {
	progress(h.p)
	select {
	case <-h.release:
		return image.Rootfs{Digest: "sha256:" + strings.Repeat("5e", 32), Path: "/nonexistent"}, nil
	case <-ctx.Done():
		return image.Rootfs{}, ctx.Err()
	}
}

// pullGate holds every blob the registry sends after its first MiB until open (a pull is seen half-way),
// or cuts it there once broken (the pull fails: nothing is unpacked).
type pullGate struct {
	ch     chan struct{}
	once   sync.Once
	broken atomic.Bool
}

func newPullGate() *pullGate { return &pullGate{ch: make(chan struct{})} }

func (g *pullGate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *pullGate) cut() {
	g.broken.Store(true)
	g.open()
}

func (g *pullGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = &heldWriter{ResponseWriter: w, gate: g, done: r.Context().Done()}
		}
		h.ServeHTTP(w, r)
	})
}

type heldWriter struct {
	http.ResponseWriter
	gate *pullGate
	done <-chan struct{}
	n    int
}

func (h *heldWriter) Write(p []byte) (int, error) {
	const free = 1 << 20
	written := 0
	if h.n < free && h.n+len(p) > free {
		k, err := h.ResponseWriter.Write(p[:free-h.n])
		h.n += k
		written += k
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	if h.n >= free {
		if f, ok := h.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-h.gate.ch:
		case <-h.done:
			return written, errors.New("client gone")
		}
		if h.gate.broken.Load() {
			return written, errors.New("cut by the test")
		}
	}
	k, err := h.ResponseWriter.Write(p)
	h.n += k
	return written + k, err
}

// newImageTestbed builds a testbed with one local pool (a node of four l4 devices) and a published listing
// on it, with images from images; it returns the service and the listing's ID.
func newImageTestbed(t *testing.T, db *gorm.DB, clk clock.Clock, b backend.Backend, images Images) (*Service, string) {
	t.Helper()
	ctx := context.Background()
	svc, err := New(Deps{DB: db, Clock: clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"local": b}, Images: images,
		Options: Options{StopGrace: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("Local %d", time.Now().UnixNano())
	p, err := svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: name, Region: "here", Backend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	in := AddNodeInput{Name: "this-host", CPUMillis: 64000, MemoryBytes: 256 << 30}
	for i := range 4 {
		in.Devices = append(in.Devices, DeviceInput{Index: i, GPUModel: "l4-24gb"})
	}
	if _, _, err := svc.AddNode(ctx, hostStaff(), p.ID, in); err != nil {
		t.Fatal(err)
	}
	listing := "lst-" + p.ID
	if err := svc.ApplyListing(ctx, "ev-"+listing, "published", events.ListingChangedV1{ListingID: listing, Version: 1,
		VendorOrgID: vendorOrg, Kind: "compute", At: clk.Now(), Compute: &events.ComputeV1{PoolID: p.ID,
			GPUModel: "l4-24gb", MaxDurationMinutes: 60, PricePerGPUHour: 900_000}}); err != nil {
		t.Fatal(err)
	}
	return svc, listing
}

// newLocalBackend is a local (runc) backend on a temporary root; what it runs is stopped with the test.
func newLocalBackend(t *testing.T) *local.Backend {
	t.Helper()
	lb, err := local.New(local.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RequireHost(t, lb.Check(context.Background()))
	t.Cleanup(func() {
		stopAll(lb)
		_ = lb.Close()
	})
	return lb
}

// checkReleased asserts that an ended sandbox holds no device, that its end event (billing releases the
// hold on it) is in the outbox without usage, and that the backend never ran it.
func checkReleased(t *testing.T, db *gorm.DB, b backend.Backend, id, state string) {
	t.Helper()
	var claims int64
	if err := db.Model(&DeviceClaim{}).Where("sandbox_id = ?", id).Count(&claims).Error; err != nil {
		t.Fatal(err)
	}
	if claims != 0 {
		t.Errorf("%s still claims %d devices", id, claims)
	}
	found := false
	for _, r := range outbox(t, db, events.SandboxSubject(state).Name) {
		var ev events.SandboxChangedV1
		if err := json.Unmarshal([]byte(r.Payload), &ev); err != nil {
			t.Fatal(err)
		}
		if r.ID == id+"-"+state && ev.LastSeq == 0 && ev.UsageMillis == 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no %s event without usage for %s", state, id)
	}
	if len(usageOf(t, db, id)) != 0 {
		t.Errorf("%s has usage samples", id)
	}
	if _, err := b.Inspect(context.Background(), id); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("the backend knows %s: %v", id, err)
	}
}

// waitRow polls a sandbox's row until ok.
func waitRow(t *testing.T, db *gorm.DB, id string, ok func(Sandbox) bool) Sandbox {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var sb Sandbox
		if err := db.First(&sb, "id = ?", id).Error; err != nil {
			t.Fatal(err)
		}
		if ok(sb) {
			return sb
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s: %s %s %q, progress %s", id, sb.State, sb.StopReason, sb.Message, sb.Progress)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func sandboxIDs(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	var ids []string
	if err := db.Model(&Sandbox{}).Where("state NOT IN ?", []string{StateStopped, StateFailed}).Pluck("id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}

func apiLaunch(t *testing.T, app *fiber.App, tok, listing, template string) sandboxJSON {
	t.Helper()
	body := fmt.Sprintf(`{"listing_id":%q,"gpu_model":"l4-24gb","gpu_count":1,"template":%q,"duration_minutes":10}`, listing, template)
	var sb sandboxJSON
	if code := apiDo(t, app, "POST", "/sandboxes", tok, body, &sb); code != 202 {
		t.Fatalf("launch %s: %d", template, code)
	}
	return sb
}

// apiWait polls GET /sandboxes/{id} until ok; a sandbox that fails first fails the test.
func apiWait(t *testing.T, app *fiber.App, tok, id string, ok func(sandboxJSON) bool) sandboxJSON {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var sb sandboxJSON
		if code := apiDo(t, app, "GET", "/sandboxes/"+id, tok, "", &sb); code != 200 {
			t.Fatalf("get %s: %d", id, code)
		}
		if ok(sb) {
			return sb
		}
		if sb.State == StateFailed || time.Now().After(deadline) {
			t.Fatalf("sandbox %s: %s %s %q, progress %+v", id, sb.State, sb.StopReason, sb.Message, sb.Progress)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func apiDo(t *testing.T, app *fiber.App, method, path, tok, body string, out any) int {
	t.Helper()
	req := httptest.NewRequest(method, "/api/v1/testbed"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := app.Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

// terminalRun runs cmd through the backend's terminal (the runtime's exec) and returns what it printed.
func terminalRun(t *testing.T, b backend.Backend, id string, cmd ...string) string {
	t.Helper()
	term, err := b.Terminal(context.Background(), id, cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out, err := io.ReadAll(term)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n")
}
