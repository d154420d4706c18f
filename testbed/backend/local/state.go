package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Files in <root>/<id>/. The directory is the sandbox: it exists from Start until Remove. It is also
// runc's bundle (config.json); the root filesystem is elsewhere (Spec.RootFS or the host view).
const (
	fileLaunch    = "launch.json"    // what the shim must run; written by Start before the shim exists
	fileConfig    = "config.json"    // the OCI runtime spec (ocispec.Build)
	fileState     = "state.json"     // what happened; written by the shim (and by Stop if the shim is gone)
	fileOutput    = "output.log"     // combined stdout and stderr of the sandbox, newest part (logfile)
	fileShim      = "shim.log"       // the shim's own diagnostics
	fileStop      = "stop-requested" // created by Stop before signalling, so the end is recorded as "stopped"
	filePID       = "init.pid"       // the sandbox's init as seen from the host, written by runc create
	fileHomeImage = "home.img"       // the home filesystem's image (home.go)
	dirHome       = "home"           // its mount point
	dirConf       = "conf"           // generated /etc files bound read-only into the sandbox
)

// launch is what Start hands the shim, and what every later call needs to drive the sandbox.
type launch struct {
	ID      string     `json:"id"`
	Runtime ociRuntime `json:"runtime"`
	// Slot is the sandbox's uid range (idmap.go); HostID the host uid and gid of its root.
	Slot   int       `json:"slot"`
	HostID uint32    `json:"host_id"`
	Cgroup cgroupSet `json:"cgroup"`
	// Env is the sandbox's environment, as in config.json; kept for reference.
	Env []string `json:"env"`
	// LogBytes caps output.log and output.log.1 together; 0 is logfile.DefaultMax.
	LogBytes int64 `json:"log_bytes,omitempty"`
	// EditDir holds the files of Options.FileEdits for this sandbox (HostDir/edits/<slot>); removed
	// with the rest at its end.
	EditDir string `json:"edit_dir,omitempty"`
}

// procID identifies a process across PID reuse: the PID plus its start time in clock ticks since boot,
// plus the boot it belongs to.
type procID struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// state is the sandbox's record, the only thing a restarted backend trusts.
type state struct {
	ID        string        `json:"id"`
	BootID    string        `json:"boot_id"`
	State     backend.State `json:"state"`
	Shim      procID        `json:"shim"`
	Init      procID        `json:"init"` // the sandbox's PID 1 (its init), seen from the host
	Slot      int           `json:"slot"` // the uid range, released by Remove
	HostID    uint32        `json:"host_id"`
	StartedAt time.Time     `json:"started_at"`
	EndedAt   time.Time     `json:"ended_at,omitzero"`
	ExitCode  int           `json:"exit_code"`
	Reason    string        `json:"reason,omitempty"`
	Message   string        `json:"message,omitempty"`
	Cgroup    cgroupSet     `json:"cgroup"`
}

func (s state) status() backend.Status {
	return backend.Status{
		SandboxID: s.ID, State: s.State, StartedAt: s.StartedAt, EndedAt: s.EndedAt,
		ExitCode: s.ExitCode, Reason: s.Reason, Message: s.Message,
	}
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON replaces path atomically (write to a temporary file, fsync, rename), so a reader never sees
// half a state file and a crash leaves either the old or the new one.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// writeFileAtomic is writeJSON for bytes.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// bootID tells boots apart: after a reboot no recorded process can still be alive, whatever its PID.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// identify returns pid's identity, or an error if it does not exist.
func identify(pid int) (procID, error) {
	start, err := procStart(pid)
	if err != nil {
		return procID{}, err
	}
	return procID{PID: pid, Start: start}, nil
}

// procStart reads field 22 (starttime) of /proc/<pid>/stat. The command name (field 2) may hold spaces
// and parentheses, so fields are counted after its last ')'.
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so starttime (field 22) is f[19]. A zombie has ended: treat as gone.
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, os.ErrNotExist
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether p is still the very process that was recorded.
func (p procID) alive(recordedBoot string) bool {
	if p.PID <= 0 || recordedBoot != bootID() {
		return false
	}
	start, err := procStart(p.PID)
	return err == nil && start == p.Start
}
