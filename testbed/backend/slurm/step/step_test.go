package step

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tamarack-ai/tamarack/platform/webtest"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/backendtest"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
)

// These tests run the step's functions in-process as root, without Slurm: the job directory is a temporary
// one, the Slurm job ID made up. The test binary is also the sandboxes' shim (MaybeRunShim) and, bound
// read-only into them, the echo server the dial test talks to (TAMARACK_TEST_HELPER=echo).
const envHelper = "TAMARACK_TEST_HELPER"

// cgroupParent is relative to the test's own cgroup (as in package local's tests) and unique per run, so
// that the run can remove it.
var cgroupParent = "tamarack-step-test-" + strconv.Itoa(os.Getpid())

func TestMain(m *testing.M) {
	local.MaybeRunShim()
	if os.Getenv(envHelper) == "echo" {
		helperEcho()
	}
	code := m.Run()
	if err := removeCgroups(cgroupParent); err != nil {
		fmt.Fprintln(os.Stderr, "leftover cgroup:", err)
		code = 1
	}
	os.Exit(code)
}

// removeCgroups removes the run's cgroup parent from every hierarchy the runtime made it in; the sandboxes'
// cgroups below it are gone by then, or this fails.
func removeCgroups(name string) error {
	var dirs []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == name {
			dirs = append(dirs, path)
			return filepath.SkipDir
		}
		return nil
	})
	var errs []error
	for _, d := range dirs {
		// runc's own directories below the parent (none once every sandbox is removed, but v1 may keep
		// an empty one per runtime level), deepest first.
		var below []string
		_ = filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				below = append(below, path)
			}
			return nil
		})
		for i := len(below) - 1; i >= 0; i-- {
			if err := os.Remove(below[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// helperEcho echoes every connection on 127.0.0.1:$PORT back to it, inside a sandbox.
func helperEcho() {
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// newConfig is a step configuration on a fresh local root. A host that cannot run sandboxes fails the
// test under TAMARACK_TEST_SANDBOX=required, else skips it loudly.
func newConfig(t *testing.T) Config {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Root: t.TempDir(), CgroupParent: cgroupParent, ReadOnlyPaths: []string{filepath.Dir(exe)}}
	b, err := c.backend()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.RequireHost(t, b.Check(context.Background()))
	return c
}

// jobDir makes a job directory holding spec.
func jobDir(t *testing.T, spec backend.Spec) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), spec.SandboxID)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, slurm.FileSpec), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cleanup makes sure the sandbox is stopped and removed when the test ends, whatever happened.
func cleanup(t *testing.T, c Config, id string) {
	t.Cleanup(func() {
		b, err := c.backend()
		if err != nil {
			t.Error(err)
			return
		}
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := b.Stop(ctx, id, 0); err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("cleanup: Stop(%s): %v", id, err)
		}
		if err := b.Remove(ctx, id); err != nil {
			t.Errorf("cleanup: Remove(%s): %v", id, err)
		}
	})
}

func waitFor(t *testing.T, max time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, max)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readResult(t *testing.T, dir string) backend.Status {
	t.Helper()
	var st backend.Status
	b, err := os.ReadFile(filepath.Join(dir, slurm.FileResult))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// running is a step run in the background, as Slurm's batch script runs it.
type running struct {
	dir    string
	stderr *webtest.Buffer
	term   context.CancelFunc // the TERM
	code   chan int
}

// output is what the sandbox has printed so far: the job directory's output.log.
func (r *running) output() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, slurm.FileOutput))
	return string(b)
}

func startRun(t *testing.T, c Config, spec backend.Spec, job string) *running {
	t.Helper()
	cleanup(t, c, spec.SandboxID)
	ctx, term := context.WithCancel(context.Background())
	r := &running{dir: jobDir(t, spec), stderr: &webtest.Buffer{}, term: term, code: make(chan int, 1)}
	go func() { r.code <- Run(ctx, c, RunInput{Dir: r.dir, Job: job}, r.stderr) }()
	t.Cleanup(func() {
		term()
		select {
		case <-r.code:
		case <-time.After(30 * time.Second):
			t.Error("the step did not return 30 s after its TERM")
		}
	})
	return r
}

func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.code:
		r.code <- code // for the cleanup
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("the step did not return; stderr: %s", r.stderr)
		return 0
	}
}

// waitStarted waits for the started file and the first words of the sandbox's output.
func (r *running) waitStarted(t *testing.T, out string) {
	t.Helper()
	waitFor(t, 30*time.Second, "started and "+out+" (stderr: "+r.stderr.String()+")", func() bool {
		return exists(filepath.Join(r.dir, slurm.FileStarted)) && strings.Contains(r.output(), out)
	})
}

func TestStepRunStop(t *testing.T) {
	c := newConfig(t)
	spec := backend.Spec{SandboxID: "step-stop", Command: []string{"sh", "-c", "echo hello-$((6*7)); exec sleep 600"}}
	r := startRun(t, c, spec, "41")
	r.waitStarted(t, "hello-42\n")
	if b, err := os.ReadFile(filepath.Join(c.Root, jobsDir, "41")); err != nil || strings.TrimSpace(string(b)) != spec.SandboxID {
		t.Fatalf("job record = %q, %v; want the sandbox ID", b, err)
	}
	at, err := os.ReadFile(filepath.Join(r.dir, slurm.FileStarted))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, string(at)); err != nil {
		t.Fatalf("started = %q: %v", at, err)
	}

	// The agent's stop: the stop file, then the TERM.
	if err := os.WriteFile(filepath.Join(r.dir, slurm.FileStop), []byte("2000"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.term()
	code := r.wait(t)
	st := readResult(t, r.dir)
	if st.Reason != backend.ReasonStopped || st.State != backend.StateExited || st.SandboxID != spec.SandboxID || st.StartedAt.IsZero() || st.EndedAt.IsZero() {
		t.Fatalf("result = %+v, want stopped", st)
	}
	if want := st.ExitCode; want < 0 || want > 255 || code != want {
		t.Fatalf("exit status %d, result's exit code %d", code, st.ExitCode)
	}
	if exists(filepath.Join(c.Root, jobsDir, "41")) {
		t.Error("the job record is left behind")
	}
	if exists(filepath.Join(c.Root, spec.SandboxID)) {
		t.Error("the local sandbox is left behind")
	}
	if r.stderr.String() != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestStepRunExitCode(t *testing.T) {
	c := newConfig(t)
	spec := backend.Spec{SandboxID: "step-exit", Command: []string{"sh", "-c", "echo bye; exit 3"}}
	r := startRun(t, c, spec, "42")
	if code := r.wait(t); code != 3 {
		t.Fatalf("exit status %d, want 3; stderr: %s", code, r.stderr)
	}
	if r.output() != "bye\n" {
		t.Errorf("output.log = %q, want the sandbox's output", r.output())
	}
	if st := readResult(t, r.dir); st.Reason != backend.ReasonExited || st.ExitCode != 3 {
		t.Fatalf("result = %+v, want exited 3", st)
	}
	if !exists(filepath.Join(r.dir, slurm.FileStarted)) {
		t.Error("no started file")
	}
}

// A requeued job finds the sandbox its first run left on the node; the second run replaces it.
func TestStepRunRequeued(t *testing.T) {
	c := newConfig(t)
	spec := backend.Spec{SandboxID: "step-requeue", Command: []string{"sh", "-c", "echo again; exit 0"}}
	b, err := c.backend()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cleanup(t, c, spec.SandboxID)
	old := spec
	old.Command = []string{"sleep", "600"}
	if _, err := b.Start(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, c, spec, "43")
	if code := r.wait(t); code != 0 || r.output() != "again\n" {
		t.Fatalf("exit status %d, output.log %q, stderr %q", code, r.output(), r.stderr)
	}
}

// Failures before the sandbox runs need no host: they are the spec's and Slurm's.
func TestStepRunRefused(t *testing.T) {
	for _, tc := range []struct {
		name, dirName, gpus, want string
		spec                      backend.Spec
	}{
		{"gpu count", "step-gpus", "", "asks for 1 GPUs but Slurm allocated 0",
			backend.Spec{SandboxID: "step-gpus", Command: []string{"true"}, Devices: []backend.Device{{Index: 5, Model: "h100"}}}},
		{"gpu list", "step-gpus", "0,x", "want GPU indices",
			backend.Spec{SandboxID: "step-gpus", Command: []string{"true"}, Devices: []backend.Device{{Index: 5}, {Index: 6}}}},
		{"other sandbox", "step-here", "", `spec is for sandbox "step-there"`,
			backend.Spec{SandboxID: "step-there", Command: []string{"true"}}},
		{"invalid spec", "step-empty", "", "command: empty", backend.Spec{SandboxID: "step-empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tc.dirName)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(tc.spec)
			if err := os.WriteFile(filepath.Join(dir, slurm.FileSpec), b, 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			c := Config{Root: t.TempDir()}
			if code := Run(context.Background(), c, RunInput{Dir: dir, Job: "44", GPUs: tc.gpus}, &stderr); code != 1 {
				t.Fatalf("exit status %d, want 1", code)
			}
			if !strings.HasPrefix(stderr.String(), "tamarack slurm-step: ") || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tc.want)
			}
			st := readResult(t, dir)
			if st.Reason != backend.ReasonFailed || st.State != backend.StateExited || !strings.Contains(st.Message, tc.want) {
				t.Errorf("result = %+v, want failed with %q", st, tc.want)
			}
			if exists(filepath.Join(c.Root, jobsDir, "44")) {
				t.Error("job record left behind")
			}
		})
	}
}

func TestStepReadSpecGPUs(t *testing.T) {
	spec := backend.Spec{SandboxID: "step-gpus", Command: []string{"true"}, Devices: []backend.Device{{Index: 0, UUID: "GPU-a", Model: "h100"}, {Index: 1, UUID: "GPU-b", Model: "h100"}}}
	dir := jobDir(t, spec)
	// Under /dev, as Spec.Validate wants device paths.
	dev, err := os.MkdirTemp("/dev/shm", "tamarack-step-dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dev) })
	old := devDir
	devDir = dev
	t.Cleanup(func() { devDir = old })
	if err := os.WriteFile(filepath.Join(dev, "nvidia3"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, notes, err := readSpec(RunInput{Dir: dir, GPUs: "3,1"})
	if err != nil {
		t.Fatal(err)
	}
	// GPU 1 has no device node here: handed over as nothing, and said so.
	want := []backend.Device{{Index: 3, Model: "h100", Paths: []string{filepath.Join(dev, "nvidia3")}}, {Index: 1, Model: "h100"}}
	if fmt.Sprint(got.Devices) != fmt.Sprint(want) || len(notes) != 1 || !strings.Contains(notes[0], "GPU 1") {
		t.Fatalf("devices = %+v, notes %q; want %+v and a note on GPU 1", got.Devices, notes, want)
	}
	if _, _, err := readSpec(RunInput{Dir: dir, GPUs: "2,2"}); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Fatalf("repeated GPU: %v", err)
	}
}

func TestStepTerminal(t *testing.T) {
	c := newConfig(t)
	spec := backend.Spec{SandboxID: "step-term", Command: []string{"sleep", "600"}}
	r := startRun(t, c, spec, "45")
	r.waitStarted(t, "")

	// stdin is a terminal, as srun's pty is: the step makes it raw and passes its size on.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 33, Cols: 111}); err != nil {
		t.Fatal(err)
	}
	out := &webtest.Buffer{}
	done := make(chan error, 1)
	go func() { done <- Terminal(context.Background(), c, r.dir, []string{"/bin/sh"}, tty, out) }()
	waitFor(t, 30*time.Second, "raw mode", func() bool {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&unix.ICANON == 0
	})
	// Raw: the CR reaches the inner terminal as typed, which turns it into a newline.
	if _, err := ptmx.Write([]byte("stty size; echo hello-$((6*7)); exit\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("terminal did not end after exit; output %q", out)
	}
	if !strings.Contains(out.String(), "hello-42") || !strings.Contains(out.String(), "33 111") {
		t.Fatalf("output %q, want hello-42 and the size 33 111", out)
	}
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil || tio.Lflag&unix.ICANON == 0 {
		t.Fatalf("terminal mode not restored: %v", err)
	}
}

// Closing stdin (srun gone) ends the inner terminal and the bridge.
func TestStepTerminalStdinClosed(t *testing.T) {
	c := newConfig(t)
	spec := backend.Spec{SandboxID: "step-term-eof", Command: []string{"sleep", "600"}}
	r := startRun(t, c, spec, "46")
	r.waitStarted(t, "")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	out := &webtest.Buffer{}
	done := make(chan error, 1)
	go func() { done <- Terminal(context.Background(), c, r.dir, []string{"/bin/sh"}, pr, out) }()
	if _, err := pw.Write([]byte("echo hello-$((6*7))\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "hello-42", func() bool { return strings.Contains(out.String(), "hello-42") })
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("terminal did not end when stdin closed")
	}
}

func TestStepDial(t *testing.T) {
	c := newConfig(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := backend.Spec{SandboxID: "step-dial", Command: []string{exe}, Env: map[string]string{envHelper: "echo", "PORT": "7000"}, Ports: []int{7000}}
	r := startRun(t, c, spec, "47")
	r.waitStarted(t, "listening\n")

	var out bytes.Buffer
	if err := Dial(context.Background(), c, r.dir, 7000, strings.NewReader("ping\n"), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "ping\n" {
		t.Fatalf("echo = %q, want ping", out.String())
	}
	err = Dial(context.Background(), c, r.dir, 7001, strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "7001") {
		t.Fatalf("dial to a closed port: %v, want connection refused naming the port", err)
	}
}

// The Epilog ends what a step Slurm killed left: the sandbox outlives it under its shim.
func TestStepEpilog(t *testing.T) {
	c := newConfig(t)
	spec := backend.Spec{SandboxID: "step-epilog", Command: []string{"sleep", "600"}}
	cleanup(t, c, spec.SandboxID)
	b, err := c.backend()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(c.jobRecord("48"), spec.SandboxID); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SUDO_UID", "") // as Slurm runs it: root, not through sudo
	t.Setenv("SLURM_JOB_ID", "48")
	var stderr bytes.Buffer
	// Main, as `tamarack slurm-step epilog` runs; the cgroup parent is the step's default there, which
	// matters only to new sandboxes.
	if code := Main(context.Background(), []string{slurm.StepEpilog, "--root", c.Root}, Stdio{Stdin: os.Stdin, Stdout: io.Discard, Stderr: &stderr}); code != 0 {
		t.Fatalf("exit status %d; stderr %s", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	if _, err := b.Inspect(context.Background(), spec.SandboxID); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("after the epilog: %v, want the sandbox gone", err)
	}
	if exists(c.jobRecord("48")) {
		t.Error("job record left behind")
	}

	// Nothing to do, or nothing it can do: still 0, so Slurm never drains the node.
	if code := Main(context.Background(), []string{slurm.StepEpilog, "--root", c.Root}, Stdio{Stdout: io.Discard, Stderr: io.Discard}); code != 0 {
		t.Fatalf("no record: exit status %d", code)
	}
	t.Setenv("SLURM_JOB_ID", "../x")
	stderr.Reset()
	if code := Main(context.Background(), []string{slurm.StepEpilog, "--root", c.Root}, Stdio{Stdout: io.Discard, Stderr: &stderr}); code != 0 || !strings.Contains(stderr.String(), "want the digits") {
		t.Fatalf("bad job ID: exit status %d, stderr %q", code, stderr.String())
	}
}

// Through sudo, the Slurm user may not move the root or choose runsc.
func TestStepSudoFlags(t *testing.T) {
	t.Setenv("SUDO_UID", "1234")
	var stderr bytes.Buffer
	code := Main(context.Background(), []string{slurm.StepRun, "--job", "1", "--runsc", "/tmp/evil", "/nonexistent/x"}, Stdio{Stdout: io.Discard, Stderr: &stderr})
	if code != 1 || !strings.Contains(stderr.String(), "--runsc may not be set through sudo") {
		t.Fatalf("exit status %d, stderr %q", code, stderr.String())
	}
}
