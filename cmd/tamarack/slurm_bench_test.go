package main

import (
	"context"
	"flag"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
)

// BenchmarkSlurmLaunch measures API → running on a Slurm pool: from the SME's POST /sandboxes to the answer of
// GET ?wait_until=running, through `tamarack serve`, the site agent (as the Slurm user) and the test Slurm:
// the submission through slurmrestd, Slurm's scheduling, the batch step, sudo and the step's start of the
// sandbox in the local runtime. Each sandbox is stopped (its job cancelled) and the node idle again (its
// Epilog done) before the next is launched, as on a partition with a free node: a job submitted while the
// node still completes the last one waits for slurmctld's next scheduling pass instead (batch_sched_delay,
// 3 s by default), which -back-to-back measures. That pass runs every 3 s whatever the load, so a loop of
// launches each about 3 s long would fall in step with it and always wait nearly a full period: a launch comes
// after a random pause of 0 to 3 s (not timed), as users do, at a random point of the period.
//
// It reports the median and 90th percentile of the whole, and of its parts as the job directory's files time
// them: the platform and agent until the job is submitted (submit-ms), Slurm and the step until the sandbox
// runs (slurm-ms: scheduling, batch launch, sudo, the runtime), and the platform and agent until the client
// sees it running (report-ms); and the load average:
//
//	go test -run '^$' -bench SlurmLaunch -benchtime 20x ./cmd/tamarack/
func BenchmarkSlurmLaunch(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	site := newSlurmSite(ctx, b)
	// The first launch pulls and unpacks the image on the login node: not a launch's cost, left out.
	id, _ := site.launch()
	site.stop(id)
	site.waitIdle()
	var times, submit, slurmPart, report []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if !*backToBack {
			time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Second))))
		}
		b.StartTimer()
		t0 := time.Now()
		id, d := site.launch()
		b.StopTimer()
		times = append(times, d)
		sub, started := site.jobTimes(id)
		submit = append(submit, sub.Sub(t0))
		slurmPart = append(slurmPart, started.Sub(sub))
		report = append(report, d-started.Sub(t0))
		site.stop(id)
		if !*backToBack {
			site.waitIdle()
		}
		b.StartTimer()
	}
	b.StopTimer()
	pct := func(v []time.Duration, p float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return float64(v[int(p*float64(len(v)-1)+0.5)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(times, 0.5), "p50-ms")
	b.ReportMetric(pct(times, 0.9), "p90-ms")
	b.ReportMetric(pct(submit, 0.5), "submit-p50-ms")
	b.ReportMetric(pct(slurmPart, 0.5), "slurm-p50-ms")
	b.ReportMetric(pct(report, 0.5), "report-p50-ms")
	b.ReportMetric(0, "ns/op")
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("%d launches; load average after: %s", len(times), load)
	}
}

var backToBack = flag.Bool("back-to-back", false, "BenchmarkSlurmLaunch: launch the next sandbox as soon as the last has stopped, while Slurm's node still completes its job")

// waitIdle waits until Slurm's node has finished with every job (the Epilog included) and is idle.
func (site *slurmSite) waitIdle() {
	site.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := site.api.SlurmV0038GetNodesWithResponse(context.Background(), nil)
		if err == nil && r.StatusCode() == http.StatusOK && r.JSON200 != nil && r.JSON200.Nodes != nil && len(*r.JSON200.Nodes) == 1 {
			n := (*r.JSON200.Nodes)[0]
			if deref(n.State) == "idle" && !slices.Contains(deref(n.StateFlags), "COMPLETING") {
				return
			}
		}
		if time.Now().After(deadline) {
			site.t.Fatalf("Slurm's node never idle again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jobTimes are when the agent recorded the sandbox's job as submitted (its job file) and when the step said
// the sandbox runs (the started file's content).
func (site *slurmSite) jobTimes(id string) (submitted, started time.Time) {
	site.t.Helper()
	dir := filepath.Join(site.jobs, id)
	fi, err := os.Stat(filepath.Join(dir, slurm.FileJob))
	if err != nil {
		site.t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, slurm.FileStarted))
	if err != nil {
		site.t.Fatal(err)
	}
	started, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(raw)))
	if err != nil {
		site.t.Fatal(err)
	}
	return fi.ModTime(), started
}

// stop stops a sandbox and waits until it has stopped (its job cancelled and ended).
func (site *agentSite) stop(id string) {
	site.t.Helper()
	if code := site.s.do("POST", "/sandboxes/"+id+"/stop", site.sme, "", nil); code != 202 {
		site.t.Fatalf("stop %s: %d", id, code)
	}
	site.s.waitState(site.sme, id, "stopped")
}
