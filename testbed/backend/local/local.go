// Package local runs sandboxes on this host: each is a bubblewrap process tree in its own PID, mount,
// IPC, UTS and (unless asked for network) network namespaces, with a read-only view of the host's /usr,
// a private writable home and /tmp, only its assigned GPU device nodes, and its own cgroup (v2, or v1
// memory+pids+cpu) limiting memory, CPU and processes.
//
// Each sandbox is supervised by a shim, this same binary re-executed (see MaybeRunShim), detached in its
// own session, so sandboxes survive a restart or crash of `tamarack serve`. Everything about a sandbox
// lives in <root>/<id>/ (state.json, output.log capped by package logfile, home, tmp); the Backend holds
// no state of its own, so a new Backend on the same root sees exactly what the old one did.
//
// It owns processes, cgroups and files under its root. It must not decide what to run or for how long:
// that is the testbed's job.
package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/logfile"
)

// Options configure a local Backend.
type Options struct {
	// Root is the directory holding one subdirectory per sandbox, e.g. ./data/sandboxes. Required.
	Root string
	// Executable is the binary re-executed as shim; it must call MaybeRunShim first thing. Default
	// os.Executable().
	Executable string
	// Bwrap, Nsenter and Setpriv are the helper programs; defaults are looked up in PATH.
	Bwrap, Nsenter, Setpriv string
	// CgroupParent is where sandbox cgroups are created: an absolute path from the hierarchy's root
	// ("/tamarack.slice/sandboxes") or a relative one under serve's own cgroup. Default
	// "tamarack-sandboxes". On cgroup v2 the cgroup above it must hold no processes itself (give serve
	// a delegated subtree, see docs/sandbox-backends.md).
	CgroupParent string
	// ReadOnlyPaths are extra host paths bound read-only at the same place in every sandbox (a shared
	// model cache, /opt/conda). /usr and a few files of /etc are always there.
	ReadOnlyPaths []string
	// Logger receives notes (skipped device nodes); default slog.Default().
	Logger *slog.Logger
}

// Backend is the local sandbox backend. Safe for concurrent use.
type Backend struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	layout *cgroupLayout // found on first use
}

var _ backend.Backend = (*Backend)(nil)

// homeDir is the sandbox user's home inside the sandbox.
const homeDir = "/home/sandbox"

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
	lookup(&opts.Bwrap, "bwrap")
	lookup(&opts.Nsenter, "nsenter")
	lookup(&opts.Setpriv, "setpriv")
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Backend{opts: opts, log: opts.Logger}, nil
}

// Kind returns "local".
func (b *Backend) Kind() string { return "local" }

// Check verifies the helpers exist, namespaces can be created and cgroups can be written; each error
// wraps backend.ErrUnavailable and says how to fix it.
func (b *Backend) Check(ctx context.Context) error {
	var errs []error
	if !executable(b.opts.Bwrap) {
		errs = append(errs, fmt.Errorf("%w: bubblewrap not found (%q): install it with `apt-get install bubblewrap`", backend.ErrUnavailable, b.opts.Bwrap))
	}
	if !executable(b.opts.Nsenter) || !executable(b.opts.Setpriv) {
		errs = append(errs, fmt.Errorf("%w: nsenter or setpriv not found: install util-linux", backend.ErrUnavailable))
	}
	if os.Geteuid() != 0 {
		errs = append(errs, fmt.Errorf("%w: the local backend needs root (cgroups, namespaces, nsenter)", backend.ErrUnavailable))
	}
	if len(errs) == 0 {
		out, err := exec.CommandContext(ctx, b.opts.Bwrap, "--unshare-all", "--ro-bind", "/", "/", "--", "/bin/true").CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: bubblewrap cannot create namespaces here: %v: %s", backend.ErrUnavailable, err, strings.TrimSpace(string(out))))
		}
	}
	if _, err := b.cgroups(); err != nil {
		errs = append(errs, err)
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

// Start creates <root>/<id>, the cgroup and the shim, and returns once bubblewrap reports the sandbox's
// init running. On any failure it removes what it created.
func (b *Backend) Start(ctx context.Context, s backend.Spec) (st backend.Status, err error) {
	if err := s.Validate(); err != nil {
		return backend.Status{}, err
	}
	if b.opts.Bwrap == "" {
		return backend.Status{}, fmt.Errorf("start %s: %w: bubblewrap not found", s.SandboxID, backend.ErrUnavailable)
	}
	layout, err := b.cgroups()
	if err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	dir := b.dir(s.SandboxID)
	// Mkdir, not MkdirAll: its failure on an existing directory is what makes Start exclusive.
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, backend.ErrExists)
		}
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	var cg cgroupSet
	defer func() {
		if err != nil {
			if cg.Dirs != nil {
				_ = cg.killAll()
				waitEmpty(context.Background(), cg, 10*time.Second)
				_ = cg.remove()
			}
			_ = os.RemoveAll(dir)
		}
	}()
	for _, d := range []string{dirHome, dirTmp, dirConf} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, dirTmp), 0o1777); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if cg, err = layout.create(s.SandboxID, s.Limits); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	argv, env, notes, err := b.bwrapArgs(dir, s)
	if err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if len(notes) > 0 {
		b.log.Info("sandbox device nodes skipped", "sandbox", s.SandboxID, "notes", notes)
		// The user should see it too: their CUDA program will find no GPU and this says why.
		note := "[tamarack] " + strings.Join(notes, "\n[tamarack] ") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fileOutput), []byte(note), 0o600); err != nil {
			return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
		}
	}
	if err := writeJSON(filepath.Join(dir, fileLaunch), launch{ID: s.SandboxID, Argv: argv, Cgroup: cg, Env: env, LogBytes: s.Limits.LogBytes}); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if err := b.spawnShim(ctx, dir); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	return b.Inspect(ctx, s.SandboxID)
}

// spawnShim starts the shim detached and waits for its "ok".
func (b *Backend) spawnShim(ctx context.Context, dir string) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	shimLog, err := os.OpenFile(filepath.Join(dir, fileShim), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		readyW.Close()
		return err
	}
	defer shimLog.Close()
	cmd := exec.Command(b.opts.Executable)
	cmd.Env = []string{envShim + "=" + dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = shimLog, shimLog
	cmd.ExtraFiles = []*os.File{readyW}
	// Its own session: no signal aimed at serve's process group or terminal reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start shim: %w", err)
	}
	// Reap it if it ends while we live; after a restart init (or a subreaper) does.
	go func() { _ = cmd.Wait() }()

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(readyR).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s == "ok" {
			return nil
		}
		if s == "" {
			s = "shim exited without a word; see " + filepath.Join(dir, fileShim)
		}
		return errors.New(strings.TrimPrefix(s, "error: "))
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return ctx.Err()
	}
}

// bwrapArgs builds the bubblewrap command line, the sandbox environment, and notes about device nodes
// that do not exist on this host.
func (b *Backend) bwrapArgs(dir string, s backend.Spec) (argv, env, notes []string, err error) {
	a := []string{b.opts.Bwrap,
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		// Root inside, but without capabilities and with no_new_privs: it cannot remount the
		// read-only binds, load modules, or regain privileges through setuid binaries.
		"--cap-drop", "ALL",
		// A new session: no TIOCSTI into a terminal it was never given.
		"--new-session",
		"--hostname", s.SandboxID,
		"--ro-bind", "/usr", "/usr",
	}
	if !s.Network {
		a = append(a, "--unshare-net")
	}
	// /bin, /lib… are symlinks into /usr on merged-/usr systems and directories elsewhere.
	for _, p := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, nil, nil, err
			}
			a = append(a, "--symlink", target, p)
		case fi.IsDir():
			a = append(a, "--ro-bind", p, p)
		}
	}
	// Only the parts of /etc programs need; never the host's passwd, shadow or machine-id, nor its TLS keys
	// (/etc/ssl/private): the sandbox runs as the host's uid 0, their owner, so file modes do not hide them.
	etc := []string{"alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "ssl/certs", "ssl/openssl.cnf",
		"ca-certificates", "ca-certificates.conf", "localtime", "timezone", "mime.types", "os-release",
		"profile", "profile.d", "bash.bashrc", "inputrc", "terminfo", "protocols", "services", "gai.conf",
		"host.conf", "debian_version", "python3", "xdg"}
	for _, e := range etc {
		a = append(a, "--ro-bind-try", "/etc/"+e, "/etc/"+e)
	}
	if s.Network {
		a = append(a, "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf")
	}
	conf := filepath.Join(dir, dirConf)
	generated := map[string]string{
		"passwd":   "root:x:0:0:sandbox:" + homeDir + ":/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":    "root:x:0:\nnogroup:x:65534:\n",
		"hosts":    "127.0.0.1\tlocalhost " + s.SandboxID + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"hostname": s.SandboxID + "\n",
	}
	for _, name := range slices.Sorted(maps.Keys(generated)) {
		p := filepath.Join(conf, name)
		if err := os.WriteFile(p, []byte(generated[name]), 0o644); err != nil {
			return nil, nil, nil, err
		}
		a = append(a, "--ro-bind", p, "/etc/"+name)
	}
	a = append(a,
		"--proc", "/proc",
		// Without capabilities, uid 0 may still write sysctls that are not namespaced (kernel.*, vm.*):
		// the file permissions allow root. Read-only /proc/sys closes that; reads still show the
		// sandbox's own namespaces.
		"--ro-bind", "/proc/sys", "/proc/sys",
		"--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
		"--dev", "/dev",
		"--tmpfs", "/run",
		"--bind", filepath.Join(dir, dirHome), homeDir,
		"--bind", filepath.Join(dir, dirTmp), "/tmp",
	)
	for _, p := range b.opts.ReadOnlyPaths {
		a = append(a, "--ro-bind", p, p)
	}

	// Devices: exactly the assigned nodes, plus the driver's shared nodes when any GPU is assigned. The
	// sandbox cannot create others (no CAP_MKNOD), so binding is the whole of device isolation here.
	var devPaths []string
	for _, d := range s.Devices {
		devPaths = append(devPaths, d.Paths...)
	}
	if len(s.Devices) > 0 {
		devPaths = append(devPaths, "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
	}
	for _, p := range devPaths {
		if exists(p) {
			a = append(a, "--dev-bind", p, p)
		} else if strings.HasPrefix(filepath.Base(p), "nvidia") && !slices.ContainsFunc(s.Devices, func(d backend.Device) bool { return slices.Contains(d.Paths, p) }) {
			continue // optional shared node: absent on hosts without UVM or modeset, not worth a note
		} else {
			notes = append(notes, fmt.Sprintf("device node %s is not present on this host; skipped", p))
		}
	}
	// Remount / read-only last: after this nothing outside the binds above is writable.
	a = append(a, "--remount-ro", "/", "--chdir", homeDir)

	env = sandboxEnv(s)
	a = append(a, "--clearenv")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		a = append(a, "--setenv", k, v)
	}
	a = append(a, "--json-status-fd", "3", "--")
	a = append(a, s.Command...)
	return a, env, notes, nil
}

// sandboxEnv is Spec.Env overlaid with what the backend sets, sorted.
func sandboxEnv(s backend.Spec) []string {
	m := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
	maps.Copy(m, s.Env)
	m["HOME"] = homeDir
	m["USER"] = "root"
	m["LOGNAME"] = "root"
	m["HOSTNAME"] = s.SandboxID
	m["TAMARACK_SANDBOX_ID"] = s.SandboxID
	if len(s.Devices) > 0 {
		idx := make([]string, 0, len(s.Devices))
		uuids := make([]string, 0, len(s.Devices))
		for _, d := range s.Devices {
			idx = append(idx, strconv.Itoa(d.Index))
			if d.UUID != "" {
				uuids = append(uuids, d.UUID)
			}
		}
		// Device.Index is the nvidia-smi index, which is PCI bus order; CUDA's default order is
		// "fastest first", so without CUDA_DEVICE_ORDER the same number could name another GPU.
		m["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
		m["CUDA_VISIBLE_DEVICES"] = strings.Join(idx, ",")
		if len(uuids) == len(s.Devices) {
			m["NVIDIA_VISIBLE_DEVICES"] = strings.Join(uuids, ",")
		} else {
			m["NVIDIA_VISIBLE_DEVICES"] = strings.Join(idx, ",")
		}
	} else {
		// Explicitly none, so a CUDA program fails fast instead of probing.
		m["CUDA_VISIBLE_DEVICES"] = ""
		m["NVIDIA_VISIBLE_DEVICES"] = "void"
	}
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
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

// Stop sends SIGTERM to every process of the sandbox, SIGKILL after grace, waits until its cgroup is
// empty and removed, deletes its home and /tmp, and returns the final status. state.json and output.log
// stay until Remove, so the testbed can still read the logs of a stopped sandbox.
func (b *Backend) Stop(ctx context.Context, id string, grace time.Duration) (backend.Status, error) {
	if err := validID(id); err != nil {
		return backend.Status{}, err
	}
	dir := b.dir(id)
	st, err := b.observe(id)
	if err != nil {
		return backend.Status{}, fmt.Errorf("stop: %w", err)
	}
	if st.State == backend.StatePending {
		// A Start in flight: there is no recorded process to signal yet. Start's own failure path
		// cleans up if it fails; the caller retries Stop once Start has returned.
		return backend.Status{}, fmt.Errorf("stop %s: %w: still starting", id, backend.ErrNotRunning)
	}
	if st.State == backend.StateRunning {
		if err := os.WriteFile(filepath.Join(dir, fileStop), nil, 0o600); err != nil {
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
		}
		// TERM goes to the sandbox's processes, not to bwrap or the sandbox's init: they would die at
		// once and take the main process's exit code with them. The init leaves when its child does.
		if err := st.Cgroup.signal(syscall.SIGTERM, st.Bwrap.PID, st.Init.PID); err != nil {
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
		}
		if grace > 0 {
			if st, err = b.waitEnded(ctx, id, grace); err != nil {
				return backend.Status{}, err
			}
		}
		if st.State == backend.StateRunning {
			if st.Init.alive(st.BootID) {
				// SIGKILL to a PID namespace's init kills the whole namespace.
				_ = syscall.Kill(st.Init.PID, syscall.SIGKILL)
			}
			_ = st.Cgroup.killAll()
			if !st.Shim.alive(st.BootID) {
				if st, err = b.recordEnd(ctx, st); err != nil {
					return backend.Status{}, err
				}
			}
			// The shim records the end once bwrap is reaped and the cgroup is empty; it gives up on
			// a cgroup that will not empty after 30 s, so this wait is bounded too.
			if st, err = b.waitEnded(ctx, id, time.Minute); err != nil {
				return backend.Status{}, err
			}
			if st.State == backend.StateRunning {
				return backend.Status{}, fmt.Errorf("stop %s: still running a minute after SIGKILL; see %s", id, filepath.Join(dir, fileShim))
			}
		}
	}
	if st.State == backend.StateExited && (st.Reason == backend.ReasonLost || st.Reason == backend.ReasonFailed) && st.Cgroup.exists() {
		// Nobody will clean up after a lost shim; make sure nothing of the sandbox survives it.
		_ = st.Cgroup.killAll()
		waitEmpty(ctx, st.Cgroup, 30*time.Second)
		_ = st.Cgroup.remove()
	}
	if st.Cgroup.exists() {
		if err := st.Cgroup.remove(); err != nil {
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
		}
	}
	for _, d := range []string{dirHome, dirTmp, dirConf} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
		}
	}
	return st.status(), nil
}

// waitEnded polls the state until the sandbox has ended, wait has passed or ctx ends.
func (b *Backend) waitEnded(ctx context.Context, id string, wait time.Duration) (state, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	deadline := timer.C
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := b.observe(id)
		if err != nil {
			return state{}, fmt.Errorf("stop: %w", err)
		}
		if st.State != backend.StateRunning {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return state{}, fmt.Errorf("stop %s: %w", id, ctx.Err())
		case <-deadline:
			return st, nil
		case <-tick.C:
		}
	}
}

// recordEnd does the shim's last job when the shim is gone: wait for the cgroup to empty, remove it,
// write the end.
func (b *Backend) recordEnd(ctx context.Context, st state) (state, error) {
	waitEmpty(ctx, st.Cgroup, 30*time.Second)
	st.State = backend.StateExited
	st.EndedAt = time.Now().UTC()
	st.ExitCode = -1
	st.Reason = endReason(b.dir(st.ID), 137, st.Cgroup.oomKills())
	st.Message = "supervisor was gone; end recorded by Stop"
	_ = st.Cgroup.remove()
	if err := writeJSON(filepath.Join(b.dir(st.ID), fileState), st); err != nil {
		return state{}, fmt.Errorf("stop %s: %w", st.ID, err)
	}
	return st, nil
}

// waitEmpty polls until the cgroup holds no process, killing stragglers, for at most max.
func waitEmpty(ctx context.Context, cg cgroupSet, max time.Duration) {
	deadline := time.Now().Add(max)
	for !cg.empty() && time.Now().Before(deadline) && ctx.Err() == nil {
		_ = cg.killAll()
		time.Sleep(5 * time.Millisecond)
	}
}

// Remove deletes an ended sandbox's directory, logs and state included.
func (b *Backend) Remove(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	st, err := b.observe(id)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if st.State == backend.StateRunning || st.State == backend.StatePending {
		return fmt.Errorf("remove %s: %w", id, backend.ErrStillRunning)
	}
	if st.Cgroup.exists() {
		_ = st.Cgroup.killAll() // only a lost or failed sandbox can have anything left here
		waitEmpty(ctx, st.Cgroup, 30*time.Second)
		if err := st.Cgroup.remove(); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(b.dir(id)); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
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
	return &follower{f: f, ctx: ctx, b: b, id: id, closed: make(chan struct{})}, nil
}

// follower reads a growing log like tail -F and reports io.EOF once the sandbox has ended and
// everything it wrote has been read.
type follower struct {
	f         *logfile.Reader
	ctx       context.Context
	b         *Backend
	id        string
	closeOnce sync.Once
	closed    chan struct{}
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		st, oerr := r.b.observe(r.id)
		if oerr != nil || st.State == backend.StateExited {
			// It ended: whatever it wrote before ending is in the file now; drain that, then stop.
			n, err := r.f.Read(p)
			if n > 0 {
				return n, nil
			}
			if err == nil {
				err = io.EOF
			}
			return 0, err
		}
		// Polling, not inotify: cheap at this rate, and works on every filesystem root may be on.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return 0, r.ctx.Err()
		case <-r.closed:
			t.Stop()
			return 0, os.ErrClosed
		case <-t.C:
		}
	}
}

func (r *follower) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return r.f.Close()
}
