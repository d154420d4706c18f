package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
)

// Start claims a uid range, makes the home filesystem, writes the runtime spec into <root>/<id> and
// lets the shim run it, and returns once the shim reports the sandbox's command running. On any failure
// it removes what it created.
//
// The shim's own start (this binary's exec and Go's initialisation of every package in it: 13–20 ms of
// CPU for a large binary) is kept off the launch: each successful Start leaves one shim started and
// waiting for the next (warmShim), and the first Start, or one that comes while the waiting shim is
// taken, starts its own first thing, so that its start runs beside the claim, the home and the spec. A
// shim learns its sandbox, and reads anything in its directory, only when Start tells it to go, once the
// launch record and the pending state are written and the home is mounted. The home, mostly waiting on
// the kernel, is made beside the spec, which needs only its path.
func (b *Backend) Start(ctx context.Context, s backend.Spec) (st backend.Status, err error) {
	if err := s.Validate(); err != nil {
		return backend.Status{}, err
	}
	rt, err := b.runtimeFor(s)
	if err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if b.opts.Init == "" {
		return backend.Status{}, fmt.Errorf("start %s: %w: tini-static not found: install it with `apt-get install tini`", s.SandboxID, backend.ErrUnavailable)
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
	l := launch{ID: s.SandboxID, Runtime: rt, Slot: -1, Cgroup: layout.set(s.SandboxID), Env: sandboxEnv(s), LogBytes: s.Limits.LogBytes}
	defer func() {
		if err != nil {
			// A context that ended is why we are here; the cleanup must run anyway.
			if terr := teardown(context.WithoutCancel(ctx), dir, l); terr != nil {
				b.log.Error("clean up failed start", "sandbox", s.SandboxID, "error", terr)
				return // keep the directory: it is what a later Remove needs to finish the job
			}
			_ = b.ids.release(l.Slot, dir)
			_ = os.RemoveAll(dir)
		}
	}()
	sh, err := b.takeShim()
	if err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	defer func() {
		if err != nil {
			sh.abandon() // a shim never told to go exits, having touched nothing
		}
	}()
	if l.Slot, err = b.ids.claim(dir); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	l.HostID = b.ids.hostID(l.Slot)
	if len(b.opts.FileEdits) > 0 && !rt.gvisor() {
		// Keyed by the uid slot, which no other sandbox on the host holds now. runc only: the CDI edit
		// relies on runc's mounts (overlays, nodes bound from elsewhere), and gVisor hands GPUs over
		// through nvproxy from the spec's own device nodes (runscSpec).
		l.EditDir = filepath.Join(b.opts.HostDir, "edits", strconv.Itoa(l.Slot))
	}
	// The mount point exists before the spec is built: a bind's source tells it a directory from a file.
	if err := os.Mkdir(filepath.Join(dir, dirHome), 0o700); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: home: %w", s.SandboxID, err)
	}
	homeDone, hostID := make(chan error, 1), l.HostID
	go func() {
		template, err := b.homeTemplate(ctx, b.opts.HomeBytes)
		if err == nil {
			err = makeHome(dir, template, hostID)
		}
		homeDone <- err
	}()
	waitHome := sync.OnceValue(func() error { return <-homeDone })
	// Whatever fails below, the cleanup (deferred before) never runs while the home is being mounted.
	defer func() { _ = waitHome() }()
	spec, notes, err := b.spec(dir, s, l, layout)
	if err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if l.Runtime.gvisor() {
		runscSpec(spec, &l.Runtime)
	}
	if err := writeJSON(filepath.Join(dir, fileConfig), spec); err != nil {
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
	if err := writeJSON(filepath.Join(dir, fileLaunch), l); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	// Recorded before the shim does anything, so that a shim dying during its setup is seen as such
	// (pending with a dead shim) instead of as a Start still in flight.
	shim, err := identify(sh.cmd.Process.Pid)
	if err == nil {
		err = writeJSON(filepath.Join(dir, fileState), pendingState(l, shim))
	}
	if err != nil {
		return backend.Status{}, fmt.Errorf("start %s: shim: %w", s.SandboxID, err)
	}
	if err := waitHome(); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	if err := sh.run(ctx, s.SandboxID, dir); err != nil {
		return backend.Status{}, fmt.Errorf("start %s: %w", s.SandboxID, err)
	}
	go b.warmShim()
	return b.Inspect(ctx, s.SandboxID)
}

// spec makes the sandbox's generated files and builds its runtime spec, with notes about device nodes
// this host lacks. The home is made apart (Start): the spec names only its mount point.
func (b *Backend) spec(dir string, s backend.Spec, l launch, layout cgroupLayout) (*specs.Spec, []string, error) {
	conf := filepath.Join(dir, dirConf)
	if err := os.Mkdir(conf, 0o755); err != nil {
		return nil, nil, err
	}
	root, binds, err := b.rootfs(s, conf)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range s.Mounts { // a listing's artifacts: read-only, whatever the sandbox's root may do
		binds = append(binds, ocispec.Bind{Source: m.Source, Destination: m.Target, ReadOnly: true})
	}
	if err := searchable(root); err != nil {
		return nil, nil, fmt.Errorf("root filesystem: %w", err)
	}
	devs, missing := deviceNodes(s)
	in := ocispec.Input{
		ID:      s.SandboxID,
		Args:    s.Command,
		Env:     l.Env,
		Cwd:     ocispec.HomeDir,
		RootFS:  root,
		IDs:     ocispec.IDMap{HostID: l.HostID, Size: ocispec.RangeSize},
		Network: s.Network,
		Home:    filepath.Join(dir, dirHome),
		Init:    b.opts.Init,
		Binds:   binds,
		Devices: devs,
		Limits:  s.Limits,
		Cgroup:  ocispec.Cgroup{Path: layout.runtimePath(s.SandboxID), V2: layout.v2, Swap: layout.swap()},
	}
	if l.Runtime.gvisor() {
		in.Limits = runscLimits(s.Limits)
	}
	for _, e := range b.opts.SpecEdits {
		in.Edits = append(in.Edits, func(sp *specs.Spec) error { return e(s, sp) })
	}
	spec, err := ocispec.Build(in)
	if err != nil {
		return nil, nil, err
	}
	if l.EditDir != "" {
		if err := makeEditDir(l.EditDir); err != nil {
			return nil, nil, err
		}
		for i, e := range b.opts.FileEdits {
			if err := e(s, l.EditDir, spec); err != nil {
				return nil, nil, fmt.Errorf("file edit %d: %w", i, err)
			}
		}
	}
	if err := ensureMountpoints(root, spec.Mounts, l.Runtime.gvisor()); err != nil {
		return nil, nil, err
	}
	var notes []string
	for _, p := range missing {
		// A FileEdit (CDI) may have handed the node over from elsewhere on the host.
		if !slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == p }) {
			notes = append(notes, fmt.Sprintf("device node %s is not present on this host; skipped", p))
		}
	}
	return spec, notes, nil
}

// shimStart is a shim started, waiting to be told to go.
type shimStart struct {
	cmd    *exec.Cmd
	goW    *os.File      // "go <id>" gives the shim its sandbox; closed unsaid, it makes the shim exit
	readyR *os.File      // the shim's "ok", or one line of error
	exited chan struct{} // closed once the shim has exited while this process lives
}

// takeShim returns the shim left waiting by an earlier Start, or starts one.
func (b *Backend) takeShim() (*shimStart, error) {
	b.shimMu.Lock()
	sh := b.warm
	b.warm = nil
	b.shimMu.Unlock()
	if sh != nil {
		select {
		case <-sh.exited: // killed while it waited (an operator's pkill, the OOM killer): start another
			sh.abandon()
		default:
			return sh, nil
		}
	}
	return b.startShim()
}

// warmShim starts a shim to wait for the next Start, if none waits and the backend is not closed.
func (b *Backend) warmShim() {
	b.shimMu.Lock()
	defer b.shimMu.Unlock()
	if b.warm != nil || b.closed {
		return
	}
	sh, err := b.startShim()
	if err != nil {
		b.log.Warn("no shim started ahead of the next sandbox; it will start its own", "error", err)
		return
	}
	b.warm = sh
}

// Close ends the shim waiting for the next Start and waits (briefly) for it to exit, so that a short-lived
// process (`tamarack slurm-step`) leaves no process behind. Sandboxes and their shims are not touched, and
// Start still works, starting a shim of its own each time.
func (b *Backend) Close() error {
	b.shimMu.Lock()
	defer b.shimMu.Unlock()
	b.closed = true
	if b.warm != nil {
		b.warm.abandon()
		select {
		case <-b.warm.exited:
		case <-time.After(5 * time.Second): // it exits as soon as it reads the closed pipe; never hang on it
		}
		b.warm = nil
	}
	return nil
}

// startShim starts a shim detached, waiting for its go. Until then it knows only the backend's root, and
// its output goes nowhere; once told its sandbox it writes the sandbox's shim.log.
func (b *Backend) startShim() (*shimStart, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyW.Close() // the shim's end, as goR: the shim has its own copies once started
	goR, goW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		return nil, err
	}
	defer goR.Close()
	cmd := exec.Command(b.opts.Executable)
	cmd.Env = []string{envShim + "=" + b.opts.Root, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{readyW, goR} // fds 3 and 4
	// Its own session: no signal aimed at serve's process group or terminal reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		readyR.Close()
		goW.Close()
		return nil, fmt.Errorf("start shim: %w", err)
	}
	// Reap it if it ends while we live; after a restart init (or a subreaper) does.
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return &shimStart{cmd: cmd, goW: goW, readyR: readyR, exited: exited}, nil
}

// abandon makes the shim exit without doing anything, if it was not told to go.
func (s *shimStart) abandon() {
	s.goW.Close()
	s.readyR.Close()
}

// run tells the shim to go with sandbox id (in dir) and waits for its "ok".
func (s *shimStart) run(ctx context.Context, id, dir string) error {
	defer s.readyR.Close()
	_, err := s.goW.Write([]byte(shimGo + id + "\n"))
	s.goW.Close()
	line := make(chan string, 1)
	go func() {
		text, _ := bufio.NewReader(s.readyR).ReadString('\n')
		line <- strings.TrimSpace(text)
	}()
	select {
	case msg := <-line:
		if msg == "ok" {
			return nil
		}
		if msg == "" {
			msg = "shim exited without a word; see " + filepath.Join(dir, fileShim)
			if err != nil {
				msg += " (" + err.Error() + ")"
			}
		}
		return errors.New(strings.TrimPrefix(msg, "error: "))
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		return ctx.Err()
	}
}

// sandboxEnv is Spec.Env overlaid with what the backend sets, sorted.
func sandboxEnv(s backend.Spec) []string {
	m := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
	maps.Copy(m, s.Env)
	m["HOME"] = ocispec.HomeDir
	m["USER"] = "root"
	m["LOGNAME"] = "root"
	m["HOSTNAME"] = s.SandboxID
	m["TAMARACK_SANDBOX_ID"] = s.SandboxID
	if len(s.Devices) > 0 {
		idx := make([]string, 0, len(s.Devices))
		uuids := make([]string, 0, len(s.Devices))
		own := make([]string, 0, len(s.Devices))
		for i, d := range s.Devices {
			idx = append(idx, strconv.Itoa(d.Index))
			own = append(own, strconv.Itoa(i))
			if d.UUID != "" {
				uuids = append(uuids, d.UUID)
			}
		}
		// Inside, the driver shows only the sandbox's own GPUs (their nodes are the only ones there),
		// and CUDA numbers them from 0: the host's indices would name GPUs that do not exist (a sandbox
		// given GPU 3 alone would see none with CUDA_VISIBLE_DEVICES=3). In PCI bus order, as the
		// host's nvidia-smi indices are, rather than CUDA's default "fastest first".
		m["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
		m["CUDA_VISIBLE_DEVICES"] = strings.Join(own, ",")
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

// makeEditDir makes a sandbox's FileEdits directory, empty: one left by a sandbox that held the same uid
// slot and crashed before its teardown is replaced. The directories above it must let the sandbox's
// root user (an unprivileged host uid) through, as for the host view.
func makeEditDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return searchable(dir)
}
