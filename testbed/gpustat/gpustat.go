// Package gpustat measures a host's NVIDIA GPUs with nvidia-smi: utilisation and memory per device, for the
// sandbox GPU charts. The testbed uses it for the platform host's own devices and each site agent for its
// host's (testbed/agent); it knows nothing of sandboxes, which devices they hold, or where samples are kept.
package gpustat

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
)

// Stat is one device's utilisation and memory at one instant, as nvidia-smi reports it.
type Stat struct {
	UUID string
	// UtilizationPct is 0-100, or -1 when the driver does not report it ("[N/A]", MIG instances).
	UtilizationPct int
	MemoryUsedMiB  int64
	MemoryTotalMiB int64
}

// Func measures the devices with these UUIDs on this host, or every device of the host when uuids is empty.
// Devices it cannot see are left out of the answer (another host's GPUs, a device that vanished); an error
// means nothing could be measured now.
type Func func(ctx context.Context, uuids []string) ([]Stat, error)

// query is the nvidia-smi query whose output Parse reads.
const query = "--query-gpu=uuid,utilization.gpu,memory.used,memory.total"

// NvidiaSMI returns a Func that runs this host's nvidia-smi (found on PATH, else where the host's CDI specs
// name it, as testbed.DiscoverGPUs finds it), or nil when the host has none: sandboxes are then "not
// measured", never shown an invented zero.
func NvidiaSMI(cdiDirs []string) Func {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		reg, rerr := cdi.Open(cdiDirs, nil)
		if rerr != nil || reg.Tool("nvidia-smi") == "" {
			return nil
		}
		if path, err = exec.LookPath(reg.Tool("nvidia-smi")); err != nil {
			return nil
		}
	}
	return func(ctx context.Context, uuids []string) ([]Stat, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		args := []string{query, "--format=csv,noheader,nounits"}
		if len(uuids) > 0 {
			args = append(args, "-i", strings.Join(uuids, ","))
		}
		out, err := exec.CommandContext(ctx, path, args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) && len(ee.Stderr) > 0 {
				err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
			}
			return nil, fmt.Errorf("nvidia-smi: %w", err)
		}
		return Parse(out)
	}
}

// Parse parses `nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,memory.total
// --format=csv,noheader[,nounits]` output. A value the driver does not report ("[N/A]", "[Not Supported]")
// reads as -1 for utilisation and 0 for memory; a line of another shape is an error (a changed nvidia-smi is
// better noticed than charted wrong).
func Parse(out []byte) ([]Stat, error) {
	var stats []Stat
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		parts := strings.Split(line, ",")
		if len(parts) != 4 {
			return nil, fmt.Errorf("nvidia-smi: unexpected line %q", line)
		}
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		if !strings.HasPrefix(parts[0], "GPU-") && !strings.HasPrefix(parts[0], "MIG-") {
			return nil, fmt.Errorf("nvidia-smi: no device UUID in %q", line)
		}
		util, err := smiNumber(parts[1], "%")
		if err != nil || util > 100 {
			return nil, fmt.Errorf("nvidia-smi: bad utilisation in %q", line)
		}
		used, err := smiNumber(parts[2], "MiB")
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi: bad memory.used in %q", line)
		}
		total, err := smiNumber(parts[3], "MiB")
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi: bad memory.total in %q", line)
		}
		stats = append(stats, Stat{UUID: parts[0], UtilizationPct: int(util), MemoryUsedMiB: max(used, 0), MemoryTotalMiB: max(total, 0)})
	}
	return stats, sc.Err()
}

// smiNumber reads one nvidia-smi value with or without its unit; -1 for a value not reported.
func smiNumber(v, unit string) (int64, error) {
	if strings.HasPrefix(v, "[") || v == "N/A" {
		return -1, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, unit)), 10, 64)
	if err == nil && n < 0 {
		err = errors.New("negative")
	}
	return n, err
}
