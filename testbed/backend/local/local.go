// Package local runs sandboxes on this host with runc (an OCI runtime), as strictly as Docker's
// defaults: each sandbox has its own user namespace whose root is an unprivileged host uid range of its
// own, Docker's default capabilities and seccomp profile, no_new_privs, masked /proc paths, a read-only
// root filesystem (an image, or a read-only view of the host's /usr), tmpfs /tmp and /run, a home
// directory with a quota (a loop-mounted filesystem), only its assigned GPU device nodes, a network
// namespace with only loopback unless it asks for network, and its own cgroup (v2, or v1) limiting
// memory, CPU and processes. The spec itself is built by the pure package ocispec.
//
// A pool can choose gVisor's runsc instead (the setting SettingRuntime): the same spec, run on gVisor's
// user-space kernel, whose Sentry alone talks to the host kernel (gvisor.go says what differs).
//
// Each sandbox is supervised by a shim, this same binary re-executed (see MaybeRunShim), detached in its
// own session, so sandboxes survive a restart or crash of `tamarack serve`. Everything about a sandbox
// lives in <root>/<id>/ (state.json, output.log capped by package logfile, config.json, the home image); the Backend holds no state
// of its own, so a new Backend on the same root sees exactly what the old one did. Terminals run through
// the runtime's exec: nothing ever runs as host root inside a sandbox.
//
// It owns processes, cgroups, mounts and files under its root, and the uid ranges it hands out. It must
// not decide what to run, with which limits or for how long: that is the testbed's job.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
	"github.com/tamarack-ai/tamarack/testbed/backend/logfile"
)

// Options configure a local Backend.
type Options struct {
	// Root is the directory holding one subdirectory per sandbox, e.g. ./data/sandboxes. Required.
	Root string
	// Executable is the binary re-executed as shim; it must call MaybeRunShim first thing. Default
	// os.Executable().
	Executable string
	// Runtime is runc, the default OCI runtime. Default runc, looked up in PATH.
	Runtime string
	// Runsc is gVisor's runsc, for sandboxes whose pool sets SettingRuntime to RuntimeRunsc. It is never
	// looked up in PATH: Debian's runsc package (2022) lacks the systrap platform and nvproxy (GPUs) and
	// must not be picked up by accident; build the pinned one with infra/gvisor/build.sh. Empty: such
	// sandboxes fail to start with ErrUnavailable saying how to get it.
	Runsc string
	// Init is a static init run as every sandbox's PID 1 with the command as its child (Docker's
	// --init): it reaps zombies and passes Stop's SIGTERM on, which a command as PID 1 would ignore.
	// Default tini-static, looked up in PATH (Debian's tini package).
	Init string
	// HostDir holds what every local backend on this host shares, whatever its Root: the registry of
	// uid ranges (idmap.go) and the host view's skeleton root (rootfs.go). Default
	// /var/lib/tamarack/local. It and the directories above it must be searchable by others (o+x).
	HostDir string
	// IDBase is the first host uid (and gid) of sandbox ranges: slot N is IDBase+N*65536 and the 65535
	// after it. Default 1_000_000_000, above any /etc/subuid range useradd hands out.
	IDBase uint32
	// IDSlots is how many sandboxes on this host can hold a range at once. Default 16384.
	IDSlots int
	// HomeBytes is each sandbox's home quota: the size of its sparse home filesystem. Default 10 GiB.
	HomeBytes int64
	// CgroupParent is where sandbox cgroups are created: an absolute path from the hierarchy's root
	// ("/tamarack.slice/sandboxes") or a relative one under serve's own cgroup. Default
	// "tamarack-sandboxes". On cgroup v2 the cgroup above it must hold no processes itself (give serve
	// a delegated subtree, see docs/sandbox-backends.md).
	CgroupParent string
	// ReadOnlyPaths are extra host paths bound read-only at the same place in every sandbox (a shared
	// model cache, /opt/conda).
	ReadOnlyPaths []string
	// SpecEdits change each sandbox's runtime spec after it is built, in order: the seam for device
	// handling that needs more than device nodes (CDI specs) and for runtime-specific annotations.
	SpecEdits []SpecEdit
	// FileEdits change each runc sandbox's runtime spec after SpecEdits, in order, and may put files of
	// their own on the host for it: the seam for CDI devices (package cdi), whose driver links and mount
	// points must exist somewhere other than the sandbox's shared read-only root. Sandboxes on gVisor
	// do not get them (nvproxy takes GPUs its own way).
	FileEdits []FileEdit
	// Logger receives notes (skipped device nodes); default slog.Default().
	Logger *slog.Logger
}

// SpecEdit changes the runtime spec of the sandbox s before it is written. An error fails the Start.
type SpecEdit func(s backend.Spec, spec *specs.Spec) error

// FileEdit is a SpecEdit that also writes files for the sandbox: dir is an empty directory of its own
// (under HostDir/edits, so the sandbox's root user can reach what is mounted from it), shared by the
// sandbox's FileEdits and removed when the sandbox ends. Whatever is mounted from it must be read-only.
type FileEdit func(s backend.Spec, dir string, spec *specs.Spec) error

// Backend is the local sandbox backend. Safe for concurrent use.
type Backend struct {
	opts Options
	log  *slog.Logger
	ids  idRegistry

	mu     sync.Mutex
	layout *cgroupLayout // found on first use

	homeMu sync.Mutex // one mkfs of a home template at a time (home.go)

	shimMu sync.Mutex
	warm   *shimStart // a shim waiting for the next Start (start.go)
	closed bool       // Close was called: no shim is started ahead any more
}

var _ backend.Backend = (*Backend)(nil)

// startTimeout bounds how long a sandbox directory without a state file counts as "starting".
const startTimeout = time.Minute

// New checks the options and creates the root directory. It does not probe the host: Check does.
func New(opts Options) (*Backend, error) {
	if opts.Root == "" {
		return nil, errors.New("local backend: Options.Root is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("local backend: %w", err)
	}
	opts.Root = root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("local backend: %w", err)
	}
	if opts.Executable == "" {
		if opts.Executable, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("local backend: %w", err)
		}
	}
	for _, p := range opts.ReadOnlyPaths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("local backend: read-only path %q is not absolute", p)
		}
	}
	lookup := func(p *string, name string) {
		if *p == "" {
			if found, err := exec.LookPath(name); err == nil {
				*p = found
			}
		}
	}
	lookup(&opts.Runtime, "runc")
	if opts.Runsc != "" {
		// A path, never a name to look up: Debian's runsc in PATH is too old (gvisor.go).
		if !strings.Contains(opts.Runsc, "/") {
			return nil, fmt.Errorf("local backend: runsc %q: give the path infra/gvisor/build.sh prints", opts.Runsc)
		}
		// The shim runs it from the sandbox's directory.
		if opts.Runsc, err = filepath.Abs(opts.Runsc); err != nil {
			return nil, fmt.Errorf("local backend: %w", err)
		}
	}
	lookup(&opts.Init, "tini-static")
	if opts.HostDir == "" {
		opts.HostDir = "/var/lib/tamarack/local"
	}
	if !filepath.IsAbs(opts.HostDir) {
		return nil, fmt.Errorf("local backend: host directory %q is not absolute", opts.HostDir)
	}
	if opts.IDBase == 0 {
		opts.IDBase = defaultIDBase
	}
	if opts.IDSlots == 0 {
		opts.IDSlots = defaultIDSlots
	}
	if uint64(opts.IDBase)+uint64(opts.IDSlots)*ocispec.RangeSize > 1<<32-1 {
		return nil, fmt.Errorf("local backend: %d uid ranges from %d run past the largest uid", opts.IDSlots, opts.IDBase)
	}
	if opts.HomeBytes == 0 {
		opts.HomeBytes = homeDefaultBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ids := idRegistry{dir: filepath.Join(opts.HostDir, "idmap"), base: opts.IDBase, slots: opts.IDSlots}
	return &Backend{opts: opts, log: opts.Logger, ids: ids}, nil
}

// Kind returns "local".
func (b *Backend) Kind() string { return "local" }

// Check verifies that the runtime and the tools exist, user namespaces and loop devices work, the host
// view can be reached from a user namespace and cgroups can be written; each error wraps
// backend.ErrUnavailable and says how to fix it. It is Probe's failures.
func (b *Backend) Check(ctx context.Context) error {
	var errs []error
	for _, f := range b.Probe(ctx) {
		if f.Level == LevelFail {
			errs = append(errs, f.err)
		}
	}
	return errors.Join(errs...)
}

func executable(path string) bool {
	if path == "" {
		return false
	}
	_, err := exec.LookPath(path)
	return err == nil
}

// cgroups finds and prepares the cgroup layout once.
func (b *Backend) cgroups() (cgroupLayout, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.layout != nil {
		return *b.layout, nil
	}
	l, err := detectCgroups(b.opts.CgroupParent)
	if err != nil {
		return cgroupLayout{}, err
	}
	if err := l.prepare(); err != nil {
		return cgroupLayout{}, err
	}
	b.layout = &l
	return l, nil
}

func (b *Backend) dir(id string) string { return filepath.Join(b.opts.Root, id) }

// runtime is the OCI runtime new sandboxes of this backend are started with by default: runc.
func (b *Backend) runtime() ociRuntime {
	return ociRuntime{Bin: b.opts.Runtime, Root: filepath.Join(b.opts.Root, ".runc"), Kind: RuntimeRunc}
}

// observe reads a sandbox's state and checks it against the live system. It never trusts a recorded
// PID without its start time and boot.
func (b *Backend) observe(id string) (state, error) {
	dir := b.dir(id)
	var st state
	err := readJSON(filepath.Join(dir, fileState), &st)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fi, err := os.Stat(dir)
		if err != nil {
			return state{}, fmt.Errorf("sandbox %s: %w", id, backend.ErrNotFound)
		}
		// Start is between mkdir and the shim's first write, or a serve crashed there. Only time
		// tells them apart; after startTimeout it is a failed start, so it can be removed.
		st := state{ID: id, State: backend.StatePending, ExitCode: -1}
		if time.Since(fi.ModTime()) > startTimeout {
			var l launch
			_ = readJSON(filepath.Join(dir, fileLaunch), &l)
			st.State, st.Reason, st.Cgroup = backend.StateExited, backend.ReasonFailed, l.Cgroup
			st.Message = "start never completed"
			st.EndedAt = fi.ModTime().UTC()
		}
		return st, nil
	case err != nil:
		return state{}, err
	}
	if st.State == backend.StatePending && !st.Shim.alive(st.BootID) {
		var again state
		if err := readJSON(filepath.Join(dir, fileState), &again); err == nil && again.State != backend.StatePending {
			return b.observe(id) // it moved on just now
		}
		st.State, st.Reason, st.Message = backend.StateExited, backend.ReasonFailed, "supervisor died during start"
		st.EndedAt = lastSeen(dir, st.StartedAt)
		return st, nil
	}
	if st.State != backend.StateRunning {
		return st, nil
	}
	if st.Shim.alive(st.BootID) {
		return st, nil
	}
	// The shim is gone. It may have just written the end and exited: read again before judging.
	var again state
	if err := readJSON(filepath.Join(dir, fileState), &again); err == nil && again.State != backend.StateRunning {
		return again, nil
	}
	if st.Init.alive(st.BootID) {
		st.Message = "supervisor gone; the sandbox still runs but neither its output nor its end will be recorded"
		return st, nil
	}
	st.State = backend.StateExited
	st.Reason = backend.ReasonLost
	st.ExitCode = -1
	st.Message = "supervisor and sandbox vanished without recording an end (host reboot or shim killed)"
	st.EndedAt = lastSeen(dir, st.StartedAt)
	return st, nil
}

// lastSeen is the latest evidence of life: the newest write to the sandbox's log or state.
func lastSeen(dir string, started time.Time) time.Time {
	t := started
	for _, f := range []string{fileOutput, fileState, fileShim} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime().UTC()
		}
	}
	return t
}

// Inspect returns the sandbox's status as observed now.
func (b *Backend) Inspect(ctx context.Context, id string) (backend.Status, error) {
	if err := validID(id); err != nil {
		return backend.Status{}, err
	}
	st, err := b.observe(id)
	if err != nil {
		return backend.Status{}, fmt.Errorf("inspect: %w", err)
	}
	return st.status(), nil
}

// List rebuilds every sandbox's status from the state files under root.
func (b *Backend) List(ctx context.Context) ([]backend.Status, error) {
	entries, err := os.ReadDir(b.opts.Root)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []backend.Status
	for _, e := range entries {
		if !e.IsDir() || validID(e.Name()) != nil {
			continue
		}
		st, err := b.observe(e.Name())
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		out = append(out, st.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SandboxID < out[j].SandboxID })
	return out, nil
}

// running returns the state of a running sandbox or ErrNotRunning.
func (b *Backend) running(id string) (state, error) {
	if err := validID(id); err != nil {
		return state{}, err
	}
	st, err := b.observe(id)
	if err != nil {
		return state{}, err
	}
	if st.State != backend.StateRunning || !st.Init.alive(st.BootID) {
		return state{}, fmt.Errorf("sandbox %s: %w", id, backend.ErrNotRunning)
	}
	return st, nil
}

// validID guards every path built from an ID: an ID is a directory name under root, never a path.
func validID(id string) error {
	if err := (backend.Spec{SandboxID: id, Command: []string{"x"}}).Validate(); err != nil {
		return fmt.Errorf("sandbox %q: %w", id, backend.ErrNotFound)
	}
	return nil
}

// Logs reads the kept output (output.log.1, then output.log); with follow the reader waits for more
// until the sandbox ends or ctx ends.
func (b *Backend) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if _, err := b.observe(id); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	f, err := logfile.Open(filepath.Join(b.dir(id), fileOutput))
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", id, err)
	}
	if !follow {
		return f, nil
	}
	return logfile.Follow(ctx, f, 100*time.Millisecond, func() bool {
		st, err := b.observe(id)
		return err != nil || st.State == backend.StateExited
	}), nil
}
