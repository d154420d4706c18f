package slurm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/slurmrest"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/slurmtest"
)

// The node start.sh configures: four fake H100s in gres.conf.
const (
	nodeGres = "gpu:h100:4"
	jobGres  = "gpu:h100:1"
)

// Slurm's error number when no node could ever satisfy a request (ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE).
const errRequestedNodeConfigUnavailable = 2014

// pollDeadline bounds every wait for Slurm to get somewhere; the scheduler normally answers in well under a
// second, so reaching it means something is stuck, not slow.
const pollDeadline = 60 * time.Second

type cluster struct {
	t    *testing.T
	api  *slurmrest.ClientWithResponses
	user string
}

// connect returns a client for the Slurm named by the environment. Without one the tests skip, except in CI
// (CI set), where a missing Slurm must fail the run rather than pass it quietly.
func connect(t *testing.T) *cluster {
	t.Helper()
	env := slurmtest.Connect(t)
	url, user, token := env.URL, env.User, env.Token
	api, err := slurmrest.NewClientWithResponses(url, slurmrest.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-SLURM-USER-NAME", user)
		r.Header.Set("X-SLURM-USER-TOKEN", token)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, api: api, user: user}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*pollDeadline)
	t.Cleanup(cancel)
	return c
}

// testID makes job names unique across runs and -count, so a test never mistakes an earlier run's job for
// its own.
func testID(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tamarack-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + hex.EncodeToString(b)
}

// jobDir is a directory the job's user can write its output into. t.TempDir is root's and mode 0700, and
// jobs run as the token's (unprivileged) user, so it would not do.
func (c *cluster) jobDir() string {
	c.t.Helper()
	dir, err := os.MkdirTemp("", "tamarack-slurm-")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { os.RemoveAll(dir) })
	// Not sticky: the test must be able to remove the files the job's user creates.
	if err := os.Chmod(dir, 0o777); err != nil {
		c.t.Fatal(err)
	}
	return dir
}

// submit submits a batch job and cancels it when the test ends, whatever the outcome, so that a failed test
// leaves no job holding the node's GPUs.
func (c *cluster) submit(job slurmrest.V0038JobProperties, script string) (*slurmrest.SlurmV0038SubmitJobResponse, string) {
	c.t.Helper()
	if job.Environment == nil {
		// 22.05 refuses a job without an environment ("environment must be set", error 2127).
		job.Environment = map[string]any{"PATH": "/usr/bin:/bin"}
	}
	r, err := c.api.SlurmV0038SubmitJobWithResponse(ctx(c.t), slurmrest.V0038JobSubmission{Script: script, Job: &job})
	if err != nil {
		c.t.Fatalf("submit: %v", err)
	}
	if r.JSON200 == nil || r.JSON200.JobId == nil {
		return r, ""
	}
	id := strconv.Itoa(*r.JSON200.JobId)
	c.t.Cleanup(func() {
		// KILL, not TERM: the cleanup must end the job even if its script ignores TERM. A job that
		// already ended answers 500 ("Job/step already completing or completed"), which is fine here.
		cx, cancel := context.WithTimeout(context.Background(), pollDeadline)
		defer cancel()
		sig := slurmrest.KILL
		r, err := c.api.SlurmV0038CancelJob(cx, id, &slurmrest.SlurmV0038CancelJobParams{Signal: &sig})
		if err != nil {
			c.t.Errorf("cancel job %s: %v", id, err)
			return
		}
		r.Body.Close()
	})
	return r, id
}

func (c *cluster) job(id string) slurmrest.V0038JobResponseProperties {
	c.t.Helper()
	r, err := c.api.SlurmV0038GetJobWithResponse(ctx(c.t), id)
	if err != nil {
		c.t.Fatalf("get job %s: %v", id, err)
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Jobs == nil || len(*r.JSON200.Jobs) != 1 {
		c.t.Fatalf("get job %s: %s %s", id, r.Status(), r.Body)
	}
	return (*r.JSON200.Jobs)[0]
}

// waitJob polls the job until its job_state is want, failing at once if it settles in another final state
// and at the deadline with its last state.
func (c *cluster) waitJob(id, want string) slurmrest.V0038JobResponseProperties {
	c.t.Helper()
	deadline := time.Now().Add(pollDeadline)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		j := c.job(id)
		switch s := str(j.JobState); s {
		case want:
			return j
		case "PENDING", "CONFIGURING", "RUNNING", "COMPLETING":
		default:
			c.t.Fatalf("job %s ended %s (reason %s, exit code %d) instead of %s", id, s, str(j.StateReason), num(j.ExitCode), want)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("job %s never %s: state %s, reason %s", id, want, str(j.JobState), str(j.StateReason))
		}
		<-tick.C
	}
}

// waitOutput polls the job's output file until it contains want.
func (c *cluster) waitOutput(path, want string) {
	c.t.Helper()
	deadline := time.Now().Add(pollDeadline)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("output %s never said %s: %q, %v", path, want, b, err)
		}
		<-tick.C
	}
}

func (c *cluster) cancel(id string, sig slurmrest.V0038Signal) {
	c.t.Helper()
	r, err := c.api.SlurmV0038CancelJobWithResponse(ctx(c.t), id, &slurmrest.SlurmV0038CancelJobParams{Signal: &sig})
	if err != nil {
		c.t.Fatal(err)
	}
	if r.StatusCode() != http.StatusOK {
		c.t.Fatalf("DELETE job %s, signal %s: %s %s", id, sig, r.Status(), r.Body)
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func num[T int | int64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

func TestPing(t *testing.T) {
	c := connect(t)
	r, err := c.api.SlurmV0038PingWithResponse(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Pings == nil || len(*r.JSON200.Pings) == 0 {
		t.Fatalf("ping: %s %s", r.Status(), r.Body)
	}
	if p := (*r.JSON200.Pings)[0]; p.Ping == nil || *p.Ping != slurmrest.UP {
		t.Fatalf("slurmctld not up: %s", r.Body)
	}
	// The meta block every answer carries decodes (its version is integers, not the strings the
	// document declares: see openapi.fix.jq).
	if m := r.JSON200.Meta; m == nil || m.Slurm == nil || m.Slurm.Version == nil || num(m.Slurm.Version.Major) < 22 {
		t.Fatalf("meta: %s", r.Body)
	}
}

func TestNodesReportFakeGPUs(t *testing.T) {
	c := connect(t)
	r, err := c.api.SlurmV0038GetNodesWithResponse(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Nodes == nil {
		t.Fatalf("nodes: %s %s", r.Status(), r.Body)
	}
	i := slices.IndexFunc(*r.JSON200.Nodes, func(n slurmrest.V0038Node) bool { return str(n.Gres) == nodeGres })
	if i < 0 {
		t.Fatalf("no node with gres %s: %s", nodeGres, r.Body)
	}
	n := (*r.JSON200.Nodes)[i]
	if num(n.Cpus) < 1 || num(n.RealMemory) < 1 || str(n.State) == "down" {
		t.Fatalf("node %s: cpus %d, memory %d MB, state %s", str(n.Name), num(n.Cpus), num(n.RealMemory), str(n.State))
	}
}

// TestBatchJob submits a job asking for one GPU, sees it run and write its output, then cancels it.
func TestBatchJob(t *testing.T) {
	c := connect(t)
	dir := c.jobDir()
	out := filepath.Join(dir, "out.txt")
	name := testID(t)
	r, id := c.submit(slurmrest.V0038JobProperties{
		Name:                    &name,
		Gres:                    ptr(jobGres),
		CurrentWorkingDirectory: &dir,
		StandardOutput:          &out,
	}, "#!/bin/sh\necho hello-42\nsleep 60\n")
	if id == "" {
		t.Fatalf("submit: %s %s", r.Status(), r.Body)
	}

	j := c.waitJob(id, "RUNNING")
	if str(j.Name) != name || str(j.UserName) != c.user {
		t.Errorf("job %s: name %q user %q, want %q %q", id, str(j.Name), str(j.UserName), name, c.user)
	}
	// 22.05 reports the request as tres_per_node "gres:gpu:h100:1" and the allocation, while running, in
	// gres_detail as "gpu:h100:1(IDX:<index>)".
	if tres := str(j.TresPerNode); !strings.Contains(tres, jobGres) {
		t.Errorf("job %s: tres_per_node %q does not carry %s", id, tres, jobGres)
	}
	if j.GresDetail == nil || !slices.ContainsFunc(*j.GresDetail, func(g string) bool { return strings.HasPrefix(g, jobGres+"(IDX:") }) {
		t.Errorf("job %s: gres_detail %v does not show the allocated GPU", id, j.GresDetail)
	}
	if num(j.StartTime) <= 0 {
		t.Errorf("running job %s has no start_time", id)
	}

	c.waitOutput(out, "hello-42")

	c.cancel(id, slurmrest.KILL)
	j = c.waitJob(id, "CANCELLED")
	// Times are Unix seconds; a cancelled job's end is when it was cancelled.
	if num(j.EndTime) < num(j.StartTime) {
		t.Errorf("cancelled job %s: end_time %d before start_time %d", id, num(j.EndTime), num(j.StartTime))
	}
}

// TestSignalIsNotCancel pins down a trap for the backend: DELETE /job/{id} cancels only with KILL (or no
// signal). Any other signal is just delivered; the script dies of it and 22.05 reports the job FAILED, with
// the misleading reason JobLaunchFailure and the signal number as exit_code, never CANCELLED.
func TestSignalIsNotCancel(t *testing.T) {
	c := connect(t)
	dir := c.jobDir()
	name := testID(t)
	out := filepath.Join(dir, "out.txt")
	r, id := c.submit(slurmrest.V0038JobProperties{
		Name:                    &name,
		CurrentWorkingDirectory: &dir,
		StandardOutput:          &out,
	}, "#!/bin/sh\necho started\nsleep 60\n")
	if id == "" {
		t.Fatalf("submit: %s %s", r.Status(), r.Body)
	}
	c.waitJob(id, "RUNNING")
	// RUNNING comes before slurmstepd has started the script, and a signal sent in between reaches no
	// process and is lost (the job then runs on): wait for the script's own word.
	c.waitOutput(out, "started")
	c.cancel(id, slurmrest.TERM)
	j := c.waitJob(id, "FAILED")
	if num(j.ExitCode) != 15 {
		t.Errorf("job %s killed by TERM: exit_code %d, state reason %s", id, num(j.ExitCode), str(j.StateReason))
	}
}

// TestTooManyGPUs pins down what 22.05 does with a job no node can ever hold: it refuses it at submission
// (HTTP 500, error 2014) rather than leaving it pending.
func TestTooManyGPUs(t *testing.T) {
	c := connect(t)
	dir := c.jobDir()
	name := testID(t)
	r, id := c.submit(slurmrest.V0038JobProperties{
		Name:                    &name,
		Gres:                    ptr("gpu:h100:5"),
		CurrentWorkingDirectory: &dir,
		StandardOutput:          ptr(filepath.Join(dir, "out.txt")),
	}, "#!/bin/sh\ntrue\n")
	if id != "" {
		j := c.job(id)
		t.Fatalf("a job asking for 5 GPUs of 4 was accepted as %s: state %s, reason %s", id, str(j.JobState), str(j.StateReason))
	}
	if r.StatusCode() != http.StatusInternalServerError || r.JSONDefault == nil || r.JSONDefault.Errors == nil {
		t.Fatalf("submit: %s %s", r.Status(), r.Body)
	}
	if !slices.ContainsFunc(*r.JSONDefault.Errors, func(e slurmrest.V0038Error) bool {
		return num(e.ErrorCode) == errRequestedNodeConfigUnavailable
	}) {
		t.Fatalf("refused without error %d: %s", errRequestedNodeConfigUnavailable, r.Body)
	}
}

func ptr[T any](v T) *T { return &v }
