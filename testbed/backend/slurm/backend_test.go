package slurm

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/slurmtest"
)

// newBackend is a Slurm backend on the test Slurm with a job directory of its own. The agent side runs as
// root here; the backend hands each job directory to the Slurm user, as a root agent must.
func newBackend(t *testing.T, mod ...func(*Options)) *Backend {
	t.Helper()
	step := slurmtest.Connect(t).InstallStep(t)
	dir, err := os.MkdirTemp("", "tamarack-slurm-jobs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := slurmtest.Connect(t)
	opts := Options{URL: env.URL, User: env.User, Token: func() (string, error) { return env.Token, nil }, Dir: dir,
		SlurmConf: env.Conf, GRES: map[string]string{"h100-80gb": "h100"}, StepCommand: step, StopMargin: 5 * time.Second}
	for _, m := range mod {
		m(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Harness{
		New:         func(t *testing.T) backend.Backend { return newBackend(t) },
		LongRunning: []string{"sleep", "600"},
		Timeout:     pollDeadline,
	})
}

// started starts s and stops and removes it when the test ends.
func started(t *testing.T, b *Backend, s backend.Spec) backend.Status {
	t.Helper()
	return backendtest.Started(t, b, s, 2*pollDeadline)
}

// waitState polls Inspect until the sandbox is in state want.
func waitState(t *testing.T, b *Backend, id string, want backend.State) backend.Status {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		st, err := b.Inspect(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == want {
			return st
		}
		if st.Ended() || time.Now().After(deadline) {
			t.Fatalf("sandbox %s: %+v, want %s", id, st, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSandboxJob follows one GPU sandbox through its job: the job Slurm runs, its output, a terminal
// through srun into the sandbox, and a stop whose times are the job's.
func TestSandboxJob(t *testing.T) {
	c := connect(t)
	b := newBackend(t)
	spec := backend.Spec{SandboxID: "job-" + strings.ToLower(testID(t)[len(testID(t))-8:]),
		Command:  []string{"sh", "-c", "echo hello-from-the-job; exec sleep 600"},
		Devices:  []backend.Device{{Index: 0, Model: "h100-80gb"}},
		Limits:   backend.Limits{CPUMillis: 1500, MemoryBytes: 256 << 20},
		Duration: 10 * time.Minute}
	started(t, b, spec)
	run := waitState(t, b, spec.SandboxID, backend.StateRunning)

	jobID, err := os.ReadFile(filepath.Join(b.dir(spec.SandboxID), FileJob))
	if err != nil {
		t.Fatal(err)
	}
	j := c.job(string(jobID))
	if str(j.Name) != spec.SandboxID || !strings.HasPrefix(str(j.Comment), commentPrefix+spec.SandboxID+" ") {
		t.Errorf("job name %q comment %q, want the sandbox's", str(j.Name), str(j.Comment))
	}
	if j.GresDetail == nil || !slices.ContainsFunc(*j.GresDetail, func(g string) bool { return strings.HasPrefix(g, "gpu:h100:1(") }) {
		t.Errorf("job gres_detail %v, want one h100", j.GresDetail)
	}
	// Ten booked minutes and the five of grace; two CPUs for one and a half.
	if num(j.TimeLimit) != 15 || num(j.Cpus) != 2 {
		t.Errorf("job time_limit %d cpus %d, want 15 and 2", num(j.TimeLimit), num(j.Cpus))
	}
	if run.StartedAt.Unix() != num(j.StartTime) {
		t.Errorf("StartedAt %v, job start_time %d", run.StartedAt, num(j.StartTime))
	}

	waitLogs(t, b, spec.SandboxID, "hello-from-the-job")

	term, err := b.Terminal(ctx(t), spec.SandboxID, []string{"/bin/sh", "-i"})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if err := term.Resize(100, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(term, "echo hello-$((6*7)) $(cat /proc/1/cmdline | tr '\\0' ' '); exit\n"); err != nil {
		t.Fatal(err)
	}
	out := readUntil(t, term, "hello-42")
	if !strings.Contains(out, "sleep 600") && !strings.Contains(out, "tini") {
		t.Errorf("terminal output %q: want a shell in the sandbox's PID namespace", out)
	}

	end, err := b.Stop(ctx(t), spec.SandboxID, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	j = c.job(string(jobID))
	if end.Reason != backend.ReasonStopped || !end.StartedAt.Equal(run.StartedAt) || end.EndedAt.Unix() != num(j.EndTime) {
		t.Errorf("stopped: %+v; job %s ended %d", end, str(j.JobState), num(j.EndTime))
	}
	if st := str(j.JobState); st == "RUNNING" || st == "PENDING" {
		t.Errorf("job still %s after Stop", st)
	}
	// The step saw the sandbox end of the TERM: its own stop, or, where Slurm tracks the sandbox's processes
	// as the job's (proctrack/linuxproc here), Slurm's TERM reaching them first. Either way the sandbox got
	// TERM, not KILL, and the sandbox's end is a stop.
	var result backend.Status
	if err := readJSON(filepath.Join(b.dir(spec.SandboxID), FileResult), &result); err != nil ||
		(result.Reason != backend.ReasonStopped && (result.Reason != backend.ReasonKilled || result.ExitCode != 128+15)) {
		t.Errorf("the step's result: %+v, %v; want the sandbox ended by TERM", result, err)
	}
}

func waitLogs(t *testing.T, b *Backend, id, want string) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		rc, err := b.Logs(ctx(t), id, false)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if strings.Contains(string(got), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs %q never said %q", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readUntil reads r until it has said want (or ended), within the poll deadline.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var out strings.Builder
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if strings.Contains(out.String(), want) || err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(pollDeadline):
		t.Fatalf("never read %q", want)
	}
	if !strings.Contains(out.String(), want) {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	return out.String()
}

func TestExitCode(t *testing.T) {
	b := newBackend(t)
	id := "exit-" + testID(t)[len(testID(t))-8:]
	started(t, b, backend.Spec{SandboxID: id, Command: []string{"sh", "-c", "echo bye; exit 3"}})
	deadline := time.Now().Add(pollDeadline)
	for {
		st, err := b.Inspect(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ended() {
			if st.Reason != backend.ReasonExited || st.ExitCode != 3 || st.StartedAt.IsZero() || st.EndedAt.Before(st.StartedAt) {
				t.Errorf("ended %+v, want exited with code 3", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ended: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitLogs(t, b, id, "bye")
	if st, err := b.Inspect(ctx(t), id); err != nil || st.Reason != backend.ReasonExited {
		t.Errorf("second Inspect = %+v, %v", st, err)
	}
}

// TestDialPort reaches a server on the sandbox's loopback through srun.
func TestDialPort(t *testing.T) {
	b := newBackend(t)
	id := "dial-" + testID(t)[len(testID(t))-8:]
	started(t, b, backend.Spec{SandboxID: id, Ports: []int{8888},
		Command: []string{"sh", "-c", "mkdir -p /tmp/w && echo hello-dial > /tmp/w/index.html && exec busybox httpd -f -p 127.0.0.1:8888 -h /tmp/w"}})
	waitState(t, b, id, backend.StateRunning)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return b.DialPort(ctx, id, 8888) }}}
	var body string
	deadline := time.Now().Add(pollDeadline)
	for {
		resp, err := client.Get("http://sandbox/index.html")
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(raw)
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the sandbox's port: %v %q", err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.TrimSpace(body) != "hello-dial" {
		t.Errorf("body %q, want hello-dial", body)
	}
}

func TestStartRefusedGPUs(t *testing.T) {
	b := newBackend(t)
	id := "many-" + testID(t)[len(testID(t))-8:]
	devs := make([]backend.Device, 5)
	for i := range devs {
		devs[i] = backend.Device{Index: i, Model: "h100-80gb"}
	}
	_, err := b.Start(ctx(t), backend.Spec{SandboxID: id, Command: []string{"true"}, Devices: devs})
	if !errors.Is(err, backend.ErrInvalidSpec) || !strings.Contains(err.Error(), "2014") {
		t.Fatalf("Start(5 of 4 GPUs) = %v, want ErrInvalidSpec with Slurm's error", err)
	}
	if _, err := b.Inspect(ctx(t), id); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("a refused sandbox is still held: %v", err)
	}
}

func TestNodes(t *testing.T) {
	b := newBackend(t)
	nodes, err := b.Nodes(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || len(nodes[0].Devices) != 4 || nodes[0].State != "ready" || nodes[0].CPUMillis < 1000 {
		t.Fatalf("nodes %+v, want one ready node with four GPUs", nodes)
	}
	for i, d := range nodes[0].Devices {
		if d.Index != i || d.GPUModel != "h100-80gb" || d.Declared {
			t.Errorf("device %+v, want index %d, model h100-80gb (mapped from h100)", d, i)
		}
	}
}

// TestReconcile: a job whose sandbox's directory is gone is cancelled by the sweep; a sandbox whose job
// Slurm no longer knows ends lost at the last time it was seen running.
func TestReconcile(t *testing.T) {
	c := connect(t)
	b := newBackend(t)
	id := "orphan-" + testID(t)[len(testID(t))-8:]
	started(t, b, backend.Spec{SandboxID: id, Command: []string{"sleep", "600"}})
	waitState(t, b, id, backend.StateRunning)
	jobID, err := os.ReadFile(filepath.Join(b.dir(id), FileJob))
	if err != nil {
		t.Fatal(err)
	}
	alive, err := os.Stat(filepath.Join(b.dir(id), FileAlive))
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox's record points at a job Slurm never had: it ended, lost, when last seen alive.
	if err := os.WriteFile(filepath.Join(b.dir(id), FileJob), []byte("999999"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := b.Inspect(ctx(t), id)
	if err != nil || st.Reason != backend.ReasonLost || st.StartedAt.IsZero() || st.EndedAt.Before(alive.ModTime().Truncate(time.Millisecond)) {
		t.Errorf("Inspect(job unknown to Slurm) = %+v, %v; want lost at %v", st, err, alive.ModTime())
	}
	// Its real job now belongs to no sandbox: the sweep cancels it.
	if err := b.Reconcile(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.waitJob(strings.TrimSpace(string(jobID)), "CANCELLED")
}
