package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/gpustat"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// Images gives the root filesystem of an image on the agent's host (*image.Provider implements it).
type Images interface {
	Rootfs(ctx context.Context, img string, poolSettings map[string]string, progress func(image.Progress)) (image.Rootfs, error)
}

// Artifacts fetches listings' artifacts onto the agent's host and keeps them while sandboxes use them
// (*artifact.Cache implements it).
type Artifacts interface {
	Mount(ctx context.Context, sandboxID string, m events.AgentMountV1) (backend.Mount, error)
	Release(sandboxID string) error
	Sweep(alive func(sandboxID string) bool) error
}

// Config is what a Server needs.
type Config struct {
	PoolID, AgentID string
	Version         string
	Backend         backend.Backend
	// Images prepares sandboxes' images where the backend starts them from a root filesystem on this host
	// (local); nil for backends that pull on their own nodes, and for the simulator.
	Images Images
	// Artifacts mounts listings' artifacts into sandboxes, where the backend binds host directories (local);
	// nil: a start with mounts is refused (not_supported) rather than run without them.
	Artifacts Artifacts
	// Nodes reports the machines and devices the agent runs sandboxes on (discovered or declared); nil
	// reports none (the embedded agent, whose nodes are declared on the platform).
	Nodes func(ctx context.Context) ([]events.AgentNodeV1, error)
	// DB is the agent's own database (Migrations applied): its outbox.
	DB  *gorm.DB
	Bus *eventbus.Bus
	Log *slog.Logger
	// Heartbeat is the period of heartbeats (default 5 s); Watch the period at which the backend is asked
	// which sandboxes started or ended (default 1 s).
	Heartbeat, Watch time.Duration
	// GPUStats measures this host's GPUs (gpustat.NvidiaSMI); while a sandbox runs, each heartbeat carries
	// the measurements of every device here. Nil: the agent measures nothing (no nvidia-smi; the embedded
	// agent, whose host the testbed measures itself).
	GPUStats gpustat.Func
}

// Server runs the sandboxes the testbed places on one agent's nodes.
type Server struct {
	cfg    Config
	base   string
	boot   string
	log    *slog.Logger
	outbox *eventbus.Outbox

	mu     sync.Mutex
	starts map[string]context.CancelCauseFunc // sandboxes whose start (image, backend) is in progress
	pipes  sync.WaitGroup
}

// NewServer checks cfg and returns the agent's server.
func NewServer(cfg Config) (*Server, error) {
	var errs []error
	if cfg.PoolID == "" || cfg.AgentID == "" {
		errs = append(errs, errors.New("agent: pool and agent IDs are required"))
	}
	if cfg.Backend == nil || cfg.DB == nil || cfg.Bus == nil {
		errs = append(errs, errors.New("agent: backend, database and bus are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.Watch <= 0 {
		cfg.Watch = time.Second
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	log := cfg.Log.With("pool", cfg.PoolID, "agent", cfg.AgentID)
	return &Server{cfg: cfg, base: events.AgentBase(cfg.PoolID, cfg.AgentID), boot: hex.EncodeToString(b[:]), log: log,
		outbox: eventbus.NewOutbox(cfg.DB, cfg.Bus, "agent", log), starts: map[string]context.CancelCauseFunc{}}, nil
}

// Outbox is the agent's outbox relay (tests look at what is pending).
func (s *Server) Outbox() *eventbus.Outbox { return s.outbox }

// Run serves commands, heartbeats, relays the outbox and watches the backend until ctx ends. Sandboxes are
// left running: a restarted agent finds them again.
func (s *Server) Run(ctx context.Context) error {
	subs, err := s.serve(ctx)
	if err != nil {
		return err
	}
	s.sweepArtifacts(ctx)
	var wg sync.WaitGroup
	for _, fn := range []func(context.Context){s.heartbeats, s.watch} {
		wg.Add(1)
		go func() { defer wg.Done(); fn(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.outbox.Run(ctx) }()
	s.log.Info("agent serving", "subjects", s.base+".>")
	<-ctx.Done()
	for _, sub := range subs {
		_ = sub.Drain()
	}
	s.mu.Lock()
	for _, cancel := range s.starts {
		cancel(context.Canceled)
	}
	s.mu.Unlock()
	wg.Wait()
	s.pipes.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.outbox.Flush(fctx); err != nil {
		s.log.Warn("agent outbox not flushed; the next start relays it", "err", err)
	}
	return nil
}

// serve subscribes to every command. Handlers answer problems for errors (toProblem), which Client turns
// back into the same sentinels.
func (s *Server) serve(ctx context.Context) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	add := func(sub *nats.Subscription, err error) error {
		if err == nil {
			subs = append(subs, sub)
		}
		return err
	}
	p, a := s.cfg.PoolID, s.cfg.AgentID
	q := "agent-" + a
	b := s.cfg.Backend
	errs := []error{
		add(eventbus.Serve(ctx, s.cfg.Bus, events.AgentCommand[events.AgentEmptyV1, events.AgentEmptyV1](p, a, events.AgentOpCheck), q,
			func(ctx context.Context, _ events.AgentEmptyV1) (events.AgentEmptyV1, error) {
				return events.AgentEmptyV1{}, wrap(b.Check(ctx))
			})),
		add(eventbus.Serve(ctx, s.cfg.Bus, events.AgentCommand[events.AgentStartV1, events.AgentStartedV1](p, a, events.AgentOpStart), q, s.start)),
		add(eventbus.Serve(ctx, s.cfg.Bus, events.AgentCommand[events.AgentStopV1, events.AgentStatusV1](p, a, events.AgentOpStop), q, s.stop)),
		add(eventbus.Serve(ctx, s.cfg.Bus, events.AgentCommand[events.AgentSandboxRefV1, events.AgentEmptyV1](p, a, events.AgentOpRemove), q,
			func(ctx context.Context, r events.AgentSandboxRefV1) (events.AgentEmptyV1, error) {
				if err := b.Remove(ctx, r.SandboxID); err != nil {
					return events.AgentEmptyV1{}, toProblem(err)
				}
				s.release(r.SandboxID)
				s.forget(ctx, r.SandboxID)
				return events.AgentEmptyV1{}, nil
			})),
		add(eventbus.Serve(ctx, s.cfg.Bus, events.AgentCommand[events.AgentSandboxRefV1, events.AgentStatusV1](p, a, events.AgentOpInspect), q,
			func(ctx context.Context, r events.AgentSandboxRefV1) (events.AgentStatusV1, error) {
				st, err := b.Inspect(ctx, r.SandboxID)
				return toStatusV1(st), wrap(err)
			})),
		add(eventbus.Serve(ctx, s.cfg.Bus, events.AgentCommand[events.AgentEmptyV1, events.AgentListV1](p, a, events.AgentOpList), q,
			func(ctx context.Context, _ events.AgentEmptyV1) (events.AgentListV1, error) {
				list, err := b.List(ctx)
				out := events.AgentListV1{Sandboxes: []events.AgentStatusV1{}}
				for _, st := range list {
					out.Sandboxes = append(out.Sandboxes, toStatusV1(st))
				}
				return out, wrap(err)
			})),
	}
	errs = append(errs, s.serveStreams(ctx, add)...)
	if err := errors.Join(errs...); err != nil {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
		return nil, err
	}
	return subs, nil
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	return toProblem(err)
}

// start prepares the sandbox's image (when it has one and the backend runs images from this host), or hands
// its reference to a backend whose nodes pull it, then starts it. A stop of the same sandbox meanwhile cancels it (start_cancelled). The handler's context is the
// agent's: the start goes on if the testbed stops waiting, and the watch announces its outcome.
func (s *Server) start(ctx context.Context, r events.AgentStartV1) (events.AgentStartedV1, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.mu.Lock()
	if _, busy := s.starts[r.SandboxID]; busy {
		s.mu.Unlock()
		return events.AgentStartedV1{}, toProblem(fmt.Errorf("%w: its start is in progress", backend.ErrExists))
	}
	s.starts[r.SandboxID] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.starts, r.SandboxID)
		s.mu.Unlock()
	}()
	spec := fromStartV1(r)
	var digest string
	if r.Image != "" && s.cfg.Images != nil {
		root, err := s.cfg.Images.Rootfs(ctx, r.Image, r.ImageSettings, s.progress(r.SandboxID))
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, ErrStartCancelled) {
				err = cause
			} else if !IsImageError(err) {
				err = fmt.Errorf("%w: %w", ErrImageUnavailable, err)
			}
			return events.AgentStartedV1{}, toProblem(err)
		}
		spec, digest = WithImage(spec, root), root.Digest
	} else if r.Image != "" {
		// The backend's own nodes pull it (Kubernetes): it gets the reference, never a root filesystem.
		spec.Image = r.Image
	}
	if len(r.Mounts) > 0 {
		if s.cfg.Artifacts == nil {
			return events.AgentStartedV1{}, toProblem(fmt.Errorf("%w: this agent's %s backend cannot mount a listing's artifacts",
				backend.ErrNotSupported, s.cfg.Backend.Kind()))
		}
		for _, m := range r.Mounts {
			bm, err := s.cfg.Artifacts.Mount(ctx, r.SandboxID, m)
			if err != nil {
				s.release(r.SandboxID)
				if cause := context.Cause(ctx); errors.Is(cause, ErrStartCancelled) {
					err = cause
				} else if !errors.Is(err, backend.ErrInvalidSpec) {
					err = fmt.Errorf("%w: %w", ErrArtifactsUnavailable, err)
				}
				return events.AgentStartedV1{}, toProblem(err)
			}
			spec.Mounts = append(spec.Mounts, bm)
		}
	}
	st, err := s.cfg.Backend.Start(ctx, spec)
	if err != nil {
		if !errors.Is(err, backend.ErrExists) {
			s.release(r.SandboxID)
		}
		if cause := context.Cause(ctx); errors.Is(cause, ErrStartCancelled) {
			err = cause
		}
		return events.AgentStartedV1{}, toProblem(err)
	}
	s.announce(ctx, st)
	return events.AgentStartedV1{Status: toStatusV1(st), ImageDigest: digest}, nil
}

// sweepArtifacts drops the artifacts of sandboxes that ended while the agent was away (the backend no longer
// runs them), and what nobody uses.
func (s *Server) sweepArtifacts(ctx context.Context) {
	if s.cfg.Artifacts == nil {
		return
	}
	list, err := s.cfg.Backend.List(ctx)
	if err != nil {
		s.log.Warn("agent: artifacts cache not swept", "err", err)
		return
	}
	running := map[string]bool{}
	for _, st := range list {
		running[st.SandboxID] = !st.Ended()
	}
	if err := s.cfg.Artifacts.Sweep(func(id string) bool { return running[id] }); err != nil {
		s.log.Warn("agent: artifacts cache not swept", "err", err)
	}
}

// release drops a sandbox's use of the artifacts cache (it ended, or never started).
func (s *Server) release(id string) {
	if s.cfg.Artifacts == nil {
		return
	}
	if err := s.cfg.Artifacts.Release(id); err != nil {
		s.log.Warn("agent: artifacts of an ended sandbox not released", "sandbox", id, "err", err)
	}
}

// IsImageError reports whether err says the sandbox's image could not be used (not allowed, refused, not
// obtained), as opposed to its start.
func IsImageError(err error) bool {
	for _, e := range []error{image.ErrNotPinned, image.ErrNotAllowed, image.ErrVerify, image.ErrUnsafe, image.ErrUnsupported,
		image.ErrTooLarge, ErrImageUnavailable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// stop cancels a start in progress, then stops what runs.
func (s *Server) stop(ctx context.Context, r events.AgentStopV1) (events.AgentStatusV1, error) {
	s.mu.Lock()
	if cancel := s.starts[r.SandboxID]; cancel != nil {
		cancel(ErrStartCancelled)
	}
	s.mu.Unlock()
	st, err := s.cfg.Backend.Stop(ctx, r.SandboxID, time.Duration(r.GraceMS)*time.Millisecond)
	if err != nil {
		return events.AgentStatusV1{}, toProblem(err)
	}
	s.release(r.SandboxID) // nothing of it runs any more: its artifacts may go
	s.announce(ctx, st)
	return toStatusV1(st), nil
}

// progress returns the pull's progress callback: it publishes at most four updates a second, newest wins.
func (s *Server) progress(id string) func(image.Progress) {
	var last time.Time
	subject := s.base + ".progress.v1"
	return func(p image.Progress) {
		if p.Phase != image.PhasePulling && p.Phase != image.PhaseUnpacking {
			return
		}
		if now := time.Now(); now.Sub(last) >= 250*time.Millisecond || p.Done == p.Total {
			last = now
			body, _ := json.Marshal(events.AgentProgressV1{SandboxID: id, Phase: string(p.Phase), Done: p.Done, Total: p.Total, Ref: p.Ref})
			_ = s.cfg.Bus.Conn().Publish(s.cfg.Bus.Subject(subject), body)
		}
	}
}

// heartbeats publishes the agent's sign of life until ctx ends.
func (s *Server) heartbeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	var nodes []events.AgentNodeV1
	var nodesAt time.Time
	for {
		if time.Since(nodesAt) > time.Minute && s.cfg.Nodes != nil {
			if n, err := s.cfg.Nodes(ctx); err != nil {
				s.log.Warn("agent inventory", "err", err)
			} else {
				nodes, nodesAt = n, time.Now()
			}
		}
		if err := s.heartbeat(ctx, nodes); err != nil && ctx.Err() == nil {
			s.log.Debug("agent heartbeat not sent", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) heartbeat(ctx context.Context, nodes []events.AgentNodeV1) error {
	hb := events.AgentHeartbeatV1{AgentID: s.cfg.AgentID, PoolID: s.cfg.PoolID, Version: s.cfg.Version, Boot: s.boot,
		Backend: s.cfg.Backend.Kind(), Nodes: nodes, Running: []string{}}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.cfg.Backend.Check(cctx); err != nil {
		hb.Problem = err.Error()
	}
	list, err := s.cfg.Backend.List(cctx)
	if err != nil {
		return err
	}
	for _, st := range list {
		if st.State == backend.StateRunning {
			hb.Running = append(hb.Running, st.SandboxID)
		}
	}
	hb.At = time.Now().UTC() // after List: the running ones were observed by then
	if s.cfg.GPUStats != nil {
		hb.GPUSampler = true
		if len(hb.Running) > 0 {
			hb.GPUs = s.measureGPUs(cctx)
		}
	}
	body, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	return s.cfg.Bus.Conn().Publish(s.cfg.Bus.Subject(s.base+".heartbeat.v1"), body)
}

// measureGPUs is every device of this host as GPUStats measures it now; nil when it cannot (the heartbeat
// goes without: the charts show a gap, not a zero).
func (s *Server) measureGPUs(ctx context.Context) []events.AgentGPUStatV1 {
	stats, err := s.cfg.GPUStats(ctx, nil)
	if err != nil {
		s.log.Debug("agent gpu sample", "err", err)
		return nil
	}
	out := make([]events.AgentGPUStatV1, 0, min(len(stats), events.MaxAgentGPUStats))
	for _, st := range stats[:min(len(stats), events.MaxAgentGPUStats)] {
		out = append(out, events.AgentGPUStatV1{UUID: st.UUID, UtilizationPct: st.UtilizationPct, MemoryUsedMiB: st.MemoryUsedMiB,
			MemoryTotalMiB: st.MemoryTotalMiB})
	}
	return out
}

// watch announces every start and end the backend observes, whoever caused them (an exit, an OOM kill, a
// stop), through the outbox.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.Watch)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		list, err := s.cfg.Backend.List(cctx)
		if err == nil {
			for _, st := range list {
				s.announce(cctx, st)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type announced struct {
	ID string    `gorm:"primaryKey"`
	At time.Time `gorm:"column:at"`
}

func (announced) TableName() string { return "agent_announced" }

// announce writes the event of st's start or end once (the table remembers what went out; the platform is
// idempotent anyway), in one transaction with its outbox row.
func (s *Server) announce(ctx context.Context, st backend.Status) {
	var state string
	switch {
	case st.Ended():
		state = "ended"
	case st.State == backend.StateRunning && !st.StartedAt.IsZero():
		state = "running"
	default:
		return
	}
	id := st.SandboxID + "-" + state
	ev := events.AgentSandboxV1{AgentID: s.cfg.AgentID, PoolID: s.cfg.PoolID, Status: toStatusV1(st), At: time.Now().UTC()}
	err := s.cfg.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&announced{ID: id, At: ev.At})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return eventbus.Write(tx, s.outbox, events.AgentSandboxEvent(s.cfg.PoolID, s.cfg.AgentID), s.cfg.AgentID+"-"+id, ev)
	})
	if err != nil {
		s.log.Warn("agent: sandbox event not recorded; the watch tries again", "sandbox", st.SandboxID, "err", err)
		return
	}
	s.outbox.Kick()
}

// forget drops what the agent remembers of a removed sandbox's announcements.
func (s *Server) forget(ctx context.Context, id string) {
	_ = s.cfg.DB.WithContext(ctx).Where("id IN ?", []string{id + "-running", id + "-ended"}).Delete(&announced{}).Error
}

// WithImage makes spec start from root: its root filesystem, the image's environment under the spec's own
// (which wins), and the image's entrypoint and command when the spec has none. The image's working directory
// and user are not used: a sandbox starts in its home as its own root.
func WithImage(spec backend.Spec, root image.Rootfs) backend.Spec {
	spec.RootFS = root.Path
	env := map[string]string{}
	for _, kv := range root.Config.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	maps.Copy(env, spec.Env)
	spec.Env = env
	if len(spec.Command) == 0 {
		spec.Command = append(slices.Clone(root.Config.Entrypoint), root.Config.Cmd...)
	}
	return spec
}
