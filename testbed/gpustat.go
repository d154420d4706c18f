package testbed

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

	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
)

// GPUStat is one device's utilisation and memory at one instant, as nvidia-smi reports it.
type GPUStat struct {
	UUID string
	// UtilizationPct is 0-100, or -1 when the driver does not report it ("[N/A]", MIG instances).
	UtilizationPct int
	MemoryUsedMiB  int64
	MemoryTotalMiB int64
}

// GPUStats measures the devices with these UUIDs on this host. Devices it cannot see are left out of the
// answer (a remote agent's GPUs, a device that vanished); an error means nothing could be measured now.
type GPUStats func(ctx context.Context, uuids []string) ([]GPUStat, error)

// gpuStatQuery is the nvidia-smi query whose output ParseGPUStats reads.
const gpuStatQuery = "--query-gpu=uuid,utilization.gpu,memory.used,memory.total"

// NvidiaSMIStats returns a GPUStats that runs this host's nvidia-smi (found as DiscoverGPUs finds it), or nil
// when the host has none: sandboxes are then "not measured", never shown an invented zero.
func NvidiaSMIStats(cdiDirs []string) GPUStats {
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
	return func(ctx context.Context, uuids []string) ([]GPUStat, error) {
		if len(uuids) == 0 {
			return nil, nil
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, path, gpuStatQuery, "--format=csv,noheader,nounits", "-i", strings.Join(uuids, ",")).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) && len(ee.Stderr) > 0 {
				err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
			}
			return nil, fmt.Errorf("nvidia-smi: %w", err)
		}
		return ParseGPUStats(out)
	}
}

// ParseGPUStats parses `nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,memory.total
// --format=csv,noheader[,nounits]` output. A value the driver does not report ("[N/A]", "[Not Supported]")
// reads as -1 for utilisation and 0 for memory; a line of another shape is an error (a changed nvidia-smi is
// better noticed than charted wrong).
func ParseGPUStats(out []byte) ([]GPUStat, error) {
	var stats []GPUStat
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
		stats = append(stats, GPUStat{UUID: parts[0], UtilizationPct: int(util), MemoryUsedMiB: max(used, 0), MemoryTotalMiB: max(total, 0)})
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

// GPUSample is a sandbox's devices taken together at one instant (a testbed_gpu_samples row).
type GPUSample struct {
	SandboxID      string `gorm:"primaryKey"`
	AtMS           int64  `gorm:"column:at_ms;primaryKey"`
	UtilizationPct int    `gorm:"column:utilization_pct"` // mean over the devices that report it; -1 none does
	MemoryUsedMiB  int64  `gorm:"column:memory_used_mib"`
	MemoryTotalMiB int64  `gorm:"column:memory_total_mib"`
}

func (GPUSample) TableName() string { return "testbed_gpu_samples" }

// Why a sandbox's GPUs are not measured (GPUMetrics.Reason).
const (
	NotMeasuredDeclared = "declared_devices" // its devices were declared by the vendor, not found on a host
	NotMeasuredNoGPU    = "no_devices"       // it has no device (yet)
	NotMeasuredNoTool   = "no_sampler"       // the testbed host cannot measure them (no nvidia-smi here)
)

// GPUMetrics is what the testbed knows of a sandbox's GPU use: the recent samples, or why there are none.
type GPUMetrics struct {
	Measured bool
	Reason   string
	Samples  []GPUSample
}

// gpuSampleKeep bounds the samples kept and answered per sandbox (the most recent ones).
const gpuSampleKeep = 720

// measurable says whether the sandbox's devices can be sampled here, or why not.
func (s *Service) measurable(sb Sandbox) (uuids []string, reason string) {
	devs := sb.DeviceList()
	if len(devs) == 0 {
		return nil, NotMeasuredNoGPU
	}
	for _, d := range devs {
		if !d.Declared && d.UUID != "" {
			uuids = append(uuids, d.UUID)
		}
	}
	switch {
	case len(uuids) == 0:
		return nil, NotMeasuredDeclared
	case s.gpuStats == nil:
		return nil, NotMeasuredNoTool
	}
	return uuids, ""
}

// sampleGPUs records one GPU sample of a running sandbox when one is due. A failed measurement is not an
// error of the tick: the chart shows a gap.
func (s *Service) sampleGPUs(ctx context.Context, sb Sandbox, nowMS int64) error {
	uuids, why := s.measurable(sb)
	if why != "" {
		return nil
	}
	s.mu.Lock()
	due := nowMS-s.gpuSampled[sb.ID] >= s.opts.GPUSampleInterval.Milliseconds()
	if due {
		s.gpuSampled[sb.ID] = nowMS
	}
	s.mu.Unlock()
	if !due {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	stats, err := s.gpuStats(sctx, uuids)
	cancel()
	if err != nil {
		s.log.Debug("gpu sample", "sandbox", sb.ID, "err", err)
		return nil
	}
	row, ok := aggregateGPU(sb.ID, nowMS, uuids, stats)
	if !ok {
		return nil
	}
	db := s.db.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return fmt.Errorf("gpu sample: %w", err)
	}
	// Keep the most recent samples only: older ones by time, a cheap bound without counting rows.
	horizon := nowMS - int64(gpuSampleKeep)*s.opts.GPUSampleInterval.Milliseconds()
	return db.Where("sandbox_id = ? AND at_ms < ?", sb.ID, horizon).Delete(&GPUSample{}).Error
}

// aggregateGPU takes a sandbox's devices together: mean utilisation over those that report it, summed
// memory. ok is false when none of its devices was in the answer.
func aggregateGPU(id string, atMS int64, uuids []string, stats []GPUStat) (GPUSample, bool) {
	row := GPUSample{SandboxID: id, AtMS: atMS, UtilizationPct: -1}
	var util, utilN, seen int
	for _, st := range stats {
		mine := false
		for _, u := range uuids {
			mine = mine || u == st.UUID
		}
		if !mine {
			continue
		}
		seen++
		if st.UtilizationPct >= 0 {
			util += st.UtilizationPct
			utilN++
		}
		row.MemoryUsedMiB += st.MemoryUsedMiB
		row.MemoryTotalMiB += st.MemoryTotalMiB
	}
	if utilN > 0 {
		row.UtilizationPct = (util + utilN/2) / utilN
	}
	return row, seen > 0
}

// GPUMetricsOf answers a sandbox's GPU measurements (scoped like Get).
func (s *Service) GPUMetricsOf(ctx context.Context, c Caller, id string) (GPUMetrics, error) {
	sb, err := s.Get(ctx, c, id)
	if err != nil {
		return GPUMetrics{}, err
	}
	out := GPUMetrics{Samples: []GPUSample{}}
	if _, why := s.measurable(sb); why != "" {
		out.Reason = why
		return out, nil
	}
	out.Measured = true
	if err := s.db.WithContext(ctx).Where("sandbox_id = ?", sb.ID).Order("at_ms DESC").Limit(gpuSampleKeep).Find(&out.Samples).Error; err != nil {
		return GPUMetrics{}, err
	}
	for i, j := 0, len(out.Samples)-1; i < j; i, j = i+1, j-1 {
		out.Samples[i], out.Samples[j] = out.Samples[j], out.Samples[i]
	}
	return out, nil
}
