package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/image"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

const (
	modelVendor = "org-model-vendor"
	mapleImage  = "registry.test/aurora/maple-serve@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func modelVendorCaller() web.Principal {
	return web.Principal{UserID: "u-model-vendor", OrgID: modelVendor, OrgKind: "vendor", Role: web.RoleAdmin}
}

// publishModel projects a published model listing (version v) offering tryIt (nil: none).
func publishModel(t testing.TB, svc *Service, id string, v int, at time.Time, tryIt *events.TryItV1) {
	t.Helper()
	if err := svc.ApplyListing(context.Background(), fmt.Sprintf("ev-%s-%d", id, v), "published", events.ListingChangedV1{
		ListingID: id, VersionID: fmt.Sprintf("v%d", v), Version: v, VendorOrgID: modelVendor, Kind: "model", Title: "Maple 7B",
		At: at, TryIt: tryIt}); err != nil {
		t.Fatal(err)
	}
}

func allowImages(t testing.TB, svc *Service, poolID, allow string) {
	t.Helper()
	if _, err := svc.UpdatePool(context.Background(), hostStaff(), poolID, UpdatePoolInput{Settings: map[string]string{image.SettingAllow: allow}}); err != nil {
		t.Fatal(err)
	}
}

// TestTryItLaunch: a sandbox on a compute listing's pool runs a model listing's try-it image, with the
// listing's command and ports and the tryit profile's limits, for an organisation entitled to the model (its
// vendor and staff always). Without access the launch answers 403 access_required, for a listing without a
// try-it image (never offered, withdrawn by a newer version, retired, or restricted to others) 404
// image_listing_not_found, and on a pool whose allow-list lacks the image 422 image_not_allowed; nothing is
// held or recorded then.
func TestTryItLaunch(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		publishModel(t, f.svc, "lst-maple", 1, t0, &events.TryItV1{Image: mapleImage,
			Command: []string{"/usr/bin/serve", "--port", "8080"}, Ports: []int{8080, 9090}})
		in := LaunchInput{ListingID: f.listing.ID, GPUCount: 1, DurationMinutes: 10, ImageListingID: "lst-maple"}
		launch := func(c web.Principal, in LaunchInput) (Sandbox, error) {
			t.Helper()
			sb, err := f.svc.Launch(ctx, c, in)
			f.svc.Wait()
			return sb, err
		}
		sandboxes := func() int64 {
			var n int64
			if err := f.db.Model(&Sandbox{}).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}

		// The pool allows no such image yet: refused before anything is held or recorded.
		_, err := launch(sme(), in)
		if err == nil {
			t.Fatal("launched on a pool that does not allow the image")
		}
		if p := asProblem(t, err); !errors.Is(err, ErrAccessRequired) {
			t.Fatalf("without an entitlement, before the pool is looked at: %+v", p)
		}
		_, err = launch(modelVendorCaller(), in)
		if p := asProblem(t, err); p.Status != 422 || p.Code != "image_not_allowed" || p.Extra["image"] != mapleImage ||
			p.Extra["pool_id"] != f.pool.ID || !strings.Contains(p.Detail, "images.allow") {
			t.Fatalf("image not on the pool's allow-list: %+v", p)
		}
		if n := sandboxes(); n != 0 {
			t.Fatalf("%d sandboxes recorded for refused launches", n)
		}
		allowImages(t, f.svc, f.pool.ID, "registry.test/aurora/")

		// No access to the model: 403, saying how to get it; an entitlement opens it.
		_, err = launch(sme(), in)
		if p := asProblem(t, err); p.Status != 403 || p.Code != "access_required" || p.Extra["image_listing_id"] != "lst-maple" ||
			!strings.Contains(p.Detail, "/api/v1/marketplace/orders") {
			t.Fatalf("no entitlement to the model: %+v", p)
		}
		if err := f.svc.ApplyEntitlement(ctx, "ent-1", true, entitlementEvent(smeOrg, "lst-maple", t0)); err != nil {
			t.Fatal(err)
		}
		sb, err := launch(sme(), in)
		if err != nil {
			t.Fatal(err)
		}
		got := f.get(t, sb.ID)
		if got.State != StateRunning || got.Image != mapleImage || got.ImageListingID != "lst-maple" || got.Template != "tryit" ||
			got.CPUMillis != tryItTemplate.CPUMillisPerGPU || got.MemoryBytes != tryItTemplate.MemoryBytesPerGPU || got.ListingID != f.listing.ID {
			t.Fatalf("try-it sandbox: %+v", got)
		}
		logs, err := f.sim.Logs(ctx, sb.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(logs)
		logs.Close()
		if !strings.Contains(string(b), "/usr/bin/serve --port 8080") {
			t.Fatalf("the backend was not given the listing's command: %q", b)
		}
		if v, err := toSandboxJSON(got, f.clk.Now()); err != nil || v.ImageListingID != "lst-maple" || fmt.Sprint(v.Ports) != "[8080 9090]" || len(v.ProxyURLs) != 2 ||
			!strings.HasSuffix(v.ProxyURLs[0], "/proxy/8080/") {
			t.Fatalf("sandbox JSON: %+v, %v", v, err)
		}

		// A template chosen with the image sets the limits; the command and ports stay the listing's.
		in2 := in
		in2.Template = "shell"
		sb2, err := launch(sme(), in2)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.get(t, sb2.ID); got.Template != "shell" || got.CPUMillis != templates["shell"].CPUMillisPerGPU ||
			fmt.Sprint(got.template().Command) != "[/usr/bin/serve --port 8080]" || fmt.Sprint(got.template().Ports) != "[8080 9090]" {
			t.Fatalf("try-it sandbox with the shell template: %+v", got)
		}

		// The model's vendor and staff need no entitlement; another organisation does.
		programme := web.Principal{UserID: "u-programme", OrgID: "org-programme", Staff: true}
		for _, c := range []web.Principal{modelVendorCaller(), programme} {
			if _, err := launch(c, in); err != nil {
				t.Fatalf("%s: %v", c.UserID, err)
			}
		}
		if _, err := launch(other(), in); !errors.Is(err, ErrAccessRequired) {
			t.Fatalf("another organisation: %v", err)
		}

		// tryit needs an image listing; an unknown listing is not found.
		_, err = launch(sme(), LaunchInput{ListingID: f.listing.ID, GPUCount: 1, DurationMinutes: 10, Template: "tryit"})
		if p := asProblem(t, err); p.Code != "validation_failed" || len(p.Fields) != 1 || p.Fields[0].Code != "needs_image_listing" {
			t.Fatalf("tryit without an image listing: %+v", p)
		}
		for _, id := range []string{"lst-nope", f.listing.ID} { // a compute listing has no try-it image
			x := in
			x.ImageListingID = id
			if _, err := launch(sme(), x); !errors.Is(err, ErrImageListingNotFound) {
				t.Fatalf("image listing %s: %v", id, err)
			}
		}

		// A restricted model is not found for organisations it is not for, entitled or not.
		publishModel(t, f.svc, "lst-private", 1, t0, &events.TryItV1{Image: mapleImage, VisibleTo: []string{otherOrg}, Gated: true})
		if err := f.svc.ApplyEntitlement(ctx, "ent-2", true, entitlementEvent(smeOrg, "lst-private", t0)); err != nil {
			t.Fatal(err)
		}
		x := in
		x.ImageListingID = "lst-private"
		if _, err := launch(sme(), x); !errors.Is(err, ErrImageListingNotFound) {
			t.Fatalf("restricted to another organisation: %v", err)
		}
		_, err = launch(other(), x) // for it, but gated: it asks for access
		if p := asProblem(t, err); p.Code != "access_required" || !strings.Contains(p.Detail, "/access-requests") {
			t.Fatalf("gated model without access: %+v", p)
		}

		// A newer version withdraws the image; the older event delivered again later does not bring it back.
		publishModel(t, f.svc, "lst-maple", 2, t0.Add(time.Hour), nil)
		if err := f.svc.ApplyListing(ctx, "ev-late", "published", events.ListingChangedV1{ListingID: "lst-maple", Version: 1,
			VendorOrgID: modelVendor, Kind: "model", At: t0, TryIt: &events.TryItV1{Image: mapleImage}}); err != nil {
			t.Fatal(err)
		}
		if _, err := launch(sme(), in); !errors.Is(err, ErrImageListingNotFound) {
			t.Fatalf("after the image was withdrawn: %v", err)
		}
		// Offered again, then retired: gone.
		publishModel(t, f.svc, "lst-maple", 3, t0.Add(2*time.Hour), &events.TryItV1{Image: mapleImage})
		if _, err := launch(sme(), in); err != nil {
			t.Fatalf("offered again: %v", err)
		}
		if err := f.svc.ApplyListing(ctx, "ev-retired", "retired", events.ListingChangedV1{ListingID: "lst-maple", Version: 3,
			VendorOrgID: modelVendor, Kind: "model", At: t0.Add(3 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := launch(sme(), in); !errors.Is(err, ErrImageListingNotFound) {
			t.Fatalf("after retirement: %v", err)
		}
	})
}

// TestTryItHTTP: the launch form's view. GET /listings?image_listing_id= says which compute listings' pools
// allow the image; POST /sandboxes with image_listing_id answers 202 with the image and the listing's ports,
// 422 image_not_allowed on a pool without it, 403 access_required without access, 404 for an unknown listing.
func TestTryItHTTP(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		f.publish(t, "lst-closed", f.pool.ID, 1, 240) // same pool: allowed too once the pool allows it
		app, sign := newApp(t, f.svc)
		tok := sign.token(t, sme())
		publishModel(t, f.svc, "lst-maple", 1, t0, &events.TryItV1{Image: mapleImage, Ports: []int{8080}})
		if err := f.svc.ApplyEntitlement(context.Background(), "ent-1", true, entitlementEvent(smeOrg, "lst-maple", t0)); err != nil {
			t.Fatal(err)
		}
		allowed := func() map[string]bool {
			t.Helper()
			var page struct{ Items []listingJSON }
			if code := apiDo(t, app, "GET", "/listings?image_listing_id=lst-maple", tok, "", &page); code != 200 {
				t.Fatalf("listings: %d", code)
			}
			out := map[string]bool{}
			for _, l := range page.Items {
				if l.ImageAllowed == nil {
					t.Fatalf("listing %s without image_allowed", l.ID)
				}
				out[l.ID] = *l.ImageAllowed
			}
			return out
		}
		if got := allowed(); len(got) != 2 || got[f.listing.ID] || got["lst-closed"] {
			t.Fatalf("before the pool allows the image: %v", got)
		}
		var plain struct{ Items []map[string]any }
		apiDo(t, app, "GET", "/listings", tok, "", &plain)
		if _, ok := plain.Items[0]["image_allowed"]; ok {
			t.Fatalf("image_allowed without the parameter: %v", plain.Items[0])
		}
		var prob map[string]any
		if code := apiDo(t, app, "GET", "/listings?image_listing_id=lst-nope", tok, "", &prob); code != 404 || prob["code"] != "image_listing_not_found" {
			t.Fatalf("unknown image listing: %d %v", code, prob)
		}

		body := fmt.Sprintf(`{"listing_id":%q,"gpu_count":1,"duration_minutes":10,"image_listing_id":"lst-maple"}`, f.listing.ID)
		prob = nil
		if code := apiDo(t, app, "POST", "/sandboxes", tok, body, &prob); code != 422 || prob["code"] != "image_not_allowed" {
			t.Fatalf("launch on a pool without the image: %d %v", code, prob)
		}
		allowImages(t, f.svc, f.pool.ID, "registry.test/aurora/maple-serve")
		if got := allowed(); !got[f.listing.ID] || !got["lst-closed"] {
			t.Fatalf("after the pool allows the image: %v", got)
		}
		var sb sandboxJSON
		if code := apiDo(t, app, "POST", "/sandboxes", tok, body, &sb); code != 202 {
			t.Fatalf("launch: %d", code)
		}
		f.svc.Wait()
		if sb.Image != mapleImage || sb.ImageListingID != "lst-maple" || sb.Template != "tryit" || fmt.Sprint(sb.Ports) != "[8080]" {
			t.Fatalf("launched: %+v", sb)
		}
		prob = nil
		if code := apiDo(t, app, "POST", "/sandboxes", sign.token(t, other()), body, &prob); code != 403 || prob["code"] != "access_required" {
			t.Fatalf("launch without access: %d %v", code, prob)
		}
		prob = nil
		if code := apiDo(t, app, "POST", "/sandboxes", tok, strings.Replace(body, "lst-maple", "lst-nope", 1), &prob); code != 404 ||
			prob["code"] != "image_listing_not_found" {
			t.Fatalf("launch with an unknown image listing: %d %v", code, prob)
		}
	})
}

// TestTryItRunsTheImage launches a try-it sandbox on a local (runc) pool: the testbed pulls the model
// listing's image from a registry over the distribution API (a vendor repository the pool's allow-list
// names), unpacks it and runs the listing's command in it. The shell image stands in for a vendor's image.
func TestTryItRunsTheImage(t *testing.T) {
	build := imagetest.Build(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal(err)
	}
	reg := imagetest.Serve(t, build, nil)
	list, err := image.ReadBuiltin(filepath.Join(build, image.BuildListFile))
	if err != nil {
		t.Fatal(err)
	}
	shell, err := image.ReadLayout(filepath.Join(build, list["shell"].Layout), list["shell"].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Store.Push(context.Background(), "aurora/maple", "v1", shell); err != nil {
		t.Fatal(err)
	}
	vendorImage := reg.Host + "/aurora/maple@" + list["shell"].Digest
	images, _ := reg.Provider(t)

	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		lb := newLocalBackend(t)
		svc, listing := newImageTestbed(t, db, clock.System{}, lb, images)
		var l Listing
		if err := db.First(&l, "id = ?", listing).Error; err != nil {
			t.Fatal(err)
		}
		allowImages(t, svc, l.PoolID, reg.Host+"/aurora/")
		publishModel(t, svc, "lst-maple", 1, time.Now(), &events.TryItV1{Image: vendorImage,
			Command: []string{"/bin/sh", "-c", "echo \"maple serving in $TAMARACK_SANDBOX_ID\"; . /etc/os-release; echo \"on $ID\"; exec sleep infinity"}})
		if err := svc.ApplyEntitlement(ctx, "ent-1", true, entitlementEvent(smeOrg, "lst-maple", time.Now())); err != nil {
			t.Fatal(err)
		}
		app, sign := newApp(t, svc)
		tok := sign.token(t, sme())
		body := fmt.Sprintf(`{"listing_id":%q,"gpu_count":1,"duration_minutes":10,"image_listing_id":"lst-maple"}`, listing)
		var sb sandboxJSON
		if code := apiDo(t, app, "POST", "/sandboxes", tok, body, &sb); code != 202 {
			t.Fatalf("launch: %d", code)
		}
		defer func() {
			_, _ = svc.Stop(ctx, sme(), sb.ID)
			svc.Wait()
		}()
		running := apiWait(t, app, tok, sb.ID, func(v sandboxJSON) bool { return v.State == StateRunning })
		if running.Image != vendorImage || running.ImageDigest != list["shell"].Digest {
			t.Fatalf("running: image %q digest %q", running.Image, running.ImageDigest)
		}
		want := "maple serving in " + sb.ID + "\non debian\n"
		deadline := time.Now().Add(30 * time.Second)
		for {
			logs, err := lb.Logs(ctx, sb.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(logs)
			logs.Close()
			if strings.Contains(string(b), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the sandbox's output %q lacks %q", b, want)
			}
			time.Sleep(10 * time.Millisecond) // polling with a deadline
		}
	})
}
