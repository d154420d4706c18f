package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/dbtest"
)

// Outputs captured from nvidia-smi (driver 550) on an H100 host, an A100 with MIG enabled and an L4, with and
// without nounits.
func TestParseGPUStats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		out  string
		want []GPUStat
		bad  bool
	}{
		{name: "nounits, two GPUs", out: "GPU-5d3c5a2e-7a39-2f61-11b0-3e2d6b9c1a40, 87, 61234, 81559\nGPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9, 0, 4, 81559\n",
			want: []GPUStat{{UUID: "GPU-5d3c5a2e-7a39-2f61-11b0-3e2d6b9c1a40", UtilizationPct: 87, MemoryUsedMiB: 61234, MemoryTotalMiB: 81559},
				{UUID: "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", UtilizationPct: 0, MemoryUsedMiB: 4, MemoryTotalMiB: 81559}}},
		{name: "with units", out: "GPU-11111111-2222-3333-4444-555555555555, 42 %, 1024 MiB, 23034 MiB\n",
			want: []GPUStat{{UUID: "GPU-11111111-2222-3333-4444-555555555555", UtilizationPct: 42, MemoryUsedMiB: 1024, MemoryTotalMiB: 23034}}},
		{name: "MIG: utilisation not reported", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, [N/A], 13, 40960\n",
			want: []GPUStat{{UUID: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", UtilizationPct: -1, MemoryUsedMiB: 13, MemoryTotalMiB: 40960}}},
		{name: "not supported memory", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 5, [Not Supported], [Not Supported]\n",
			want: []GPUStat{{UUID: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", UtilizationPct: 5}}},
		{name: "blank lines", out: "\n\n", want: nil},
		{name: "error text", out: "No devices were found\n", bad: true},
		{name: "missing column", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 5, 10\n", bad: true},
		{name: "not a number", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, busy, 10, 20\n", bad: true},
		{name: "over 100 percent", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 101, 10, 20\n", bad: true},
		{name: "negative memory", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 1, -10, 20\n", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseGPUStats([]byte(tc.out))
			if tc.bad {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAggregateGPU(t *testing.T) {
	t.Parallel()
	stats := []GPUStat{{UUID: "GPU-a", UtilizationPct: 80, MemoryUsedMiB: 100, MemoryTotalMiB: 1000},
		{UUID: "GPU-b", UtilizationPct: 41, MemoryUsedMiB: 50, MemoryTotalMiB: 1000},
		{UUID: "GPU-other", UtilizationPct: 100, MemoryUsedMiB: 999, MemoryTotalMiB: 1000},
		{UUID: "GPU-mig", UtilizationPct: -1, MemoryUsedMiB: 7, MemoryTotalMiB: 10}}
	got, ok := aggregateGPU("sb", 5, []string{"GPU-a", "GPU-b", "GPU-mig"}, stats)
	want := GPUSample{SandboxID: "sb", AtMS: 5, UtilizationPct: 61, MemoryUsedMiB: 157, MemoryTotalMiB: 2010}
	if !ok || got != want {
		t.Fatalf("got %+v %v, want %+v", got, ok, want)
	}
	if got, ok := aggregateGPU("sb", 5, []string{"GPU-mig"}, stats); !ok || got.UtilizationPct != -1 {
		t.Fatalf("MIG only: %+v %v", got, ok)
	}
	if _, ok := aggregateGPU("sb", 5, []string{"GPU-gone"}, stats); ok {
		t.Fatal("a device not in the answer was sampled")
	}
}

// TestGPUSamples: a sandbox on discovered devices is sampled while it runs and its samples are answered in
// order; one on declared devices says not measured (no invented zeros); another organisation gets 404.
func TestGPUSamples(t *testing.T) {
	dbtest.Each(t, migrations(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 1, 2, Options{GPUSampleInterval: 10 * time.Second})
		app, sign := newApp(t, f.svc)
		get := func(id string, c Caller) (int, gpuMetricsJSON, string) {
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
		if err := db.Exec("UPDATE testbed_devices SET declared = ?, uuid = 'GPU-real-' || CAST(idx AS TEXT)", false).Error; err != nil {
			t.Fatal(err)
		}
		f.restart(t, Options{GPUSampleInterval: 10 * time.Second})
		calls := 0
		f.svc.gpuStats = func(_ context.Context, uuids []string) ([]GPUStat, error) {
			calls++
			if calls == 2 {
				return nil, errors.New("nvidia-smi: timed out") // a gap, not a failed tick
			}
			out := []GPUStat{{UUID: "GPU-elsewhere", UtilizationPct: 99}}
			for _, u := range uuids {
				out = append(out, GPUStat{UUID: u, UtilizationPct: 10 * calls, MemoryUsedMiB: int64(1000 * calls), MemoryTotalMiB: 81559})
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
