package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLastLineFigures(t *testing.T) {
	figs, err := lastLineFigures([]byte("some report\n  p50 3 ms\n{\"client_p50_ms\": 91.5, \"load1_start\": 0.4}\n\n"))
	if err != nil || figs["client_p50_ms"] != 91.5 || figs["load1_start"] != 0.4 {
		t.Fatalf("figures %v, %v", figs, err)
	}
	for _, out := range []string{"a report without figures\n", "", "{\"a\": \"fast\"}\n", "{}\n", "{not json\n"} {
		if _, err := lastLineFigures([]byte(out)); err == nil {
			t.Errorf("%q: no error", out)
		}
	}
	if _, err := lastLineFigures([]byte("report only\n")); err == nil || !strings.Contains(err.Error(), "-json") {
		t.Errorf("a bench without -json: error %v should say what is missing", err)
	}
}

func TestGoBenchFigures(t *testing.T) {
	out := "goos: linux\nBenchmarkSchedule-2   \t      20\t   7218 ns/op\t   1385418 placements/s\nPASS\n"
	figs, err := goBenchFigures([]byte(out))
	if err != nil || figs["BenchmarkSchedule_placements/s"] != 1385418 || figs["BenchmarkSchedule_ns/op"] != 7218 {
		t.Fatalf("figures %v, %v", figs, err)
	}
	if _, err := goBenchFigures([]byte("PASS\n")); err == nil {
		t.Fatal("no result line: no error")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median([]float64{1, math.NaN(), 3})) {
		t.Error("a run without the figure still gave a median")
	}
}

// TestPerfRunsEachBenchAndReportsLoad: three runs of a bench that keeps the contract give a row per figure with
// the median, each run and each run's load; a bench that does not take -json is an error naming it, and the
// others still run.
func TestPerfRunsEachBenchAndReportsLoad(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "n")
	good := bench{name: "good", build: func(context.Context, string) ([]string, error) {
		// Prints 10, 30, 20 in its three runs, after a human-readable line.
		return []string{"sh", "-c", `n=$(cat ` + counter + ` 2>/dev/null || echo 0); n=$((n+1)); echo $n > ` + counter + `;
			echo "a report"; case $n in 1) v=10;; 2) v=30;; *) v=20;; esac; echo "{\"p50_ms\": $v, \"load1_start\": 9}"`}, nil
	}}
	old := bench{name: "old", build: func(context.Context, string) ([]string, error) {
		return []string{"sh", "-c", `echo "flag provided but not defined: -json" >&2; exit 2`}, nil
	}}
	var stdout, stderr bytes.Buffer
	err := perf(context.Background(), options{runs: 3, timeout: time.Minute, stdout: &stdout, stderr: &stderr}, []bench{old, good})
	if err == nil || !strings.Contains(err.Error(), "old") || !strings.Contains(err.Error(), "does not take -json") {
		t.Fatalf("error %v, want one naming the bench without -json", err)
	}
	table := stdout.String()
	var row string
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, "| good | p50_ms |") {
			row = l
		}
	}
	if row == "" || !strings.Contains(row, "**20.0**") || !strings.Contains(row, "10.0, 30.0, 20.0") || strings.Count(row, "→") != 3 {
		t.Fatalf("row %q in\n%s", row, table)
	}
	if strings.Contains(table, "load1_start") {
		t.Fatalf("the bench's own load figure is a row; the runner's readings are the load column:\n%s", table)
	}
	if !strings.Contains(table, "| old | (failed") {
		t.Fatalf("the failed bench is missing from the table:\n%s", table)
	}
	if _, err := os.Stat(counter); err != nil {
		t.Fatal(err)
	}
}
