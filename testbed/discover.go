package testbed

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
)

// DiscoverGPUs finds this host's GPUs for a node of a pool on the platform's own host: nvidia-smi names
// them (index, UUID, product, memory), and when the host has CDI specs (cdiDirs, default /etc/cdi and
// /var/run/cdi, written by `nvidia-ctk cdi generate`) each must have a CDI device there, which is how the
// local backend hands it to a sandbox. nvidia-smi is looked for in PATH, then where the CDI spec mounts
// it from (drivers installed under /usr/local/nvidia). No GPU at all is not an error: the result is empty
// and devices must be declared.
func DiscoverGPUs(ctx context.Context, cdiDirs []string) ([]DeviceInput, error) {
	reg, err := cdi.Open(cdiDirs, nil)
	if err != nil {
		return nil, err
	}
	return discoverGPUs(ctx, reg, exec.LookPath, func(ctx context.Context, smi string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, smi, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits").Output()
	})
}

// discoverGPUs is DiscoverGPUs with the lookup and the run of nvidia-smi given.
func discoverGPUs(ctx context.Context, reg *cdi.Registry, lookPath func(string) (string, error),
	smi func(ctx context.Context, path string) ([]byte, error)) ([]DeviceInput, error) {
	specGPUs := reg.GPUs()
	path, err := lookPath("nvidia-smi")
	if err != nil {
		if p := reg.Tool("nvidia-smi"); p != "" {
			path, err = lookPath(p)
		}
	}
	if err != nil {
		if len(specGPUs) > 0 {
			return nil, fmt.Errorf("the CDI specs in %v list %d GPU(s), but nvidia-smi, which names their model, is not found: install the NVIDIA driver's utilities", reg.Dirs(), len(specGPUs))
		}
		return nil, nil
	}
	out, err := smi(ctx, path)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("nvidia-smi: %w", err)
	}
	devs, err := ParseNvidiaSMI(out)
	if err != nil || len(specGPUs) == 0 {
		// Without CDI specs the local backend hands over the bare device nodes (and the host view's
		// libraries); `tamarack doctor` says to generate a spec.
		return devs, err
	}
	for _, d := range devs {
		found := false
		for _, g := range specGPUs {
			found = found || g.UUID == d.UUID || (g.UUID == "" && g.Index == d.Index)
		}
		if !found {
			return nil, fmt.Errorf("GPU %d (%s) has no device in the CDI specs in %v, so no sandbox could get it: regenerate them (nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml)",
				d.Index, d.UUID, reg.Dirs())
		}
	}
	return devs, nil
}
