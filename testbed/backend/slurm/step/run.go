package step

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/logfile"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
)

// defaultStopGrace is the grace of a TERM that came without a stop file (scancel, Slurm's time limit).
const defaultStopGrace = 10 * time.Second

// RunInput is what the batch script passes: arguments, not environment, since sudo resets it.
type RunInput struct {
	Dir  string // the job directory; its base name is the sandbox ID
	Job  string // $SLURM_JOB_ID
	GPUs string // $SLURM_JOB_GPUS: the allocated GPUs' indices, comma-separated; empty for none
}

// Run starts the job directory's sandbox, copies its output into output.log in the job directory (capped at
// the spec's log limit like the local runtime's own log, and read by the agent) until it ends, and returns the exit status the job should end with: the sandbox's exit
// code (128+N when killed by signal N), 1 when unknown or when the sandbox never started. ctx ending is
// Slurm's TERM (or the agent's stop, which wrote the stop file first): the sandbox is stopped with the
// stop file's grace and Run still finishes, so that result.json always records the end.
func Run(ctx context.Context, c Config, in RunInput, stderr io.Writer) int {
	say := func(err error) { fmt.Fprintln(stderr, "tamarack slurm-step:", err) }
	failed := func(id string, err error) int {
		say(err)
		st := backend.Status{SandboxID: id, State: backend.StateExited, EndedAt: time.Now().UTC(), ExitCode: -1, Reason: backend.ReasonFailed, Message: err.Error()}
		if in.Dir != "" {
			if werr := slurm.WriteResult(in.Dir, st); werr != nil {
				say(fmt.Errorf("write %s: %w", slurm.FileResult, werr))
			}
		}
		return 1
	}
	id := filepath.Base(in.Dir)
	if err := checkJob(in.Job); err != nil {
		return failed(id, err)
	}
	spec, notes, err := readSpec(in)
	if err != nil {
		return failed(id, err)
	}
	for _, n := range notes {
		fmt.Fprintln(stderr, "tamarack slurm-step:", n)
	}
	b, err := c.backend()
	if err != nil {
		return failed(id, err)
	}
	// Close ends the shim the backend starts ahead for a next sandbox this process will never start.
	defer b.Close()
	// Cleanup must run after a TERM too: only the sandbox's stop follows ctx.
	bg := context.WithoutCancel(ctx)
	record := c.jobRecord(in.Job)
	if err := writeRecord(record, spec.SandboxID); err != nil {
		return failed(id, err)
	}
	defer func() {
		if err := os.Remove(record); err != nil && !errors.Is(err, os.ErrNotExist) {
			say(err)
		}
	}()
	if err := clearLeftover(bg, b, spec.SandboxID, stderr); err != nil {
		return failed(id, err)
	}
	started, err := b.Start(ctx, spec)
	if err != nil {
		return failed(id, err)
	}
	if err := slurm.WriteStarted(in.Dir, started.StartedAt); err != nil {
		// The agent will see the job run without this; the result is still written at the end.
		say(fmt.Errorf("write %s: %w", slurm.FileStarted, err))
	}

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-stopDone(bg, b, spec.SandboxID):
			return // ended by itself
		}
		grace, ok := slurm.ReadStopGrace(in.Dir)
		if !ok {
			grace = defaultStopGrace
		}
		if _, err := b.Stop(bg, spec.SandboxID, grace); err != nil {
			say(err)
		}
	}()
	if out, err := logfile.Create(filepath.Join(in.Dir, slurm.FileOutput), spec.Limits.LogBytes); err != nil {
		say(err)
	} else {
		if err := copyLogs(bg, b, spec.SandboxID, out); err != nil {
			say(err)
		}
		if err := out.Close(); err != nil {
			say(err)
		}
	}
	<-stopped

	final, err := b.Inspect(bg, spec.SandboxID)
	if err != nil {
		say(err)
		final = backend.Status{SandboxID: spec.SandboxID, State: backend.StateExited, ExitCode: -1, Reason: backend.ReasonLost, Message: err.Error(), StartedAt: started.StartedAt, EndedAt: time.Now().UTC()}
	}
	if err := slurm.WriteResult(in.Dir, final); err != nil {
		say(fmt.Errorf("write %s: %w", slurm.FileResult, err))
	}
	if err := b.Remove(bg, spec.SandboxID); err != nil {
		say(err)
	}
	if final.ExitCode < 0 || final.ExitCode > 255 {
		return 1
	}
	return final.ExitCode
}

// devDir is where the node's GPU device nodes are (tests point it elsewhere).
var devDir = "/dev"

// readSpec reads and checks the spec and puts Slurm's GPUs in place of the ones the testbed chose: the
// node's indices are Slurm's to pick; the count and model are the testbed's. A GPU whose device node does
// not exist (a test cluster's GRES with File= pointing elsewhere) is handed over as nothing, with a note
// for the job's output, rather than failing the sandbox.
func readSpec(in RunInput) (backend.Spec, []string, error) {
	var notes []string
	spec, err := slurm.ReadSpec(in.Dir)
	if err != nil {
		return backend.Spec{}, nil, fmt.Errorf("read spec: %w", err)
	}
	if err := spec.Validate(); err != nil {
		return backend.Spec{}, nil, err
	}
	if id := filepath.Base(in.Dir); spec.SandboxID != id {
		return backend.Spec{}, nil, fmt.Errorf("spec is for sandbox %q but the job directory is %q", spec.SandboxID, id)
	}
	var devs []backend.Device
	if g := strings.TrimSpace(in.GPUs); g != "" {
		for f := range strings.SplitSeq(g, ",") {
			idx, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || idx < 0 {
				return backend.Spec{}, nil, fmt.Errorf("--gpus %q: want GPU indices separated by commas", in.GPUs)
			}
			d := backend.Device{Index: idx}
			if node := filepath.Join(devDir, "nvidia"+strconv.Itoa(idx)); exists(node) {
				d.Paths = []string{node}
			} else {
				notes = append(notes, fmt.Sprintf("GPU %d: no device node %s on this node, nothing handed over", idx, node))
			}
			if len(spec.Devices) > 0 {
				d.Model = spec.Devices[0].Model
			}
			devs = append(devs, d)
		}
	}
	if len(devs) != len(spec.Devices) {
		return backend.Spec{}, nil, fmt.Errorf("the spec asks for %d GPUs but Slurm allocated %d (--gpus %q)", len(spec.Devices), len(devs), in.GPUs)
	}
	spec.Devices = devs
	if err := spec.Validate(); err != nil { // repeated indices
		return backend.Spec{}, nil, err
	}
	return spec, notes, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeRecord notes that job holds sandbox id, for the Epilog.
func writeRecord(path, id string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(id+"\n"), 0o600)
}

// clearLeftover removes what an earlier run of this job left on this node (a requeued job whose step was
// killed before its end and whose Epilog failed): the sandbox is the job's, no other job runs it.
func clearLeftover(ctx context.Context, b *local.Backend, id string, stderr io.Writer) error {
	st, err := b.Inspect(ctx, id)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Ended() {
		fmt.Fprintf(stderr, "tamarack slurm-step: sandbox %s is still here from an earlier run of the job (%s): stopping it\n", id, st.State)
		if _, err := b.Stop(ctx, id, 0); err != nil {
			return err
		}
	}
	return b.Remove(ctx, id)
}

// stopDone is closed once the sandbox has ended by itself, polling as the local backend's log follower
// does, so that the stop goroutine does not outlive it.
func stopDone(ctx context.Context, b *local.Backend, id string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			st, err := b.Inspect(ctx, id)
			if err != nil || st.Ended() {
				return
			}
		}
	}()
	return done
}

// copyLogs copies the sandbox's output to w until the sandbox ends.
func copyLogs(ctx context.Context, b *local.Backend, id string, w io.Writer) error {
	r, err := b.Logs(ctx, id, true)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}
