package events

import (
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// The site agent protocol, version 1: how the testbed drives the agents that run sandboxes next to the GPUs
// (DESIGN.md §5). Every subject of one agent starts with AgentBase(pool, agent), so that NATS permissions can
// confine an enrolled agent to its own subtree: it can neither publish another pool's state nor read anyone
// else's traffic.
//
//	<base>.cmd.<op>.v1         request/reply, testbed → agent (core NATS)
//	<base>.heartbeat.v1        agent → testbed, every few seconds (core NATS: an old heartbeat is worthless)
//	<base>.progress.v1         agent → testbed while an image is pulled (core NATS, newest wins)
//	<base>.evt.sandbox.v1      agent → testbed through the agent's outbox into JetStream (stream AGENT):
//	                           a sandbox started or ended, delivered exactly once even across outages
//	<base>.pipe.<id>.up|down   byte streams (terminal, logs, ports) by platform/natspipe; up is agent → testbed
//
// A change that breaks any payload is a new version (v2) served beside v1 until every agent is upgraded.

// StreamAgent captures the agents' sandbox events.
const StreamAgent = "AGENT"

// EmbeddedAgent is both the pool and the agent part of the subjects of the agent `tamarack serve` runs
// in-process for the platform host's own nodes (nodes with no agent of their own, in any pool on the local
// backend). Pool IDs are generated (pool-…), so no pool can be named like it.
const EmbeddedAgent = "platform"

// AgentBase is the subject prefix of one agent of one pool.
func AgentBase(poolID, agentID string) string { return "tamarack.agent." + poolID + "." + agentID }

// AgentCommand is the request/reply endpoint of one command (start, stop, …) of one agent.
func AgentCommand[Req eventbus.Payload, Resp any](poolID, agentID, op string) eventbus.Endpoint[Req, Resp] {
	return eventbus.Endpoint[Req, Resp]{Name: AgentBase(poolID, agentID) + ".cmd." + op + ".v1"}
}

// Commands of the protocol, by op name.
const (
	AgentOpCheck    = "check"
	AgentOpStart    = "start"
	AgentOpStop     = "stop"
	AgentOpRemove   = "remove"
	AgentOpInspect  = "inspect"
	AgentOpList     = "list"
	AgentOpLogs     = "logs"
	AgentOpTerminal = "terminal"
	AgentOpDial     = "dial"
	// AgentOpExec runs a command without a terminal: stdin down the pipe, stdout, stderr and the exit code up
	// it in frames (testbed/agent/exec.go). AgentOpSFTP serves SFTP over the pipe, rooted at the sandbox's home.
	AgentOpExec = "exec"
	AgentOpSFTP = "sftp"
)

// AgentSandboxEvent is where an agent announces its sandboxes' starts and ends.
func AgentSandboxEvent(poolID, agentID string) eventbus.Subject[AgentSandboxV1] {
	return eventbus.Subject[AgentSandboxV1]{Stream: StreamAgent, Name: AgentBase(poolID, agentID) + ".evt.sandbox.v1"}
}

// AgentSandboxEvents matches every agent's sandbox events (the testbed's consumer).
var AgentSandboxEvents = eventbus.Subject[AgentSandboxV1]{Stream: StreamAgent, Name: "tamarack.agent.*.*.evt.sandbox.v1"}

// AgentStream captures every agent's sandbox events; the platform declares it (agents may not).
var AgentStream = eventbus.Stream{Name: StreamAgent, Subjects: []string{AgentSandboxEvents.Name}}

// AgentHeartbeats and AgentProgress match every agent's heartbeats and pull progress (core NATS).
const (
	AgentHeartbeats = "tamarack.agent.*.*.heartbeat.v1"
	AgentProgress   = "tamarack.agent.*.*.progress.v1"
)

// AgentOf splits a subject under AgentBase into its pool and agent IDs; ok is false for any other subject.
// Subjects arrive without the bus prefix.
func AgentOf(subject string) (poolID, agentID string, ok bool) {
	rest, found := strings.CutPrefix(subject, "tamarack.agent.")
	if !found {
		return "", "", false
	}
	parts := strings.SplitN(rest, ".", 3)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// AgentDeviceV1 is one accelerator of an agent's node, as discovered (CDI specs, nvidia-smi) or declared.
type AgentDeviceV1 struct {
	Index    int    `json:"index"`
	UUID     string `json:"uuid,omitempty"`
	GPUModel string `json:"gpu_model"`
	// MIGProfile is set for a MIG instance; Declared is true when nothing checked the device exists.
	MIGProfile string `json:"mig_profile,omitempty"`
	Declared   bool   `json:"declared,omitempty"`
}

// AgentNodeV1 is one machine an agent runs sandboxes on.
type AgentNodeV1 struct {
	Name        string          `json:"name"`
	CPUMillis   int64           `json:"cpu_millis"`
	MemoryBytes int64           `json:"memory_bytes"`
	Devices     []AgentDeviceV1 `json:"devices"`
	// State is the node's state in the system the agent drives (a Slurm node drained or down): one of the
	// AgentNode* states. Empty: the agent says nothing, the node is up while its agent answers.
	State string `json:"state,omitempty"`
}

// States an agent reports for its nodes. The testbed places no new sandbox on a draining or down node; it
// takes a down node's sandboxes for lost.
const (
	AgentNodeReady    = "ready"
	AgentNodeDraining = "draining"
	AgentNodeDown     = "down"
)

func (n AgentNodeV1) Validate() error {
	var c check
	c.need(n.State == "" || n.State == AgentNodeReady || n.State == AgentNodeDraining || n.State == AgentNodeDown, "state")
	return c.err("agent node")
}

// AgentStatusV1 is a backend.Status on the wire.
type AgentStatusV1 struct {
	SandboxID string    `json:"sandbox_id"`
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	ExitCode  int       `json:"exit_code"`
	Reason    string    `json:"reason,omitempty"`
	Message   string    `json:"message,omitempty"`
}

func (s AgentStatusV1) Validate() error {
	var c check
	c.need(s.SandboxID != "", "sandbox_id")
	c.need(s.State != "", "state")
	return c.err("agent status")
}

// AgentHeartbeatV1 is an agent's periodic sign of life. Running lists the sandboxes the agent observed running
// at At: the testbed meters them up to that instant and no further.
type AgentHeartbeatV1 struct {
	AgentID string `json:"agent_id"`
	PoolID  string `json:"pool_id"`
	Version string `json:"version"`
	// Boot changes each time the agent process starts: a new one makes the testbed reconcile with it.
	Boot    string        `json:"boot"`
	Backend string        `json:"backend"`
	Problem string        `json:"problem,omitempty"` // the backend's Check error: why it cannot start sandboxes now
	Nodes   []AgentNodeV1 `json:"nodes"`
	Running []string      `json:"running"`
	At      time.Time     `json:"at"`
	// GPUSampler is true when the agent measures its host's GPUs (nvidia-smi). GPUs are its measurements of
	// every device of its host, taken with this heartbeat while one of its sandboxes runs; the testbed charts
	// each sandbox's devices from them. Both are optional additions to v1: older agents send neither, older
	// testbeds ignore them.
	GPUSampler bool             `json:"gpu_sampler,omitempty"`
	GPUs       []AgentGPUStatV1 `json:"gpus,omitempty"`
}

// AgentGPUStatV1 is one device's utilisation and memory at the heartbeat's instant (gpustat.Stat on the wire).
type AgentGPUStatV1 struct {
	UUID string `json:"uuid"`
	// UtilizationPct is 0-100, or -1 when the driver does not report it (MIG instances).
	UtilizationPct int   `json:"utilization_pct"`
	MemoryUsedMiB  int64 `json:"memory_used_mib"`
	MemoryTotalMiB int64 `json:"memory_total_mib"`
}

// MaxAgentGPUStats bounds the devices one heartbeat reports (a host has a handful; MIG at most 7 per GPU).
const MaxAgentGPUStats = 512

func (g AgentGPUStatV1) Validate() error {
	var c check
	c.need(g.UUID != "", "uuid")
	c.need(g.UtilizationPct >= -1 && g.UtilizationPct <= 100, "utilization_pct")
	c.need(g.MemoryUsedMiB >= 0 && g.MemoryTotalMiB >= 0, "memory")
	return c.err("agent gpu stat")
}

func (h AgentHeartbeatV1) Validate() error {
	var c check
	c.need(h.AgentID != "", "agent_id")
	c.need(h.PoolID != "", "pool_id")
	c.need(h.Boot != "", "boot")
	c.need(set(h.At), "at")
	for _, n := range h.Nodes {
		if n.Validate() != nil {
			c.need(false, "nodes")
			break
		}
	}
	c.need(len(h.GPUs) <= MaxAgentGPUStats, "gpus")
	for _, g := range h.GPUs {
		if g.Validate() != nil {
			c.need(false, "gpus")
			break
		}
	}
	return c.err("agent heartbeat")
}

// AgentProgressV1 is how far the image of a starting sandbox is (image.Progress on the wire).
type AgentProgressV1 struct {
	SandboxID string `json:"sandbox_id"`
	Phase     string `json:"phase"` // pulling, unpacking
	Done      int64  `json:"done"`
	Total     int64  `json:"total"`
	Ref       string `json:"ref"`
}

func (p AgentProgressV1) Validate() error {
	var c check
	c.need(p.SandboxID != "", "sandbox_id")
	c.need(p.Phase != "", "phase")
	return c.err("agent progress")
}

// AgentSandboxV1 announces that one of an agent's sandboxes started or ended, as its runtime observed it.
// Event ID = "<agent>-<sandbox>-<state>".
type AgentSandboxV1 struct {
	AgentID string        `json:"agent_id"`
	PoolID  string        `json:"pool_id"`
	Status  AgentStatusV1 `json:"status"`
	At      time.Time     `json:"at"`
}

func (e AgentSandboxV1) Validate() error {
	var c check
	c.need(e.AgentID != "", "agent_id")
	c.need(e.PoolID != "", "pool_id")
	c.need(e.Status.Validate() == nil, "status")
	c.need(set(e.At), "at")
	return c.err("agent sandbox event")
}

// AgentDeviceRefV1 is a backend.Device on the wire.
type AgentDeviceRefV1 struct {
	Index   int      `json:"index"`
	UUID    string   `json:"uuid,omitempty"`
	Model   string   `json:"model,omitempty"`
	Paths   []string `json:"paths,omitempty"`
	CDIName string   `json:"cdi_name,omitempty"`
}

// AgentStartV1 starts a sandbox: a backend.Spec, plus the image the agent prepares on its own host first
// (Image: a built-in name or a pinned reference; ImageSettings: the pool's images.* settings, its allow-list
// and registry credentials).
type AgentStartV1 struct {
	SandboxID     string             `json:"sandbox_id"`
	Command       []string           `json:"command,omitempty"`
	Env           map[string]string  `json:"env,omitempty"`
	Devices       []AgentDeviceRefV1 `json:"devices,omitempty"`
	Network       bool               `json:"network,omitempty"`
	Ports         []int              `json:"ports,omitempty"`
	MemoryBytes   int64              `json:"memory_bytes,omitempty"`
	CPUMillis     int64              `json:"cpu_millis,omitempty"`
	Pids          int64              `json:"pids,omitempty"`
	LogBytes      int64              `json:"log_bytes,omitempty"`
	DurationMS    int64              `json:"duration_ms,omitempty"` // the booked run time; 0: none
	Settings      map[string]string  `json:"settings,omitempty"`
	Image         string             `json:"image,omitempty"`
	ImageSettings map[string]string  `json:"image_settings,omitempty"`
	// Mounts are listings' artifacts the agent fetches onto its host (cached by digest) and binds into the
	// sandbox read-only. Added within v1: an agent that predates them ignores them, so the testbed only
	// sends them to pools whose backend binds host directories (local).
	Mounts []AgentMountV1 `json:"mounts,omitempty"`
}

// AgentMountV1 is one listing version's artifacts, seen read-only at Target inside the sandbox.
type AgentMountV1 struct {
	ListingID string            `json:"listing_id"`
	Target    string            `json:"target"`
	Files     []AgentArtifactV1 `json:"files"`
}

// AgentArtifactV1 is one artifact file: its name inside the mount, its content digest (what the agent
// checks the bytes against and caches them by) and a signed, expiring URL to fetch it from, absolute (a blob
// store's own) or relative to the platform's address.
type AgentArtifactV1 struct {
	Name      string `json:"name"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	URL       string `json:"url"`
}

func (r AgentStartV1) Validate() error {
	var c check
	c.need(r.SandboxID != "", "sandbox_id")
	c.need(r.DurationMS >= 0, "duration_ms")
	for _, m := range r.Mounts {
		c.need(m.ListingID != "" && m.Target != "", "mounts")
		for _, f := range m.Files {
			c.need(f.Name != "" && len(f.SHA256) == 64 && f.URL != "" && f.SizeBytes >= 0, "mounts.files")
		}
	}
	return c.err("agent start")
}

// AgentStartedV1 answers a start: what the backend observed, and the digest of the image it started from.
type AgentStartedV1 struct {
	Status      AgentStatusV1 `json:"status"`
	ImageDigest string        `json:"image_digest,omitempty"`
}

// AgentSandboxRefV1 names one sandbox (inspect, remove).
type AgentSandboxRefV1 struct {
	SandboxID string `json:"sandbox_id"`
}

func (r AgentSandboxRefV1) Validate() error {
	var c check
	c.need(r.SandboxID != "", "sandbox_id")
	return c.err("agent request")
}

// AgentStopV1 stops a sandbox: TERM, then KILL after Grace.
type AgentStopV1 struct {
	SandboxID string `json:"sandbox_id"`
	GraceMS   int64  `json:"grace_ms"`
}

func (r AgentStopV1) Validate() error {
	var c check
	c.need(r.SandboxID != "", "sandbox_id")
	c.need(r.GraceMS >= 0, "grace_ms")
	return c.err("agent stop")
}

// AgentEmptyV1 is a request or reply with nothing in it (check, list, remove).
type AgentEmptyV1 struct{}

func (AgentEmptyV1) Validate() error { return nil }

// AgentListV1 is every sandbox an agent holds.
type AgentListV1 struct {
	Sandboxes []AgentStatusV1 `json:"sandboxes"`
}

// AgentStreamV1 opens a byte stream to a sandbox on pipe Pipe (subjects <base>.pipe.<Pipe>.up|down): its
// logs (Op logs, Follow), a terminal running Command (Op terminal, Cols×Rows) or a TCP port (Op dial, Port).
// The agent answers once the stream is ready on its side, or with the error that stops it.
type AgentStreamV1 struct {
	SandboxID string   `json:"sandbox_id"`
	Pipe      string   `json:"pipe"`
	Follow    bool     `json:"follow,omitempty"`
	Command   []string `json:"command,omitempty"`
	Cols      uint16   `json:"cols,omitempty"`
	Rows      uint16   `json:"rows,omitempty"`
	Port      int      `json:"port,omitempty"`
}

func (r AgentStreamV1) Validate() error {
	var c check
	c.need(r.SandboxID != "", "sandbox_id")
	c.need(r.Pipe != "" && !strings.ContainsAny(r.Pipe, ".*> "), "pipe")
	c.need(r.Port >= 0 && r.Port <= 65535, "port")
	return c.err("agent stream")
}

// AgentPipe returns the subjects of one pipe of an agent: up carries agent → testbed, down the reverse.
func AgentPipe(poolID, agentID, pipe string) (up, down string) {
	b := AgentBase(poolID, agentID) + ".pipe." + pipe
	return b + ".up", b + ".down"
}
