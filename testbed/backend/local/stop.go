package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Stop sends SIGTERM to the sandbox's init (which passes it to the command), SIGKILL after grace (which
// ends its whole PID namespace, terminals included), waits until the shim has recorded the end and
// freed what the sandbox held, and returns the final status. state.json and output.log stay until
// Remove, so the testbed can still read the logs of a stopped sandbox.
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
	l := b.launchOf(id)
	if st.State == backend.StateRunning {
		if err := os.WriteFile(filepath.Join(dir, fileStop), nil, 0o600); err != nil {
			return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
		}
		if err := l.Runtime.kill(ctx, id, "TERM"); err != nil {
			// The runtime cannot reach the sandbox (a Sentry that panicked is still exiting): no grace
			// for a TERM that was never delivered; the KILL below does not depend on the runtime.
			b.log.Warn("runtime could not signal the sandbox; killing it", "sandbox", id, "error", err)
			grace = 0
		}
		if grace > 0 {
			if st, err = b.waitEnded(ctx, id, grace); err != nil {
				return backend.Status{}, err
			}
		}
		if st.State == backend.StateRunning {
			if err := l.Runtime.kill(ctx, id, "KILL"); err != nil && st.Init.alive(st.BootID) {
				// The runtime lost track of it; SIGKILL to a PID namespace's init kills the namespace.
				_ = syscall.Kill(st.Init.PID, syscall.SIGKILL)
			}
			if !st.Shim.alive(st.BootID) {
				if st, err = b.recordEnd(ctx, st, l); err != nil {
					return backend.Status{}, err
				}
			}
			// The shim records the end once the init is reaped and everything is freed; it gives up
			// on a cgroup that will not empty after 30 s, so this wait is bounded too.
			if st, err = b.waitEnded(ctx, id, time.Minute); err != nil {
				return backend.Status{}, err
			}
			if st.State == backend.StateRunning {
				return backend.Status{}, fmt.Errorf("stop %s: still running a minute after SIGKILL; see %s", id, filepath.Join(dir, fileShim))
			}
		}
	}
	// Whatever ended it (the shim, a lost shim, a failed start), nothing of it may survive Stop.
	if err := teardown(ctx, dir, l); err != nil {
		return backend.Status{}, fmt.Errorf("stop %s: %w", id, err)
	}
	return st.status(), nil
}

// launchOf reads the sandbox's launch record; for a directory a crashed Start left without one, it is
// rebuilt from what the backend would have used.
func (b *Backend) launchOf(id string) launch {
	var l launch
	if err := readJSON(filepath.Join(b.dir(id), fileLaunch), &l); err == nil && l.ID == id {
		return l
	}
	l = launch{ID: id, Runtime: b.runtime(), Slot: -1}
	if layout, err := b.cgroups(); err == nil {
		l.Cgroup = layout.set(id)
	}
	return l
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

// recordEnd does the shim's last job when the shim is gone: wait for the cgroup to empty, read why it
// ended, free everything, write the end.
func (b *Backend) recordEnd(ctx context.Context, st state, l launch) (state, error) {
	waitEmpty(ctx, l.Cgroup, 30*time.Second)
	st.State = backend.StateExited
	st.EndedAt = time.Now().UTC()
	st.ExitCode = -1
	st.Reason = endReason(b.dir(st.ID), 137, l.Cgroup.oomKills())
	st.Message = "supervisor was gone; end recorded by Stop"
	if err := teardown(ctx, b.dir(st.ID), l); err != nil {
		return state{}, fmt.Errorf("stop %s: %w", st.ID, err)
	}
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

// teardown frees everything an ended (or never started) sandbox holds on the host except its record
// (state.json, output.log) and its uid range: the container (`runc delete --force` kills whatever of it
// still runs and removes its cgroups), any cgroup the runtime left, the home filesystem (unmounted
// before its image is deleted) and the generated files. It is idempotent, and cheap once done.
func teardown(ctx context.Context, dir string, l launch) error {
	var errs []error
	if l.Runtime.Bin != "" {
		if err := l.Runtime.delete(ctx, l.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if l.Cgroup.exists() {
		_ = l.Cgroup.killAll()
		waitEmpty(ctx, l.Cgroup, 30*time.Second)
		if err := l.Cgroup.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeHome(dir); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []string{dirConf, fileConfig, filePID} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			errs = append(errs, err)
		}
	}
	if l.EditDir != "" {
		if err := os.RemoveAll(l.EditDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Remove deletes an ended sandbox's directory, logs and state included, and releases its uid range.
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
	dir, l := b.dir(id), b.launchOf(id)
	// Only a lost or failed sandbox can have anything left here; and nothing is deleted through a home
	// that could not be unmounted.
	if err := teardown(ctx, dir, l); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if err := b.ids.release(l.Slot, dir); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}
