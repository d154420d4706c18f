// Package slurmtest gives tests the real Slurm that infra/slurm/start.sh starts: its address, user and token
// from the environment (TAMARACK_TEST_SLURM*), and the compute-node step installed where that Slurm's sudoers
// rule and Epilog expect it. Without TAMARACK_TEST_SLURM tests skip, except in CI (CI set), where a missing
// Slurm fails the run rather than passing it quietly.
package slurmtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The variables infra/slurm/start.sh prints.
const (
	EnvURL   = "TAMARACK_TEST_SLURM"       // slurmrestd's base URL, e.g. http://127.0.0.1:6820
	EnvUser  = "TAMARACK_TEST_SLURM_USER"  // the unprivileged user the token is for; jobs run as it
	EnvToken = "TAMARACK_TEST_SLURM_TOKEN" // its JWT (scontrol token)
	EnvStep  = "TAMARACK_TEST_SLURM_STEP"  // where the sudoers rule lets the user run `tamarack slurm-step` as root
	EnvConf  = "TAMARACK_TEST_SLURM_CONF"  // the slurm.conf srun and scontrol need
)

// Cluster is the test Slurm.
type Cluster struct {
	URL, User, Token, Step, Conf string
}

// Connect returns the test Slurm named by the environment, or skips (fails in CI) without one.
func Connect(t testing.TB) Cluster {
	t.Helper()
	c := Cluster{URL: os.Getenv(EnvURL), User: os.Getenv(EnvUser), Token: os.Getenv(EnvToken), Step: os.Getenv(EnvStep), Conf: os.Getenv(EnvConf)}
	if c.URL == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: CI tests the Slurm backend against a real Slurm (.ci/run starts it)", EnvURL)
		}
		t.Skipf(`set %s and the other TAMARACK_TEST_SLURM_* variables to test against a real Slurm: as root, eval "$(infra/slurm/start.sh)" starts one and prints them`, EnvURL)
	}
	if c.User == "" || c.Token == "" || c.Step == "" || c.Conf == "" {
		t.Fatalf("%s is set but not all of %s, %s, %s and %s are: run infra/slurm/start.sh again", EnvURL, EnvUser, EnvToken, EnvStep, EnvConf)
	}
	return c
}

var (
	stepOnce sync.Once
	stepErr  error
)

// InstallStep builds cmd/tamarack and installs it at c.Step, once per test binary, and returns the command
// jobs run it with (sudo -n, as on a real cluster).
func (c Cluster) InstallStep(t testing.TB) []string {
	t.Helper()
	stepOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		repo := filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
		tmp := c.Step + ".new"
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/tamarack")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			stepErr = errors.New("go build ./cmd/tamarack: " + err.Error() + ": " + string(out))
			return
		}
		// Renamed into place: a job of another test process may be running the old one.
		stepErr = os.Rename(tmp, c.Step)
	})
	if stepErr != nil {
		t.Fatal(stepErr)
	}
	return []string{"sudo", "-n", c.Step}
}
