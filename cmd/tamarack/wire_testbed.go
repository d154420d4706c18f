package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/artifact"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
	"github.com/tamarack-ai/tamarack/testbed/gpustat"
)

// Testbed's wiring.

func testbedMigrations() []sqldb.Migrations { return []sqldb.Migrations{testbed.Migrations()} }

// testbedBackends builds the sandbox backends this process runs: local (runc, sandboxes under
// <data>/sandboxes, GPUs from the host's CDI specs; runsc for pools that choose gVisor) when the host
// can run it, and the simulator (demos and tests only). A host that cannot run local sandboxes (runc
// missing, not root) still serves everything else: the log says why and how to fix it, and so do the
// local pools (to their managers) and launches on them, which fail until then (unavailable); a missing
// or unusable runsc only stops the pools on gVisor. Pools of other kinds (slurm, kubernetes) are
// inventory only in this build: launching on them answers 503.
func testbedBackends(ctx context.Context, e *env) (bs map[string]backend.Backend, lb *local.Backend, unavailable map[string]error, err error) {
	bs, unavailable = map[string]backend.Backend{}, map[string]error{}
	sb := sim.New(e.clock)
	bs[sb.Kind()] = sb
	// GPUs come from the host's CDI specs; a host without any has no GPU to hand over, which is fine.
	devices, err := cdi.Open(e.cfg.cdiDirs(), e.log.With("backend", "local"))
	if err != nil {
		return nil, nil, nil, err
	}
	lb, err = local.New(local.Options{Root: filepath.Join(e.cfg.Data, "sandboxes"), Runsc: e.cfg.Runsc, Logger: e.log.With("backend", "local"),
		FileEdits: []local.FileEdit{devices.Edit}})
	if err == nil {
		err = lb.Check(ctx)
	}
	if err != nil {
		e.log.Warn("local sandbox backend unavailable: pools on it cannot launch until this is fixed (tamarack doctor lists what this host lacks)", "err", err)
		unavailable["local"] = err
		return bs, nil, unavailable, nil
	}
	if e.cfg.Runsc != "" { // without it, a launch on a gVisor pool says how to get runsc
		if err := lb.CheckRunsc(ctx); err != nil {
			e.log.Warn("gVisor unavailable: local pools with settings runtime: runsc cannot launch until this is fixed", "err", err)
		}
	}
	if err := reachableImages(e.cfg.Data, e.log); err != nil {
		e.log.Warn("sandboxes on local pools cannot start from their images until this is fixed", "err", err)
	}
	return bs, lb, unavailable, nil
}

// newTestbed builds the testbed and, when this host can run sandboxes, the site agent of its own nodes: the
// testbed commands it over the bus like any vendor's agent (one way to run a sandbox), in this process.
func newTestbed(ctx context.Context, e *env) (*testbed.Service, error) {
	bs, lb, unavailable, err := testbedBackends(ctx, e)
	if err != nil {
		return nil, err
	}
	if lb != nil {
		if err := wireEmbeddedAgent(ctx, e, lb); err != nil {
			return nil, fmt.Errorf("embedded agent: %w", err)
		}
	}
	// This host's GPUs are measured for the sandbox page's charts where they run here (nvidia-smi present).
	var gpuStats gpustat.Func
	if lb != nil {
		gpuStats = gpustat.NvidiaSMI(e.cfg.cdiDirs())
	}
	return testbed.New(testbed.Deps{DB: e.db, Bus: e.bus, Log: e.log.With("service", "testbed"), Clock: e.clock,
		Holds: testbed.BusHolds{Bus: e.bus, Timeout: 5 * time.Second}, Links: testbed.BusArtifactLinks{Bus: e.bus, Timeout: 5 * time.Second}, Backends: bs, Unavailable: unavailable, Images: e.images,
		EmbeddedAgent: lb != nil, Credentials: agentCredentials(e), GPUStats: gpuStats,
		Options: testbed.Options{UsageInterval: e.cfg.UsageInterval, CDIDirs: e.cfg.cdiDirs(), AgentNATSURL: agentNATSURL(e),
			AgentRegistryURL: "http://" + e.images.Registry, ImageCacheBytes: int64(e.cfg.ImageCacheGB) << 30}, Registry: e.registry})
}

// agentNATSURL is the NATS address told to enrolling agents: the configured one, else the external NATS, else
// the embedded server's listener.
func agentNATSURL(e *env) string {
	switch {
	case e.cfg.AgentNATSURL != "":
		return e.cfg.AgentNATSURL
	case e.cfg.NATS != "":
		return e.cfg.NATS
	}
	return e.bus.ClientURL()
}

// natsCredentials issues and revokes site agents' NATS users with the platform's operator keys.
type natsCredentials struct {
	keys *natsauth.Keys
	bus  *eventbus.Bus
}

// agentCredentials is nil when this process holds no operator keys (an external NATS without
// --nats-auth-dir): agents then connect without credentials.
func agentCredentials(e *env) testbed.Credentials {
	if e.natsKeys == nil {
		return nil
	}
	return natsCredentials{keys: e.natsKeys, bus: e.bus}
}

func (n natsCredentials) AgentCreds(poolID, agentID string) ([]byte, string, error) {
	c, err := n.keys.AgentCreds(natsauth.Scope{Prefix: n.bus.Prefix(), PoolID: poolID, AgentID: agentID})
	if err != nil {
		return nil, "", err
	}
	f, err := c.File()
	return f, c.User, err
}

func (n natsCredentials) Revoke(ctx context.Context, user string) error {
	if _, err := n.keys.Revoke(user); err != nil {
		return err
	}
	return pushNATSAccount(ctx, n.bus, n.keys)
}

// wireEmbeddedAgent runs the agent of the platform host's own nodes in this process, on the local backend,
// with its outbox in its own database under <data>/agent (as a vendor's agent keeps it in its data directory).
func wireEmbeddedAgent(ctx context.Context, e *env, lb *local.Backend) error {
	dir := filepath.Join(e.cfg.Data, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	db, err := sqldb.Open(ctx, filepath.Join(dir, "agent.db"), sqldb.Options{Logger: e.log})
	if err != nil {
		return err
	}
	if err := sqldb.Migrate(ctx, db, e.log, agent.Migrations()); err != nil {
		_ = sqldb.Close(db)
		return err
	}
	arts, err := artifact.New(artifact.Options{Dir: filepath.Join(e.cfg.Data, "artifacts"), Log: e.log.With("service", "agent")})
	if err != nil {
		_ = sqldb.Close(db)
		return err
	}
	e.artifacts = arts
	srv, err := agent.NewServer(agent.Config{PoolID: events.EmbeddedAgent, AgentID: events.EmbeddedAgent, Version: version,
		Backend: lb, Images: e.images, Artifacts: arts, DB: db, Bus: e.bus, Log: e.log.With("service", "agent")})
	if err != nil {
		_ = sqldb.Close(db)
		return err
	}
	e.background("agent", func(ctx context.Context) error {
		defer sqldb.Close(db)
		return srv.Run(ctx)
	})
	return nil
}

// wireTestbed builds the testbed service, mounts its routes on e.api, adds its OpenAPI operations to e.doc and
// its background loops with e.background.
func wireTestbed(ctx context.Context, e *env) error {
	images, err := wireImages(e)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	e.images = images
	svc, err := newTestbed(ctx, e)
	if err != nil {
		return err
	}
	// The scheduler index must be loaded before the first request; reconciliation runs first thing in Run.
	if err := svc.Load(ctx); err != nil {
		return err
	}
	svc.Routes(e.api.Group("/testbed"))
	svc.OpenAPI(e.doc)
	e.background("testbed", svc.Run)
	return wireSSH(e, svc)
}

// wireSSH runs the SSH gateway to running sandboxes on --ssh-addr (unless off), with its host key kept in
// <data>/ssh_host_ed25519_key (made on first start) and keys looked up in identity over the bus.
func wireSSH(e *env, svc *testbed.Service) error {
	if e.cfg.SSHAddr == "" || e.cfg.SSHAddr == "off" {
		e.log.Info("ssh gateway off (--ssh-addr=off)")
		return nil
	}
	key, err := testbed.HostKey(filepath.Join(e.cfg.Data, "ssh_host_ed25519_key"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", e.cfg.SSHAddr)
	if err != nil {
		// Like a host without runc: everything else works, and the log says what to change.
		e.log.Error("ssh gateway not started: choose another --ssh-addr, or --ssh-addr=off", "err", err)
		return nil
	}
	// Port 0 picks one: written down for scripts and tests, as the registry's is.
	if err := os.WriteFile(filepath.Join(e.cfg.Data, "ssh.addr"), []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		ln.Close()
		return err
	}
	e.log.Info("ssh gateway listening", "addr", ln.Addr().String(), "host_key", ssh.FingerprintSHA256(key.PublicKey()))
	svc.SetSSHEndpoint(sshEndpoint(e.cfg.PublicURL, ln.Addr().(*net.TCPAddr), key.PublicKey()))
	e.background("ssh gateway", func(ctx context.Context) error {
		return svc.ServeSSH(ctx, ln, testbed.SSHConfig{HostKey: key, Keys: testbed.BusSSHKeys{Bus: e.bus}, Log: e.log.With("service", "testbed")})
	})
	return nil
}

// sshEndpoint is where users reach the gateway: the public URL's host (users reach the platform by that name)
// unless it is unset, then the listener's own address (localhost for an unspecified one), on the listener's port.
func sshEndpoint(publicURL string, addr *net.TCPAddr, hostKey ssh.PublicKey) testbed.SSHEndpoint {
	host := ""
	if u, err := url.Parse(publicURL); err == nil {
		host = u.Hostname()
	}
	if host == "" {
		host = addr.IP.String()
		if addr.IP.IsUnspecified() {
			host = "localhost"
		}
	}
	return testbed.SSHEndpoint{Host: host, Port: addr.Port, HostKeyFingerprint: ssh.FingerprintSHA256(hostKey)}
}

// seedTestbedAndImages is the testbed's seed: the demo pool, then the built-in sandbox images it launches from.
func seedTestbedAndImages(ctx context.Context, e *env, d *demo) error {
	if err := seedTestbed(ctx, e, d); err != nil {
		return err
	}
	return seedImages(ctx, e, d)
}

// seedTestbed adds the demo pool (testbed.SeedDemo: the demo vendor's, on the local backend, with 8 declared
// h100-80gb devices) and hands it to the marketplace's seed. Idempotent.
func seedTestbed(ctx context.Context, e *env, d *demo) error {
	svc, err := testbed.New(testbed.Deps{DB: e.db, Bus: e.bus, Log: e.log, Clock: e.clock, Holds: testbed.BusHolds{Bus: e.bus},
		Backends: map[string]backend.Backend{"simulator": sim.New(e.clock)}})
	if err != nil {
		return err
	}
	if err := svc.Load(ctx); err != nil {
		return err
	}
	vendor := d.VendorOrgID
	if vendor == "" {
		vendor = "demo-vendor"
		d.Notes = append(d.Notes, "testbed: identity seeded no vendor organisation; the demo pool belongs to \"demo-vendor\"")
	}
	res, err := svc.SeedDemo(ctx, testbed.SeedInput{VendorOrgID: vendor, StaffUserID: d.StaffUserID})
	if err != nil {
		return err
	}
	d.PoolID, d.PoolName, d.PoolRegion = res.PoolID, res.PoolName, res.PoolRegion
	if res.Created {
		d.Notes = append(d.Notes, "testbed: pool \""+res.PoolName+"\" on the local backend with 8 DECLARED h100-80gb devices (no real GPUs are checked)")
	}
	return nil
}

// testbedPreRun lets the local sandbox backend's shim take over a re-executed binary (it exits when it does).
func testbedPreRun() bool {
	local.MaybeRunShim()
	return false
}

// testbedPreflight checks the host can run the configured sandbox backend. A missing runtime is a
// warning, not a refusal: everything but launching on local pools works without it.
func testbedPreflight(c *config, log *slog.Logger) error {
	switch c.SandboxBackend {
	case "local":
		if _, err := exec.LookPath("runc"); err != nil {
			log.Warn("runc not found: install it with `apt-get install runc`; until then sandboxes on local pools cannot launch " +
				"(or run with --sandbox-backend=simulator for a demo without real sandboxes)")
		}
	case "simulator":
		log.Warn("sandbox backend: SIMULATOR (demos and tests only; nothing really runs)")
	default:
		return fmt.Errorf("--sandbox-backend %q: want local or simulator", c.SandboxBackend)
	}
	return nil
}
