package testbed

import (
	"errors"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// A pool's images.* settings (allow-list, registry credentials) are the programme's to keep: its vendor may
// change the other settings, not those.
func TestPoolImageSettingsAreKeptByStaff(t *testing.T) {
	eachFixture(t, 1, 1, Options{}, func(t *testing.T, f *fixture) {
		ctx := t.Context()
		allow := map[string]string{"images.allow": "ghcr.io/acme/", "images.auth.ghcr.io": "bot:token"}
		if _, err := f.svc.UpdatePool(ctx, vendor(), f.pool.ID, UpdatePoolInput{Settings: allow}); !errors.Is(err, ErrImageSettingsStaff) {
			t.Fatalf("vendor sets images.allow: %v, want %v", err, ErrImageSettingsStaff)
		}
		if _, err := f.svc.UpdatePool(ctx, hostStaff(), f.pool.ID, UpdatePoolInput{Settings: allow}); err != nil {
			t.Fatalf("staff sets images.allow: %v", err)
		}
		// The vendor changes another setting and sends the image settings back as they are.
		mine := map[string]string{"partition": "gpu", "images.allow": "ghcr.io/acme/", "images.auth.ghcr.io": "bot:token"}
		if _, err := f.svc.UpdatePool(ctx, vendor(), f.pool.ID, UpdatePoolInput{Settings: mine}); err != nil {
			t.Fatalf("vendor keeps the image settings: %v", err)
		}
		if _, err := f.svc.UpdatePool(ctx, vendor(), f.pool.ID, UpdatePoolInput{Settings: map[string]string{"partition": "gpu"}}); !errors.Is(err, ErrImageSettingsStaff) {
			t.Fatalf("vendor drops the allow-list: %v", err)
		}
		_, err := f.svc.UpdatePool(ctx, hostStaff(), f.pool.ID, UpdatePoolInput{Settings: map[string]string{"images.allow": "ghcr.io/acme/x:latest"}})
		if p, ok := problem.From(err); !ok || p.Code != "validation_failed" {
			t.Fatalf("a tag in the allow-list: %v, want validation_failed", err)
		}
		if _, err := f.svc.CreatePool(ctx, vendor(), CreatePoolInput{Name: "Vendor pool", Region: "eu", Backend: "slurm",
			Settings: map[string]string{"images.allow": "ghcr.io/"}}); !errors.Is(err, ErrImageSettingsStaff) {
			t.Fatalf("vendor creates a pool with an allow-list: %v", err)
		}
	})
}
