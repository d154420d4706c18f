package testbed

import (
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// OpenAPI declares the testbed's operations.
func (s *Service) OpenAPI(d *openapi.Doc) {
	const p = "/api/v1/testbed"
	const tag = "testbed"
	page := []openapi.Param{{Name: "limit", Type: "integer", Description: "1-200, default 50"}, {Name: "cursor", Type: "string"}}
	stream := "the sandbox's organisation (Authorization, or ?access_token=), or ?token= from POST /sandboxes/{id}/token"
	d.Add(
		openapi.Op{Method: "GET", Path: p + "/pools", Summary: "Accelerator pools with backend, region, GPU models, counts and free devices now", Tag: tag, Response: web.List[poolJSON]{}},
		openapi.Op{Method: "POST", Path: p + "/pools", Summary: "Declare a pool (vendor admin: owned by the caller's organisation; staff: vendor_org_id)", Tag: tag, Auth: "vendor admin or staff", Request: createPoolRequest{}, Response: poolJSON{}, Status: 201, Problems: []string{"forbidden", "pool_exists", "image_settings_staff_only"}},
		openapi.Op{Method: "GET", Path: p + "/pools/:id", Summary: "A pool with its nodes and devices (declared devices are labelled declared)", Tag: tag, Response: poolDetailJSON{}, Problems: []string{"pool_not_found"}},
		openapi.Op{Method: "PATCH", Path: p + "/pools/:id", Summary: "Change a pool's name, region or backend settings", Tag: tag, Auth: "pool's vendor admin or staff", Request: updatePoolRequest{}, Response: poolJSON{}, Problems: []string{"pool_not_found", "not_pool_owner", "pool_exists", "image_settings_staff_only"}},
		openapi.Op{Method: "POST", Path: p + "/pools/:id/nodes", Summary: "Add a node with declared devices, or discover them with nvidia-smi on the testbed host (discover: true)", Tag: tag, Auth: "pool's vendor admin or staff", Request: addNodeRequest{}, Response: nodeJSON{}, Status: 201, Problems: []string{"pool_not_found", "not_pool_owner", "node_exists", "discovery_failed"}},
		openapi.Op{Method: "POST", Path: p + "/pools/:id/nodes/:node_id/heartbeat", Summary: "Node heartbeat (a node that was down comes back ready); nodes silent for the node timeout go down", Tag: tag, Auth: "pool's vendor admin or staff", Response: nodeJSON{}, Problems: []string{"pool_not_found", "node_not_found"}},
		openapi.Op{Method: "POST", Path: p + "/pools/:id/nodes/:node_id/drain", Summary: "Drain a node: no new sandboxes, running ones continue", Tag: tag, Auth: "pool's vendor admin or staff", Response: nodeJSON{}, Problems: []string{"pool_not_found", "node_not_found"}},
		openapi.Op{Method: "POST", Path: p + "/pools/:id/nodes/:node_id/health", Summary: "Set a node's health: ready, draining or down (down stops its sandboxes with reason node_lost)", Tag: tag, Auth: "pool's vendor admin or staff", Request: healthRequest{}, Response: nodeJSON{}, Problems: []string{"pool_not_found", "node_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/availability", Summary: "Free devices per pool and GPU model over time buckets (the fewest free at any moment of each bucket)", Tag: tag, Response: web.List[availabilityJSON]{},
			Query: []openapi.Param{{Name: "pool_id", Type: "string"}, {Name: "gpu_model", Type: "string"}, {Name: "from", Type: "string", Description: "RFC 3339, default now"}, {Name: "to", Type: "string", Description: "RFC 3339, default from+24h"}, {Name: "step", Type: "string", Description: "bucket length, default 1h, at most 200 buckets"}}},
		openapi.Op{Method: "GET", Path: p + "/ssh", Summary: "Where the SSH gateway to running sandboxes is reached (docs/ssh.md): host, port and host key fingerprint", Tag: tag, Response: sshEndpointJSON{}},
		openapi.Op{Method: "GET", Path: p + "/templates", Summary: "Sandbox templates: command, environment, ports, default limits, idle signal", Tag: tag, Response: web.List[templateJSON]{}},
		openapi.Op{Method: "GET", Path: p + "/gpu-models", Summary: "GPU models the testbed knows", Tag: tag, Response: web.List[gpuModelJSON]{}},
		openapi.Op{Method: "GET", Path: p + "/listings", Summary: "Published compute listings the testbed can launch (its projection of the marketplace)", Tag: tag, Response: web.List[listingJSON]{},
			Query:    []openapi.Param{{Name: "image_listing_id", Type: "string", Description: "a model or dataset listing with a try-it image: each compute listing then says whether its pool allows that image (image_allowed)"}},
			Problems: []string{"image_listing_not_found"}},
		openapi.Op{Method: "POST", Path: p + "/sandboxes", Summary: "Launch a sandbox: 202 with state requested; it reaches running asynchronously. With image_listing_id it runs that model's or dataset's try-it image", Tag: tag, Auth: "user", Request: launchRequest{}, Response: sandboxJSON{}, Status: 202,
			Problems: []string{"forbidden", "listing_not_found", "access_required", "image_listing_not_found", "image_not_allowed", "mount_listing_not_found", "no_artifacts", "artifacts_mount_unsupported", "artifacts_unavailable", "no_capacity", "insufficient_credits", "billing_unavailable", "backend_unavailable"}},
		openapi.Op{Method: "GET", Path: p + "/sandboxes", Summary: "The organisation's sandboxes, newest first", Tag: tag, Auth: "user", Response: web.List[sandboxJSON]{}, Query: append(page, openapi.Param{Name: "state", Type: "string"})},
		openapi.Op{Method: "GET", Path: p + "/sandboxes/:id", Summary: "A sandbox: state, node, devices, times, usage and charge so far, stop reason. With wait_until it answers once the sandbox has reached that state or gone past it (stopped and failed are past running), or when timeout has passed: read state to know which", Tag: tag, Auth: "user", Response: sandboxJSON{}, Problems: []string{"sandbox_not_found"},
			Query: []openapi.Param{{Name: "wait_until", Type: "string", Description: "a sandbox state to wait for, e.g. running"}, {Name: "timeout", Type: "integer", Description: "seconds to wait at most, 1-25, default 25"}}},
		openapi.Op{Method: "GET", Path: p + "/sandboxes/:id/gpu-samples", Summary: "The sandbox's GPU utilisation and memory over time (its devices together, the most recent samples), or why they are not measured (declared devices, no nvidia-smi on the host that runs it)", Tag: tag, Auth: "user", Response: gpuMetricsJSON{}, Problems: []string{"sandbox_not_found"}},
		openapi.Op{Method: "POST", Path: p + "/sandboxes/:id/stop", Summary: "Stop a sandbox (→ stopping; stopped once its backend confirms)", Tag: tag, Auth: "the organisation or staff", Response: sandboxJSON{}, Status: 202, Problems: []string{"sandbox_not_found", "sandbox_ended"}},
		openapi.Op{Method: "POST", Path: p + "/sandboxes/:id/extend", Summary: "Extend the time box by minutes (billing extends the hold first)", Tag: tag, Auth: "user", Request: extendRequest{}, Response: sandboxJSON{}, Problems: []string{"sandbox_not_found", "sandbox_ended", "insufficient_credits", "billing_unavailable"}},
		openapi.Op{Method: "POST", Path: p + "/sandboxes/:id/token", Summary: "A short-lived token for the sandbox's logs, terminal and proxy (?token=)", Tag: tag, Auth: "user", Response: tokenJSON{}, Status: 201, Problems: []string{"sandbox_not_found", "sandbox_ended"}},
		openapi.Op{Method: "GET", Path: p + "/sandboxes/:id/logs", Summary: "Streamed output (Server-Sent Events: log events, then end); ?follow=false for what is there", Tag: tag, Auth: stream, Problems: []string{"sandbox_not_found", "sandbox_not_running", "invalid_sandbox_token"}},
		openapi.Op{Method: "GET", Path: p + "/sandboxes/:id/terminal", Summary: "WebSocket to a shell on a PTY inside the sandbox: binary frames both ways; text frame {\"type\":\"resize\",\"cols\":N,\"rows\":N}", Tag: tag, Auth: stream, Query: []openapi.Param{{Name: "cmd", Description: "a command to run instead of a login shell, one cmd parameter per argument in order (at most 64, 2 KiB in all); the socket closes when it exits"}}, Problems: []string{"sandbox_not_found", "sandbox_not_running", "upgrade_required", "invalid_sandbox_token", "validation_failed"}},
		openapi.Op{Method: "GET", Path: p + "/sandboxes/:id/proxy/:port/*", Summary: "HTTP proxy to a port the template exposes (JupyterLab); any method", Tag: tag, Auth: stream, Problems: []string{"sandbox_not_found", "sandbox_not_running", "port_not_exposed", "sandbox_port_unreachable"}},
		openapi.Op{Method: "POST", Path: p + "/reservations", Summary: "Book GPUs of a listing for a future window (max length and concurrent reservations per organisation); 409 no_capacity proposes next_free_at", Tag: tag, Auth: "user", Request: reserveRequest{}, Response: reservationJSON{}, Status: 201, Problems: []string{"forbidden", "listing_not_found", "access_required", "no_capacity", "reservation_limit"}},
		openapi.Op{Method: "GET", Path: p + "/reservations", Summary: "The organisation's reservations", Tag: tag, Auth: "user", Response: web.List[reservationJSON]{}, Query: page[:1]},
		openapi.Op{Method: "GET", Path: p + "/audit", Summary: "Staff actions on testbed objects (pools, nodes, other organisations' sandboxes), newest first", Tag: tag, Auth: "staff", Response: web.List[auditJSON]{}, Query: page},
		openapi.Op{Method: "POST", Path: p + "/pools/:id/agent-tokens", Summary: "Create a one-time enrolment token for a site agent of the pool (valid 24 h; shown once, with the command to run)", Tag: tag, Auth: "pool's vendor admin or staff", Request: agentTokenRequest{}, OptionalBody: true, Response: newAgentTokenJSON{}, Status: 201, Problems: []string{"pool_not_found", "not_pool_owner", "pool_not_agent_run"}},
		openapi.Op{Method: "GET", Path: p + "/pools/:id/agent-tokens", Summary: "The pool's enrolment tokens, newest first (never the tokens themselves)", Tag: tag, Auth: "pool's vendor admin or staff", Response: web.List[agentTokenJSON]{}, Problems: []string{"pool_not_found", "not_pool_owner"}},
		openapi.Op{Method: "DELETE", Path: p + "/pools/:id/agent-tokens/:token_id", Summary: "Revoke an enrolment token", Tag: tag, Auth: "pool's vendor admin or staff", Response: agentTokenJSON{}, Problems: []string{"pool_not_found", "not_pool_owner", "agent_token_not_found"}},
		openapi.Op{Method: "GET", Path: p + "/pools/:id/agents", Summary: "The pool's site agents: version, last heartbeat, state, nodes and devices", Tag: tag, Auth: "pool's vendor admin or staff", Response: web.List[agentJSON]{}, Problems: []string{"pool_not_found", "not_pool_owner"}},
		openapi.Op{Method: "DELETE", Path: p + "/pools/:id/agents/:agent_id", Summary: "Revoke an agent: its NATS credentials are revoked, its messages refused, its nodes down", Tag: tag, Auth: "pool's vendor admin or staff", Response: agentJSON{}, Problems: []string{"pool_not_found", "not_pool_owner", "agent_not_found"}},
		openapi.Op{Method: "POST", Path: p + "/agents/enrol", Summary: "Enrol a site agent: trade a one-time token for its identity and NATS credentials (tamarack agent enroll does this)", Tag: tag, Auth: "the enrolment token", Request: enrolRequest{}, Response: enrolJSON{}, Status: 201, Problems: []string{"invalid_enrolment_token"}},
		openapi.Op{Method: "POST", Path: p + "/reservations/:id/cancel", Summary: "Cancel a pending or active reservation", Tag: tag, Auth: "user", Response: reservationJSON{}, Problems: []string{"reservation_not_found", "reservation_not_cancellable"}},
	)
	utilisationOps(d)
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		d.Add(openapi.Op{Method: m, Path: p + "/sandboxes/:id/proxy/:port/*", Summary: "HTTP proxy to a sandbox port (see GET); a body of at most 24 MiB", Tag: tag, Auth: stream,
			Problems: []string{"sandbox_not_found", "sandbox_not_running", "port_not_exposed", "sandbox_port_unreachable", openapi.TooLarge}})
	}
}

// Schema names a client sees where the Go name is vague or taken by another service (see package openapi).

func (auditJSON) SchemaName() string      { return "TestbedAuditEntry" }
func (listingJSON) SchemaName() string    { return "ComputeListing" }
func (tokenJSON) SchemaName() string      { return "SandboxToken" }
func (launchRequest) SchemaName() string  { return "LaunchSandboxRequest" }
func (extendRequest) SchemaName() string  { return "ExtendSandboxRequest" }
func (healthRequest) SchemaName() string  { return "NodeHealthRequest" }
func (reserveRequest) SchemaName() string { return "CreateReservationRequest" }
func (gpuModelJSON) SchemaName() string   { return "GPUModel" }
func (gpuMetricsJSON) SchemaName() string { return "SandboxGPUMetrics" }
func (gpuSampleJSON) SchemaName() string  { return "SandboxGPUSample" }
func (gpuCountJSON) SchemaName() string   { return "ComputeListingGPUCount" }
func (agentJSON) SchemaName() string      { return "SiteAgent" }
func (enrolRequest) SchemaName() string   { return "EnrolAgentRequest" }
func (enrolJSON) SchemaName() string      { return "AgentEnrolment" }
