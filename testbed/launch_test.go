package testbed

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
)

// TestLaunchSaysRequiredAndDefaultsTheGPUModel: a launch without a field it needs answers that field with code
// required (without gpu_model it said unknown_gpu_model, "unknown GPU model": issue 9, item 6), and gpu_model
// may be left out: a compute listing offers one GPU model, so that one is used.
func TestLaunchSaysRequiredAndDefaultsTheGPUModel(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 1, 8, Options{})
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
