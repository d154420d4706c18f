package testbed

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestPoolPatchReportsCounts: the PATCH answer describes the pool as GET does, nodes and GPU counts included
// (it said "nodes":0 for a pool with nodes).
func TestPoolPatchReportsCounts(t *testing.T) {
	eachFixture(t, 2, 4, Options{}, func(t *testing.T, f *fixture) {
		f.launch(t, sme(), 1, 30) // one device busy: free_now differs from total
		app, sign := newApp(t, f.svc)
		do := func(method, body string) map[string]any {
			t.Helper()
			req := httptest.NewRequest(method, "/api/v1/testbed/pools/"+f.pool.ID, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+sign.token(t, vendor()))
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			out := map[string]any{}
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
				t.Fatalf("%s pool: %d %v %v", method, res.StatusCode, out, err)
			}
			return out
		}
		patched := do("PATCH", `{"region":"ca-quebec"}`)
		got := do("GET", "")
		if patched["nodes"] != float64(2) {
			t.Errorf("PATCH answered nodes=%v for a pool of 2 nodes", patched["nodes"])
		}
		for _, k := range []string{"nodes", "gpus", "region", "updated_at"} {
			if !reflect.DeepEqual(patched[k], got[k]) {
				t.Errorf("%s: PATCH answered %v, GET answers %v", k, patched[k], got[k])
			}
		}
	})
}
