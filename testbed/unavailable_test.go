package testbed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// TestUnavailableBackendSaysWhy: on a host without runc, a local pool's managers see why in the pool, and a
// launch on it answers 503 backend_unavailable with the backend's own words: what is missing and how to
// install it.
func TestUnavailableBackendSaysWhy(t *testing.T) {
	eachFixture(t, 1, 1, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		p, err := f.svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "Local pool", Region: "ca-montreal", Backend: "local"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.AddNode(ctx, hostStaff(), p.ID, AddNodeInput{Name: "host", CPUMillis: 1 << 20, MemoryBytes: 1 << 40,
			Devices: []DeviceInput{{Index: 0, GPUModel: "h100-80gb"}}}); err != nil {
			t.Fatal(err)
		}
		f.publish(t, "lst-local", p.ID, 1, 240)
		// What local.Backend.Check says on such a host.
		why := errors.Join(
			fmt.Errorf("%w: runc not found (\"\"): install it with `apt-get install runc`", backend.ErrUnavailable),
			fmt.Errorf("%w: tini-static not found (\"\"): install it with `apt-get install tini`", backend.ErrUnavailable))
		svc, err := New(Deps{DB: f.db, Clock: f.clk, Holds: ApproveHolds{}, Backends: map[string]backend.Backend{"simulator": f.sim},
			Unavailable: map[string]error{"local": why}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Load(ctx); err != nil {
			t.Fatal(err)
		}
		const want = "runc not found (\"\"): install it with `apt-get install runc`; tini-static not found (\"\"): install it with `apt-get install tini`"

		_, err = svc.Launch(ctx, sme(), LaunchInput{ListingID: "lst-local", GPUModel: "h100-80gb", GPUCount: 1, Template: "shell", DurationMinutes: 10})
		prob := asProblem(t, err)
		if prob.Status != 503 || prob.Code != "backend_unavailable" || !strings.HasSuffix(prob.Detail, "cannot start sandboxes on this host: "+want) {
			t.Errorf("launch = %d %s %q, want 503 backend_unavailable ending %q", prob.Status, prob.Code, prob.Detail, want)
		}

		view, _, _, err := svc.GetPool(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := toPoolJSONFor(vendor(), view).BackendProblem; got != want {
			t.Errorf("pool's manager sees backend_problem %q, want %q", got, want)
		}
		if got := toPoolJSONFor(sme(), view).BackendProblem; got != "" {
			t.Errorf("a customer sees the host's problem %q", got)
		}
		pools, err := svc.ListPools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range pools {
			if got := v.BackendProblem; (v.ID == p.ID) != (got != "") {
				t.Errorf("pool %s (%s) has backend problem %q", v.Name, v.Backend, got)
			}
		}
	})
}
