package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorListsEveryCheck: `tamarack doctor` prints one line per thing a sandbox needs of the host, the
// CDI specs with what replaces their hooks, and the GPUs; it exits 0 exactly when nothing failed (which a
// host that must run sandboxes, CI, requires).
func TestDoctorListsEveryCheck(t *testing.T) {
	specs, err := filepath.Abs("../../testbed/backend/local/cdi/testdata")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = run([]string{"doctor", "--data", t.TempDir(), "--cdi-dirs", specs}, &out, &errOut)
	text := out.String()
	t.Logf("doctor:\n%s", text)
	for _, name := range []string{"data directory", "root", "runtime", "init", "tools", "user namespaces", "uid ranges",
		"loop devices", "host view", "cgroups", "gVisor runsc", "CDI spec", "GPUs"} {
		if !hasCheck(text, name) {
			t.Errorf("no %q line", name)
		}
	}
	for _, want := range []string{"cdi-h200.json (nvidia.com/gpu): nvidia.com/gpu=0, nvidia.com/gpu=GPU-f99132a9",
		"hook create-symlinks:", "hook update-ldcache: LD_LIBRARY_PATH", "nvidia-smi, which names their model, is not found"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	failed := strings.Contains(text, "\n  FAIL ")
	if failed != (err != nil) || failed != strings.Contains(text, "NOT READY") {
		t.Errorf("a FAIL line: %v; error: %v", failed, err)
	}
	if os.Getenv("TAMARACK_TEST_SANDBOX") == "required" && err != nil {
		t.Errorf("this host must run sandboxes, doctor says: %v", err)
	}
}

// TestDoctorFailsWithoutADataDirectory: a check that fails says so, and doctor exits 1.
func TestDoctorFailsWithoutADataDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run([]string{"doctor", "--data", filepath.Join(file, "data"), "--cdi-dirs", t.TempDir()}, &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(out.String(), "  FAIL  data directory") || !strings.Contains(out.String(), "NOT READY") {
		t.Errorf("doctor = %v:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "none in ") || !hasCheck(out.String(), "CDI specs") {
		t.Errorf("no CDI specs line:\n%s", out.String())
	}
}

// hasCheck reports whether doctor's output has a line for the check name.
func hasCheck(out, name string) bool {
	for line := range strings.Lines(out) {
		f := strings.TrimSpace(line)
		for _, level := range []string{"ok", "warn", "FAIL"} {
			if strings.HasPrefix(f, level) && strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(f, level)), name) {
				return true
			}
		}
	}
	return false
}
