// Package step is the compute-node side of the Slurm backend: `tamarack slurm-step`, which a sandbox's
// Slurm job runs as root (through sudo) on the node Slurm chose. It starts the sandbox with the local
// runtime backend (package local), so a sandbox on a Slurm node gets exactly the isolation a local one
// gets, and talks to the agent on the login node only through the job directory (slurm's layout.go) and
// the job's standard output.
//
// It owns the node-local root of those local sandboxes and the record of which Slurm job holds which
// sandbox (so that Slurm's Epilog can end what a killed step left: the local backend's shim outlives the
// step by design). It must not talk to slurmctld or decide anything about the sandbox beyond what the
// spec and Slurm's allocation say.
package step

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
)

// DefaultRoot is the local backend's root on a compute node: node-local and root's, never the shared
// filesystem the job directories are on.
const DefaultRoot = "/var/lib/tamarack/slurm-sandboxes"

// DefaultCgroupParent is absolute, not the local backend's default under the process's own cgroup: the
// step runs in a Slurm job's (or slurmd's) cgroup, which holds processes, and cgroup v2 refuses to enable
// controllers below such a cgroup. The sandbox's own limits apply there all the same; what Slurm no longer
// sees is why the Epilog ends whatever a killed step left.
const DefaultCgroupParent = "/tamarack-slurm-sandboxes"

// jobsDir under the root maps Slurm job IDs to sandbox IDs. Its name starts with a dot, which no sandbox
// ID does, so the local backend never mistakes it for a sandbox directory.
const jobsDir = ".jobs"

// Config is what every subcommand needs to reach the node's local sandboxes.
type Config struct {
	// Root is the local backend's root (DefaultRoot).
	Root string
	// Runsc is gVisor's runsc for pools that ask for it; empty: such sandboxes fail to start.
	Runsc string
	// CgroupParent is the local backend's; empty means DefaultCgroupParent.
	CgroupParent string
	// ReadOnlyPaths and FileEdits are the local backend's (CDI edits for GPUs).
	ReadOnlyPaths []string
	FileEdits     []local.FileEdit
	Logger        *slog.Logger
}

func (c Config) backend() (*local.Backend, error) {
	parent := c.CgroupParent
	if parent == "" {
		parent = DefaultCgroupParent
	}
	return local.New(local.Options{Root: c.Root, Runsc: c.Runsc, CgroupParent: parent, ReadOnlyPaths: c.ReadOnlyPaths, FileEdits: c.FileEdits, Logger: c.Logger})
}

func (c Config) jobRecord(job string) string { return filepath.Join(c.Root, jobsDir, job) }

var jobPattern = regexp.MustCompile(`^[0-9]{1,20}$`)

// checkJob guards the job record's path: a Slurm job ID is a number, never a path.
func checkJob(job string) error {
	if !jobPattern.MatchString(job) {
		return fmt.Errorf("job ID %q: want the digits of a Slurm job ID", job)
	}
	return nil
}

// Stdio is the process's standard streams; Stdin is a file because terminal needs its terminal modes.
type Stdio struct {
	Stdin          *os.File
	Stdout, Stderr io.Writer
}

// Main runs `tamarack slurm-step <sub> args…` and returns the exit status. ctx ending is the TERM (or
// INT) the step got: run stops its sandbox and still finishes; the others return.
func Main(ctx context.Context, args []string, std Stdio) int {
	if len(args) == 0 {
		fmt.Fprintln(std.Stderr, "tamarack slurm-step: want run, terminal, dial or epilog (run by Slurm jobs, not by hand)")
		return 2
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("slurm-step "+sub, flag.ContinueOnError)
	fs.SetOutput(std.Stderr)
	c := Config{Logger: slog.New(slog.NewTextHandler(std.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	fs.StringVar(&c.Root, "root", DefaultRoot, "the node's local sandbox root")
	var job, gpus string
	if sub == slurm.StepRun {
		fs.StringVar(&c.Runsc, "runsc", os.Getenv("TAMARACK_RUNSC"), "gVisor's runsc, for pools that ask for it")
		fs.StringVar(&job, "job", "", "the Slurm job ID ($SLURM_JOB_ID)")
		fs.StringVar(&gpus, "gpus", "", "the GPUs Slurm allocated ($SLURM_JOB_GPUS: indices, comma-separated)")
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(std.Stderr, "tamarack slurm-step:", err)
		return 1
	}
	if err := refuseSudoFlags(fs); err != nil {
		return fail(err)
	}
	pos := fs.Args()
	switch sub {
	case slurm.StepRun:
		if len(pos) != 1 {
			return fail(errors.New("usage: slurm-step run --job ID [--gpus LIST] [--root DIR] [--runsc PATH] JOB_DIR"))
		}
		if edits, err := openCDI(c.Logger); err != nil {
			return fail(err)
		} else if edits != nil {
			c.FileEdits = []local.FileEdit{edits}
		}
		return Run(ctx, c, RunInput{Dir: pos[0], Job: job, GPUs: gpus}, std.Stderr)
	case slurm.StepTerminal:
		if len(pos) < 1 {
			return fail(errors.New("usage: slurm-step terminal [--root DIR] JOB_DIR [-- CMD…]"))
		}
		cmd := pos[1:]
		if len(cmd) > 0 && cmd[0] == "--" {
			cmd = cmd[1:]
		}
		if err := Terminal(ctx, c, pos[0], cmd, std.Stdin, std.Stdout); err != nil {
			return fail(err)
		}
		return 0
	case slurm.StepDial:
		if len(pos) != 2 {
			return fail(errors.New("usage: slurm-step dial [--root DIR] JOB_DIR PORT"))
		}
		port, err := strconv.Atoi(pos[1])
		if err != nil {
			return fail(fmt.Errorf("port %q: not a number", pos[1]))
		}
		if err := Dial(ctx, c, pos[0], port, std.Stdin, std.Stdout); err != nil {
			return fail(err)
		}
		return 0
	case slurm.StepEpilog:
		// Never anything but 0: a failing Epilog makes Slurm drain the node.
		if err := Epilog(ctx, c, os.Getenv("SLURM_JOB_ID")); err != nil {
			fmt.Fprintln(std.Stderr, "tamarack slurm-step epilog:", err)
		}
		return 0
	}
	return fail(fmt.Errorf("unknown subcommand %q (want run, terminal, dial or epilog)", sub))
}

// refuseSudoFlags keeps a sudo caller to the defaults of --root and --runsc: sudoers lets the agent's Slurm
// user run `tamarack slurm-step *` as root, and a root it picked, or a runsc it wrote, would be a path to
// running anything as root. Root itself (the Epilog, an operator) may set them.
func refuseSudoFlags(fs *flag.FlagSet) error {
	if u := os.Getenv("SUDO_UID"); u == "" || u == "0" {
		return nil
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "root" || f.Name == "runsc" {
			err = fmt.Errorf("--%s may not be set through sudo (only root may move the node's sandboxes or choose runsc; set TAMARACK_RUNSC with sudoers' env_keep)", f.Name)
		}
	})
	return err
}

// openCDI reads the host's CDI specs, as the agent does, for GPUs that need more than device nodes.
func openCDI(log *slog.Logger) (local.FileEdit, error) {
	edits, err := cdi.Open([]string{"/etc/cdi", "/var/run/cdi"}, log)
	if err != nil {
		return nil, err
	}
	return edits.Edit, nil
}
