package testbed

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLaunchSaysRequiredAndDefaultsTheGPUModel: a launch without a field it needs answers that field with code
// required (without gpu_model it said unknown_gpu_model, "unknown GPU model": issue 9, item 6), and gpu_model
// may be left out: a compute listing offers one GPU model, so that one is used.
func TestLaunchSaysRequiredAndDefaultsTheGPUModel(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		launch := func(body string) (int, map[string]any) {
			t.Helper()
			req := httptest.NewRequest("POST", "/api/v1/testbed/sandboxes", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+sign.token(t, sme()))
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			out := map[string]any{}
			_ = json.NewDecoder(res.Body).Decode(&out)
			f.svc.Wait()
			return res.StatusCode, out
		}
		fields := func(out map[string]any) map[string]string {
			got := map[string]string{}
			fl, _ := out["fields"].([]any)
			for _, x := range fl {
				m := x.(map[string]any)
				got[m["field"].(string)] = m["code"].(string)
			}
			return got
		}

		code, out := launch(`{}`)
		want := map[string]string{"listing_id": "required", "gpu_count": "required", "template": "required", "duration_minutes": "required"}
		if got := fields(out); code != 422 || len(got) != len(want) {
			t.Fatalf("empty launch: %d %v", code, out)
		} else {
			for k, v := range want {
				if got[k] != v {
					t.Errorf("empty launch: field %s has code %q, want %q: %v", k, got[k], v, out)
				}
			}
		}
		code, out = launch(`{"listing_id":"lst-h100","gpu_model":"h900-1tb","gpu_count":-1,"template":"vim","duration_minutes":-5}`)
		if got := fields(out); code != 422 || got["gpu_model"] != "unknown_gpu_model" || got["gpu_count"] != "too_small" ||
			got["template"] != "unknown_template" || got["duration_minutes"] != "too_small" {
			t.Fatalf("bad values: %d %v", code, out)
		}

		code, out = launch(`{"listing_id":"lst-h100","gpu_count":1,"template":"shell","duration_minutes":10}`)
		if code != 202 || out["gpu_model"] != "h100-80gb" {
			t.Fatalf("launch without gpu_model: %d %v", code, out)
		}
		if sb := f.get(t, out["id"].(string)); sb.GPUModel != "h100-80gb" || sb.State != StateRunning {
			t.Fatalf("sandbox launched without gpu_model: %s %s", sb.GPUModel, sb.State)
		}
	})
}

// TestNoCapacityNodeTooSmall: a template that asks more CPU or memory per GPU than any node of the pool
// has is refused with a detail that says so (no wait would help), not as if the devices were busy.
func TestNoCapacityNodeTooSmall(t *testing.T) {
	eachFixture(t, 1, 8, Options{}, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		p, err := f.svc.CreatePool(ctx, hostStaff(), CreatePoolInput{VendorOrgID: vendorOrg, Name: "Small", Region: "ca-montreal", Backend: "simulator"})
		if err != nil {
			t.Fatal(err)
		}
		in := AddNodeInput{Name: "small", CPUMillis: 2000, MemoryBytes: 64 << 30, Devices: []DeviceInput{{Index: 0, GPUModel: "h100-80gb"}}}
		if _, _, err := f.svc.AddNode(ctx, hostStaff(), p.ID, in); err != nil {
			t.Fatal(err)
		}
		f.publish(t, "lst-small", p.ID, 1, 240)
		launch := func(template string) (Sandbox, error) {
			return f.svc.Launch(ctx, sme(), LaunchInput{ListingID: "lst-small", GPUModel: "h100-80gb", GPUCount: 1, Template: template, DurationMinutes: 10})
		}
		_, err = launch("pytorch") // 4 CPUs per GPU
		pr := asProblem(t, err)
		if pr.Code != "no_capacity" || !strings.Contains(pr.Detail, "needs 4 CPU and 16 GiB of memory") ||
			!strings.Contains(pr.Detail, "largest node of the pool with that many has 2 CPU and 64 GiB") || pr.Extra["next_free_at"] != nil {
			t.Fatalf("pytorch on a 2-CPU node: %+v", pr)
		}
		if _, err := launch("shell"); err != nil { // 2 CPUs per GPU: fits
			t.Fatalf("shell on a 2-CPU node: %v", err)
		}
		f.svc.Wait()
		// Busy, not too small: the usual answer.
		_, err = launch("shell")
		if pr := asProblem(t, err); pr.Code != "no_capacity" || strings.Contains(pr.Detail, "largest node") {
			t.Fatalf("shell on the busy node: %+v", pr)
		}
	})
}
