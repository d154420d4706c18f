package slurm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// A sandbox's job directory, <Options.Dir>/<sandbox ID>/, is how the agent on the login node and the step on
// the compute node (package step, `tamarack slurm-step`) talk: it lies on a filesystem both see (the cluster's
// shared home or scratch), is owned by the Slurm user the agent submits as, and is never visible inside the
// sandbox. These are its files.
const (
	// FileSpec is the backend.Spec the agent wrote before submitting (JSON). The step starts exactly it.
	FileSpec = "spec.json"
	// FileJob is the Slurm job ID, written by the agent as soon as slurmrestd accepted the job.
	FileJob = "job"
	// FileOutput is what the sandbox printed, written by the step through package logfile (capped at the
	// spec's LogBytes like the local runtime's log); the agent follows it.
	FileOutput = "output.log"
	// FileSlurmOutput is the job's own standard output and error, which Slurm writes: the step's messages
	// (a GPU without a device node, why a start failed), for the site's operators.
	FileSlurmOutput = "slurm.log"
	// FileStarted is written by the step once the sandbox's main process runs (its content: RFC 3339 time):
	// until then a RUNNING job is still starting its sandbox.
	FileStarted = "started"
	// FileResult is the step's last word: the local runtime's final backend.Status (JSON), for the reason
	// and exit code Slurm cannot tell (an OOM kill).
	FileResult = "result.json"
	// FileStop is written by the agent before it signals the job: the stop's grace in milliseconds. The
	// step reads it when the TERM arrives; its presence makes the end a stop.
	FileStop = "stop"
	// FileFinal is the agent's record of the sandbox's end, once observed (JSON backend.Status): Slurm forgets
	// finished jobs (MinJobAge), the sandbox's final status must not change.
	FileFinal = "final.json"
	// FileAlive's modification time is the last time the agent saw the job running: a job Slurm lost before
	// its end was observed ended then (ReasonLost), so metering never charges time it cannot show.
	FileAlive = "alive"
)

// Step subcommands, run on the compute node as `<StepCommand> slurm-step <sub> …`.
const (
	StepRun      = "run"      // run --job <Slurm job ID> --gpus <SLURM_JOB_GPUS> <job dir>: the batch script's only line
	StepTerminal = "terminal" // terminal <job dir> [-- cmd…]: a terminal inside the sandbox on srun's pty
	StepDial     = "dial"     // dial <job dir> <port>: stdin/stdout to a TCP port on the sandbox's loopback
	StepEpilog   = "epilog"   // epilog: Slurm's Epilog, as root: stop and remove what the job left (SLURM_JOB_ID)
)

// ReadSpec reads a job directory's spec.
func ReadSpec(dir string) (backend.Spec, error) {
	var s backend.Spec
	err := readJSON(filepath.Join(dir, FileSpec), &s)
	return s, err
}

// ReadStopGrace reads the grace the agent asked for; ok is false when no stop was asked.
func ReadStopGrace(dir string) (grace time.Duration, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, FileStop))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, true
	}
	return time.Duration(n) * time.Millisecond, true
}

// WriteStarted and WriteResult are the step's writes; the files are written whole or not at all.
func WriteStarted(dir string, at time.Time) error {
	return writeFile(filepath.Join(dir, FileStarted), []byte(at.UTC().Format(time.RFC3339Nano)))
}

func WriteResult(dir string, st backend.Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, FileResult), b)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// createFile writes path whole, atomically, unless it exists (fs.ErrExist): a hard link of a complete
// temporary file, which never replaces what another writer put there first.
func createFile(path string, b []byte) error {
	tmp := path + ".new-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// writeFile replaces path atomically (a temporary file renamed over it), so a reader on another node never
// sees half of it.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
