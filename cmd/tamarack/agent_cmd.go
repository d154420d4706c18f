package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/platform/clock"
	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/natsauth"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/agent"
	"github.com/tamarack-ai/tamarack/testbed/artifact"
	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/kubernetes"
	"github.com/tamarack-ai/tamarack/testbed/backend/local"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
	"github.com/tamarack-ai/tamarack/testbed/backend/sim"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
	"github.com/tamarack-ai/tamarack/testbed/gpustat"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// `tamarack agent`: the site agent a vendor runs next to its GPUs (docs/sandbox-backends.md). It is enrolled
// once (enroll: a one-time token for its identity and NATS credentials, kept in its data directory), then
// runs (run: connects out to the platform's NATS, registers its node, runs the sandboxes placed on it).

const agentUsage = `usage:
  tamarack agent enroll --url URL --token TOKEN [--data DIR] [--name NAME]
  tamarack agent run [--data DIR] [--backend local|simulator] [--node NAME] [--gpus MODEL:COUNT] [--runsc PATH]
  tamarack agent run [--data DIR] --backend slurm --slurm-url URL --slurm-user USER --slurm-token-file FILE
      [--slurm-partition P] [--slurm-account A] [--slurm-qos Q] [--slurm-gres MODEL=TYPE[,MODEL=TYPE…]]
      [--slurm-dir DIR] [--slurm-images DIR] [--slurm-step "sudo -n /usr/local/bin/tamarack"]
  tamarack agent run [--data DIR] --backend kubernetes [--kube-config FILE] [--kube-namespace NS]
      [--kube-gpu-models PRODUCT=MODEL[,PRODUCT=MODEL…]] [--kube-runtime-class CLASS]

A Slurm agent runs on a login node: its nodes are the partition's (from Slurm, drained and down ones so
marked), each sandbox a job. --slurm-dir (default <data>/slurm-jobs) and --slurm-images (default
<data>/images) must be on a filesystem the compute nodes see, the images readable there by the job's user.
Each flag defaults to its variable: TAMARACK_AGENT_SLURM_URL, …_USER, …_TOKEN_FILE, and so on.

A Kubernetes agent runs in the cluster (in-cluster service account) or beside it (--kube-config): its
nodes are the cluster's GPU nodes (cordoned ones draining, NotReady ones down), each sandbox a Pod in
--kube-namespace (default tamarack-sandboxes) whose node pulls the image; RBAC in infra/k8s/agent.
Its flags default to TAMARACK_AGENT_KUBE_CONFIG, …_NAMESPACE, …_GPU_MODELS and …_RUNTIME_CLASS.
`

// agentFile is the agent's identity in its data directory, written by enroll.
type agentFile struct {
	PlatformURL string `json:"platform_url"`
	PoolID      string `json:"pool_id"`
	AgentID     string `json:"agent_id"`
	NATSURL     string `json:"nats_url"`
	NATSPrefix  string `json:"nats_prefix,omitempty"`
	RegistryURL string `json:"registry_url,omitempty"`
}

func agentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, agentUsage)
		return errors.New("agent: enroll or run")
	}
	switch args[0] {
	case "enroll", "enrol":
		return agentEnroll(ctx, args[1:], stdout, stderr)
	case "run":
		return agentRun(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, agentUsage)
		return nil
	}
	fmt.Fprint(stderr, agentUsage)
	return fmt.Errorf("agent: unknown subcommand %q", args[0])
}

func agentEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", os.Getenv("TAMARACK_URL"), "the platform's address, e.g. https://tamarack.example.org")
	token := fs.String("token", os.Getenv("TAMARACK_ENROL_TOKEN"), "the one-time enrolment token from the pool's page")
	data := fs.String("data", envOr("TAMARACK_AGENT_DATA", "/var/lib/tamarack-agent"), "the agent's data directory")
	host, _ := os.Hostname()
	name := fs.String("name", host, "the agent's name for people")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var errs []error
	if *url == "" {
		errs = append(errs, errors.New("--url is required"))
	}
	if *token == "" {
		errs = append(errs, errors.New("--token is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*data, "agent.json")); err == nil {
		return fmt.Errorf("%s is enrolled already (agent.json): run `tamarack agent run --data %s`, or use another directory", *data, *data)
	}
	body, _ := json.Marshal(map[string]string{"token": *token, "name": *name, "version": version})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(*url, "/")+"/api/v1/testbed/agents/enrol", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		var p struct{ Title, Detail string }
		_ = json.Unmarshal(raw, &p)
		return fmt.Errorf("enrol: %s %s %s", resp.Status, p.Title, p.Detail)
	}
	var e struct {
		AgentID     string `json:"agent_id"`
		PoolID      string `json:"pool_id"`
		NATSURL     string `json:"nats_url"`
		NATSPrefix  string `json:"nats_prefix"`
		Creds       string `json:"creds"`
		RegistryURL string `json:"registry_url"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("enrol: bad answer: %w", err)
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	if e.Creds != "" {
		if err := os.WriteFile(filepath.Join(*data, "agent.creds"), []byte(e.Creds), 0o600); err != nil {
			return err
		}
	}
	f := agentFile{PlatformURL: *url, PoolID: e.PoolID, AgentID: e.AgentID, NATSURL: e.NATSURL, NATSPrefix: e.NATSPrefix, RegistryURL: e.RegistryURL}
	b, _ := json.MarshalIndent(f, "", "  ")
	if err := os.WriteFile(filepath.Join(*data, "agent.json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled as agent %s of pool %s; start it with: tamarack agent run --data %s\n", e.AgentID, e.PoolID, *data)
	if e.Creds == "" {
		fmt.Fprintln(stdout, "warning: the platform's NATS has no accounts: this agent is not isolated from other agents")
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func agentRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", envOr("TAMARACK_AGENT_DATA", "/var/lib/tamarack-agent"), "the agent's data directory (enrolled)")
	kind := fs.String("backend", envOr("TAMARACK_AGENT_BACKEND", "local"), "local (runc on this host), slurm (jobs on a Slurm cluster, from its login node), kubernetes (a Pod per sandbox) or simulator (demos and tests: nothing runs)")
	host, _ := os.Hostname()
	node := fs.String("node", host, "this node's name in the pool")
	gpus := fs.String("gpus", "", "declare devices instead of discovering them, MODEL:COUNT (e.g. h100-80gb:8); marked declared")
	runsc := fs.String("runsc", os.Getenv("TAMARACK_RUNSC"), "gVisor's runsc, for pools that choose it (infra/gvisor/build.sh)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	sf := addSlurmFlags(fs)
	kf := addKubeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	declared, err := parseDeclaredGPUs(*gpus)
	if err != nil {
		return err
	}
	// The flags are checked before anything is opened: a wrong one is the first thing an operator sees.
	var slurmOpts slurm.Options
	var slurmImages string
	var kubeOpts kubernetes.Options
	switch *kind {
	case "local", "simulator":
	case "slurm":
		var errs []error
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name == "gpus" || fl.Name == "node" {
				errs = append(errs, fmt.Errorf("--%s: a Slurm agent's nodes and devices are the partition's, as Slurm reports them", fl.Name))
			}
		})
		slurmOpts, slurmImages, err = sf.options(*data, log)
		if err := errors.Join(append(errs, err)...); err != nil {
			return err
		}
	case "kubernetes":
		var errs []error
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name == "gpus" || fl.Name == "node" {
				errs = append(errs, fmt.Errorf("--%s: a Kubernetes agent's nodes and devices are the cluster's GPU nodes, as the API server reports them", fl.Name))
			}
		})
		kubeOpts, err = kf.options(log)
		if err := errors.Join(append(errs, err)...); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--backend %q: want local, slurm, kubernetes or simulator", *kind)
	}
	raw, err := os.ReadFile(filepath.Join(*data, "agent.json"))
	if err != nil {
		return fmt.Errorf("%s is not enrolled: run `tamarack agent enroll --url … --token …` first (%w)", *data, err)
	}
	var f agentFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return fmt.Errorf("agent.json: %w", err)
	}
	if f.NATSURL == "" {
		return errors.New("agent.json has no NATS URL: the platform must be configured with the address agents reach its NATS at (--agent-nats-url)")
	}
	opt := eventbus.Options{URL: f.NATSURL, Prefix: f.NATSPrefix, Name: "tamarack-agent " + f.AgentID, Logger: log, AgentOnly: true}
	if creds := filepath.Join(*data, "agent.creds"); fileExists(creds) {
		opt.Creds = creds
		opt.InboxPrefix = natsauth.Scope{PoolID: f.PoolID, AgentID: f.AgentID}.InboxPrefix()
	}
	bus, err := eventbus.Connect(ctx, opt)
	if err != nil {
		return err
	}
	defer bus.Close()
	db, err := sqldb.Open(ctx, filepath.Join(*data, "agent.db"), sqldb.Options{Logger: log})
	if err != nil {
		return err
	}
	defer sqldb.Close(db)
	if err := sqldb.Migrate(ctx, db, log, agent.Migrations()); err != nil {
		return err
	}
	var b backend.Backend
	var images agent.Images
	var devices []testbed.DeviceInput
	var nodes func(context.Context) ([]events.AgentNodeV1, error) // nil: this host, one node
	reg := strings.TrimPrefix(strings.TrimPrefix(f.RegistryURL, "http://"), "https://")
	switch *kind {
	case "simulator":
		b = sim.New(clock.System{})
	case "local":
		edits, err := cdi.Open([]string{"/etc/cdi", "/var/run/cdi"}, log)
		if err != nil {
			return err
		}
		lb, err := local.New(local.Options{Root: filepath.Join(*data, "sandboxes"), Runsc: *runsc, Logger: log, FileEdits: []local.FileEdit{edits.Edit}})
		if err != nil {
			return err
		}
		b = lb
		cache, err := image.New(image.Options{Dir: filepath.Join(*data, "images"), Logger: log})
		if err != nil {
			return err
		}
		images = &image.Provider{Cache: cache, Registry: reg, Builtin: func() (image.Builtin, error) { return image.Builtin{}, nil }}
		if err := reachableImages(*data, log); err != nil {
			log.Warn("sandboxes cannot start from their images until this is fixed", "err", err)
		}
		if declared == nil {
			found, err := testbed.DiscoverGPUs(ctx, []string{"/etc/cdi", "/var/run/cdi"})
			if err != nil {
				log.Warn("GPU discovery failed: this node offers no devices", "err", err)
			}
			devices = found
		}
	case "slurm":
		sb, err := slurm.New(slurmOpts)
		if err != nil {
			return err
		}
		b, nodes = sb, sb.Nodes
		// The job's step on a compute node starts the sandbox from the root unpacked here, on the shared
		// filesystem: the same directory, read there.
		cache, err := image.New(image.Options{Dir: slurmImages, Logger: log})
		if err != nil {
			return err
		}
		images = &image.Provider{Cache: cache, Registry: reg, Builtin: func() (image.Builtin, error) { return image.Builtin{}, nil }}
		if err := reachableImages(filepath.Dir(slurmImages), log); err != nil {
			log.Warn("sandboxes cannot start from their images until this is fixed", "err", err)
		}
	case "kubernetes":
		kb, err := kubernetes.New(kubeOpts)
		if err != nil {
			return err
		}
		defer kb.Close()
		b, nodes = kb, kb.Nodes // images: nil, the nodes pull them
	}
	if err := b.Check(ctx); err != nil {
		log.Warn("this host cannot run sandboxes until this is fixed (tamarack doctor lists what it lacks); the agent reports it to the platform", "err", err)
	}
	n := events.AgentNodeV1{Name: *node, CPUMillis: int64(numCPU()) * 1000, MemoryBytes: memoryBytes()}
	for _, d := range devices {
		n.Devices = append(n.Devices, events.AgentDeviceV1{Index: d.Index, UUID: d.UUID, GPUModel: d.GPUModel})
	}
	for i, m := range declared {
		n.Devices = append(n.Devices, events.AgentDeviceV1{Index: i, GPUModel: m, Declared: true})
	}
	where := fmt.Sprintf("node %s with %d device(s)", n.Name, len(n.Devices))
	if nodes == nil {
		nodes = func(context.Context) ([]events.AgentNodeV1, error) { return []events.AgentNodeV1{n}, nil }
	} else if *kind == "kubernetes" {
		where = fmt.Sprintf("Kubernetes at %s, namespace %s", kubeOpts.Config.Host, kubeOpts.Namespace)
	} else {
		where = "Slurm at " + slurmOpts.URL
	}
	var arts agent.Artifacts
	if *kind == "local" { // only the local backend binds this host's directories into its sandboxes
		c, err := artifact.New(artifact.Options{Dir: filepath.Join(*data, "artifacts"), BaseURL: f.PlatformURL, Log: log})
		if err != nil {
			return err
		}
		arts = c
	}
	srv, err := agent.NewServer(agent.Config{PoolID: f.PoolID, AgentID: f.AgentID, Version: version, Backend: b, Images: images,
		Artifacts: arts, Nodes: nodes, DB: db, Bus: bus, Log: log, GPUStats: gpustat.NvidiaSMI([]string{"/etc/cdi", "/var/run/cdi"})})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "agent %s of pool %s: connected to %s; %s\n", f.AgentID, f.PoolID, f.NATSURL, where)
	return srv.Run(ctx)
}

// parseDeclaredGPUs reads --gpus MODEL:COUNT into one model per device; nil when not given.
func parseDeclaredGPUs(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	model, count, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 || n > 64 || model == "" {
		return nil, fmt.Errorf("--gpus %q: want MODEL:COUNT, 1 to 64 devices, e.g. h100-80gb:8", v)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = model
	}
	return out, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func numCPU() int { return runtime.NumCPU() }

// memoryBytes is this host's memory, for the node's capacity.
func memoryBytes() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 1 << 30
	}
	return int64(si.Totalram) * int64(si.Unit)
}
