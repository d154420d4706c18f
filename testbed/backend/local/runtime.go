package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The runtimes a sandbox can run on, named by the pool setting SettingRuntime.
const (
	// RuntimeRunc is runc (Debian's package): the sandbox's processes run on the host kernel, narrowed
	// by the user namespace, seccomp and capabilities. The default.
	RuntimeRunc = "runc"
	// RuntimeRunsc is gVisor's runsc: the sandbox's processes run on gVisor's user-space kernel (the
	// Sentry), which alone talks to the host kernel, through a narrow seccomp filter of its own.
	RuntimeRunsc = "runsc"
)

// SettingRuntime is the pool setting (backend.Spec.Settings) that chooses a sandbox's runtime:
// RuntimeRunc (also when absent) or RuntimeRunsc.
const SettingRuntime = "runtime"

// ociRuntime drives the OCI runtime binary (runc, or gVisor's runsc) for the sandboxes of one Root. Its
// state lives in <Root>/.runc (runsc: <Root>/.runsc, so neither ever reads the other's), so container
// IDs (the sandbox IDs) are unique within it. It is recorded in each sandbox's launch.json: a sandbox is
// always driven by the runtime that started it, with the same flags, even if the options changed since.
type ociRuntime struct {
	Bin  string `json:"bin"`
	Root string `json:"root"`
	// Kind is RuntimeRunc or RuntimeRunsc; empty (a record from before runsc) is runc.
	Kind string `json:"kind,omitempty"`
	// Flags are global flags given to every command of this sandbox after --root (runsc's platform,
	// network and file system choices, see runscFlags).
	Flags []string `json:"flags,omitempty"`
}

func (r ociRuntime) gvisor() bool { return r.Kind == RuntimeRunsc }

// name is the runtime's name for messages: runc or runsc.
func (r ociRuntime) name() string {
	if r.gvisor() {
		return RuntimeRunsc
	}
	return RuntimeRunc
}

// command builds `<bin> --root <root> <flags> args…` with a fixed PATH and nothing else of serve's
// environment.
func (r ociRuntime) command(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, r.Bin, r.argv(args...)[1:]...)
	c.Env = []string{"PATH=" + hostPath}
	return c
}

// argv is the whole command line of `<bin> --root <root> <flags> args…`.
func (r ociRuntime) argv(args ...string) []string {
	out := append([]string{r.Bin, "--root", r.Root}, r.Flags...)
	return append(out, args...)
}

// run runs a runtime command and returns its last line of output in the error.
func (r ociRuntime) run(ctx context.Context, args ...string) error {
	out, err := r.command(ctx, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(r.Bin), args[0], err, lastOf(string(out)))
	}
	return nil
}

// known reports whether the runtime still holds state for id (created and not yet deleted): runc keeps
// a directory <root>/<id>, runsc a file <root>/<id>_sandbox:<id>.state.
func (r ociRuntime) known(id string) bool {
	if r.gvisor() {
		return exists(filepath.Join(r.Root, id+"_sandbox:"+id+".state"))
	}
	return exists(filepath.Join(r.Root, id))
}

// kill sends sig ("TERM", "KILL") to the sandbox's init. A container that has stopped meanwhile is not
// an error: the caller wants it ended.
func (r ociRuntime) kill(ctx context.Context, id, sig string) error {
	if !r.known(id) {
		return nil
	}
	err := r.run(ctx, "kill", id, sig)
	if err != nil && !r.stopped(ctx, id) {
		return err
	}
	return nil
}

// stopped asks the runtime whether id's init has exited (or id is gone).
func (r ociRuntime) stopped(ctx context.Context, id string) bool {
	out, err := r.command(ctx, "state", id).Output()
	if err != nil {
		return !r.known(id)
	}
	var st struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(out, &st) == nil && st.Status == "stopped"
}

// delete removes the container: whatever of it still runs is killed, its cgroups are removed and the
// runtime forgets it. Idempotent.
func (r ociRuntime) delete(ctx context.Context, id string) error {
	if !r.known(id) {
		return nil
	}
	err := r.run(ctx, "delete", "--force", id)
	if err != nil && r.known(id) {
		return err
	}
	return nil
}

// readPID reads a pid file written by the runtime, waiting up to max for it to appear.
func readPID(path string, max time.Duration) (int, error) {
	deadline := time.Now().Add(max)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			var pid int
			if _, err := fmt.Sscan(strings.TrimSpace(string(data)), &pid); err == nil && pid > 0 {
				return pid, nil
			}
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no pid in %s after %v", path, max)
		}
		time.Sleep(time.Millisecond)
	}
}

// lastOf returns the last non-empty line of s: runc's error, after its log noise.
func lastOf(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
