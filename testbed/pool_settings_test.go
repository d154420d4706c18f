package testbed

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/testbed/backend/kubernetes"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
)

// TestPoolRuntimeSetting: a local pool chooses its sandboxes' runtime with settings.runtime, runc or
// runsc; anything else is refused when the pool is declared or changed, so a launch never finds out.
func TestPoolRuntimeSetting(t *testing.T) {
	if poolRuntime != local.SettingRuntime || !poolRuntimes[local.RuntimeRunc] || !poolRuntimes[local.RuntimeRunsc] {
		t.Fatalf("the testbed's runtime setting %q %v is not the local backend's %q", poolRuntime, poolRuntimes, local.SettingRuntime)
	}
	eachFixture(t, 1, 1, Options{}, func(t *testing.T, f *fixture) {
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

// TestPoolSlurmSettings: a Slurm pool overrides its agent's partition, account and QOS with Slurm names;
// anything else, or a slurm.* key the backend does not know, is refused when the pool is declared or changed.
func TestPoolSlurmSettings(t *testing.T) {
	if want := []string{slurm.SettingPartition, slurm.SettingAccount, slurm.SettingQOS}; !slices.Equal(slurmSettings, want) {
		t.Fatalf("the testbed's Slurm settings %v are not the Slurm backend's %v", slurmSettings, want)
	}
	eachFixture(t, 0, 0, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		existing, err := f.svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "existing slurm", Region: "here", Backend: "slurm"})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			settings map[string]string
			bad      []string // the fields refused, in order
		}{
			{"Slurm's defaults", map[string]string{}, nil},
			{"all three", map[string]string{"slurm.partition": "gpu-h100", "slurm.account": "tamarack_ai", "slurm.qos": "normal.v2"}, nil},
			{"with image settings beside", map[string]string{"slurm.partition": "gpu", "images.allow": "ghcr.io/acme/"}, nil},
			{"64 characters", map[string]string{"slurm.account": strings.Repeat("a", 64)}, nil},
			{"65 characters", map[string]string{"slurm.account": strings.Repeat("a", 65)}, []string{"settings.slurm.account"}},
			{"empty partition", map[string]string{"slurm.partition": ""}, []string{"settings.slurm.partition"}},
			{"a list of partitions", map[string]string{"slurm.partition": "gpu,debug"}, []string{"settings.slurm.partition"}},
			{"an option smuggled in", map[string]string{"slurm.qos": "normal --uid=0"}, []string{"settings.slurm.qos"}},
			{"a newline", map[string]string{"slurm.account": "a\n#SBATCH --uid=0"}, []string{"settings.slurm.account"}},
			{"an unknown slurm key", map[string]string{"slurm.reservation": "maint"}, []string{"settings.slurm.reservation"}},
			{"every problem at once", map[string]string{"slurm.qos": "", "slurm.nodelist": "gpu[1-4]", "slurm.partition": "gpu/"},
				[]string{"settings.slurm.nodelist", "settings.slurm.partition", "settings.slurm.qos"}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := CreatePoolInput{VendorOrgID: vendorOrg, Name: "slurm " + string(rune('a'+i)), Region: "here", Backend: "slurm", Settings: tt.settings}
				p, err := f.svc.CreatePool(ctx, hostStaff(), in)
				checkFieldErrors(t, err, tt.bad)
				if err == nil && !maps.Equal(p.SettingsMap(), tt.settings) {
					t.Errorf("stored settings %v, want %v", p.SettingsMap(), tt.settings)
				}
				_, err = f.svc.UpdatePool(ctx, hostStaff(), existing.ID, UpdatePoolInput{Settings: tt.settings})
				checkFieldErrors(t, err, tt.bad)
			})
		}
		// Other backends' slurm.* keys are theirs to ignore.
		if _, err := f.svc.UpdatePool(ctx, hostStaff(), f.pool.ID, UpdatePoolInput{Settings: map[string]string{"slurm.reservation": "x y"}}); err != nil {
			t.Errorf("UpdatePool(simulator, slurm.reservation) = %v, want accepted", err)
		}
	})
}

// TestPoolKubernetesSettings: a Kubernetes pool pins its namespace and chooses its RuntimeClass with names
// the API server would accept; anything else, or an unknown kubernetes.* key, is refused.
func TestPoolKubernetesSettings(t *testing.T) {
	if want := []string{kubernetes.SettingNamespace, kubernetes.SettingRuntimeClass}; !slices.Equal(slices.Sorted(maps.Keys(kubeSettings)), want) {
		t.Fatalf("the testbed's Kubernetes settings %v are not the Kubernetes backend's %v", slices.Sorted(maps.Keys(kubeSettings)), want)
	}
	eachFixture(t, 0, 0, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		tests := []struct {
			name     string
			settings map[string]string
			bad      []string
		}{
			{"the agent's defaults", map[string]string{}, nil},
			{"both", map[string]string{"kubernetes.namespace": "tamarack-h100", "kubernetes.runtime_class": "gvisor"}, nil},
			{"a dotted class", map[string]string{"kubernetes.runtime_class": "kata-qemu.example.com"}, nil},
			{"upper case namespace", map[string]string{"kubernetes.namespace": "Tamarack"}, []string{"settings.kubernetes.namespace"}},
			{"64 characters", map[string]string{"kubernetes.namespace": strings.Repeat("a", 64)}, []string{"settings.kubernetes.namespace"}},
			{"empty class", map[string]string{"kubernetes.runtime_class": ""}, []string{"settings.kubernetes.runtime_class"}},
			{"a dotted namespace", map[string]string{"kubernetes.namespace": "a.b"}, []string{"settings.kubernetes.namespace"}},
			{"an unknown key", map[string]string{"kubernetes.node_selector": "x=y"}, []string{"settings.kubernetes.node_selector"}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := CreatePoolInput{VendorOrgID: vendorOrg, Name: "kube " + string(rune('a'+i)), Region: "here", Backend: "kubernetes", Settings: tt.settings}
				_, err := f.svc.CreatePool(ctx, hostStaff(), in)
				checkFieldErrors(t, err, tt.bad)
			})
		}
	})
}

// checkFieldErrors asserts err is validation_failed on exactly the fields bad, each "invalid"; nil for none.
func checkFieldErrors(t *testing.T, err error, bad []string) {
	t.Helper()
	if len(bad) == 0 {
		if err != nil {
			t.Errorf("refused: %v", err)
		}
		return
	}
	var p *problem.Problem
	if !errors.As(err, &p) || p.Code != "validation_failed" {
		t.Fatalf("err = %v, want validation_failed on %v", err, bad)
	}
	var got []string
	for _, f := range p.Fields {
		got = append(got, f.Field)
		if f.Code != "invalid" {
			t.Errorf("field %s: code %s, want invalid", f.Field, f.Code)
		}
	}
	if !slices.Equal(got, bad) {
		t.Errorf("refused fields %v, want %v", got, bad)
	}
}
