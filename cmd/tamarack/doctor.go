package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
)

// doctor prints whether this host can run sandboxes, as a checklist: each line ok, warn or FAIL, with
// what was found or how to fix it. The local backend's lines are its own Probe (what Check, and so
// serve, decides on); the data directory comes first, GPUs (CDI specs, nvidia-smi) and gVisor last.
// Anything sandboxes need that fails makes it return an error (exit 1); GPUs, CDI specs and gVisor are
// optional and only warn.
func doctor(ctx context.Context, c *config, stdout io.Writer) error {
	fmt.Fprintln(stdout, "tamarack doctor: can this host run sandboxes?")
	fmt.Fprintln(stdout)
	var fails, warns int
	line := func(level local.Level, name, detail string) {
		switch level {
		case local.LevelFail:
			fails++
		case local.LevelWarn:
			warns++
		}
		fmt.Fprintf(stdout, "  %-5s %-17s %s\n", level, name, detail)
	}
	note := func(text string) { fmt.Fprintf(stdout, "  %-5s %-17s   %s\n", "", "", text) }

	data, _ := filepath.Abs(c.Data)
	if err := c.checkDataDir(); err != nil {
		line(local.LevelFail, "data directory", err.Error())
	} else {
		line(local.LevelOK, "data directory", data+" is writable")
	}

	b, err := local.New(local.Options{Root: filepath.Join(c.Data, "sandboxes"), Runsc: c.Runsc})
	if err != nil {
		line(local.LevelFail, "local backend", err.Error())
	} else {
		for _, f := range b.Probe(ctx) {
			line(f.Level, f.Name, f.Detail)
		}
		// gVisor is optional: only pools with runtime: runsc need it (and never Debian's runsc in PATH).
		switch err := b.CheckRunsc(ctx); {
		case c.Runsc == "":
			line(local.LevelWarn, "gVisor runsc", "not configured (--runsc): only pools with settings runtime: runsc need it; build it with infra/gvisor/build.sh")
		case err != nil:
			line(local.LevelWarn, "gVisor runsc", strings.TrimPrefix(err.Error(), backend.ErrUnavailable.Error()+": "))
		default:
			v, _ := exec.CommandContext(ctx, c.Runsc, "--version").CombinedOutput()
			first, _, _ := strings.Cut(strings.TrimSpace(string(v)), "\n")
			line(local.LevelOK, "gVisor runsc", c.Runsc+": "+first)
		}
	}

	dirs := c.cdiDirs()
	reg, err := cdi.Open(dirs, nil)
	if err != nil {
		line(local.LevelFail, "CDI specs", err.Error())
	} else {
		specs, problems := reg.Specs(), reg.Problems()
		if len(specs) == 0 && len(problems) == 0 {
			line(local.LevelWarn, "CDI specs", fmt.Sprintf("none in %s: sandboxes get no GPU from them; on a GPU host install the NVIDIA driver "+
				"and container toolkit, then nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml", strings.Join(dirs, ", ")))
		}
		for _, s := range specs {
			if s.Err != nil {
				line(local.LevelWarn, "CDI spec", fmt.Sprintf("%s: its devices cannot be handed to a sandbox: %v", s.Path, s.Err))
			} else {
				line(local.LevelOK, "CDI spec", fmt.Sprintf("%s (%s): %s", s.Path, s.Kind, strings.Join(s.Devices, ", ")))
			}
			for _, n := range s.Notes {
				note(n)
			}
		}
		for _, p := range problems {
			line(local.LevelWarn, "CDI spec", p)
		}
	}

	gpus, err := testbed.DiscoverGPUs(ctx, dirs)
	switch {
	case err != nil:
		line(local.LevelWarn, "GPUs", err.Error())
	case len(gpus) == 0:
		line(local.LevelWarn, "GPUs", "none found (no nvidia-smi in PATH or in a CDI spec): sandboxes here get no GPU")
	default:
		for _, g := range gpus {
			line(local.LevelOK, "GPU", fmt.Sprintf("%d: %s %s (%d MiB)", g.Index, g.UUID, g.GPUModel, g.MemoryMiB))
		}
	}

	fmt.Fprintln(stdout)
	if fails > 0 {
		fmt.Fprintf(stdout, "NOT READY: %d check(s) failed; fix them (each says how) and run tamarack doctor again.\n", fails)
		return fmt.Errorf("doctor: %d check(s) failed", fails)
	}
	fmt.Fprintf(stdout, "Ready: this host can run sandboxes (%d warning(s)).\n", warns)
	return nil
}
