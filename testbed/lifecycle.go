package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

func eventbusWrite[T eventbus.Payload](tx *gorm.DB, s *Service, subj eventbus.Subject[T], id string, data T) error {
	return eventbus.Write(tx, s.outbox, subj, id, data)
}

// transitions lists the states each state may move to. "" is a sandbox not yet recorded.
var transitions = map[string][]string{
	"":                {StateRequested},
	StateRequested:    {StateScheduled, StateStopping, StateFailed},
	StateScheduled:    {StateProvisioning, StateStopping, StateFailed},
	StateProvisioning: {StateRunning, StateStopping, StateFailed},
	StateRunning:      {StateStopping, StateFailed},
	StateStopping:     {StateStopped, StateFailed},
}

func allowed(from, to string) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// transition is the one function that changes a sandbox's state. Inside tx it checks the move, records the
// reason (the first stop/failure reason wins), releases device claims on an end state, saves the row and
// writes the outbox event tamarack.testbed.sandbox.<state>.v1 with ID "<sandbox>-<state>". The caller
// commits and then calls s.committed(sb).
func (s *Service) transition(tx *gorm.DB, sb *Sandbox, to, reason string, at time.Time) error {
	from := sb.State
	if !allowed(from, to) {
		return fmt.Errorf("sandbox %s %s → %s: %w", sb.ID, from, to, ErrBadTransition)
	}
	sb.State = to
	if reason != "" && sb.StopReason == "" && (to == StateStopping || to == StateStopped || to == StateFailed) {
		sb.StopReason = reason
	}
	sb.UpdatedAt = stamp(at)
	end := to == StateStopped || to == StateFailed
	if end {
		if sb.EndedAt == nil {
			ended := stamp(at)
			if sb.StartedAt != nil && sb.UsageEndAt != nil && sb.UsageEndAt.After(ended) {
				ended = *sb.UsageEndAt
			}
			sb.EndedAt = &ended
		}
		if err := releaseClaims(tx, sb.ID); err != nil {
			return err
		}
	}
	var err error
	if from == "" {
		err = createSandbox(tx, sb)
	} else {
		err = saveSandbox(tx, sb)
	}
	if err != nil {
		return err
	}
	ev := events.SandboxChangedV1{SandboxID: sb.ID, OrganizationID: sb.OrgID, UserID: sb.UserID, ListingID: sb.ListingID,
		VendorOrgID: sb.VendorOrgID, PoolID: sb.PoolID, NodeID: sb.NodeID, GPUModel: sb.GPUModel, GPUCount: sb.GPUCount,
		State: to, Reason: sb.StopReason, ExpiresAt: orZero(sb.ExpiresAt), At: at}
	if end {
		ev.UsageMillis, ev.LastSeq = sb.UsageMillis(), sb.UsageSeq
	}
	return eventbusWrite(tx, s, events.SandboxSubject(to), sb.ID+"-"+to, ev)
}

// committed runs after a transaction that changed sb commits.
func (s *Service) committed(sb *Sandbox) {
	if sb.State == StateStopping || sb.Terminal() {
		s.cancelPull(sb.ID, errStopRequested)
	}
	if sb.Terminal() {
		s.metrics.stops.WithLabelValues(sb.State, sb.StopReason).Inc()
		s.index().release(sb.ID)
		s.mu.Lock()
		delete(s.touched, sb.ID)
		s.mu.Unlock()
	}
	s.outbox.Kick()
	s.watch.wake(sb.ID)
}

// meter writes one usage sample from the cursor to end (and moves the cursor) inside tx. A non-final sample
// of zero length is skipped; the final one is always written so billing sees the end. Times are whole
// milliseconds (stamp), so the samples' Millis sum to exactly (last end − backend-observed start).
func (s *Service) meter(tx *gorm.DB, sb *Sandbox, end time.Time, final bool) error {
	if sb.StartedAt == nil {
		return nil
	}
	from := *sb.StartedAt
	if sb.UsageEndAt != nil {
		from = *sb.UsageEndAt
	}
	end = stamp(end)
	if end.Before(from) {
		end = from // never meter backwards (a clock step): the interval is empty instead
	}
	if end.Equal(from) && !final {
		return nil
	}
	sb.UsageSeq++
	ev := events.SandboxUsageV1{SandboxID: sb.ID, OrganizationID: sb.OrgID, ListingID: sb.ListingID,
		VendorOrgID: sb.VendorOrgID, PoolID: sb.PoolID, GPUModel: sb.GPUModel, DeviceCount: sb.GPUCount,
		Seq: sb.UsageSeq, Start: from, End: end, Millis: end.Sub(from).Milliseconds(), Final: final}
	sb.UsageEndAt = &end
	s.metrics.samples.Inc()
	if err := eventbusWrite(tx, s, events.SandboxUsage, fmt.Sprintf("%s-%d", sb.ID, sb.UsageSeq), ev); err != nil {
		return err
	}
	return setUsageCursor(tx, sb.ID, sb.UsageSeq, end)
}

// update loads a sandbox for update inside a transaction, applies fn and commits.
func (s *Service) update(ctx context.Context, id string, fn func(tx *gorm.DB, sb *Sandbox) error) (Sandbox, error) {
	var sb Sandbox
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if sb, err = lockSandbox(tx, id); err != nil {
			return err
		}
		return fn(tx, &sb)
	})
	if err != nil {
		return sb, err
	}
	s.committed(&sb)
	return sb, nil
}

// Launch accepts a sandbox request: it validates it against the listing, checks capacity, asks billing for
// a hold, records the sandbox (requested), places it (scheduled, devices claimed) and starts provisioning in
// the background. It returns the sandbox as accepted (state requested).
func (s *Service) Launch(ctx context.Context, c web.Principal, in LaunchInput) (sb Sandbox, err error) {
	defer func() { s.metrics.launched(err) }()
	return s.launch(ctx, c, in)
}

func (s *Service) launch(ctx context.Context, c web.Principal, in LaunchInput) (Sandbox, error) {
	if err := web.ActsForOrg(c); err != nil {
		return Sandbox{}, err
	}
	if err := in.Validate(); err != nil {
		return Sandbox{}, err
	}
	l, err := listingByID(s.db.WithContext(ctx), in.ListingID)
	if err != nil {
		return Sandbox{}, err
	}
	if !l.VisibleFor(c) {
		return Sandbox{}, ErrListingNotFound
	}
	if err := s.checkAccess(ctx, c, l); err != nil {
		return Sandbox{}, err
	}
	if in.GPUModel == "" {
		in.GPUModel = l.GPUModel // a compute listing offers one model: asking for it is optional
	}
	var f problem.Fields
	f.CheckMsg(in.GPUModel == l.GPUModel, "gpu_model", "not_offered", "field.text.listing_offers", problem.Args{"Model": l.GPUModel})
	if in.DurationMinutes > l.MaxMinutes {
		f.AddMsg("duration_minutes", "too_long", "field.text.listing_max_minutes", problem.Args{"Minutes": l.MaxMinutes})
	}
	if in.DurationMinutes < l.MinMinutes {
		f.AddMsg("duration_minutes", "too_short", "field.text.listing_min_minutes", problem.Args{"Minutes": l.MinMinutes})
	}
	if err := f.Err(); err != nil {
		return Sandbox{}, err
	}
	var il ImageListing
	if in.ImageListingID != "" {
		var err error
		if il, err = s.imageListingFor(ctx, c, in.ImageListingID); err != nil {
			return Sandbox{}, err
		}
		if in.Template == "" {
			in.Template = tryItTemplate.Name
		}
	}
	pool, err := poolByID(s.db.WithContext(ctx), l.PoolID, false)
	if err != nil {
		return Sandbox{}, err
	}
	if il.Image != "" {
		if err := checkPoolImage(pool, il.Image); err != nil {
			return Sandbox{}, err
		}
	}
	var mounts string
	if in.MountListingID != "" {
		var err error
		if mounts, err = s.checkMount(ctx, c, pool, in.MountListingID); err != nil {
			return Sandbox{}, err
		}
	}
	if ok, err := s.canRun(ctx, pool); err != nil {
		return Sandbox{}, err
	} else if !ok {
		if why := s.unavailable[pool.Backend]; why != "" {
			return Sandbox{}, ErrBackendUnavailable.WithDetailMsg("problem.backend_unavailable.host", problem.Args{"Pool": pool.Name, "Cause": why})
		}
		if agentRun(pool.Backend) {
			return Sandbox{}, ErrBackendUnavailable.WithDetailMsg("problem.backend_unavailable.no_agent", problem.Args{"Pool": pool.Name})
		}
		return Sandbox{}, ErrBackendUnavailable.WithDetailMsg("problem.backend_unavailable.not_run", problem.Args{"Pool": pool.Name, "Backend": pool.Backend})
	}
	t, _ := templateNamed(in.Template)
	cpu, mem := in.CPUMillis, in.MemoryBytes
	if cpu == 0 {
		cpu = t.CPUMillisPerGPU * int64(in.GPUCount)
	}
	if mem == 0 {
		mem = t.MemoryBytesPerGPU * int64(in.GPUCount)
	}
	now := s.clock.Now()
	dur := time.Duration(in.DurationMinutes) * time.Minute
	sb := Sandbox{ID: newID("sb"), OrgID: c.OrgID, UserID: c.UserID, ListingID: l.ID, VendorOrgID: l.VendorOrgID,
		PoolID: pool.ID, Backend: pool.Backend, Devices: "[]", GPUModel: in.GPUModel, GPUCount: in.GPUCount,
		MIGProfile: in.MIGProfile, Template: in.Template, CPUMillis: cpu, MemoryBytes: mem,
		DurationMinutes: in.DurationMinutes, PricePerGPUHour: l.PricePerGPUHour, CreatedAt: stamp(now), ActivityAt: stamp(now)}
	if runsImages(pool.Backend) || pullsImages(pool.Backend) {
		sb.Image = t.Image
	}
	if il.Image != "" {
		// What the listing says now is what this sandbox runs, whatever a later version says.
		sb.Image, sb.ImageListingID, sb.Command, sb.Ports = il.Image, il.ID, il.Command, il.Ports
	}
	sb.MountListingID, sb.Mounts = in.MountListingID, mounts
	req := PlaceRequest{PoolID: pool.ID, GPUModel: in.GPUModel, GPUCount: in.GPUCount, MIGProfile: in.MIGProfile,
		CPUMillis: cpu, Memory: mem, OrgID: c.OrgID, From: now, To: now.Add(dur)}
	if !s.index().fits(req) {
		// Capacity may exist that this process has not seen yet (added elsewhere): look once, at most
		// once a second, before refusing.
		if reloaded, err := s.reloadIndex(ctx, time.Second); err != nil {
			return Sandbox{}, err
		} else if !reloaded || !s.index().fits(req) {
			return Sandbox{}, s.noCapacity(req, now)
		}
	}
	hold, err := s.holds.Hold(ctx, events.HoldRequestV1{Action: "place", SandboxID: sb.ID, OrganizationID: c.OrgID,
		ListingID: l.ID, VendorOrgID: l.VendorOrgID, PoolID: pool.ID, GPUModel: in.GPUModel, GPUCount: in.GPUCount,
		PricePerGPUHour: l.PricePerGPUHour, Seconds: int64(dur / time.Second)})
	if err != nil {
		if p, ok := problem.From(err); !ok || p.Status >= 500 {
			s.abandonHold(ctx, sb, now) // billing may have placed it: no reply is not a refusal
		}
		return Sandbox{}, holdError(err)
	}
	sb.HoldID = hold.HoldID
	// In flight from here until provisioning takes over: reconciliation and the supervisor leave it alone.
	s.claimInflight(sb.ID)
	handedOver := false
	defer func() {
		if !handedOver {
			s.doneInflight(sb.ID)
		}
	}()
	if err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		cp := sb
		return s.transition(tx, &cp, StateRequested, "", now)
	}); err != nil {
		s.abandonHold(ctx, sb, now)
		return Sandbox{}, fmt.Errorf("record sandbox: %w", err)
	}
	accepted := sb
	accepted.State = StateRequested
	s.outbox.Kick()
	if err := s.schedule(ctx, sb.ID, req); err != nil {
		return Sandbox{}, err
	}
	s.doneInflight(sb.ID)
	handedOver = true
	s.startProvision(sb.ID)
	return accepted, nil
}

// abandonHold announces a sandbox that will never be recorded as failed (no usage), so that billing releases a
// hold it placed for it: a hold whose reply was lost, or one placed before recording the sandbox failed.
// Billing remembers the end, so a hold request still in flight reserves nothing either.
func (s *Service) abandonHold(ctx context.Context, sb Sandbox, at time.Time) {
	ev := events.SandboxChangedV1{SandboxID: sb.ID, OrganizationID: sb.OrgID, UserID: sb.UserID, ListingID: sb.ListingID,
		VendorOrgID: sb.VendorOrgID, PoolID: sb.PoolID, GPUModel: sb.GPUModel, GPUCount: sb.GPUCount, State: StateFailed,
		Reason: ReasonStartFailed, At: at}
	if err := sqldb.Tx(context.WithoutCancel(ctx), s.db, func(tx *gorm.DB) error {
		// Not "<id>-failed": should the sandbox's record have committed after all, its own end event keeps that ID.
		return eventbusWrite(tx, s, events.SandboxSubject(StateFailed), sb.ID+"-abandoned", ev)
	}); err != nil {
		s.log.Error("announce abandoned launch: a hold billing placed for it is not released", "sandbox", sb.ID, "err", err)
		return
	}
	s.outbox.Kick()
}

// schedule claims devices for a requested sandbox: in memory first (fast, best-fit), then in the database
// in the same transaction as the move to scheduled. A duplicate claim (another process took a device)
// re-reads that pool's claims and tries again. No capacity fails the sandbox (billing releases the hold on
// the failed event) and answers 409 no_capacity.
func (s *Service) schedule(ctx context.Context, id string, req PlaceRequest) error {
	for attempt := 0; ; attempt++ {
		x := s.index()
		p, ok := x.place(id, req)
		if !ok {
			now := s.clock.Now()
			_, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
				return s.transition(tx, sb, StateFailed, ReasonNoCapacity, now)
			})
			if err != nil {
				return err
			}
			return s.noCapacity(req, now)
		}
		_, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
			devs, err := devicesByID(tx, p.Devices)
			if err != nil {
				return err
			}
			now := stamp(s.clock.Now())
			claims := make([]DeviceClaim, len(devs))
			view := make([]SandboxDevice, len(devs))
			for i, d := range devs {
				claims[i] = DeviceClaim{DeviceID: d.ID, SandboxID: sb.ID, NodeID: d.NodeID, PoolID: d.PoolID,
					GPUModel: d.GPUModel, ExpiresAt: stamp(req.To), CreatedAt: now}
				view[i] = SandboxDevice{ID: d.ID, Index: d.Idx, UUID: d.UUID, Model: d.GPUModel, Declared: d.Declared}
			}
			if err := createClaims(tx, claims); err != nil {
				return err
			}
			b, _ := json.Marshal(view)
			node, err := anyNode(tx, p.NodeID)
			if err != nil {
				return err
			}
			sb.NodeID, sb.AgentID, sb.Devices, sb.ExpiresAt = p.NodeID, node.AgentID, string(b), stampPtr(req.To)
			return s.transition(tx, sb, StateScheduled, "", now)
		})
		if err == nil {
			return nil
		}
		x.release(id)
		if !sqldb.IsDuplicate(err) || attempt >= 16 {
			if ferr := s.fail(ctx, id, ReasonStartFailed, "scheduling failed"); ferr != nil {
				s.log.Error("fail unscheduled sandbox", "sandbox", id, "err", ferr)
			}
			return fmt.Errorf("schedule %s: %w", id, err)
		}
		if err := s.syncClaims(ctx, req.PoolID); err != nil {
			return err
		}
	}
}

// syncClaims reloads a pool's claims into the index (after another process claimed devices).
func (s *Service) syncClaims(ctx context.Context, poolID string) error {
	claims, err := poolClaims(s.db.WithContext(ctx), poolID)
	if err != nil {
		return err
	}
	by := map[string][]string{}
	exp := map[string]time.Time{}
	for _, c := range claims {
		by[c.SandboxID] = append(by[c.SandboxID], c.DeviceID)
		exp[c.SandboxID] = c.ExpiresAt
	}
	x := s.index()
	for sb, ids := range by {
		x.claim(sb, ids, exp[sb], 0, 0)
	}
	return nil
}

func (s *Service) noCapacity(req PlaceRequest, now time.Time) error {
	p := ErrNoCapacity.WithDetailMsg("problem.no_capacity.no_node", problem.Args{"Count": req.GPUCount, "Model": req.GPUModel})
	if cpu, mem, ok := s.index().largest(req); ok && (req.CPUMillis > cpu || req.Memory > mem) {
		// No wait helps: the template's CPU and memory per GPU ask more than the pool's nodes have.
		return p.WithDetailMsg("problem.no_capacity.too_small", problem.Args{"CPU": cpuText(req.CPUMillis), "Memory": i18n.Size(req.Memory),
			"GPUs": req.GPUCount, "Model": req.GPUModel, "NodeCPU": cpuText(cpu), "NodeMemory": i18n.Size(mem)})
	}
	if t, ok := s.index().nextFree(req, now); ok && t.After(stamp(now)) {
		p = p.WithExtra("next_free_at", t.Format(time.RFC3339))
	} else if !ok {
		p = p.WithDetailMsg("problem.no_capacity.too_few", problem.Args{"GPUs": req.GPUCount, "Model": req.GPUModel})
	}
	return p
}

func (s *Service) claimInflight(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[id] {
		return false
	}
	s.inflight[id] = true
	return true
}

func (s *Service) isInflight(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[id]
}

func (s *Service) doneInflight(id string) {
	s.mu.Lock()
	delete(s.inflight, id)
	s.mu.Unlock()
}

func (s *Service) startProvision(id string) {
	if !s.claimInflight(id) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.doneInflight(id)
		if err := s.provision(id); err != nil {
			s.log.Error("provision sandbox", "sandbox", id, "err", err)
		}
	}()
}

// spec is what the backend starts for sb: the template's command and environment (the testbed's own
// variables win; a listing's try-it image brings its own command and ports), its devices, limits, booked
// duration and the pool's settings. The image's root filesystem and environment are added by withImage where the backend runs
// images.
func (s *Service) spec(sb Sandbox, pool Pool) backend.Spec {
	t := sb.template()
	env := maps.Clone(t.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, map[string]string{"TAMARACK_SANDBOX_ID": sb.ID, "TAMARACK_GPU_MODEL": sb.GPUModel,
		"TAMARACK_PROXY_BASE": fmt.Sprintf("/api/v1/testbed/sandboxes/%s/proxy/%d/", sb.ID, firstPort(t.Ports))})
	cmd := slices.Clone(t.Command)
	if len(cmd) == 0 && !runsImages(sb.Backend) && !pullsImages(sb.Backend) {
		// A try-it image's own command: only a backend that gets the image knows it (withImage, here or on
		// the agent). The simulator runs nothing and shows this; Kubernetes will be handed the reference.
		cmd = []string{"<entrypoint of " + sb.Image + ">"}
	}
	var devs []backend.Device
	for _, d := range sb.DeviceList() {
		bd := backend.Device{Index: d.Index, UUID: d.UUID, Model: d.Model}
		if !d.Declared {
			bd.Paths = []string{fmt.Sprintf("/dev/nvidia%d", d.Index)}
		}
		devs = append(devs, bd)
	}
	return backend.Spec{SandboxID: sb.ID, Command: cmd, Env: env, Devices: devs, Network: t.Network,
		Ports: t.Ports, Limits: backend.Limits{MemoryBytes: sb.MemoryBytes, CPUMillis: sb.CPUMillis, Pids: t.Pids, LogBytes: t.LogBytes},
		Duration: time.Duration(sb.DurationMinutes) * time.Minute, Settings: pool.SettingsMap()}
}

func firstPort(p []int) int {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// provision moves a scheduled sandbox to provisioning, gets its image's root filesystem where its backend
// runs images (pullImage: no transaction or lock held meanwhile, a stop cancels it), starts it on its
// backend and records the backend-observed start (running). A failed pull or start fails the sandbox and
// frees its devices; a stop during the pull ends it as stopped without starting anything.
func (s *Service) provision(id string) error {
	pullCtx, untrack := s.trackPull(id)
	defer untrack()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StartTimeout)
	defer cancel()
	sb, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
		if sb.State != StateScheduled {
			return errSkip
		}
		return s.transition(tx, sb, StateProvisioning, "", s.clock.Now())
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	if err != nil {
		return err
	}
	pool, err := poolByID(s.db.WithContext(ctx), sb.PoolID, false)
	if err != nil {
		return err
	}
	b := s.backendOf(sb)
	if b == nil {
		return s.fail(ctx, id, ReasonStartFailed, "backend "+sb.Backend+" not available")
	}
	spec := s.spec(sb, pool)
	// The longest it may run is what its listing lets the booking be extended to: a backend's own time
	// limit (Slurm's, which its users cannot raise later) must not end an extended sandbox early.
	if l, err := listingByID(s.db.WithContext(ctx), sb.ListingID); err == nil && time.Duration(l.MaxMinutes)*time.Minute > spec.Duration {
		spec.Duration = time.Duration(l.MaxMinutes) * time.Minute
	}
	if c, ok := b.(*agent.Client); ok {
		cancel()
		return s.provisionAgent(pullCtx, sb, pool, c, spec)
	}
	if spec, err = s.mountInProcess(ctx, sb, spec); err != nil {
		return s.fail(ctx, id, ReasonStartFailed, "artifacts of "+sb.MountListingID+": "+err.Error())
	}
	if runsImages(sb.Backend) {
		cancel() // the start gets its own StartTimeout once the image is there
		root, err := s.pullImage(pullCtx, id, sb.Image, pool.SettingsMap())
		ctx, cancel = context.WithTimeout(context.Background(), s.opts.StartTimeout)
		defer cancel()
		if errors.Is(err, errShutdown) {
			return nil // left provisioning: the next start's reconciliation ends it
		}
		if err != nil && !errors.Is(err, errStopRequested) {
			cur, gerr := anySandbox(s.db.WithContext(ctx), id)
			if gerr != nil {
				return gerr
			}
			if cur.State == StateProvisioning { // not stopped meanwhile: the image is why it never ran
				reason, msg := imageFailure(sb.Image, err)
				return s.fail(ctx, id, reason, msg)
			}
		}
		ok := false
		if err == nil {
			ok, err = s.setProgress(ctx, id, Progress{Phase: PhaseStarting, Digest: root.Digest}, map[string]any{"image_digest": root.Digest})
			if err != nil {
				return err
			}
		}
		if !ok { // stopped (or ended) while the image was pulled: nothing was started
			return s.stopBackend(ctx, id)
		}
		spec = withImage(spec, root)
	}
	st, err := b.Start(ctx, spec)
	if errors.Is(err, backend.ErrExists) {
		st, err = b.Inspect(ctx, id)
	}
	if err != nil {
		s.releaseArtifacts(id)
		return s.fail(ctx, id, ReasonStartFailed, err.Error())
	}
	return s.started(ctx, id, st)
}

var errSkip = errors.New("skip")

// provisionAgent starts a provisioning sandbox through the agent that runs it: the agent gets the image on its
// own host (reporting progress meanwhile) and starts it. A stop meanwhile cancels the start on the agent (the
// stop goes to the agent, which cancels the start in progress); ctx, cancelled by that stop, only stops the
// waiting here.
func (s *Service) provisionAgent(pullCtx context.Context, sb Sandbox, pool Pool, c *agent.Client, spec backend.Spec) error {
	img := ""
	if runsImages(sb.Backend) || pullsImages(sb.Backend) {
		img = sb.Image
	}
	// An enrolled agent has no list of the platform's built-in images: it gets the pinned reference in the
	// platform's registry (the embedded agent shares this process's list).
	if r, ok := s.images.(interface{ Ref(string) (string, error) }); ok && img != "" && sb.AgentID != "" {
		if ref, err := r.Ref(img); err == nil {
			img = ref
		}
	}
	ctx, cancel := context.WithTimeout(pullCtx, s.opts.PullTimeout+s.opts.StartTimeout)
	mounts, err := s.agentMounts(ctx, sb)
	if err != nil {
		cancel()
		return s.fail(context.WithoutCancel(pullCtx), sb.ID, ReasonStartFailed, "artifacts of "+sb.MountListingID+": "+err.Error())
	}
	st, digest, err := c.StartMounted(ctx, spec, img, pool.SettingsMap(), mounts)
	cancel()
	bg, cancel := context.WithTimeout(context.Background(), s.opts.StartTimeout)
	defer cancel()
	if errors.Is(context.Cause(pullCtx), errShutdown) {
		return nil // left provisioning: the next start's reconciliation asks the agent
	}
	if err != nil {
		cur, gerr := anySandbox(s.db.WithContext(bg), sb.ID)
		if gerr != nil {
			return gerr
		}
		switch {
		case cur.State != StateProvisioning || errors.Is(err, agent.ErrStartCancelled):
			return s.stopBackend(bg, sb.ID) // stopped meanwhile
		case img != "" && agent.IsImageError(err):
			reason, msg := imageFailure(img, err)
			return s.fail(bg, sb.ID, reason, msg)
		case errors.Is(err, backend.ErrExists):
			if st, err = c.Inspect(bg, sb.ID); err == nil {
				return s.started(bg, sb.ID, st)
			}
		}
		return s.fail(bg, sb.ID, ReasonStartFailed, err.Error())
	}
	if digest != "" {
		if err := setImageDigest(s.db.WithContext(bg), sb.ID, digest); err != nil {
			return err
		}
	}
	return s.started(bg, sb.ID, st)
}

// started records a backend's observation of a sandbox that was provisioning (or stopping before it ran).
func (s *Service) started(ctx context.Context, id string, st backend.Status) error {
	if st.Ended() && st.StartedAt.IsZero() { // it never ran (image pull failed, start interrupted)
		msg := st.Message
		if msg == "" {
			msg = "the backend reports it never ran (" + st.Reason + ")"
		}
		return s.fail(ctx, id, ReasonStartFailed, msg)
	}
	sb, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
		if sb.Terminal() {
			return nil // ended meanwhile (failed, or stopped before the backend answered): stop what started
		}
		if st.State == backend.StatePending || st.StartedAt.IsZero() {
			sb.Message = st.Message
			return saveSandbox(tx, sb) // queued by the backend: the supervisor checks again
		}
		if sb.StartedAt == nil {
			start := stamp(st.StartedAt)
			sb.StartedAt, sb.UsageEndAt, sb.ActivityAt = stampPtr(start), stampPtr(start), start
			sb.ExpiresAt = stampPtr(start.Add(time.Duration(sb.DurationMinutes) * time.Minute))
			if err := setClaimsExpiry(tx, sb.ID, *sb.ExpiresAt); err != nil {
				return err
			}
		}
		switch sb.State {
		case StateProvisioning:
			s.metrics.toRunning.Observe(sb.StartedAt.Sub(sb.CreatedAt).Seconds())
			sb.Progress = ""
			return s.transition(tx, sb, StateRunning, "", s.clock.Now())
		default:
			return saveSandbox(tx, sb) // stopping (asked while starting) or already ended
		}
	})
	if err != nil {
		return err
	}
	if sb.Terminal() {
		if b := s.backendOf(sb); b != nil && !st.Ended() {
			if _, err := b.Stop(ctx, id, s.opts.StopGrace); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("stop sandbox that ended while starting: %w", err)
			}
		}
		return nil
	}
	if sb.ExpiresAt != nil {
		s.index().extend(id, *sb.ExpiresAt)
	}
	if st.Ended() && sb.State == StateRunning {
		return s.finish(ctx, id, st)
	}
	if sb.State == StateStopping {
		return s.stopBackend(ctx, id)
	}
	return nil
}

// fail moves a sandbox to failed with a reason.
func (s *Service) fail(ctx context.Context, id, reason, msg string) error {
	_, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
		if sb.Terminal() {
			return nil
		}
		sb.Message = msg
		return s.transition(tx, sb, StateFailed, reason, s.clock.Now())
	})
	return err
}

// stopReason maps a backend's end reason to the sandbox's stop reason.
func stopReason(st backend.Status) string {
	switch st.Reason {
	case backend.ReasonLost:
		return ReasonNodeLost
	case backend.ReasonOOMKilled:
		return ReasonOOMKilled
	case backend.ReasonKilled:
		return ReasonKilled
	case backend.ReasonFailed:
		return ReasonStartFailed
	}
	return ReasonExited
}

// finish ends a sandbox the backend reports ended: the final usage sample up to the backend-observed end,
// then running → stopping → stopped (or stopping → stopped), all in one transaction.
func (s *Service) finish(ctx context.Context, id string, st backend.Status) error {
	if st.Ended() {
		defer s.releaseArtifacts(id) // nothing of it runs: its artifacts may go from this process's cache
	}
	_, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
		if sb.Terminal() {
			return nil
		}
		now := s.clock.Now()
		end := orZero(sb.UsageEndAt)
		if !st.EndedAt.IsZero() {
			end = st.EndedAt
		}
		if sb.StartedAt == nil && !st.StartedAt.IsZero() {
			sb.StartedAt, sb.UsageEndAt = stampPtr(st.StartedAt), stampPtr(st.StartedAt)
		}
		if sb.StartedAt != nil && end.Before(*sb.StartedAt) {
			end = *sb.StartedAt
		}
		if err := s.meter(tx, sb, end, true); err != nil {
			return err
		}
		if sb.StartedAt != nil {
			sb.EndedAt = stampPtr(*sb.UsageEndAt)
		} else {
			sb.EndedAt = stampPtr(now)
		}
		// A sandbox the platform stopped exits from the stop's own signal (143 for TERM, 137 after the grace):
		// its stop reason says why, and "exit code 143" would read as a failure.
		if st.ExitCode != 0 && st.ExitCode != -1 && sb.Message == "" && st.Reason != backend.ReasonStopped {
			sb.Message = fmt.Sprintf("exit code %d", st.ExitCode)
		}
		if st.Message != "" && sb.Message == "" {
			sb.Message = st.Message
		}
		reason := stopReason(st)
		switch sb.State {
		case StateRequested, StateScheduled, StateProvisioning:
			if sb.StartedAt == nil {
				return s.transition(tx, sb, StateFailed, reason, now)
			}
			if sb.State == StateProvisioning {
				if err := s.transition(tx, sb, StateRunning, "", now); err != nil {
					return err
				}
			}
		}
		if sb.State == StateRunning {
			if err := s.transition(tx, sb, StateStopping, reason, now); err != nil {
				return err
			}
		}
		return s.transition(tx, sb, StateStopped, reason, now)
	})
	return err
}

// Stop asks for a sandbox to stop (by its organisation, or staff with reason staff).
func (s *Service) Stop(ctx context.Context, c web.Principal, id string) (Sandbox, error) {
	if _, err := s.Get(ctx, c, id); err != nil {
		return Sandbox{}, err
	}
	sb, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
		if sb.Terminal() {
			return fmt.Errorf("stop %s: %w", id, ErrSandboxEnded)
		}
		if sb.State == StateStopping {
			return nil
		}
		reason := ReasonUser
		if c.Staff && c.OrgID != sb.OrgID {
			reason = ReasonStaff
			if err := s.audit(tx, c, sb.OrgID, "sandbox.stop", sb.ID, "organisation "+sb.OrgID); err != nil {
				return err
			}
		}
		return s.transition(tx, sb, StateStopping, reason, s.clock.Now())
	})
	if err != nil {
		return sb, err
	}
	s.startStop(id)
	return sb, nil
}

func (s *Service) startStop(id string) {
	if !s.claimInflight(id) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.doneInflight(id)
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.StopGrace+time.Minute)
		defer cancel()
		if err := s.stopBackend(ctx, id); err != nil {
			s.log.Error("stop sandbox", "sandbox", id, "err", err)
		}
	}()
}

// stopBackend ends a stopping sandbox on its backend and records the end with its final usage.
func (s *Service) stopBackend(ctx context.Context, id string) error {
	sb, err := anySandbox(s.db.WithContext(ctx), id)
	if err != nil {
		return err
	}
	if sb.State != StateStopping {
		return nil
	}
	b := s.backendOf(sb)
	if b == nil {
		return s.finish(ctx, id, backend.Status{State: backend.StateExited, Reason: backend.ReasonStopped})
	}
	st, err := b.Stop(ctx, id, s.opts.StopGrace)
	if errors.Is(err, backend.ErrNotFound) {
		// Never started (stopped while requested/scheduled) or already removed: end at the last metered time.
		st = backend.Status{State: backend.StateExited, Reason: backend.ReasonStopped}
	} else if err != nil {
		return err
	}
	return s.finish(ctx, id, st)
}

// Extend adds minutes to a running (or starting) sandbox's time box, within the listing's maximum, after
// billing extends the hold.
func (s *Service) Extend(ctx context.Context, c web.Principal, id string, minutes int) (Sandbox, error) {
	if minutes == 0 {
		return Sandbox{}, problem.Fields{{Field: "minutes", Code: "required", Message: "1 to 1440 minutes"}}.Err()
	}
	if minutes < 1 || minutes > 24*60 {
		return Sandbox{}, problem.Fields{{Field: "minutes", Code: "invalid", Message: "1 to 1440 minutes"}}.Err()
	}
	for attempt := 0; ; attempt++ {
		sb, err := s.extend(ctx, c, id, minutes)
		// Another extend changed the booking between the hold and the update: the hold asked for was named by
		// the old booking (and may have been a retry of the other one), so ask again for the new booking.
		if !errors.Is(err, errBookingChanged) || attempt >= 8 {
			return sb, err
		}
	}
}

var errBookingChanged = errors.New("booking changed meanwhile")

func (s *Service) extend(ctx context.Context, c web.Principal, id string, minutes int) (Sandbox, error) {
	sb, err := s.getOwn(ctx, c, id)
	if err != nil {
		return Sandbox{}, err
	}
	if sb.Terminal() || sb.State == StateStopping {
		return Sandbox{}, ErrSandboxEnded
	}
	max := 24 * 60
	if l, err := listingByID(s.db.WithContext(ctx), sb.ListingID); err == nil {
		max = l.MaxMinutes
	}
	if sb.DurationMinutes+minutes > max {
		return Sandbox{}, problem.Fields{{Field: "minutes", Code: "too_long",
			Message: fmt.Sprintf("the listing allows at most %d minutes in total; %d already booked", max, sb.DurationMinutes)}}.Err()
	}
	if sb.ExpiresAt != nil {
		// The added time must not take devices that reservations need after the current expiry.
		free := s.index().minFree(sb.PoolID, sb.GPUModel, *sb.ExpiresAt, sb.ExpiresAt.Add(time.Duration(minutes)*time.Minute))
		if free < sb.GPUCount {
			return Sandbox{}, ErrNoCapacity.WithDetailMsg("problem.no_capacity.reserved_after", problem.Args{"Minutes": minutes})
		}
	}
	if _, err := s.holds.Hold(ctx, events.HoldRequestV1{Action: "extend", SandboxID: sb.ID, OrganizationID: sb.OrgID,
		ListingID: sb.ListingID, VendorOrgID: sb.VendorOrgID, PoolID: sb.PoolID, GPUModel: sb.GPUModel,
		GPUCount: sb.GPUCount, PricePerGPUHour: sb.PricePerGPUHour, Seconds: int64(minutes) * 60,
		// Named by the booking it extends and the minutes it adds: a retry after a lost reply or a failed update
		// below reserves once, and a retry asking for another length reserves that length.
		RequestID: fmt.Sprintf("%s-extend-%d-%d", sb.ID, sb.DurationMinutes, minutes)}); err != nil {
		return Sandbox{}, holdError(err)
	}
	booked := sb.DurationMinutes
	out, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
		if sb.Terminal() || sb.State == StateStopping {
			return ErrSandboxEnded
		}
		if sb.DurationMinutes != booked {
			return errBookingChanged
		}
		sb.DurationMinutes += minutes
		sb.WalletStopAt = nil // billing reserved the extension (and clears the hold's exhaustion): no wallet stop
		if sb.ExpiresAt != nil {
			sb.ExpiresAt = stampPtr(sb.ExpiresAt.Add(time.Duration(minutes) * time.Minute))
			if err := setClaimsExpiry(tx, sb.ID, *sb.ExpiresAt); err != nil {
				return err
			}
		}
		sb.UpdatedAt = stamp(s.clock.Now())
		return saveSandbox(tx, sb)
	})
	if err != nil {
		return Sandbox{}, err
	}
	if out.ExpiresAt != nil {
		s.index().extend(id, *out.ExpiresAt)
	}
	return out, nil
}

// Get returns a sandbox of the caller's organisation (staff see all); others answer not found.
func (s *Service) Get(ctx context.Context, c web.Principal, id string) (Sandbox, error) {
	if c.Staff {
		return anySandbox(s.db.WithContext(ctx), id) // staff see every organisation's
	}
	return sandboxOfOrg(s.db.WithContext(ctx), c.OrgID, id)
}

// getOwn returns a sandbox of the caller's own organisation: getting into it (shell, output, ports, sandbox
// tokens) or booking more of its time is the organisation's alone, staff included; others answer not found.
func (s *Service) getOwn(ctx context.Context, c web.Principal, id string) (Sandbox, error) {
	return sandboxOfOrg(s.db.WithContext(ctx), c.OrgID, id)
}

// ListSandboxes lists the caller's organisation's sandboxes, newest first, with keyset pagination.
func (s *Service) ListSandboxes(ctx context.Context, c web.Principal, state string, limit int, after *SandboxCursor) ([]Sandbox, error) {
	return sandboxesOfOrg(s.db.WithContext(ctx), c.OrgID, state, limit, after)
}

// SandboxCursor is the keyset of the sandbox list. CreatedMS is created_at in Unix milliseconds: the cursor
// is opaque to clients but they hold it across deploys, so it keeps its form (created_at is whole
// milliseconds, so it is exact).
type SandboxCursor struct {
	CreatedMS int64  `json:"c"`
	ID        string `json:"i"`
}

// Touch records activity on a sandbox (terminal input, proxied request, log stream), for idle detection.
// Writes are throttled to one per 10 seconds per sandbox.
func (s *Service) Touch(ctx context.Context, id string) {
	now := s.clock.Now()
	s.mu.Lock()
	if last, ok := s.touched[id]; ok && now.Sub(last) < 10*time.Second {
		s.mu.Unlock()
		return
	}
	s.touched[id] = now
	s.mu.Unlock()
	_ = touchSandbox(s.db.WithContext(ctx), id, now)
}

// WalletExhausted marks the organisation's live sandboxes to stop after the grace period. Idempotent by
// event ID (recorded in the same transaction).
func (s *Service) WalletExhausted(ctx context.Context, eventID string, ev events.WalletExhaustedV1) error {
	stopAt := ev.At.Add(s.opts.WalletGrace)
	return sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if fresh, err := processed.Mark(tx, "", eventID, s.clock.Now()); err != nil || !fresh {
			return err
		}
		return scheduleWalletStop(tx, ev.OrganizationID, stopAt)
	})
}
