package testbed

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
	"github.com/tamarack-ai/tamarack/testbed/image"
	"github.com/tamarack-ai/tamarack/testbed/image/imagetest"
)

// TestPruneImages: past its budget, the host's image cache loses the images no live sandbox uses, and keeps
// the image of a running sandbox and an image a pool's allow-list pins by digest. While the cache is held (a
// pull), nothing is pruned (image.ErrBusy); under the budget nothing is either. The testbed's own loop
// (Run, every PruneInterval) does the same. Two vendor images stand in (the shell and python images under
// a vendor's repository; the provider lists no built-in image, which would always be kept).
func TestPruneImages(t *testing.T) {
	build := imagetest.Build(t)
	reg := imagetest.Serve(t, build, nil)
	list, err := image.ReadBuiltin(filepath.Join(build, image.BuildListFile))
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	for _, n := range []string{"shell", "python"} {
		img, err := image.ReadLayout(filepath.Join(build, list[n].Layout), list[n].Digest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Store.Push(context.Background(), "aurora/"+n, "v1", img); err != nil {
			t.Fatal(err)
		}
		refs[n] = reg.Host + "/aurora/" + n + "@" + list[n].Digest
	}

	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		provider, cache := reg.Provider(t)
		provider.Builtin = func() (image.Builtin, error) { return image.Builtin{}, nil }
		stand := simLocal{sim.New(clock.System{})}
		svc, listing := newImageTestbed(t, db, clock.System{}, stand, provider)
		var l Listing
		if err := db.First(&l, "id = ?", listing).Error; err != nil {
			t.Fatal(err)
		}
		allowImages(t, svc, l.PoolID, reg.Host+"/aurora/")
		launch := func(n string) Sandbox {
			t.Helper()
			publishModel(t, svc, "lst-"+n, 1, time.Now(), &events.TryItV1{Image: refs[n], Command: []string{"/bin/sh"}})
			sb, err := svc.Launch(ctx, modelVendorCaller(), LaunchInput{ListingID: listing, GPUCount: 1, DurationMinutes: 10, ImageListingID: "lst-" + n})
			if err != nil {
				t.Fatal(err)
			}
			svc.Wait()
			if got := waitRow(t, db, sb.ID, func(sb Sandbox) bool { return sb.State != StateProvisioning }); got.State != StateRunning {
				t.Fatalf("%s sandbox: %s %s %q", n, got.State, got.StopReason, got.Message)
			}
			return sb
		}
		shell, python := launch("shell"), launch("python")
		defer func() {
			_, _ = svc.Stop(ctx, modelVendorCaller(), shell.ID)
			svc.Wait()
		}()
		if _, err := svc.Stop(ctx, modelVendorCaller(), python.ID); err != nil {
			t.Fatal(err)
		}
		svc.Wait()
		before, err := cache.Usage()
		if err != nil || before.Roots != 2 {
			t.Fatalf("cache before pruning: %+v, %v", before, err)
		}

		// Under the budget: nothing to do.
		if res, err := svc.PruneImages(ctx, before.Bytes); err != nil || res.Pruned || res.Usage != before {
			t.Fatalf("under the budget: %+v, %v", res, err)
		}
		// A pull holds the cache: nothing is pruned.
		release, err := provider.Hold()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PruneImages(ctx, 1); !errors.Is(err, image.ErrBusy) {
			t.Fatalf("while a pull holds the cache: %v", err)
		}
		release()
		// An image a pool pins by digest is kept though no sandbox uses it.
		allowImages(t, svc, l.PoolID, reg.Host+"/aurora/ "+refs["python"])
		if res, err := svc.PruneImages(ctx, 1); err != nil || !res.Pruned || len(res.Report.Roots) != 0 {
			t.Fatalf("with the python image pinned by a pool: %+v, %v", res, err)
		}
		// Unpinned: the stopped sandbox's image goes, the running one's stays (and its sandbox with it).
		allowImages(t, svc, l.PoolID, reg.Host+"/aurora/")
		res, err := svc.PruneImages(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Pruned || !slices.Equal(res.Report.Roots, []string{list["python"].Digest}) || res.Report.Bytes == 0 {
			t.Fatalf("pruned %+v, want only %s", res, list["python"].Digest)
		}
		if after, _ := cache.Usage(); after.Roots != 1 || after.Bytes >= before.Bytes {
			t.Fatalf("cache after pruning: %+v (before %+v)", after, before)
		}
		if got := waitRow(t, db, shell.ID, func(Sandbox) bool { return true }); got.State != StateRunning {
			t.Fatalf("the running sandbox: %s", got.State)
		}
		if r, err := provider.Rootfs(ctx, refs["shell"], map[string]string{image.SettingAllow: reg.Host + "/aurora/"}, nil); err != nil ||
			r.Digest != list["shell"].Digest || cache.Unpacks() != 2 {
			t.Fatalf("the running sandbox's image: %+v, %v, %d unpacks (want it still there: 2)", r, err, cache.Unpacks())
		}
	})
}

// fakeCache is an image cache that is always over any budget and records what it was asked to keep.
type fakeCache struct {
	Images
	kept chan []string
}

func (fakeCache) Usage() (image.Usage, error) { return image.Usage{Roots: 1, Bytes: 1 << 62}, nil }
func (f fakeCache) Prune(keep func() ([]string, error)) (image.PruneReport, error) {
	list, err := keep()
	if err == nil {
		select {
		case f.kept <- list:
		default:
		}
	}
	return image.PruneReport{}, err
}

// TestPruneLoop: the running testbed looks at its image cache every PruneInterval and, over the budget,
// prunes it keeping the images of its live sandboxes (here a try-it sandbox of the simulator) and the images
// pools pin by digest.
func TestPruneLoop(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		publishModel(t, f.svc, "lst-maple", 1, t0, &events.TryItV1{Image: mapleImage})
		allowImages(t, f.svc, f.pool.ID, "registry.test/aurora/ registry.test/pinned/x@sha256:"+strings.Repeat("ab", 32))
		if _, err := f.svc.Launch(ctx, modelVendorCaller(), LaunchInput{ListingID: f.listing.ID, GPUCount: 1, DurationMinutes: 10,
			ImageListingID: "lst-maple"}); err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		fc := fakeCache{kept: make(chan []string, 1)}
		svc, err := New(Deps{DB: f.db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": f.sim},
			Images: fc, Options: Options{PruneInterval: 10 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(rctx) }()
		defer func() {
			cancel()
			<-done
		}()
		select {
		case kept := <-fc.kept:
			want := []string{mapleImage, "registry.test/pinned/x@sha256:" + strings.Repeat("ab", 32)} // sorted
			if !slices.Equal(kept, want) {
				t.Fatalf("kept %q, want %q", kept, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the testbed never pruned its image cache")
		}
	})
}
