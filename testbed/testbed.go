// Package testbed is the testbed service: accelerator pools, nodes and devices, sandbox templates,
// reservations, the scheduler, the sandbox lifecycle with its backends, usage metering, and the access
// gateway (logs, terminal, HTTP proxy) to running sandboxes.
//
// It owns the testbed_ tables and publishes through testbed_outbox: pool.changed, sandbox.<state> and
// sandbox.usage events. It consumes marketplace listing events (a projection of published compute
// listings) and billing's wallet.exhausted, and asks billing for holds (request/reply) before a sandbox
// starts. It must not import other services, nor run sandboxes itself: backends (testbed/backend/...) do.
package testbed

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tamarack-ai/tamarack/platform/rungroup"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/gpustat"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations returns the testbed's migrations (service "testbed").
func Migrations() sqldb.Migrations { return sqldb.EmbeddedMigrations("testbed", migrationsFS) }

// Options tune the service; zero values take the defaults shown.
type Options struct {
	UsageInterval        time.Duration // 15s: usage sample period while running
	SuperviseInterval    time.Duration // 1s: how often running sandboxes are checked (exit, expiry, idle)
	StopGrace            time.Duration // 10s: SIGTERM → SIGKILL
	WalletGrace          time.Duration // 2m: wallet exhausted → stop
	NodeTimeout          time.Duration // 90s: heartbeat age after which a remote node is down
	HoldTimeout          time.Duration // 5s: billing's answer to a hold
	MaxReservation       time.Duration // 24h: longest reservation window
	MaxReservationsOrg   int           // 3: pending+active reservations per organisation
	SandboxTokenTTL      time.Duration // 15m
	LogRetention         time.Duration // 1h: an ended sandbox's logs stay readable this long
	StartTimeout         time.Duration // 2m: a backend Start
	PullTimeout          time.Duration // 30m: getting a sandbox's image (pull and unpack) before its start
	GPUSampleInterval    time.Duration // 10s: GPU utilisation and memory sample period while running (Deps.GPUStats)
	GPUSampleRetention   time.Duration // 7 days: an ended sandbox's GPU samples are kept this long, then pruned
	DisableEventConsumer bool          // tests that drive consumers by hand
	// AgentNATSURL is the NATS address enrolled agents connect to (told them at enrolment); PublicURL the
	// platform's address for the enrolment command shown with a new token (default: the request's).
	AgentNATSURL string
	PublicURL    string
	// AgentRegistryURL is the platform's image registry as agents reach it, for built-in images.
	AgentRegistryURL string
	// CDIDirs are where GPU discovery reads the host's CDI specs; default /etc/cdi and /var/run/cdi.
	CDIDirs []string
	// ImageCacheBytes is this host's image cache budget: past it, every image and layer that no live sandbox
	// uses and that is neither built in nor pinned by digest in a pool's allow-list is pruned. Default 32 GiB.
	ImageCacheBytes int64
	// PruneInterval is how often the image cache is measured against its budget; default 10 minutes.
	PruneInterval time.Duration
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.UsageInterval, 15*time.Second)
	def(&o.SuperviseInterval, time.Second)
	def(&o.StopGrace, 10*time.Second)
	def(&o.WalletGrace, 2*time.Minute)
	def(&o.NodeTimeout, 90*time.Second)
	def(&o.HoldTimeout, 5*time.Second)
	def(&o.MaxReservation, 24*time.Hour)
	def(&o.SandboxTokenTTL, 15*time.Minute)
	def(&o.LogRetention, time.Hour)
	def(&o.StartTimeout, 2*time.Minute)
	def(&o.PullTimeout, 30*time.Minute)
	def(&o.GPUSampleInterval, 10*time.Second)
	def(&o.GPUSampleRetention, 7*24*time.Hour)
	def(&o.PruneInterval, 10*time.Minute)
	if o.ImageCacheBytes <= 0 {
		o.ImageCacheBytes = 32 << 30
	}
	if o.MaxReservationsOrg <= 0 {
		o.MaxReservationsOrg = 3
	}
	return o
}

// Deps are the service's dependencies.
type Deps struct {
	DB    *gorm.DB
	Bus   *eventbus.Bus // nil only in tests that read the outbox table instead of JetStream
	Log   *slog.Logger
	Clock clock.Clock
	Holds HoldProvider
	// Backends by kind ("local", "simulator", ...). Pools whose kind has no backend here are inventory only:
	// launching on them answers 503 backend_unavailable.
	Backends map[string]backend.Backend
	// Images gives the root filesystem of a template's image on this host (image.Provider). Required when a
	// backend starts sandboxes from images the testbed prepares (local); the simulator runs nothing.
	Images   Images
	Options  Options
	Registry prometheus.Registerer // optional: the testbed's metrics are registered here

	// Links asks the marketplace for a listing's artifacts and signed links to them (BusArtifactLinks); nil:
	// launching with mount_listing_id answers 503 artifacts_unavailable.
	Links ArtifactLinker
	// Artifacts fetches and keeps artifacts on this host for the backends this process runs itself (the
	// in-process local backend of tests); agents have their own.
	Artifacts agent.Artifacts

	// EmbeddedAgent says this process runs the site agent of the platform host's own nodes (agent.Server
	// with events.EmbeddedAgent): sandboxes on local pools' nodes that no enrolled agent registered are
	// commanded through it, over the bus, like any agent's.
	EmbeddedAgent bool
	// Credentials issues enrolled agents' NATS credentials; nil when NATS has no accounts.
	Credentials Credentials

	// Unavailable are backends this deployment would run but that cannot work on this host, by kind, with
	// their Check error (what is missing and how to install it): pools on them show it to their managers,
	// and launching on them answers 503 backend_unavailable saying it.
	Unavailable map[string]error

	// GPUStats measures this host's GPUs for the utilisation and memory charts (gpustat.NvidiaSMI); nil: not
	// measured (declared devices, hosts without nvidia-smi, agents' own hosts).
	GPUStats gpustat.Func
}

// Service is the testbed.
type Service struct {
	db       *gorm.DB
	bus      *eventbus.Bus
	log      *slog.Logger
	clock    clock.Clock
	holds    HoldProvider
	backends map[string]backend.Backend
	images   Images
	opts     Options
	outbox   *eventbus.Outbox
	idx      *index
	metrics  *metrics

	// links and artifacts mount listings' files into sandboxes (Deps.Links, Deps.Artifacts).
	links     ArtifactLinker
	artifacts agent.Artifacts

	// unavailable says why a backend kind this deployment would run cannot work here (Deps.Unavailable).
	unavailable map[string]string
	// embedded: this process runs the agent of the platform host's own nodes (Deps.EmbeddedAgent).
	embedded bool
	creds    Credentials
	gpuStats gpustat.Func
	// ssh is where users reach the SSH gateway (SetSSHEndpoint), nil while none runs.
	ssh atomic.Pointer[SSHEndpoint]

	mu         sync.Mutex
	clients    map[agentTarget]*agent.Client      // by agent: each agent's client, made on first use
	boots      map[agentTarget]string             // by agent: the boot of its last heartbeat seen here
	inflight   map[string]bool                    // sandboxes a goroutine is provisioning or stopping
	touched    map[string]time.Time               // last activity written per sandbox, to throttle writes
	gpuSampled map[string]time.Time               // last GPU sample per running sandbox
	gpuPruned  time.Time                          // last pruning of ended sandboxes' GPU samples
	pulls      map[string]context.CancelCauseFunc // image pulls in progress, by sandbox: a stop cancels its pull
	closing    bool                               // Run has ended: pulls still starting are cancelled at once
	wg         sync.WaitGroup
	loaded     bool
	loadedAt   time.Time // wall time of the last index load: bounds reloads on a miss
	watch      watchers  // requests waiting on a sandbox's state (WaitFor)
}

// New checks every dependency and returns the service. Call Load (or Run) before placing sandboxes.
func New(d Deps) (*Service, error) {
	var errs []error
	if d.DB == nil {
		errs = append(errs, errors.New("testbed: DB is required"))
	}
	if d.Clock == nil {
		errs = append(errs, errors.New("testbed: Clock is required"))
	}
	if d.Holds == nil {
		errs = append(errs, errors.New("testbed: Holds is required"))
	}
	if len(d.Backends) == 0 && !d.EmbeddedAgent {
		errs = append(errs, errors.New("testbed: at least one backend (or the embedded agent) is required"))
	}
	for k, b := range d.Backends {
		if b == nil || b.Kind() != k {
			errs = append(errs, errors.New("testbed: backend "+k+" is nil or of another kind"))
		}
		if runsImages(k) && d.Images == nil {
			errs = append(errs, errors.New("testbed: Images is required: the "+k+" backend starts sandboxes from images"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: d.DB, bus: d.Bus, log: log, clock: d.Clock, holds: d.Holds, backends: d.Backends, images: d.Images,
		links: d.Links, artifacts: d.Artifacts, opts: d.Options.withDefaults(), outbox: eventbus.NewOutbox(d.DB, d.Bus, "testbed", log), idx: newIndex(),
		inflight: map[string]bool{}, touched: map[string]time.Time{}, pulls: map[string]context.CancelCauseFunc{},
		metrics: newMetrics(d.Registry), embedded: d.EmbeddedAgent && d.Bus != nil, creds: d.Credentials,
		clients: map[agentTarget]*agent.Client{}, boots: map[agentTarget]string{}, gpuStats: d.GPUStats, gpuSampled: map[string]time.Time{}}
	s.unavailable = map[string]string{}
	for kind, err := range d.Unavailable {
		if err != nil {
			s.unavailable[kind] = unavailableText(err)
		}
	}
	return s, nil
}

// unavailableText is a backend's Check error as one line: each problem once, without the sentinel's
// words in front of each.
func unavailableText(err error) string {
	var parts []string
	for line := range strings.Lines(err.Error()) {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), backend.ErrUnavailable.Error()+":"))
		if line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}

// Outbox is the service's outbox relay (tests flush it).
func (s *Service) Outbox() *eventbus.Outbox { return s.outbox }

// Run loads the index, reconciles with the backends, then runs the outbox relay, the consumers and the
// supervisor until ctx ends. Running sandboxes are left running on exit: they survive a restart.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if !loaded {
		if err := s.Load(ctx); err != nil {
			return err
		}
	}
	if err := s.Reconcile(ctx); err != nil {
		// Not fatal: what could not be repaired now is looked at again by every supervisor tick.
		s.log.Error("testbed reconciliation incomplete", "err", err)
	}
	var loops []rungroup.Loop
	if s.bus != nil {
		loops = append(loops, rungroup.Loop{Name: "outbox", Run: s.outbox.Run}, rungroup.Loop{Name: "agents", Run: s.listenAgents})
		if !s.opts.DisableEventConsumer {
			loops = append(loops, rungroup.Loop{Name: "consumers", Run: s.consume})
		}
	}
	loops = append(loops, rungroup.Loop{Name: "supervisor", Run: s.supervise})
	if _, ok := s.images.(ImageCache); ok {
		loops = append(loops, rungroup.Loop{Name: "images", Run: s.pruneImagesLoop})
	}
	// A loop that fails is logged by the group and the others go on; running sandboxes outlive the process, so
	// the service keeps running until ctx ends and reports no error of its own.
	_ = rungroup.Run(ctx, s.log, loops...)
	// A pull may take minutes: it is cancelled rather than waited for. Its sandbox stays provisioning, and the
	// next start's reconciliation ends it (provisioning_interrupted), as for a start cut short.
	s.cancelPulls(errShutdown)
	s.wg.Wait()
	if s.bus != nil { // events of the last moments (a stop, a final usage sample) go out before the bus drains
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.outbox.Flush(fctx); err != nil {
			s.log.Warn("testbed outbox not flushed; the next start relays it", "err", err)
		}
	}
	return nil
}

func (s *Service) supervise(ctx context.Context) error {
	t := time.NewTicker(s.opts.SuperviseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("testbed supervisor tick", "err", err)
			}
			// Converge with what other processes changed (nodes added, devices released) even when no
			// launch misses; the database claims stay the source of truth in between.
			if _, err := s.reloadIndex(ctx, indexRefresh); err != nil && ctx.Err() == nil {
				s.log.Warn("testbed index reload", "err", err)
			}
		}
	}
}

// Wait blocks until background provisioning and stopping goroutines end (tests).
func (s *Service) Wait() { s.wg.Wait() }
