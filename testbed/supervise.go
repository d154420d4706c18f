package testbed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
)

// Tick is one pass of the supervisor: it looks at every live sandbox and acts on what it finds (backend
// exits, node loss, expiry, idleness, exhausted wallets, pending starts and stops), publishes due usage
// samples, advances reservations, heartbeats this process's own nodes and marks silent remote nodes down.
// Run calls it every SuperviseInterval; tests call it after moving a manual clock.
func (s *Service) Tick(ctx context.Context) error {
	now := s.clock.Now()
	var errs []error
	if err := s.tickNodes(ctx, now); err != nil {
		errs = append(errs, err)
	}
	// Down nodes, whose sandboxes are lost or unreachable. Not those an agent that still answers reports down
	// itself (a Slurm node down): it still says which of their sandboxes run, and reports their ends.
	down, err := lostNodeIDs(s.db.WithContext(ctx), now.Add(-s.opts.NodeTimeout))
	if err != nil {
		return err
	}
	isDown := map[string]bool{}
	for _, id := range down {
		isDown[id] = true
	}
	live, err := liveSandboxes(s.db.WithContext(ctx))
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, sb := range live {
		if err := s.superviseOne(ctx, sb, now, isDown[sb.NodeID]); err != nil {
			errs = append(errs, fmt.Errorf("sandbox %s: %w", sb.ID, err))
		}
		if sb.State == StateRunning && sb.UnreachableAt == nil && !isDown[sb.NodeID] {
			running[sb.ID] = true
			if err := s.sampleGPUs(ctx, sb, now); err != nil {
				errs = append(errs, fmt.Errorf("sandbox %s: %w", sb.ID, err))
			}
		}
	}
	s.mu.Lock()
	for id := range s.gpuSampled {
		if !running[id] {
			delete(s.gpuSampled, id)
		}
	}
	s.mu.Unlock()
	if err := s.tickReservations(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := s.collect(ctx, now); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Service) superviseOne(ctx context.Context, sb Sandbox, now time.Time, nodeDown bool) error {
	now = stamp(now)
	if _, viaAgent := s.targetOf(sb); viaAgent && nodeDown {
		return s.superviseUnreachable(ctx, sb, now)
	}
	switch {
	case due(now, sb.WalletStopAt) && sb.State != StateStopping:
		_, err := s.requestStopSync(ctx, sb.ID, ReasonWalletExhausted)
		return err
	case nodeDown && sb.State != StateStopping:
		_, err := s.requestStopSync(ctx, sb.ID, ReasonNodeLost)
		return err
	}
	switch sb.State {
	case StateRequested:
		if now.Sub(sb.CreatedAt) > 5*time.Minute && !s.isInflight(sb.ID) { // the process died between recording and placing
			return s.fail(ctx, sb.ID, ReasonInterrupted, "")
		}
	case StateScheduled:
		s.startProvision(sb.ID)
	case StateStopping:
		if s.claimInflight(sb.ID) {
			defer s.doneInflight(sb.ID)
			return s.stopBackend(ctx, sb.ID)
		}
	case StateProvisioning:
		// A start in flight in this process finishes by itself. Otherwise (a backend that queued it, or a
		// start whose result could not be recorded) ask the backend what became of it.
		if !s.claimInflight(sb.ID) {
			return nil
		}
		defer s.doneInflight(sb.ID)
		b := s.backendOf(sb)
		if b == nil {
			return nil
		}
		st, err := b.Inspect(ctx, sb.ID)
		switch {
		case err == nil && st.State != backend.StatePending && st.State != backend.StateUnknown:
			return s.started(ctx, sb.ID, st)
		case errors.Is(err, backend.ErrNotFound) && now.Sub(sb.UpdatedAt) > s.opts.StartTimeout:
			return s.fail(ctx, sb.ID, ReasonInterrupted, "the start never reached the backend")
		}
	case StateRunning:
		b := s.backendOf(sb)
		if b == nil {
			return nil
		}
		ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
		st, err := b.Inspect(ictx, sb.ID)
		cancel()
		if errors.Is(err, backend.ErrNotFound) {
			return s.finish(ctx, sb.ID, backend.Status{State: backend.StateExited, Reason: backend.ReasonLost})
		}
		if errors.Is(err, agent.ErrUnreachable) {
			return s.markUnreachable(ctx, sb, now) // not metered while nobody can tell it runs
		}
		if err != nil {
			return err
		}
		if st.Ended() {
			return s.finish(ctx, sb.ID, st)
		}
		if st.State == backend.StateUnknown {
			return nil // cannot tell now: do not meter time we cannot show
		}
		t := sb.template()
		switch {
		case due(now, sb.ExpiresAt):
			_, err := s.requestStopSync(ctx, sb.ID, ReasonExpired)
			return err
		case t.IdleMinutes > 0 && now.Sub(sb.ActivityAt) >= time.Duration(t.IdleMinutes)*time.Minute:
			_, err := s.requestStopSync(ctx, sb.ID, ReasonIdle)
			return err
		}
		if now.Sub(orZero(sb.UsageEndAt)) >= s.opts.UsageInterval {
			_, err := s.update(ctx, sb.ID, func(tx *gorm.DB, cur *Sandbox) error {
				if cur.State != StateRunning || cur.UsageSeq != sb.UsageSeq {
					return nil // changed meanwhile
				}
				return s.meter(tx, cur, now, false)
			})
			return err
		}
	}
	return nil
}

// inspectTimeout bounds the supervisor's question to a backend about one sandbox, so that one slow agent
// does not hold up the tick for everyone.
const inspectTimeout = 3 * time.Second

// superviseUnreachable handles a sandbox whose agent's node is down: it may well still run, so it is not
// stopped for that (the agent's return reconciles), nor metered (nothing shows it runs). The platform's own
// decisions still hold: an expired booking or an exhausted wallet asks for a stop, carried out when the agent
// answers again. One whose booking ended longer ago than the node timeout is ended at its last metered
// instant; should its agent come back with it still running, reconciliation stops it.
func (s *Service) superviseUnreachable(ctx context.Context, sb Sandbox, now time.Time) error {
	if err := s.markUnreachable(ctx, sb, now); err != nil {
		return err
	}
	expired := due(now, sb.ExpiresAt)
	walletDry := due(now, sb.WalletStopAt)
	switch {
	case sb.State == StateRunning && (expired || walletDry):
		reason := ReasonExpired
		if walletDry {
			reason = ReasonWalletExhausted
		}
		_, err := s.update(ctx, sb.ID, func(tx *gorm.DB, cur *Sandbox) error {
			if cur.State != StateRunning {
				return nil
			}
			return s.transition(tx, cur, StateStopping, reason, s.clock.Now())
		})
		return err
	case (sb.State == StateStopping || sb.State == StateRunning) && sb.ExpiresAt != nil &&
		!now.Before(sb.ExpiresAt.Add(s.opts.NodeTimeout)):
		s.log.Warn("sandbox's agent unreachable past its booking: ended at its last metered time", "sandbox", sb.ID)
		return s.finish(ctx, sb.ID, backend.Status{State: backend.StateExited, Reason: backend.ReasonLost})
	}
	return nil
}

// markUnreachable records that sb's agent does not answer, once.
func (s *Service) markUnreachable(ctx context.Context, sb Sandbox, now time.Time) error {
	if sb.UnreachableAt != nil {
		return nil
	}
	s.log.Warn("sandbox unreachable: its agent does not answer; not metered until it does", "sandbox", sb.ID, "agent", sb.AgentID)
	return markUnreachable(s.db.WithContext(ctx), sb.ID, now)
}

// due reports whether an optional deadline is set and now is at or past it.
func due(now time.Time, deadline *time.Time) bool {
	return deadline != nil && !now.Before(*deadline)
}

// requestStopSync is requestStop for the supervisor: the backend stop runs in the same call, so a tick
// leaves no work behind (tests on the simulator see the end state right after Tick).
func (s *Service) requestStopSync(ctx context.Context, id, reason string) (Sandbox, error) {
	sb, err := s.update(ctx, id, func(tx *gorm.DB, sb *Sandbox) error {
		if sb.Terminal() || sb.State == StateStopping {
			return nil
		}
		return s.transition(tx, sb, StateStopping, reason, s.clock.Now())
	})
	if err != nil {
		return sb, err
	}
	if !s.claimInflight(id) {
		return sb, nil
	}
	defer s.doneInflight(id)
	return sb, s.stopBackend(ctx, id)
}

// tickNodes heartbeats nodes of pools run by this process's embedded backends (local, simulator: the
// node is this host or this process) and marks other nodes down when their heartbeat is older than
// NodeTimeout.
func (s *Service) tickNodes(ctx context.Context, now time.Time) error {
	var embedded []string
	for k := range s.backends {
		if k == "local" || k == "simulator" {
			embedded = append(embedded, k)
		}
	}
	db := s.db.WithContext(ctx)
	var pools []string
	if len(embedded) > 0 {
		var err error
		if pools, err = poolIDsOfBackends(db, embedded); err != nil {
			return err
		}
	}
	if len(pools) > 0 {
		if err := heartbeatPoolNodes(db, pools, now); err != nil {
			return err
		}
	}
	stale, err := staleNodeIDs(db, pools, now.Add(-s.opts.NodeTimeout))
	if err != nil {
		return err
	}
	if len(stale) == 0 {
		return nil
	}
	if err := setNodesDown(db, stale); err != nil {
		return err
	}
	for _, id := range stale {
		s.log.Warn("node missed its heartbeats: down", "node", id)
		s.index().setHealth(id, NodeDown)
	}
	return nil
}

// collect removes ended sandboxes from their backend once their logs' retention has passed, and prunes the
// GPU samples of those ended longer than GPUSampleRetention ago.
func (s *Service) collect(ctx context.Context, now time.Time) error {
	if err := s.pruneGPUSamples(ctx, now); err != nil {
		return err
	}
	old, err := removableSandboxes(s.db.WithContext(ctx), now.Add(-s.opts.LogRetention))
	if err != nil {
		return err
	}
	for _, sb := range old {
		if b := s.backendOf(sb); b != nil {
			if err := b.Remove(ctx, sb.ID); err != nil && !errors.Is(err, backend.ErrNotFound) {
				s.log.Warn("remove ended sandbox", "sandbox", sb.ID, "err", err)
				continue
			}
		}
		s.releaseArtifacts(sb.ID)
		if err := markBackendRemoved(s.db.WithContext(ctx), sb.ID); err != nil {
			return err
		}
	}
	return nil
}

// Reconcile compares the records with what each backend holds and repairs both, at start (before any new
// work): a sandbox still running on its backend stays running (it survives a restart of tamarack serve, and
// its metering continues from the persisted cursor, so no second is lost or counted twice); one that ended
// while the testbed was down is ended at the backend-observed end with its final usage; a record the
// backend no longer knows is ended at its last metered time (nothing more can be shown); a backend sandbox
// with no live record (an orphan) is stopped and removed.
func (s *Service) Reconcile(ctx context.Context) error {
	var errs []error
	for kind, b := range s.backends {
		errs = append(errs, s.reconcileWith(ctx, kind, b, agentTarget{kind: kind}))
	}
	targets, err := s.agentTargets(ctx)
	if err != nil {
		return err
	}
	for _, t := range targets {
		errs = append(errs, s.reconcileAgent(ctx, t))
	}
	return errors.Join(errs...)
}

// reconcileWith reconciles the live records of the sandboxes that t runs with what b holds: t names an
// enrolled agent, or (agent "" or the embedded one) the platform host's own sandboxes of backend t.kind.
func (s *Service) reconcileWith(ctx context.Context, name string, b backend.Backend, t agentTarget) error {
	var errs []error
	list, err := b.List(ctx)
	if err != nil {
		return fmt.Errorf("reconcile %s: list: %w", name, err)
	}
	seen := map[string]backend.Status{}
	for _, st := range list {
		seen[st.SandboxID] = st
	}
	agentID := t.agent
	if t.embedded() {
		agentID = ""
	}
	recs, err := unsettledSandboxes(s.db.WithContext(ctx), t.kind, agentID, t.pool)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, sb := range recs {
		known[sb.ID] = true
		if s.isInflight(sb.ID) {
			continue // being launched, started or stopped by this process right now
		}
		st, has := seen[sb.ID]
		if err := s.reconcileOne(ctx, b, sb, st, has); err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s: %w", sb.ID, err))
		}
	}
	for _, st := range list {
		if known[st.SandboxID] {
			continue
		}
		if recorded, _ := sandboxExists(s.db.WithContext(ctx), st.SandboxID); recorded && st.Ended() {
			continue // an ended sandbox already recorded; collect removes it after retention
		}
		s.log.Warn("orphan sandbox on backend: stopping it", "backend", name, "sandbox", st.SandboxID, "state", st.State)
		if !st.Ended() {
			if _, err := b.Stop(ctx, st.SandboxID, s.opts.StopGrace); err != nil && !errors.Is(err, backend.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
		}
		if err := b.Remove(ctx, st.SandboxID); err != nil && !errors.Is(err, backend.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) reconcileOne(ctx context.Context, b backend.Backend, sb Sandbox, st backend.Status, has bool) error {
	switch {
	case sb.Terminal():
		if has && !st.Ended() {
			if _, err := b.Stop(ctx, sb.ID, s.opts.StopGrace); err != nil {
				return err
			}
		}
		if !has {
			return markBackendRemoved(s.db.WithContext(ctx), sb.ID)
		}
		return nil
	case sb.State == StateRequested:
		return s.fail(ctx, sb.ID, ReasonInterrupted, "the testbed restarted before placing it")
	case sb.State == StateScheduled && !has:
		return nil // the supervisor provisions it
	case sb.State == StateScheduled || sb.State == StateProvisioning:
		if !has {
			return s.fail(ctx, sb.ID, ReasonInterrupted, "the testbed restarted while starting it")
		}
		if sb.State == StateScheduled {
			if _, err := s.update(ctx, sb.ID, func(tx *gorm.DB, cur *Sandbox) error {
				return s.transition(tx, cur, StateProvisioning, "", s.clock.Now())
			}); err != nil {
				return err
			}
		}
		return s.started(ctx, sb.ID, st)
	case sb.State == StateRunning:
		if !has {
			return s.finish(ctx, sb.ID, backend.Status{State: backend.StateExited, Reason: backend.ReasonLost})
		}
		if st.Ended() {
			return s.finish(ctx, sb.ID, st)
		}
		return nil
	case sb.State == StateStopping:
		if !has {
			return s.finish(ctx, sb.ID, backend.Status{State: backend.StateExited, Reason: backend.ReasonStopped})
		}
		if st.Ended() {
			return s.finish(ctx, sb.ID, st)
		}
		return s.stopBackend(ctx, sb.ID)
	}
	return nil
}

// consume runs the event consumers until ctx ends.
func (s *Service) consume(ctx context.Context) error {
	errc := make(chan error, 6)
	listing := func(kind string, subj eventbus.Subject[events.ListingChangedV1]) {
		errc <- eventbus.Consume(ctx, s.bus, subj, eventbus.ConsumeOptions{Durable: "testbed-listing-" + kind},
			func(ctx context.Context, ev eventbus.Event[events.ListingChangedV1]) error {
				return s.ApplyListing(ctx, ev.ID, kind, ev.Data)
			})
	}
	go listing("published", events.ListingPublished)
	go listing("suspended", events.ListingSuspended)
	go listing("retired", events.ListingRetired)
	entitlement := func(kind string, subj eventbus.Subject[events.EntitlementChangedV1]) {
		errc <- eventbus.Consume(ctx, s.bus, subj, eventbus.ConsumeOptions{Durable: "testbed-entitlement-" + kind},
			func(ctx context.Context, ev eventbus.Event[events.EntitlementChangedV1]) error {
				return s.ApplyEntitlement(ctx, ev.ID, kind == "granted", ev.Data)
			})
	}
	go entitlement("granted", events.EntitlementGranted)
	go entitlement("revoked", events.EntitlementRevoked)
	go func() {
		errc <- eventbus.Consume(ctx, s.bus, events.WalletExhausted, eventbus.ConsumeOptions{Durable: "testbed-wallet-exhausted"},
			func(ctx context.Context, ev eventbus.Event[events.WalletExhaustedV1]) error {
				return s.WalletExhausted(ctx, ev.ID, ev.Data)
			})
	}()
	var errs []error
	for range 6 {
		if err := <-errc; err != nil && ctx.Err() == nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
