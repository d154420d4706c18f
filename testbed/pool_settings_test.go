package testbed

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
)

// TestPoolRuntimeSetting: a local pool chooses its sandboxes' runtime with settings.runtime, runc or
// runsc; anything else is refused when the pool is declared or changed, so a launch never finds out.
func TestPoolRuntimeSetting(t *testing.T) {
	if poolRuntime != local.SettingRuntime || !poolRuntimes[local.RuntimeRunc] || !poolRuntimes[local.RuntimeRunsc] {
		t.Fatalf("the testbed's runtime setting %q %v is not the local backend's %q", poolRuntime, poolRuntimes, local.SettingRuntime)
	}
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 1, 1, Options{})
		ctx := context.Background()
		// One pool per backend whose settings the cases below change.
		pools := map[string]Pool{}
		for _, b := range []string{"local", "kubernetes"} {
			p, err := f.svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "existing " + b, Region: "here", Backend: b})
			if err != nil {
				t.Fatal(err)
			}
			pools[b] = p
		}
		tests := []struct {
			name, backend string
			settings      map[string]string
			ok            bool
		}{
			{"local on runc by default", "local", map[string]string{}, true},
			{"local on runc", "local", map[string]string{"runtime": "runc"}, true},
			{"local on gVisor", "local", map[string]string{"runtime": "runsc"}, true},
			{"local on an unknown runtime", "local", map[string]string{"runtime": "kata"}, false},
			{"local on an empty runtime", "local", map[string]string{"runtime": ""}, false},
			{"other backends keep their own settings", "kubernetes", map[string]string{"runtime": "kata"}, true},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := CreatePoolInput{VendorOrgID: vendorOrg, Name: "pool " + string(rune('a'+i)), Region: "here", Backend: tt.backend, Settings: tt.settings}
				p, err := f.svc.CreatePool(ctx, hostStaff(), in)
				checkRuntimeSetting(t, err, tt.ok)
				if err == nil && p.SettingsMap()["runtime"] != tt.settings["runtime"] {
					t.Errorf("stored settings %v, want %v", p.SettingsMap(), tt.settings)
				}
				// The same rule when a pool's settings change.
				_, err = f.svc.UpdatePool(ctx, hostStaff(), pools[tt.backend].ID, UpdatePoolInput{Settings: tt.settings})
				checkRuntimeSetting(t, err, tt.ok)
			})
		}
		// The fixture's pool is a simulator pool: its settings are not the local backend's.
		if _, err := f.svc.UpdatePool(ctx, hostStaff(), f.pool.ID, UpdatePoolInput{Settings: map[string]string{"runtime": "kata"}}); err != nil {
			t.Errorf("UpdatePool(simulator, runtime kata) = %v, want accepted", err)
		}
	})
}

func checkRuntimeSetting(t *testing.T, err error, ok bool) {
	t.Helper()
	if ok {
		if err != nil {
			t.Errorf("refused: %v", err)
		}
		return
	}
	var p *problem.Problem
	if !errors.As(err, &p) || p.Code != "validation_failed" || len(p.Fields) != 1 || p.Fields[0].Field != "settings.runtime" || p.Fields[0].Code != "invalid" {
		t.Errorf("err = %v, want validation_failed on settings.runtime", err)
	}
}
