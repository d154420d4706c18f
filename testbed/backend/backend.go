// Package backend defines the contract between the testbed service and the systems that actually run
// sandboxes: a local runc (OCI runtime) runner, an in-memory simulator, and later Slurm and Kubernetes.
//
// It owns the Backend interface, the Spec a sandbox is started from, the Status a backend reports and the
// error sentinels every implementation returns. It knows nothing of users, billing, scheduling or the
// database: the testbed service decides what to run and where, a backend only runs it and reports the truth
// about it. Implementations must not keep the testbed's state; whatever they hold must be recoverable from
// the system they drive (files, the Slurm controller, the Kubernetes API), so that List after a restart of
// `tamarack serve` tells the testbed everything it needs to reconcile.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Errors every backend returns, wrapped with context. Callers test them with errors.Is.
var (
	// ErrNotFound: the backend holds no sandbox with that ID (never started, or already removed).
	ErrNotFound = errors.New("sandbox not found")
	// ErrNotRunning: the operation needs a running sandbox (Terminal, DialPort) and this one has ended
	// or has not started yet.
	ErrNotRunning = errors.New("sandbox not running")
	// ErrStillRunning: Remove was called on a sandbox that has not ended; Stop it first.
	ErrStillRunning = errors.New("sandbox still running")
	// ErrExists: Start was called with the ID of a sandbox the backend still holds.
	ErrExists = errors.New("sandbox already exists")
	// ErrUnavailable: the backend cannot work at all right now (runc missing, Slurm controller
	// unreachable, cgroups not writable). Check returns it; other methods may too.
	ErrUnavailable = errors.New("sandbox backend unavailable")
	// ErrInvalidSpec: Spec.Validate rejected the spec.
	ErrInvalidSpec = errors.New("invalid sandbox spec")
	// ErrNotSupported: the backend cannot do this at all (a Slurm or Kubernetes pool asked for Exec or
	// Home, which only the local backend offers).
	ErrNotSupported = errors.New("not supported on this pool")
)

// Backend runs sandboxes. Every method is safe for concurrent use. IDs are chosen by the caller (the
// testbed) and are the only handle: a backend never invents one, so a crash between "testbed decides" and
// "backend starts" is repaired by asking the backend about that ID.
type Backend interface {
	// Kind names the implementation ("local", "simulator", "slurm", "kubernetes"); it is stored with
	// each sandbox so the testbed knows which backend to ask after a restart.
	Kind() string

	// Check reports whether the backend can start sandboxes on this host or cluster. The error wraps
	// ErrUnavailable and says how to fix it ("runc not found: install it with apt-get install
	// runc"). `tamarack serve` calls it at start and refuses to run a pool whose backend fails.
	Check(ctx context.Context) error

	// Start creates the sandbox and returns once the backend has observed its main process running
	// (State running, StartedAt set by the backend, not by the caller; a command that ends at once may
	// already be reported exited), or once it is queued where the system queues work (State pending:
	// Slurm, Kubernetes scheduling). The spec is validated first
	// (ErrInvalidSpec). Starting an ID the backend still holds fails with ErrExists, so a retried Start
	// never runs two copies. If ctx ends before the sandbox runs, Start cleans up what it created and
	// returns ctx's error.
	Start(ctx context.Context, s Spec) (Status, error)

	// Stop ends the sandbox: SIGTERM (or the system's equivalent) to every process in it, SIGKILL after
	// grace, then waits until nothing of it runs and frees what it held (cgroup, writable directories,
	// pod, job). It returns the final status (State exited). Stop is idempotent: stopping an ended
	// sandbox returns its final status again. The status and logs stay readable until Remove.
	// ErrNotFound if the backend holds no such sandbox.
	Stop(ctx context.Context, id string, grace time.Duration) (Status, error)

	// Remove forgets an ended sandbox: its retained status and logs are deleted and later calls answer
	// ErrNotFound. It fails with ErrStillRunning for a running sandbox and is a no-op for an unknown ID.
	Remove(ctx context.Context, id string) error

	// Inspect returns the sandbox's current status, as observed now. ErrNotFound if unknown.
	Inspect(ctx context.Context, id string) (Status, error)

	// List returns every sandbox the backend holds, running or ended but not yet removed, in ID order.
	// It is the reconciliation source after a restart: it must be rebuilt from the system itself, never
	// from memory of this process. A sandbox whose supervisor vanished without recording an end is
	// reported ended with Reason lost and EndedAt the last time it was known alive.
	List(ctx context.Context) ([]Status, error)

	// Logs returns the sandbox's combined stdout and stderr from the beginning. With follow, the reader
	// keeps streaming until the sandbox ends (then io.EOF) or ctx ends. The caller closes it.
	Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error)

	// Terminal starts cmd (a login shell when empty) on a new pseudo-terminal inside the running
	// sandbox: same namespaces, limits, environment and privileges as its main process. ctx bounds
	// only the start; Close ends the process. ErrNotRunning if the sandbox has ended.
	Terminal(ctx context.Context, id string, cmd []string) (Terminal, error)

	// DialPort opens a TCP connection to port on the sandbox's own loopback (or pod IP), for the
	// gateway's HTTP proxy to JupyterLab and similar. It works for sandboxes without network.
	DialPort(ctx context.Context, id string, port int) (net.Conn, error)
}

// Execer is implemented by backends that can run a command in a running sandbox without a terminal, with
// binary-clean stdin, stdout and stderr and an exit status (what ssh's exec requests, scp and rsync need;
// a pseudo-terminal mangles bytes and merges the streams). Backends without it answer ErrNotSupported.
type Execer interface {
	// Exec runs cmd inside the running sandbox as Terminal does (same namespaces, limits, environment and
	// user) with the given streams, and returns the command's exit code once it has exited and its output
	// is copied (128+N when killed by signal N). stdin's EOF closes the command's standard input. When ctx
	// ends first, the command is killed and ctx's error returned. ErrNotRunning if the sandbox has ended.
	Exec(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// Home is a sandbox's home directory as seen from the host running it: its path there and the host uid
// and gid that own what the sandbox writes.
type Home struct {
	Path     string
	UID, GID int
	// Inside is where the sandbox sees the same directory (/home/sandbox).
	Inside string
}

// Homer is implemented by backends whose sandboxes' home directories are reachable on the host that runs
// the backend (local), for file transfer (SFTP) served next to the sandbox. Others answer ErrNotSupported.
type Homer interface {
	// Home returns the running sandbox's home. ErrNotRunning if it has ended.
	Home(ctx context.Context, id string) (Home, error)
}

// Terminal is an interactive process on a pseudo-terminal. Read returns io.EOF once the process has
// exited and its output is drained.
type Terminal interface {
	io.ReadWriteCloser
	// Resize sets the terminal's window size, as a browser terminal does when its pane changes.
	Resize(cols, rows uint16) error
}

// Device is one accelerator assigned to a sandbox by the testbed scheduler.
type Device struct {
	// Index is the device's NVML index on its node (the order nvidia-smi prints, PCI bus order).
	Index int
	// UUID is the device's stable identifier (GPU-…); backends prefer it where the system accepts it.
	UUID string
	// Model is the product name, for logs and for node selection in cluster backends.
	Model string
	// Paths are the device nodes on the host, e.g. /dev/nvidia0. Shared nodes (/dev/nvidiactl,
	// /dev/nvidia-uvm) are added by the backend.
	Paths []string
	// CDIName is the host's CDI device that hands this one over (nvidia.com/gpu=GPU-…), when the caller
	// knows it. Empty: a backend that reads CDI specs finds the device by UUID, then by index.
	CDIName string
}

// Limits caps what a sandbox may use. Zero means "no limit of that kind" (except LogBytes): the testbed
// always sets them for real sandboxes; zero exists for tests and for backends where the system enforces
// its own.
type Limits struct {
	// MemoryBytes is the memory (RSS plus page cache, no swap) at which the sandbox is OOM-killed.
	MemoryBytes int64
	// CPUMillis is CPU time per wall second in thousandths of a CPU: 1500 is one and a half cores.
	CPUMillis int64
	// Pids is the most processes and threads the sandbox may have at once.
	Pids int64
	// LogBytes is the most of the sandbox's output (stdout and stderr) the backend keeps: the newest
	// bytes, older ones dropped. Zero is the backend's default, never unlimited (local: 16 MiB).
	LogBytes int64
}

// Spec is everything a backend needs to start a sandbox. The testbed builds it from the template, the
// reservation and the pool; a backend must not need anything else.
type Spec struct {
	// SandboxID is unique across the testbed, a DNS label: [a-z0-9-], 1–63 characters, starting and
	// ending alphanumeric, so it fits hostnames, pod names and Slurm job names.
	SandboxID string
	// Command is the main process and its arguments; the sandbox ends when it exits.
	Command []string
	// Env is added to the environment the backend sets (HOME, PATH, device variables), which wins.
	Env map[string]string
	// Devices are exactly the accelerators the backend must expose, no more.
	Devices []Device
	// Network false means no network at all: an empty network namespace with only loopback.
	Network bool
	// Ports are the TCP ports the template serves (JupyterLab), reachable through DialPort.
	Ports []int
	// Limits cap memory, CPU and process count.
	Limits Limits
	// Duration is the longest the sandbox may run: its booking, or the most its listing lets the booking be
	// extended to (an extension is not passed on later). The testbed stops the sandbox itself when its
	// booking is up; a backend whose system enforces its own time limit (Slurm) sets it to this plus a
	// grace, so that the testbed's stop comes first. Zero means none.
	Duration time.Duration
	// RootFS is the host path of the sandbox's root filesystem: an image unpacked read-only (and shared
	// by the sandboxes that use it). Empty means the backend's default (the local backend's view of the
	// host's /usr); backends that pull images themselves (Kubernetes) ignore it.
	RootFS string
	// Image is the pinned image reference (registry/repository@sha256:…) for backends whose nodes pull
	// images themselves (Kubernetes); RootFS stays empty for them. Backends that run a root filesystem
	// prepared on the host ignore it. With an Image, an empty Command runs the image's own entrypoint.
	Image string
	// Settings are the pool's backend-specific settings (Slurm partition, Kubernetes namespace,
	// RuntimeClass, image). A backend ignores keys it does not know.
	Settings map[string]string
	// Mounts are host directories bound into the sandbox READ-ONLY (a model's or dataset's artifacts,
	// fetched by the agent onto this host). A backend that cannot bind a directory of the host that runs it
	// into its sandboxes (Slurm, Kubernetes: the sandbox runs on another machine) refuses a spec with any,
	// with ErrNotSupported, rather than start the sandbox without them.
	Mounts []Mount
}

// Mount is a host directory a sandbox sees read-only at Target.
type Mount struct {
	// Source is the directory on the host that runs the backend: a clean absolute path.
	Source string
	// Target is where the sandbox sees it: a clean absolute path other than / and not under the paths
	// every sandbox has (/proc, /dev, /sys, /home/sandbox, /tmp, /run).
	Target string
}

// reservedTargets are paths every sandbox has its own filesystems at: a mount may not cover them.
var reservedTargets = []string{"/proc", "/dev", "/sys", "/home", "/tmp", "/run", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64"}

// RequireNoMounts is what a backend that cannot bind host directories answers for a spec with mounts.
func RequireNoMounts(s Spec, kind string) error {
	if len(s.Mounts) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s sandboxes run on other machines than the agent's, so the %d read-only mount(s) it asks for "+
		"(%s) cannot be bound into them; launch on a local pool", ErrNotSupported, kind, len(s.Mounts), s.Mounts[0].Target)
}

var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate reports every problem with the spec at once, wrapped in ErrInvalidSpec.
func (s Spec) Validate() error {
	var probs []string
	if !idPattern.MatchString(s.SandboxID) {
		probs = append(probs, fmt.Sprintf("sandbox_id %q: want 1-63 of [a-z0-9-], alphanumeric at both ends", s.SandboxID))
	}
	if (len(s.Command) == 0 && s.Image == "") || (len(s.Command) > 0 && s.Command[0] == "") {
		probs = append(probs, "command: empty")
	}
	if strings.ContainsAny(s.Image, " \t\n\x00") {
		probs = append(probs, fmt.Sprintf("image %q: not a reference", s.Image))
	}
	for _, a := range s.Command {
		if strings.ContainsRune(a, 0) {
			probs = append(probs, "command: argument contains NUL")
			break
		}
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys) // stable error text
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(s.Env[k], 0) {
			probs = append(probs, fmt.Sprintf("env %q: invalid name or value", k))
		}
	}
	for _, p := range s.Ports {
		if p < 1 || p > 65535 {
			probs = append(probs, fmt.Sprintf("ports: %d out of range 1-65535", p))
		}
	}
	if s.RootFS != "" && (!filepath.IsAbs(s.RootFS) || filepath.Clean(s.RootFS) != s.RootFS || s.RootFS == "/") {
		probs = append(probs, fmt.Sprintf("rootfs %q: want a clean absolute path other than /", s.RootFS))
	}
	for _, m := range s.Mounts {
		if !cleanAbs(m.Source) || !cleanAbs(m.Target) || slices.ContainsFunc(reservedTargets, func(r string) bool {
			return m.Target == r || strings.HasPrefix(m.Target, r+"/")
		}) {
			probs = append(probs, fmt.Sprintf("mounts: %q at %q: want clean absolute paths, the target outside the sandbox's own filesystems", m.Source, m.Target))
		}
	}
	if s.Limits.MemoryBytes < 0 || s.Limits.CPUMillis < 0 || s.Limits.Pids < 0 || s.Limits.LogBytes < 0 {
		probs = append(probs, "limits: negative value")
	}
	if s.Duration < 0 {
		probs = append(probs, fmt.Sprintf("duration %s: negative", s.Duration))
	}
	seen := map[int]bool{}
	for _, d := range s.Devices {
		if d.Index < 0 || seen[d.Index] {
			probs = append(probs, fmt.Sprintf("devices: index %d negative or repeated", d.Index))
		}
		seen[d.Index] = true
		for _, p := range d.Paths {
			if !strings.HasPrefix(p, "/dev/") {
				probs = append(probs, fmt.Sprintf("devices: path %q not under /dev", p))
			}
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, strings.Join(probs, "; "))
	}
	return nil
}

func cleanAbs(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p && p != "/" }

// State is where a sandbox is in its life, as its backend sees it.
type State string

// States. The testbed's own lifecycle (requested, scheduled, stopping…) is richer; these are only what a
// backend can observe.
const (
	// StatePending: accepted but not running yet (queued by Slurm, pod being scheduled).
	StatePending State = "pending"
	// StateRunning: the main process runs.
	StateRunning State = "running"
	// StateExited: nothing of the sandbox runs any more; Reason says why.
	StateExited State = "exited"
	// StateUnknown: the backend cannot tell right now (controller unreachable); ask again later.
	StateUnknown State = "unknown"
)

// Reasons a sandbox ended, in Status.Reason.
const (
	// ReasonExited: the main process exited by itself; ExitCode is its code.
	ReasonExited = "exited"
	// ReasonOOMKilled: killed at its memory limit.
	ReasonOOMKilled = "oom_killed"
	// ReasonKilled: killed by a signal nobody asked the backend to send.
	ReasonKilled = "killed"
	// ReasonStopped: ended by Stop.
	ReasonStopped = "stopped"
	// ReasonLost: its supervisor or node vanished without recording the end; EndedAt is the last time
	// it was known alive, so metering never charges time that cannot be shown.
	ReasonLost = "lost"
	// ReasonFailed: it never ran (image pull failed, job rejected after being queued).
	ReasonFailed = "failed"
)

// Status is a backend's observation of one sandbox. Times are UTC.
type Status struct {
	SandboxID string
	State     State
	// StartedAt is when the backend saw the main process start; zero while pending.
	StartedAt time.Time
	// EndedAt is when it ended (State exited); zero otherwise.
	EndedAt time.Time
	// ExitCode is the main process's exit code; 128+N when killed by signal N; -1 when unknown.
	ExitCode int
	// Reason is one of the Reason constants once State is exited; empty before.
	Reason string
	// Message is free text from the backend for people (a Slurm job ID, a pod event); never parsed.
	Message string
}

// Ended reports whether the sandbox has ended for good.
func (s Status) Ended() bool { return s.State == StateExited }
