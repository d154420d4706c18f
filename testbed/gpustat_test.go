package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/testbed/gpustat"
)

func TestAggregateGPU(t *testing.T) {
	t.Parallel()
	stats := []gpustat.Stat{{UUID: "GPU-a", UtilizationPct: 80, MemoryUsedMiB: 100, MemoryTotalMiB: 1000},
		{UUID: "GPU-b", UtilizationPct: 41, MemoryUsedMiB: 50, MemoryTotalMiB: 1000},
		{UUID: "GPU-other", UtilizationPct: 100, MemoryUsedMiB: 999, MemoryTotalMiB: 1000},
		{UUID: "GPU-mig", UtilizationPct: -1, MemoryUsedMiB: 7, MemoryTotalMiB: 10}}
	got, ok := aggregateGPU("sb", t0, []string{"GPU-a", "GPU-b", "GPU-mig"}, stats)
	want := GPUSample{SandboxID: "sb", At: t0, UtilizationPct: 61, MemoryUsedMiB: 157, MemoryTotalMiB: 2010}
	if !ok || got != want {
		t.Fatalf("got %+v %v, want %+v", got, ok, want)
	}
	if got, ok := aggregateGPU("sb", t0, []string{"GPU-mig"}, stats); !ok || got.UtilizationPct != -1 {
		t.Fatalf("MIG only: %+v %v", got, ok)
	}
	if _, ok := aggregateGPU("sb", t0, []string{"GPU-gone"}, stats); ok {
		t.Fatal("a device not in the answer was sampled")
	}
}

// TestGPUSamples: a sandbox on discovered devices is sampled while it runs and its samples are answered in
// order; one on declared devices says not measured (no invented zeros); another organisation gets 404.
func TestGPUSamples(t *testing.T) {
	eachFixture(t, 1, 2, Options{GPUSampleInterval: 10 * time.Second}, func(t *testing.T, f *fixture) {
		app, sign := newApp(t, f.svc)
		get := func(id string, c web.Principal) (int, gpuMetricsJSON, string) {
			t.Helper()
			req := httptest.NewRequest("GET", "/api/v1/testbed/sandboxes/"+id+"/gpu-samples", nil)
			req.Header.Set("Authorization", "Bearer "+sign.token(t, c))
			res, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			var out gpuMetricsJSON
			var p struct{ Code string }
			_ = json.Unmarshal(b, &out)
			_ = json.Unmarshal(b, &p)
			return res.StatusCode, out, p.Code
		}

		declared := f.launch(t, sme(), 1, 60)
		f.tick(t)
		if code, m, _ := get(declared.ID, sme()); code != 200 || m.Measured || m.NotMeasuredReason != NotMeasuredDeclared || len(m.Items) != 0 {
			t.Fatalf("declared devices: %d %+v", code, m)
		}
		if code, _, pc := get(declared.ID, other()); code != 404 || pc != "sandbox_not_found" {
			t.Fatalf("another organisation: %d %s", code, pc)
		}
		if _, err := f.svc.Stop(context.Background(), sme(), declared.ID); err != nil {
			t.Fatal(err)
		}
		f.tick(t)

		// The node's devices as discovery records them, and a host that can measure them.
		if err := f.db.Exec("UPDATE testbed_devices SET declared = ?, uuid = 'GPU-real-' || CAST(idx AS TEXT)", false).Error; err != nil {
			t.Fatal(err)
		}
		f.restart(t, Options{GPUSampleInterval: 10 * time.Second})
		calls := 0
		f.svc.gpuStats = func(_ context.Context, uuids []string) ([]gpustat.Stat, error) {
			calls++
			if calls == 2 {
				return nil, errors.New("nvidia-smi: timed out") // a gap, not a failed tick
			}
			out := []gpustat.Stat{{UUID: "GPU-elsewhere", UtilizationPct: 99}}
			for _, u := range uuids {
				out = append(out, gpustat.Stat{UUID: u, UtilizationPct: 10 * calls, MemoryUsedMiB: int64(1000 * calls), MemoryTotalMiB: 81559})
			}
			return out, nil
		}
		app, sign = newApp(t, f.svc)
		real := f.launch(t, sme(), 2, 60)
		for range 4 {
			f.tick(t)
			f.clk.Advance(5 * time.Second) // samples every other tick
		}
		if calls != 2 {
			t.Fatalf("nvidia-smi asked %d times in 20 s at a 10 s period, want 2", calls)
		}
		f.clk.Advance(10 * time.Second)
		f.tick(t)
		code, m, _ := get(real.ID, sme())
		if code != 200 || !m.Measured || m.NotMeasuredReason != "" || len(m.Items) != 2 {
			t.Fatalf("measured: %d %+v", code, m)
		}
		first, last := m.Items[0], m.Items[1]
		if !first.At.Before(last.At) || *first.UtilizationPct != 10 || first.MemoryUsedMiB != 2000 || first.MemoryTotalMiB != 2*81559 ||
			*last.UtilizationPct != 30 || last.MemoryUsedMiB != 6000 {
			t.Fatalf("samples: %+v %+v", first, last)
		}
	})
}
