package testbed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/artifact"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// fakeMarketplace answers artifact links as the marketplace does (marketplace.ArtifactLinks has its own
// tests): the listing's files for the organisations in entitled, 403 access_required (gated) for others, 404
// for unknown listings; the links point at its own blob server, which counts the fetches.
type fakeMarketplace struct {
	srv      *httptest.Server
	files    map[string][]byte // name → bytes, of listing "lst-weights"
	entitled map[string]bool
	mu       sync.Mutex
	fetches  atomic.Int64
}

func newFakeMarketplace(t *testing.T, files map[string][]byte, entitled ...string) *fakeMarketplace {
	m := &fakeMarketplace{files: files, entitled: map[string]bool{}}
	for _, o := range entitled {
		m.entitled[o] = true
	}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/blob/")
		b, ok := m.files[name]
		if !ok || r.URL.Query().Get("sig") != "ok" {
			http.Error(w, "invalid_signature", http.StatusForbidden)
			return
		}
		m.fetches.Add(1)
		_, _ = w.Write(b)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMarketplace) ArtifactLinks(_ context.Context, r events.ArtifactLinksV1) (events.ArtifactLinksReplyV1, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case r.ListingID != "lst-weights":
		return events.ArtifactLinksReplyV1{}, problem.New(404, "listing_not_found", "No such listing.")
	case !m.entitled[r.OrganizationID] && !r.Staff:
		return events.ArtifactLinksReplyV1{}, problem.New(403, "access_required", "Your organisation has no access to model \"Weights\".").
			WithExtra("gated", true)
	}
	out := events.ArtifactLinksReplyV1{ListingID: r.ListingID, Kind: "model", Title: "Weights", Version: 1}
	for name, b := range m.files {
		sum := sha256.Sum256(b)
		out.Artifacts = append(out.Artifacts, events.ArtifactLinkV1{ArtifactID: "art-" + name, Name: name,
			SHA256: hex.EncodeToString(sum[:]), SizeBytes: int64(len(b)), URL: m.srv.URL + "/blob/" + name + "?sig=ok"})
	}
	return out, nil
}

// TestArtifactsMountedReadOnly launches real runc sandboxes with a model's artifacts: the sandbox reads the
// file at /artifacts/<listing>/, cannot write there (read-only mount), a second sandbox of the same listing
// version downloads nothing again (cached by digest), and once both ended the cache holds nothing.
func TestArtifactsMountedReadOnly(t *testing.T) {
	images, _ := imagetest.Serve(t, imagetest.Build(t), nil).Provider(t)
	db := dbtest.Open(t, sqldb.SQLite, migrations()...)
	ctx := context.Background()
	lb, err := local.New(local.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RequireHost(t, lb.Check(ctx)) // fails under TAMARACK_TEST_SANDBOX=required, else skips loudly
	t.Cleanup(func() { stopAll(lb); _ = lb.Close() })
	weights := []byte("maple-7b weights v1\n")
	mkt := newFakeMarketplace(t, map[string][]byte{"weights.txt": weights, "config.json": []byte(`{"layers":2}`)}, smeOrg)
	cache, err := artifact.New(artifact.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Deps{DB: db, Clock: clock.System{}, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"local": lb},
		Images: images, Links: mkt, Artifacts: cache, Options: Options{StopGrace: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	listing := localPoolListing(t, svc)
	app, sign := newApp(t, svc)
	tok := sign.token(t, sme())
	body := fmt.Sprintf(`{"listing_id":%q,"gpu_count":1,"duration_minutes":10,"template":"shell","mount_listing_id":"lst-weights"}`, listing)
	launch := func() sandboxJSON {
		t.Helper()
		var sb sandboxJSON
		if code := apiDo(t, app, "POST", "/sandboxes", tok, body, &sb); code != 202 {
			t.Fatalf("launch: %d %+v", code, sb)
		}
		if sb.ArtifactsPath != "/artifacts/lst-weights" || len(sb.Artifacts) != 2 || sb.MountListingID != "lst-weights" {
			t.Fatalf("launched sandbox's artifacts: %+v", sb)
		}
		return apiWait(t, app, tok, sb.ID, func(v sandboxJSON) bool { return v.State == StateRunning })
	}
	run := func(id, script string) (string, string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := lb.Exec(ctx, id, []string{"/bin/sh", "-c", script}, nil, &out, &errb)
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}

	first := launch()
	if out, errOut, code := run(first.ID, "cat /artifacts/lst-weights/weights.txt"); code != 0 || out != string(weights) {
		t.Fatalf("read the artifact: exit %d, %q, %q", code, out, errOut)
	}
	if _, errOut, code := run(first.ID, "echo tampered > /artifacts/lst-weights/weights.txt"); code == 0 || !strings.Contains(errOut, "Read-only file system") {
		t.Fatalf("write to the artifact: exit %d, %q; want refused (read-only)", code, errOut)
	}
	if _, errOut, code := run(first.ID, "touch /artifacts/lst-weights/new"); code == 0 || !strings.Contains(errOut, "Read-only file system") {
		t.Fatalf("create beside the artifacts: exit %d, %q; want refused (read-only)", code, errOut)
	}
	if out, _, _ := run(first.ID, "cat /artifacts/lst-weights/weights.txt"); out != string(weights) {
		t.Fatalf("artifact after the refused writes: %q", out)
	}
	if n := mkt.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches for the first sandbox; want 2 (one per file)", n)
	}

	second := launch()
	if out, _, code := run(second.ID, "cat /artifacts/lst-weights/config.json"); code != 0 || out != `{"layers":2}` {
		t.Fatalf("second sandbox reads config.json: exit %d, %q", code, out)
	}
	if n := mkt.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the second sandbox; want still 2 (cached by digest)", n)
	}

	for _, sb := range []sandboxJSON{first, second} {
		if _, err := svc.Stop(ctx, sme(), sb.ID); err != nil {
			t.Fatal(err)
		}
		apiWait(t, app, tok, sb.ID, func(v sandboxJSON) bool { return v.State == StateStopped })
	}
	svc.Wait()
	if files, err := cache.Files(); err != nil || len(files) != 0 {
		t.Fatalf("cache after both sandboxes ended: %v, %v; want empty", files, err)
	}
}

// localPoolListing declares a local pool of this host with four l4 devices and publishes its compute listing.
func localPoolListing(t *testing.T, svc *Service) string {
	t.Helper()
	ctx := context.Background()
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "Local artifacts", Region: "here", Backend: "local"})
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
	if err := svc.ApplyListing(ctx, "ev-lst-local", "published", events.ListingChangedV1{ListingID: "lst-local", Version: 1,
		VendorOrgID: vendorOrg, Kind: "compute", At: time.Now(), Compute: &events.ComputeV1{PoolID: p.ID,
			GPUModel: "l4-24gb", MaxDurationMinutes: 60, PricePerGPUHour: 900_000}}); err != nil {
		t.Fatal(err)
	}
	return "lst-local"
}

// TestMountRefusals: a launch with mount_listing_id is refused before anything is held or placed when the
// organisation has no access to the listing's files (403 access_required saying how to get it), when the
// listing is unknown or not visible (404 mount_listing_not_found), when the compute listing's pool runs on a
// backend that cannot mount files (422 artifacts_mount_unsupported), and when the marketplace does not answer
// (503 artifacts_unavailable). A Slurm or Kubernetes backend handed mounts anyway refuses them (not_supported).
func TestMountRefusals(t *testing.T) {
	eachFixture(t, 1, 2, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		mkt := newFakeMarketplace(t, map[string][]byte{"weights.txt": []byte("w")}, smeOrg)
		f.svc.links = mkt
		in := LaunchInput{ListingID: f.listing.ID, GPUCount: 1, DurationMinutes: 10, Template: "shell", MountListingID: "lst-weights"}

		_, err := f.svc.Launch(ctx, other(), in)
		p := asProblem(t, err)
		if p.Status != 403 || p.Code != "access_required" || p.Extra["mount_listing_id"] != "lst-weights" ||
			!strings.Contains(p.Detail, "/api/v1/marketplace/listings/lst-weights/access-requests") {
			t.Fatalf("launch without access: %+v", p)
		}
		bad := in
		bad.MountListingID = "lst-nope"
		if p := asProblem(t, first(f.svc.Launch(ctx, sme(), bad))); p.Status != 404 || p.Code != "mount_listing_not_found" {
			t.Fatalf("unknown listing: %+v", p)
		}
		var held int64
		if err := f.db.Model(&Sandbox{}).Count(&held).Error; err != nil || held != 0 {
			t.Fatalf("%d sandboxes recorded by refused launches (%v)", held, err)
		}

		// The simulator "mounts": the sandbox runs, and says what it sees where.
		sb, err := f.svc.Launch(ctx, sme(), in)
		if err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		if got, err := f.svc.Get(ctx, sme(), sb.ID); err != nil || got.State != StateRunning || len(got.MountedFiles()) != 1 {
			t.Fatalf("simulated sandbox with mounts: %+v, %v", got, err)
		}

		// A pool on Slurm cannot mount the files: refused, whatever else it could do.
		sp, err := f.svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "Cluster", Region: "ca", Backend: "slurm"})
		if err != nil {
			t.Fatal(err)
		}
		f.publish(t, "lst-slurm", sp.ID, 1, 60)
		onSlurm := in
		onSlurm.ListingID = "lst-slurm"
		if p := asProblem(t, first(f.svc.Launch(ctx, sme(), onSlurm))); p.Status != 422 || p.Code != "artifacts_mount_unsupported" || p.Extra["backend"] != "slurm" {
			t.Fatalf("launch with mounts on a Slurm pool: %+v", p)
		}

		f.svc.links = noAnswer{}
		if p := asProblem(t, first(f.svc.Launch(ctx, sme(), in))); p.Status != 503 || p.Code != "artifacts_unavailable" {
			t.Fatalf("marketplace silent: %+v", p)
		}
	})
	spec := backend.Spec{SandboxID: "s1", Command: []string{"true"}, Mounts: []backend.Mount{{Source: "/var/cache/a", Target: "/artifacts/lst-weights"}}}
	for _, kind := range []string{"Slurm", "Kubernetes"} {
		if err := backend.RequireNoMounts(spec, kind); !errors.Is(err, backend.ErrNotSupported) {
			t.Fatalf("%s with mounts: %v; want not supported", kind, err)
		}
	}
	bad := spec
	bad.Mounts = []backend.Mount{{Source: "/var/cache/a", Target: "/home/sandbox/x"}}
	if err := bad.Validate(); !errors.Is(err, backend.ErrInvalidSpec) {
		t.Fatalf("a mount over the home: %v", err)
	}
}

type noAnswer struct{}

func (noAnswer) ArtifactLinks(context.Context, events.ArtifactLinksV1) (events.ArtifactLinksReplyV1, error) {
	return events.ArtifactLinksReplyV1{}, fmt.Errorf("call: %w", eventbus.ErrNoResponder)
}

func first[T any](_ T, err error) error { return err }

// TestRevokedAccessStopsMountingSandboxes: a revoked entitlement stops the organisation's sandboxes that mount the
// listing's files (reason access_revoked) once the marketplace no longer gives it those files. Its sandboxes
// without the mount run on, and so do the mounting ones while the marketplace still gives the files (another
// entitlement). A marketplace that does not answer refuses the event, so that its next delivery stops them.
func TestRevokedAccessStopsMountingSandboxes(t *testing.T) {
	eachFixture(t, 1, 4, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		mkt := newFakeMarketplace(t, map[string][]byte{"weights.txt": []byte("w")}, smeOrg)
		f.svc.links = mkt
		entitled := func(on bool) {
			mkt.mu.Lock()
			defer mkt.mu.Unlock()
			mkt.entitled[smeOrg] = on
		}
		in := LaunchInput{ListingID: f.listing.ID, GPUCount: 1, DurationMinutes: 10, Template: "shell", MountListingID: "lst-weights"}
		launch := func(in LaunchInput) string {
			t.Helper()
			sb, err := f.svc.Launch(ctx, sme(), in)
			if err != nil {
				t.Fatal(err)
			}
			f.svc.Wait()
			return sb.ID
		}
		state := func(id string) (string, string) {
			t.Helper()
			f.svc.Wait()
			sb, err := f.svc.Get(ctx, sme(), id)
			if err != nil {
				t.Fatal(err)
			}
			return sb.State, sb.StopReason
		}
		at := time.Now()
		revoke := func(eventID string) error {
			at = at.Add(time.Second)
			return f.svc.ApplyEntitlement(ctx, eventID, false, events.EntitlementChangedV1{EntitlementID: "ent-1",
				OrganizationID: smeOrg, ListingID: "lst-weights", Reason: "refunded", At: at})
		}
		mounting := launch(in)
		plainIn := in
		plainIn.MountListingID = ""
		plain := launch(plainIn)

		if err := revoke("ev-still-entitled"); err != nil {
			t.Fatal(err)
		}
		if st, _ := state(mounting); st != StateRunning {
			t.Fatalf("revoked while the marketplace still gives the files: mounting sandbox %s", st)
		}

		entitled(false)
		if err := revoke("ev-revoked"); err != nil {
			t.Fatal(err)
		}
		if st, why := state(mounting); st != StateStopped || why != ReasonAccessRevoked {
			t.Fatalf("mounting sandbox after the revocation: %s (%s), want stopped (%s)", st, why, ReasonAccessRevoked)
		}
		if st, _ := state(plain); st != StateRunning {
			t.Fatalf("sandbox without the mount after the revocation: %s, want running", st)
		}

		entitled(true)
		again := launch(in)
		entitled(false)
		f.svc.links = noAnswer{}
		if err := revoke("ev-unanswered"); err == nil {
			t.Fatal("revocation with the marketplace silent: accepted, want an error to be delivered again")
		}
		if st, _ := state(again); st != StateRunning {
			t.Fatalf("mounting sandbox after an unanswered revocation: %s, want running until the event comes again", st)
		}
		f.svc.links = mkt
		if err := revoke("ev-unanswered"); err != nil {
			t.Fatal(err)
		}
		if st, why := state(again); st != StateStopped || why != ReasonAccessRevoked {
			t.Fatalf("mounting sandbox when the revocation came again: %s (%s)", st, why)
		}
	})
}
