package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm/slurmrest"
)

// commentPrefix marks the jobs of sandboxes; the job's comment is "tamarack sandbox <ID> in <Dir>", so an
// agent's sweep never touches the jobs of another agent that submits as the same user.
const commentPrefix = "tamarack sandbox "

// submitTimeout bounds how long a job directory without a job ID counts as "being submitted".
const submitTimeout = time.Minute

// pollEvery is how often Stop asks Slurm whether the job has ended.
const pollEvery = 200 * time.Millisecond

// startPoll is how often Start looks for the step's started file while it waits.
const startPoll = 50 * time.Millisecond

func (b *Backend) dir(id string) string { return filepath.Join(b.opts.Dir, id) }

func (b *Backend) comment(id string) string { return commentPrefix + id + " in " + b.opts.Dir }

// Start writes the sandbox's job directory and submits its job. It returns once slurmctld has accepted
// the job: pending while Slurm queues it or the step starts the sandbox, running once it runs.
func (b *Backend) Start(ctx context.Context, s backend.Spec) (backend.Status, error) {
	if err := s.Validate(); err != nil {
		return backend.Status{}, err
	}
	if err := backend.RequireNoMounts(s, "Slurm"); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	dir := b.dir(s.SandboxID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, backend.ErrExists)
		}
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	fail := func(err error) (backend.Status, error) {
		os.RemoveAll(dir)
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if b.uid >= 0 {
		if err := os.Chown(dir, b.uid, b.gid); err != nil {
			return fail(err)
		}
	}
	spec, err := json.Marshal(s)
	if err != nil {
		return fail(err)
	}
	if err := writeFile(filepath.Join(dir, FileSpec), spec); err != nil {
		return fail(err)
	}
	job, err := b.jobProperties(s, dir)
	if err != nil {
		return fail(err)
	}
	r, err := b.api.SlurmV0038SubmitJobWithResponse(ctx, slurmrest.V0038JobSubmission{Script: b.script(dir), Job: &job})
	if err != nil {
		return fail(fmt.Errorf("%w: slurmrestd at %s: %w", backend.ErrUnavailable, b.opts.URL, err))
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.JobId == nil {
		e := slurmError(r.StatusCode(), r.Body)
		if e.has(errRequestedNodeConfigNone) {
			return fail(fmt.Errorf("%w: no node of the partition could ever run it: %w", backend.ErrInvalidSpec, e))
		}
		return fail(fmt.Errorf("%w: %w", backend.ErrUnavailable, e))
	}
	jobID := strconv.Itoa(*r.JSON200.JobId)
	if err := writeFile(filepath.Join(dir, FileJob), []byte(jobID)); err != nil {
		// The job runs without its ID on record: cancel it rather than lose track of it.
		b.cancel(context.WithoutCancel(ctx), jobID, slurmrest.KILL)
		return fail(err)
	}
	b.log.Info("sandbox submitted", "sandbox", s.SandboxID, "job", jobID)
	return b.waitStarted(ctx, s.SandboxID)
}

// waitStarted waits, up to StartWait, for the step's word that the sandbox runs (a file on the shared
// filesystem, looked at often; Slurm is asked less often, for a job that ended without it), and returns the
// sandbox's status then: running, ended, or still pending.
func (b *Backend) waitStarted(ctx context.Context, id string) (backend.Status, error) {
	deadline := time.Now().Add(b.opts.StartWait)
	started := filepath.Join(b.dir(id), FileStarted)
	t := time.NewTicker(startPoll)
	defer t.Stop()
	for i := 0; ; i++ {
		_, err := os.Stat(started)
		if err == nil || time.Now().After(deadline) || i%10 == 9 {
			st, err := b.status(ctx, id)
			if err != nil || st.State != backend.StatePending || time.Now().After(deadline) {
				return st, err
			}
		}
		select {
		case <-ctx.Done():
			return b.status(context.WithoutCancel(ctx), id)
		case <-t.C:
		}
	}
}

// jobProperties is the job of spec s: its GPUs as GRES, CPUs, memory, time limit, and names that lead back
// to the sandbox.
func (b *Backend) jobProperties(s backend.Spec, dir string) (slurmrest.V0038JobProperties, error) {
	set := func(key, def string) *string {
		if v := s.Settings[key]; v != "" {
			return &v
		}
		if def != "" {
			return &def
		}
		return nil
	}
	name, comment, out := s.SandboxID, b.comment(s.SandboxID), filepath.Join(dir, FileSlurmOutput)
	no := false
	one := 1
	job := slurmrest.V0038JobProperties{
		Name:                    &name,
		Comment:                 &comment,
		CurrentWorkingDirectory: &dir,
		StandardOutput:          &out,
		StandardError:           &out,
		Partition:               set(SettingPartition, b.opts.Partition),
		Account:                 set(SettingAccount, b.opts.Account),
		Qos:                     set(SettingQOS, b.opts.QOS),
		Tasks:                   &one,
		// A sandbox that ended must not be run again by Slurm on its own: the testbed decides.
		Requeue: &no,
		// Slurm requires an environment; the step's own comes from sudo and the spec, not from here.
		Environment: map[string]any{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
	if n := len(s.Devices); n > 0 {
		model := s.Devices[0].Model
		for _, d := range s.Devices[1:] {
			if d.Model != model {
				return job, fmt.Errorf("%w: devices of several models (%s, %s) in one job", backend.ErrInvalidSpec, model, d.Model)
			}
		}
		gres := fmt.Sprintf("gpu:%s:%d", b.gresType(model), n)
		job.Gres = &gres
	}
	if c := s.Limits.CPUMillis; c > 0 {
		cpus := int((c + 999) / 1000)
		job.CpusPerTask = &cpus
	}
	if m := s.Limits.MemoryBytes; m > 0 {
		mb := int((m + 1<<20 - 1) >> 20)
		job.MemoryPerNode = &mb
	}
	if s.Duration > 0 {
		minutes := int((s.Duration + b.opts.Grace + time.Minute - 1) / time.Minute)
		job.TimeLimit = &minutes
	}
	return job, nil
}

// gresType is the Slurm GRES type of a testbed GPU model.
func (b *Backend) gresType(model string) string {
	if t := b.opts.GRES[model]; t != "" {
		return t
	}
	return model
}

// script is the job's batch script: the step, as root, running the sandbox from the job directory.
// Arguments rather than environment: sudo resets the environment.
func (b *Backend) script(dir string) string {
	var w strings.Builder
	w.WriteString("#!/bin/sh\n# A tamarack sandbox: the step runs it in the local runtime on this node (tamarack slurm-step).\nexec")
	for _, a := range b.opts.StepCommand {
		w.WriteString(" " + shellQuote(a))
	}
	fmt.Fprintf(&w, " slurm-step %s --job \"$SLURM_JOB_ID\" --gpus \"${SLURM_JOB_GPUS:-}\" %s\n", StepRun, shellQuote(dir))
	return w.String()
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Stop cancels the sandbox's job. Slurm's cancel is TERM to every step of the job, KILL after the cluster's
// KillWait: the step traps the TERM and stops the sandbox within the grace recorded in the stop file (so
// KillWait must be at least the longest grace the platform uses, docs/sandbox-backends.md). Stop returns
// once the job has ended and the step has said how the sandbox ended, or the grace and a margin have passed.
func (b *Backend) Stop(ctx context.Context, id string, grace time.Duration) (backend.Status, error) {
	st, err := b.status(ctx, id)
	if err != nil || st.Ended() {
		return st, err
	}
	dir := b.dir(id)
	if _, ok := ReadStopGrace(dir); !ok {
		if err := writeFile(filepath.Join(dir, FileStop), []byte(strconv.FormatInt(grace.Milliseconds(), 10))); err != nil {
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
		}
	}
	jobID, err := b.waitJobID(ctx, id)
	if err != nil {
		return backend.Status{}, err
	}
	// KILL is what makes slurmrestd cancel rather than merely signal (doc.go); slurmd still sends TERM first.
	b.cancel(ctx, jobID, slurmrest.KILL)
	deadline := time.Now().Add(grace + b.opts.StopMargin)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if st, err = b.status(ctx, id); err != nil {
			return st, err
		}
		if st.Ended() {
			_, result := os.Stat(filepath.Join(dir, FileResult))
			if result == nil || st.StartedAt.IsZero() || time.Now().After(deadline) {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// waitJobID returns the job of a sandbox whose submission may still be in progress.
func (b *Backend) waitJobID(ctx context.Context, id string) (string, error) {
	for {
		if j, err := os.ReadFile(filepath.Join(b.dir(id), FileJob)); err == nil {
			return strings.TrimSpace(string(j)), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("stop %s: its job was never submitted: %w", id, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// cancel signals the job (KILL: cancels it); a job that already ended is no error.
func (b *Backend) cancel(ctx context.Context, jobID string, sig slurmrest.V0038Signal) {
	r, err := b.api.SlurmV0038CancelJobWithResponse(ctx, jobID, &slurmrest.SlurmV0038CancelJobParams{Signal: &sig})
	if err != nil {
		b.log.Warn("signal job", "job", jobID, "signal", sig, "err", err)
		return
	}
	if r.StatusCode() != http.StatusOK {
		if e := slurmError(r.StatusCode(), r.Body); !e.has(errAlreadyDone) && !e.has(errInvalidJobID) {
			b.log.Warn("signal job", "job", jobID, "signal", sig, "err", e)
		}
	}
}

// Remove deletes an ended sandbox's job directory.
func (b *Backend) Remove(ctx context.Context, id string) error {
	st, err := b.status(ctx, id)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Ended() {
		return fmt.Errorf("remove %s: %w", id, backend.ErrStillRunning)
	}
	return os.RemoveAll(b.dir(id))
}

// Inspect returns the sandbox's status as Slurm and the step report it now.
func (b *Backend) Inspect(ctx context.Context, id string) (backend.Status, error) {
	return b.status(ctx, id)
}

// List returns every sandbox with a job directory, in ID order; it also sweeps, now and then, for jobs that
// no sandbox owns any more.
func (b *Backend) List(ctx context.Context) ([]backend.Status, error) {
	entries, err := os.ReadDir(b.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	out := []backend.Status{}
	for _, e := range entries {
		if !e.IsDir() || validID(e.Name()) != nil {
			continue
		}
		st, err := b.status(ctx, e.Name())
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SandboxID < out[j].SandboxID })
	b.mu.Lock()
	due := time.Since(b.reconciledAt) >= b.opts.ReconcileEvery
	if due {
		b.reconciledAt = time.Now()
	}
	b.mu.Unlock()
	if due {
		if err := b.Reconcile(ctx); err != nil {
			b.log.Warn("reconcile Slurm jobs", "err", err)
		}
	}
	return out, nil
}

// Reconcile cancels the jobs this agent submitted that no sandbox owns any more: a job directory removed
// (or never written) while its job ran on. Sandboxes without a job are found by status (lost).
func (b *Backend) Reconcile(ctx context.Context) error {
	r, err := b.api.SlurmV0038GetJobsWithResponse(ctx, nil)
	if err != nil {
		return err
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Jobs == nil {
		return slurmError(r.StatusCode(), r.Body)
	}
	for _, j := range *r.JSON200.Jobs {
		name, jobID := deref(j.Name), strconv.Itoa(deref(j.JobId))
		if deref(j.UserName) != b.opts.User || deref(j.Comment) != b.comment(name) || ended(deref(j.JobState)) {
			continue
		}
		recorded, err := os.ReadFile(filepath.Join(b.dir(name), FileJob))
		switch {
		case err == nil && strings.TrimSpace(string(recorded)) == jobID:
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, fs.ErrNotExist):
			if fi, err := os.Stat(b.dir(name)); err == nil && time.Since(fi.ModTime()) < submitTimeout {
				continue // its submission is being recorded
			}
		}
		b.log.Warn("cancelling a job no sandbox owns", "job", jobID, "sandbox", name)
		b.cancel(ctx, jobID, slurmrest.KILL)
	}
	return nil
}

// status is the sandbox's status: its recorded end once it has one; otherwise what Slurm says of its job,
// with the step's word on whether the sandbox runs yet and why it ended.
func (b *Backend) status(ctx context.Context, id string) (backend.Status, error) {
	if err := validID(id); err != nil {
		return backend.Status{}, err
	}
	dir := b.dir(id)
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return backend.Status{}, fmt.Errorf("%s: %w", id, backend.ErrNotFound)
		}
		return backend.Status{}, err
	}
	var final backend.Status
	if err := readJSON(filepath.Join(dir, FileFinal), &final); err == nil {
		return final, nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileJob))
	if err != nil {
		if time.Since(fi.ModTime()) < submitTimeout {
			return backend.Status{SandboxID: id, State: backend.StatePending, ExitCode: -1, Message: "being submitted to Slurm"}, nil
		}
		return b.end(id, backend.Status{SandboxID: id, State: backend.StateExited, EndedAt: fi.ModTime().UTC(), ExitCode: -1,
			Reason: backend.ReasonFailed, Message: "never submitted to Slurm"})
	}
	jobID := strings.TrimSpace(string(raw))
	r, err := b.api.SlurmV0038GetJobWithResponse(ctx, jobID)
	if err != nil {
		return backend.Status{SandboxID: id, State: backend.StateUnknown, ExitCode: -1, Message: "slurmrestd: " + err.Error()}, nil
	}
	var job *slurmrest.V0038JobResponseProperties
	if r.StatusCode() == http.StatusOK && r.JSON200 != nil && r.JSON200.Jobs != nil && len(*r.JSON200.Jobs) == 1 {
		job = &(*r.JSON200.Jobs)[0]
	} else if e := slurmError(r.StatusCode(), r.Body); !e.has(errInvalidJobID) {
		return backend.Status{SandboxID: id, State: backend.StateUnknown, ExitCode: -1, Message: e.Error()}, nil
	}
	if job == nil || deref(job.Name) != id {
		// slurmctld forgot the job before its end was seen (or gave its number to another): it ended,
		// when is unknown past the last time it was seen running.
		return b.end(id, b.lost(id, "Slurm job "+jobID+" is gone"))
	}
	return b.fromJob(id, jobID, job)
}

// fromJob maps a job's state, with the step's files, to the sandbox's status; an ended one is recorded.
func (b *Backend) fromJob(id, jobID string, j *slurmrest.V0038JobResponseProperties) (backend.Status, error) {
	dir := b.dir(id)
	state := deref(j.JobState)
	st := backend.Status{SandboxID: id, ExitCode: -1, Message: fmt.Sprintf("Slurm job %s %s", jobID, state)}
	if r := deref(j.StateReason); r != "" && r != "None" {
		st.Message += " (" + r + ")"
	}
	start := unix(deref(j.StartTime))
	if !ended(state) {
		_, err := os.Stat(filepath.Join(dir, FileStarted))
		if (state == "RUNNING" || state == "COMPLETING") && err == nil {
			st.State, st.StartedAt = backend.StateRunning, start
			now := time.Now()
			_ = os.Chtimes(filepath.Join(dir, FileAlive), now, now)
			if _, err := os.Stat(filepath.Join(dir, FileAlive)); errors.Is(err, fs.ErrNotExist) {
				_ = writeFile(filepath.Join(dir, FileAlive), nil)
			}
		} else {
			st.State = backend.StatePending
		}
		return st, nil
	}
	st.State, st.EndedAt = backend.StateExited, unix(deref(j.EndTime))
	if st.EndedAt.IsZero() {
		st.EndedAt = time.Now().UTC().Truncate(time.Second)
	}
	var result backend.Status
	hasResult := readJSON(filepath.Join(dir, FileResult), &result) == nil
	_, ranStep := os.Stat(filepath.Join(dir, FileStarted))
	if ranStep == nil && !start.IsZero() {
		st.StartedAt = start
		if st.EndedAt.Before(start) {
			st.EndedAt = start
		}
	}
	if hasResult {
		st.ExitCode = result.ExitCode
	} else if state == "COMPLETED" || state == "FAILED" {
		st.ExitCode = deref(j.ExitCode)
	}
	_, stopped := ReadStopGrace(dir)
	switch {
	case stopped:
		st.Reason = backend.ReasonStopped
	case st.StartedAt.IsZero():
		st.Reason = backend.ReasonFailed
		if hasResult && result.Message != "" {
			st.Message += ": " + result.Message
		}
	case hasResult && result.Reason != "":
		st.Reason = result.Reason
	case state == "OUT_OF_MEMORY":
		st.Reason = backend.ReasonOOMKilled
	case state == "NODE_FAIL":
		st.Reason = backend.ReasonLost
	case state == "COMPLETED":
		st.Reason = backend.ReasonExited
	default: // CANCELLED by someone else, TIMEOUT, PREEMPTED, or the step died without its word
		st.Reason = backend.ReasonKilled
	}
	return b.end(id, st)
}

// lost is the end of a sandbox whose job Slurm no longer knows: at the last time it was seen running.
func (b *Backend) lost(id, why string) backend.Status {
	dir := b.dir(id)
	st := backend.Status{SandboxID: id, State: backend.StateExited, ExitCode: -1, Reason: backend.ReasonLost, Message: why}
	if fi, err := os.Stat(filepath.Join(dir, FileAlive)); err == nil {
		st.EndedAt = fi.ModTime().UTC().Truncate(time.Millisecond)
		if raw, err := os.ReadFile(filepath.Join(dir, FileStarted)); err == nil {
			if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(raw))); err == nil && !t.After(st.EndedAt) {
				st.StartedAt = t.UTC()
			}
		}
	}
	if st.StartedAt.IsZero() {
		// Never seen running: nothing to meter.
		st.Reason = backend.ReasonFailed
		if st.EndedAt.IsZero() {
			st.EndedAt = time.Now().UTC().Truncate(time.Millisecond)
		}
	}
	return st
}

// end records st as the sandbox's final status, unless a concurrent call recorded one first, and returns
// the one recorded, so that every call returns exactly the same.
func (b *Backend) end(id string, st backend.Status) (backend.Status, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return backend.Status{}, err
	}
	path := filepath.Join(b.dir(id), FileFinal)
	if err := createFile(path, raw); err != nil && !errors.Is(err, fs.ErrExist) {
		return backend.Status{}, fmt.Errorf("record end of %s: %w", id, err)
	}
	var out backend.Status
	err = readJSON(path, &out)
	return out, err
}

// ended reports whether a job state is final.
func ended(state string) bool {
	switch state {
	case "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
		"RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "":
		return false
	}
	return true
}

func unix(sec int64) time.Time {
	if sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

func validID(id string) error {
	if err := (backend.Spec{SandboxID: id, Command: []string{"x"}}).Validate(); err != nil {
		return fmt.Errorf("%q: %w", id, backend.ErrNotFound)
	}
	return nil
}
