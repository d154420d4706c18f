package testbed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/gpustat"
)

// GPUSample is a sandbox's devices taken together at one instant (a testbed_gpu_samples row).
type GPUSample struct {
	SandboxID      string    `gorm:"primaryKey"`
	At             time.Time `gorm:"primaryKey"`
	UtilizationPct int       `gorm:"column:utilization_pct"` // mean over the devices that report it; -1 none does
	MemoryUsedMiB  int64     `gorm:"column:memory_used_mib"`
	MemoryTotalMiB int64     `gorm:"column:memory_total_mib"`
}

func (GPUSample) TableName() string { return "testbed_gpu_samples" }

// Why a sandbox's GPUs are not measured (GPUMetrics.Reason).
const (
	NotMeasuredDeclared = "declared_devices" // its devices were declared by the vendor, not found on a host
	NotMeasuredNoGPU    = "no_devices"       // it has no device (yet)
	NotMeasuredNoTool   = "no_sampler"       // the host that runs it cannot measure them (no nvidia-smi there)
)

// GPUMetrics is what the testbed knows of a sandbox's GPU use: the recent samples, or why there are none.
type GPUMetrics struct {
	Measured bool
	Reason   string
	Samples  []GPUSample
}

// gpuSampleKeep bounds the samples kept and answered per sandbox (the most recent ones).
const gpuSampleKeep = 720

// measurable says whether the sandbox's devices are measured, or why not: on the platform host by its own
// sampler (Deps.GPUStats), on a site agent's host by that agent, when its heartbeats say it measures them.
func (s *Service) measurable(ctx context.Context, sb Sandbox) (uuids []string, reason string, err error) {
	devs := sb.DeviceList()
	if len(devs) == 0 {
		return nil, NotMeasuredNoGPU, nil
	}
	for _, d := range devs {
		if !d.Declared && d.UUID != "" {
			uuids = append(uuids, d.UUID)
		}
	}
	if len(uuids) == 0 {
		return nil, NotMeasuredDeclared, nil
	}
	if sb.AgentID != "" {
		samples, err := agentSamplesGPUs(s.db.WithContext(ctx), sb.PoolID, sb.AgentID)
		if err != nil {
			return nil, "", err
		}
		if !samples {
			return nil, NotMeasuredNoTool, nil
		}
		return uuids, "", nil
	}
	if s.gpuStats == nil {
		return nil, NotMeasuredNoTool, nil
	}
	return uuids, "", nil
}

// gpuSampleDue says whether a sandbox's next GPU sample is due at now, and if so counts it as taken.
func (s *Service) gpuSampleDue(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.gpuSampled[id]
	due := !ok || now.Sub(last) >= s.opts.GPUSampleInterval
	if due {
		s.gpuSampled[id] = now
	}
	return due
}

// sampleGPUs records one GPU sample of a running sandbox of this host when one is due. A failed measurement
// is not an error of the tick: the chart shows a gap. Sandboxes of enrolled agents are measured by their
// agent (recordAgentGPUs), never here: the platform's nvidia-smi cannot see another host's devices.
func (s *Service) sampleGPUs(ctx context.Context, sb Sandbox, now time.Time) error {
	if sb.AgentID != "" || s.gpuStats == nil {
		return nil
	}
	uuids, why, err := s.measurable(ctx, sb)
	if why != "" || err != nil {
		return err
	}
	if !s.gpuSampleDue(sb.ID, now) {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	stats, err := s.gpuStats(sctx, uuids)
	cancel()
	if err != nil {
		s.log.Debug("gpu sample", "sandbox", sb.ID, "err", err)
		return nil
	}
	return s.storeGPUSample(ctx, sb.ID, now, uuids, stats)
}

// storeGPUSample records a sandbox's devices among stats at now (nothing when none of them is there) and
// drops its samples older than the gpuSampleKeep most recent intervals.
func (s *Service) storeGPUSample(ctx context.Context, id string, now time.Time, uuids []string, stats []gpustat.Stat) error {
	row, ok := aggregateGPU(id, now, uuids, stats)
	if !ok {
		return nil
	}
	db := s.db.WithContext(ctx)
	if err := addGPUSample(db, &row); err != nil {
		return fmt.Errorf("gpu sample: %w", err)
	}
	// Keep the most recent samples only: older ones by time, a cheap bound without counting rows.
	horizon := now.Add(-gpuSampleKeep * s.opts.GPUSampleInterval)
	return trimGPUSamples(db, id, horizon)
}

// recordAgentGPUs records, from an enrolled agent's heartbeat, a GPU sample of each of its sandboxes that
// it reports running and that runs here on one of its nodes, when one is due. The sample is timed by this
// testbed's clock (the agent's may drift), like the heartbeat itself.
func (s *Service) recordAgentGPUs(ctx context.Context, a Agent, hb events.AgentHeartbeatV1, now time.Time) error {
	if len(hb.GPUs) == 0 || len(hb.Running) == 0 {
		return nil
	}
	stats := make([]gpustat.Stat, 0, len(hb.GPUs))
	for _, g := range hb.GPUs {
		stats = append(stats, gpustat.Stat{UUID: g.UUID, UtilizationPct: g.UtilizationPct, MemoryUsedMiB: g.MemoryUsedMiB,
			MemoryTotalMiB: g.MemoryTotalMiB})
	}
	sbs, err := runningSandboxesOfAgent(s.db.WithContext(ctx), a.ID, a.PoolID, hb.Running)
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range sbs {
		uuids, why, err := s.measurable(ctx, sb)
		if why != "" || err != nil || !s.gpuSampleDue(sb.ID, now) {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, s.storeGPUSample(ctx, sb.ID, now, uuids, stats))
	}
	return errors.Join(errs...)
}

// pruneGPUSamples deletes the GPU samples of sandboxes that ended more than GPUSampleRetention ago, at most
// once per PruneInterval (the supervisor's collect calls it on every tick).
func (s *Service) pruneGPUSamples(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	due := s.gpuPruned.IsZero() || now.Sub(s.gpuPruned) >= s.opts.PruneInterval
	if due {
		s.gpuPruned = now
	}
	s.mu.Unlock()
	if !due {
		return nil
	}
	rows, err := pruneEndedGPUSamples(s.db.WithContext(ctx), now.Add(-s.opts.GPUSampleRetention))
	if err != nil {
		return fmt.Errorf("prune gpu samples: %w", err)
	}
	if rows > 0 {
		s.log.Info("gpu samples of ended sandboxes pruned", "rows", rows, "retention", s.opts.GPUSampleRetention)
	}
	return nil
}

// aggregateGPU takes a sandbox's devices together: mean utilisation over those that report it, summed
// memory. ok is false when none of its devices was in the answer.
func aggregateGPU(id string, at time.Time, uuids []string, stats []gpustat.Stat) (GPUSample, bool) {
	row := GPUSample{SandboxID: id, At: stamp(at), UtilizationPct: -1}
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
func (s *Service) GPUMetricsOf(ctx context.Context, c web.Principal, id string) (GPUMetrics, error) {
	sb, err := s.Get(ctx, c, id)
	if err != nil {
		return GPUMetrics{}, err
	}
	out := GPUMetrics{Samples: []GPUSample{}}
	_, why, err := s.measurable(ctx, sb)
	if err != nil {
		return GPUMetrics{}, err
	}
	if why != "" {
		out.Reason = why
		return out, nil
	}
	out.Measured = true
	if out.Samples, err = recentGPUSamples(s.db.WithContext(ctx), sb.ID, gpuSampleKeep); err != nil {
		return GPUMetrics{}, err
	}
	for i, j := 0, len(out.Samples)-1; i < j; i, j = i+1, j-1 {
		out.Samples[i], out.Samples[j] = out.Samples[j], out.Samples[i]
	}
	return out, nil
}
