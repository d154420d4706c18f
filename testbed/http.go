package testbed

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/money"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/testbed/artifact"
)

type handler struct{ svc *Service }

// Routes mounts the testbed's API on r (the /api/v1/testbed group).
func (s *Service) Routes(r fiber.Router) {
	h := handler{svc: s}
	write := web.RequireScope("write")
	// The proxy reads its body itself, once it knows the sandbox (proxyMaxBody).
	web.ReadsOwnBody("*", "/api/v1/testbed/sandboxes/:id/proxy/:port/*")
	r.Use(web.LimitBody(MaxBody))
	r.Get("/pools", h.listPools)
	r.Post("/pools", web.RequireAuth, write, h.createPool)
	r.Get("/pools/:id", h.getPool)
	r.Patch("/pools/:id", web.RequireAuth, write, h.updatePool)
	r.Post("/pools/:id/nodes", web.RequireAuth, write, h.addNode)
	r.Post("/pools/:id/nodes/:node_id/heartbeat", web.RequireAuth, write, h.heartbeat)
	r.Post("/pools/:id/nodes/:node_id/drain", web.RequireAuth, write, h.drain)
	r.Post("/pools/:id/nodes/:node_id/health", web.RequireAuth, write, h.setHealth)
	r.Get("/availability", h.availability)
	r.Get("/templates", h.templates)
	r.Get("/ssh", h.sshEndpoint)
	r.Get("/gpu-models", h.gpuModels)
	r.Get("/listings", h.listings)
	r.Post("/sandboxes", web.RequireAuth, write, web.RequireVerifiedEmail, h.launch)
	r.Get("/sandboxes", web.RequireAuth, h.listSandboxes)
	r.Get("/sandboxes/:id", web.RequireAuth, h.getSandbox)
	r.Get("/sandboxes/:id/gpu-samples", web.RequireAuth, h.gpuSamples)
	r.Post("/sandboxes/:id/stop", web.RequireAuth, write, h.stop)
	r.Post("/sandboxes/:id/extend", web.RequireAuth, write, web.RequireVerifiedEmail, h.extend)
	r.Post("/sandboxes/:id/token", web.RequireAuth, write, h.token)
	r.Get("/sandboxes/:id/logs", h.logs)
	r.Get("/sandboxes/:id/terminal", h.terminalUpgrade, h.terminal())
	r.All("/sandboxes/:id/proxy/:port/*", h.proxy)
	r.Post("/reservations", web.RequireAuth, write, web.RequireVerifiedEmail, h.reserve)
	r.Get("/reservations", web.RequireAuth, h.listReservations)
	r.Post("/reservations/:id/cancel", web.RequireAuth, write, h.cancelReservation)
	r.Get("/audit", web.RequireStaff, h.audit)
	r.Post("/pools/:id/agent-tokens", web.RequireAuth, write, h.createAgentToken)
	r.Get("/pools/:id/agent-tokens", web.RequireAuth, h.agentTokens)
	r.Delete("/pools/:id/agent-tokens/:token_id", web.RequireAuth, write, h.revokeAgentToken)
	r.Get("/pools/:id/agents", web.RequireAuth, h.agents)
	r.Delete("/pools/:id/agents/:agent_id", web.RequireAuth, write, h.revokeAgent)
	// The enrolment token is the agent's only credential here.
	r.Post("/agents/enrol", h.enrol)
	s.utilisationRoutes(r)
}

// MaxBody caps the testbed's JSON request bodies.
const MaxBody = 64 << 10

func callerOf(c *fiber.Ctx) web.Principal {
	return web.PrincipalOf(c)
}

// JSON types.

type poolJSON struct {
	ID          string            `json:"id"`
	VendorOrgID string            `json:"vendor_org_id"`
	Name        string            `json:"name"`
	Region      string            `json:"region"`
	Backend     string            `json:"backend"`
	Settings    map[string]string `json:"settings"`
	Nodes       int               `json:"nodes"`
	GPUs        []poolGPUJSON     `json:"gpus"`
	// BackendProblem (pool managers only) says why sandboxes cannot start on the pool's backend here,
	// and how to fix it (runc not found: install it with apt-get install runc).
	BackendProblem string    `json:"backend_problem,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

type poolGPUJSON struct {
	GPUModel string `json:"gpu_model"`
	Total    int    `json:"total"`
	FreeNow  int    `json:"free_now"`
}

func toPoolJSON(v PoolView) poolJSON {
	out := poolJSON{ID: v.ID, VendorOrgID: v.VendorOrgID, Name: v.Name, Region: v.Region, Backend: v.Backend,
		Settings: v.SettingsMap(), Nodes: v.Nodes, GPUs: []poolGPUJSON{}, BackendProblem: v.BackendProblem,
		CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
	for _, m := range GPUModels() {
		if c, ok := v.Models[m]; ok {
			out.GPUs = append(out.GPUs, poolGPUJSON{GPUModel: m, Total: c[1], FreeNow: c[0]})
		}
	}
	return out
}

// toPoolJSONFor hides the backend settings (partitions, namespaces, endpoints) from all but the pool's managers:
// the catalogue of pools is public, how they are wired is not.
func toPoolJSONFor(c web.Principal, v PoolView) poolJSON {
	out := toPoolJSON(v)
	if !canManagePool(c, v.Pool) {
		out.Settings = map[string]string{}
		out.BackendProblem = ""
	}
	return out
}

type poolDetailJSON struct {
	poolJSON
	NodeList []nodeJSON `json:"node_list"`
}

type nodeJSON struct {
	ID            string    `json:"id"`
	PoolID        string    `json:"pool_id"`
	Name          string    `json:"name"`
	Health        string    `json:"health"`
	CPUMillis     int64     `json:"cpu_millis"`
	MemoryBytes   int64     `json:"memory_bytes"`
	LastHeartbeat time.Time `json:"last_heartbeat_at"`
	// AgentID is the site agent that registered it; empty for the platform host's own nodes.
	AgentID string       `json:"agent_id,omitempty"`
	Devices []deviceJSON `json:"devices"`
}

type deviceJSON struct {
	ID          string   `json:"id"`
	Index       int      `json:"index"`
	UUID        string   `json:"uuid"`
	GPUModel    string   `json:"gpu_model"`
	MemoryMiB   int64    `json:"memory_mib"`
	MIGProfiles []string `json:"mig_profiles"`
	// Declared devices were declared by the vendor, not discovered on the node: nothing checked they exist.
	Declared bool `json:"declared"`
}

func toNodeJSON(n Node, devs []Device) nodeJSON {
	out := nodeJSON{ID: n.ID, PoolID: n.PoolID, Name: n.Name, Health: n.Health, CPUMillis: n.CPUMillis,
		MemoryBytes: n.MemoryBytes, LastHeartbeat: n.HeartbeatAt, AgentID: n.AgentID, Devices: []deviceJSON{}}
	for _, d := range devs {
		if d.NodeID != n.ID {
			continue
		}
		mig := d.MIG()
		if mig == nil {
			mig = []string{}
		}
		out.Devices = append(out.Devices, deviceJSON{ID: d.ID, Index: d.Idx, UUID: d.UUID, GPUModel: d.GPUModel,
			MemoryMiB: d.MemoryMiB, MIGProfiles: mig, Declared: d.Declared})
	}
	return out
}

type createPoolRequest struct {
	Name        string            `json:"name" openapi:"required"`
	Region      string            `json:"region" openapi:"required"`
	Backend     string            `json:"backend" openapi:"required" doc:"local, simulator, slurm or kubernetes"`
	Settings    map[string]string `json:"settings" doc:"backend settings. local: runtime (runc or runsc). slurm: slurm.partition, slurm.account, slurm.qos (Slurm names, 1-64 of A-Za-z0-9_.-; other slurm.* keys are refused). Any backend: images.allow, images.auth.<registry> (staff only)"`
	VendorOrgID string            `json:"vendor_org_id"` // staff only; vendors always own their pools
}

type updatePoolRequest struct {
	Name     *string           `json:"name"`
	Region   *string           `json:"region"`
	Settings map[string]string `json:"settings" doc:"when given, replaces them all (the same keys as when declaring the pool)"`
}

type deviceRequest struct {
	Index       int      `json:"index"`
	UUID        string   `json:"uuid"`
	GPUModel    string   `json:"gpu_model" openapi:"required"`
	MemoryMiB   int64    `json:"memory_mib"`
	MIGProfiles []string `json:"mig_profiles"`
}

type addNodeRequest struct {
	Name        string          `json:"name" openapi:"required"`
	CPUMillis   int64           `json:"cpu_millis" openapi:"required"`
	MemoryBytes int64           `json:"memory_bytes" openapi:"required"`
	Devices     []deviceRequest `json:"devices" doc:"required unless discover is true"`
	// Discover asks nvidia-smi on the testbed host (local pools); declared devices are the fallback.
	Discover bool `json:"discover"`
}

type healthRequest struct {
	Health string `json:"health" openapi:"required" doc:"ready, draining or down"`
}

type availabilityJSON struct {
	PoolID   string    `json:"pool_id"`
	GPUModel string    `json:"gpu_model"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Free     int       `json:"free"`
	Total    int       `json:"total"`
}

type templateJSON struct {
	Name               string            `json:"name"`
	Title              string            `json:"title"`
	Description        string            `json:"description"`
	Command            []string          `json:"command"`
	Env                map[string]string `json:"env"`
	Ports              []int             `json:"ports"`
	Network            bool              `json:"network"`
	CPUMillisPerGPU    int64             `json:"cpu_millis_per_gpu"`
	MemoryBytesPerGPU  int64             `json:"memory_bytes_per_gpu"`
	Pids               int64             `json:"pids"`
	IdleSignal         string            `json:"idle_signal"`
	IdleTimeoutMinutes int               `json:"idle_timeout_minutes"`
	Notes              string            `json:"notes,omitempty"`
	// Image is the template's root filesystem: a built-in image's name or a reference pinned by digest.
	Image string `json:"image"`
}

type gpuModelJSON struct {
	Name      string `json:"name"`
	MemoryMiB int64  `json:"memory_mib"`
}

type listingJSON struct {
	ID                 string `json:"id"`
	VendorOrgID        string `json:"vendor_org_id"`
	Title              string `json:"title"`
	PoolID             string `json:"pool_id"`
	GPUModel           string `json:"gpu_model"`
	Region             string `json:"region"`
	MinDurationMinutes int    `json:"min_duration_minutes"`
	MaxDurationMinutes int    `json:"max_duration_minutes"`
	PricePerGPUHour    int64  `json:"price_per_gpu_hour_micro"`
	// Gated listings need the vendor's approval (an access request in the marketplace); AccessRequired says
	// the caller's organisation does not have it yet, so launching and reserving answer 403 access_required.
	Gated          bool `json:"gated"`
	AccessRequired bool `json:"access_required"`
	// ImageAllowed answers ?image_listing_id=: whether the listing's pool allows that listing's try-it image
	// (absent without the parameter).
	ImageAllowed *bool `json:"image_allowed,omitempty"`
	// GPUCounts are the GPU counts a sandbox of this listing may ask for (1 to the most devices of its model
	// on one ready node of its pool), each with how many such sandboxes free devices could hold now. Empty
	// when the pool has no ready node with the model.
	GPUCounts []gpuCountJSON `json:"gpu_counts"`
	// DiskBytes is each sandbox's disk (its home's quota) where the pool's backend sets one the testbed knows
	// (local pools); absent where the site decides (Slurm, Kubernetes).
	DiskBytes int64 `json:"disk_bytes,omitempty"`
}

// localHomeBytes is the local backend's home quota per sandbox (local.Options.HomeBytes, left at its default
// of 10 GiB by tamarack serve and the agent).
const localHomeBytes = 10 << 30

// gpuCountJSON is one GPU count a listing offers and its capacity now (see placement.CountCapacity).
type gpuCountJSON struct {
	GPUCount int `json:"gpu_count"`
	FreeNow  int `json:"free_now" doc:"sandboxes of this many GPUs that free devices could hold now, each on one node (CPU, memory and reservations aside)"`
}

type launchRequest struct {
	ListingID       string `json:"listing_id" openapi:"required"`
	GPUModel        string `json:"gpu_model" doc:"default: the listing's GPU model (a compute listing offers one)"`
	GPUCount        int    `json:"gpu_count" openapi:"required" doc:"1 to 8 devices (one node)"`
	MIGProfile      string `json:"mig_profile"`
	Template        string `json:"template" doc:"a template name from GET /api/v1/testbed/templates; required unless image_listing_id is given (default then: tryit, the try-it profile)"`
	DurationMinutes int    `json:"duration_minutes" openapi:"required" doc:"within the listing's minimum and maximum"`
	CPUMillis       int64  `json:"cpu_millis" doc:"default: the template's per-GPU share"`
	MemoryBytes     int64  `json:"memory_bytes" doc:"default: the template's per-GPU share"`
	ImageListingID  string `json:"image_listing_id" doc:"a model or dataset listing whose try-it image the sandbox runs (with its command and ports); needs access to that listing, and the compute listing's pool must allow the image"`
	MountListingID  string `json:"mount_listing_id" doc:"a model or dataset listing whose published artifacts the sandbox sees read-only at /artifacts/{mount_listing_id}/; needs access to that listing (as for a download) and a compute listing whose pool can mount files (local): otherwise 422 artifacts_mount_unsupported"`
}

type sandboxJSON struct {
	ID             string `json:"id"`
	State          string `json:"state"`
	OrganizationID string `json:"organization_id"`
	ListingID      string `json:"listing_id"`
	PoolID         string `json:"pool_id"`
	Backend        string `json:"backend"`
	NodeID         string `json:"node_id,omitempty"`
	// AgentID is the site agent that runs it (empty on the platform host's own nodes). UnreachableSince is
	// set while that agent does not answer: the sandbox may still run, but is not metered until it answers.
	AgentID          string          `json:"agent_id,omitempty"`
	UnreachableSince *time.Time      `json:"unreachable_since"`
	GPUModel         string          `json:"gpu_model"`
	GPUCount         int             `json:"gpu_count"`
	MIGProfile       string          `json:"mig_profile,omitempty"`
	Devices          []SandboxDevice `json:"devices"`
	Template         string          `json:"template"`
	// Image is the template's image (built-in name or pinned reference) on pools that start sandboxes from
	// images, or the try-it image of ImageListingID; ImageDigest the digest of the image that was started
	// (set before the start).
	Image           string        `json:"image,omitempty"`
	ImageListingID  string        `json:"image_listing_id,omitempty"`
	ImageDigest     string        `json:"image_digest,omitempty"`
	Progress        *progressJSON `json:"progress"`
	CPUMillis       int64         `json:"cpu_millis"`
	MemoryBytes     int64         `json:"memory_bytes"`
	DurationMinutes int           `json:"duration_minutes"`
	CreatedAt       time.Time     `json:"created_at"`
	StartedAt       *time.Time    `json:"started_at"`
	ExpiresAt       *time.Time    `json:"expires_at"`
	EndedAt         *time.Time    `json:"ended_at"`
	UsageMillis     int64         `json:"usage_millis"`
	ChargeMicro     int64         `json:"charge_micro"`
	PricePerGPUHour int64         `json:"price_per_gpu_hour_micro"`
	StopReason      string        `json:"stop_reason,omitempty"`
	Message         string        `json:"message,omitempty"`
	Ports           []int         `json:"ports"`
	LogsURL         string        `json:"logs_url"`
	TerminalURL     string        `json:"terminal_url"`
	ProxyURLs       []string      `json:"proxy_urls"`
	// MountListingID is the model or dataset listing whose artifacts the sandbox sees read-only at
	// ArtifactsPath; Artifacts are those files as they were at launch.
	MountListingID string        `json:"mount_listing_id,omitempty"`
	ArtifactsPath  string        `json:"artifacts_path,omitempty" doc:"where the sandbox sees the listing's artifacts, read-only"`
	Artifacts      []MountedFile `json:"artifacts,omitempty"`
}

// progressJSON is how far a provisioning sandbox is: phase pulling (downloading its image's layers not yet
// on the host), unpacking (writing its root filesystem) or starting (the backend starts it). done_bytes and
// total_bytes count compressed layer bytes. Null when there is nothing to show (running, or a backend that
// starts at once); kept as it was when the sandbox failed or was stopped before running.
type progressJSON struct {
	Phase       string    `json:"phase"`
	DoneBytes   int64     `json:"done_bytes"`
	TotalBytes  int64     `json:"total_bytes"`
	ImageDigest string    `json:"image_digest,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func toProgressJSON(sb Sandbox) *progressJSON {
	p, ok := sb.ProgressOf()
	if !ok {
		return nil
	}
	return &progressJSON{Phase: p.Phase, DoneBytes: p.Done, TotalBytes: p.Total, ImageDigest: p.Digest, UpdatedAt: time.UnixMilli(p.AtMS).UTC()}
}

// sandboxAnswer writes sb as the API shows it, with status.
func sandboxAnswer(c *fiber.Ctx, status int, sb Sandbox, now time.Time) error {
	out, err := toSandboxJSON(sb, now)
	if err != nil {
		return err
	}
	return c.Status(status).JSON(out)
}

func toSandboxJSON(sb Sandbox, now time.Time) (sandboxJSON, error) {
	usage := sb.UsageMillis()
	if sb.State == StateRunning && sb.StartedAt != nil && sb.UnreachableAt == nil {
		usage = max(usage, stamp(now).Sub(*sb.StartedAt).Milliseconds()) // so far, including the interval not yet published
	}
	// The cost so far, as billing's meter computes it: a price that overflows (only a corrupt row can; listings'
	// prices are bounded) is an error here too, not a charge of 0.
	charge, err := money.PerGPUHour(money.Micro(sb.PricePerGPUHour), int64(sb.GPUCount), usage)
	if err != nil {
		return sandboxJSON{}, fmt.Errorf("sandbox %s: cost so far: %w", sb.ID, err)
	}
	base := "/api/v1/testbed/sandboxes/" + sb.ID
	devs := sb.DeviceList()
	if devs == nil {
		devs = []SandboxDevice{}
	}
	t := sb.template()
	out := sandboxJSON{ID: sb.ID, State: sb.State, OrganizationID: sb.OrgID, ListingID: sb.ListingID, PoolID: sb.PoolID,
		Backend: sb.Backend, NodeID: sb.NodeID, AgentID: sb.AgentID, UnreachableSince: sb.UnreachableAt, GPUModel: sb.GPUModel, GPUCount: sb.GPUCount, MIGProfile: sb.MIGProfile,
		Devices: devs, Template: sb.Template, Image: sb.Image, ImageListingID: sb.ImageListingID, ImageDigest: sb.ImageDigest,
		Progress:  toProgressJSON(sb),
		CPUMillis: sb.CPUMillis, MemoryBytes: sb.MemoryBytes,
		DurationMinutes: sb.DurationMinutes, CreatedAt: sb.CreatedAt, StartedAt: sb.StartedAt,
		ExpiresAt: sb.ExpiresAt, EndedAt: sb.EndedAt, UsageMillis: usage,
		ChargeMicro: int64(charge), PricePerGPUHour: sb.PricePerGPUHour,
		StopReason: sb.StopReason, Message: sb.Message, Ports: append([]int{}, t.Ports...),
		LogsURL: base + "/logs", TerminalURL: base + "/terminal", ProxyURLs: []string{}}
	for _, p := range t.Ports {
		out.ProxyURLs = append(out.ProxyURLs, base+"/proxy/"+strconv.Itoa(p)+"/")
	}
	if sb.MountListingID != "" {
		out.MountListingID, out.ArtifactsPath, out.Artifacts = sb.MountListingID, artifact.Target(sb.MountListingID), sb.MountedFiles()
	}
	return out, nil
}

type extendRequest struct {
	Minutes int `json:"minutes" openapi:"required" doc:"1 to 1440"`
}

type tokenJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// Use as ?token=<token> on the logs, terminal and proxy URLs.
	Usage string `json:"usage"`
}

type reserveRequest struct {
	ListingID string    `json:"listing_id" openapi:"required"`
	GPUCount  int       `json:"gpu_count" openapi:"required"`
	StartsAt  time.Time `json:"starts_at" openapi:"required"`
	EndsAt    time.Time `json:"ends_at" openapi:"required"`
}

type reservationJSON struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	ListingID string    `json:"listing_id"`
	PoolID    string    `json:"pool_id"`
	GPUModel  string    `json:"gpu_model"`
	GPUCount  int       `json:"gpu_count"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedAt time.Time `json:"created_at"`
}

func toReservationJSON(r Reservation) reservationJSON {
	return reservationJSON{ID: r.ID, State: r.State, ListingID: r.ListingID, PoolID: r.PoolID, GPUModel: r.GPUModel,
		GPUCount: r.GPUCount, StartsAt: r.StartsAt, EndsAt: r.EndsAt, CreatedAt: r.CreatedAt}
}

// Handlers.

func (h handler) listPools(c *fiber.Ctx) error {
	pools, err := h.svc.ListPools(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]poolJSON, len(pools))
	for i, p := range pools {
		out[i] = toPoolJSONFor(callerOf(c), p)
	}
	return pageJSON(c, out)
}

func (h handler) getPool(c *fiber.Ctx) error {
	p, nodes, devs, err := h.svc.GetPool(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	out := poolDetailJSON{poolJSON: toPoolJSONFor(callerOf(c), p), NodeList: []nodeJSON{}}
	for _, n := range nodes {
		out.NodeList = append(out.NodeList, toNodeJSON(n, devs))
	}
	return c.JSON(out)
}

func (h handler) createPool(c *fiber.Ctx) error {
	var req createPoolRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	p, err := h.svc.CreatePool(c.UserContext(), callerOf(c), CreatePoolInput{VendorOrgID: req.VendorOrgID, Name: req.Name,
		Region: req.Region, Backend: req.Backend, Settings: req.Settings})
	if err != nil {
		return err
	}
	return c.Status(201).JSON(toPoolJSON(PoolView{Pool: p}))
}

func (h handler) updatePool(c *fiber.Ctx) error {
	var req updatePoolRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	p, err := h.svc.UpdatePool(c.UserContext(), callerOf(c), c.Params("id"), UpdatePoolInput(req))
	if err != nil {
		return err
	}
	return c.JSON(toPoolJSONFor(callerOf(c), p))
}

func (h handler) addNode(c *fiber.Ctx) error {
	var req addNodeRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	in := AddNodeInput{Name: req.Name, CPUMillis: req.CPUMillis, MemoryBytes: req.MemoryBytes, Discover: req.Discover}
	for _, d := range req.Devices {
		in.Devices = append(in.Devices, DeviceInput(d))
	}
	n, devs, err := h.svc.AddNode(c.UserContext(), callerOf(c), c.Params("id"), in)
	if err != nil {
		return err
	}
	return c.Status(201).JSON(toNodeJSON(n, devs))
}

func (h handler) nodeHealth(c *fiber.Ctx, health string) error {
	n, err := h.svc.SetNodeHealth(c.UserContext(), callerOf(c), c.Params("id"), c.Params("node_id"), NodeHealthInput{Health: health})
	if err != nil {
		return err
	}
	return c.JSON(toNodeJSON(n, nil))
}

func (h handler) heartbeat(c *fiber.Ctx) error { return h.nodeHealth(c, "") }
func (h handler) drain(c *fiber.Ctx) error     { return h.nodeHealth(c, NodeDraining) }

func (h handler) setHealth(c *fiber.Ctx) error {
	var req healthRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	if req.Health == "" {
		return problem.Fields{{Field: "health", Code: "required", Message: "ready, draining or down"}}.Err()
	}
	return h.nodeHealth(c, req.Health)
}

func (h handler) availability(c *fiber.Ctx) error {
	now := h.svc.clock.Now().Truncate(time.Minute)
	from, step := now, time.Hour
	var to time.Time
	var f problem.Fields
	if v := c.Query("from"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		f.Check(err == nil, "from", "invalid", "RFC 3339 time")
		from = t.UTC()
	}
	if v := c.Query("to"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		f.Check(err == nil, "to", "invalid", "RFC 3339 time")
		to = t.UTC()
	} else {
		to = from.Add(24 * time.Hour)
	}
	if v := c.Query("step"); v != "" {
		d, err := time.ParseDuration(v)
		f.Check(err == nil, "step", "invalid", "a duration such as 1h or 30m")
		step = d
	}
	if err := f.Err(); err != nil {
		return err
	}
	b, err := h.svc.Availability(c.UserContext(), c.Query("pool_id"), c.Query("gpu_model"), from, to, step)
	if err != nil {
		return err
	}
	out := make([]availabilityJSON, len(b))
	for i, x := range b {
		out[i] = availabilityJSON(x)
	}
	// A calendar is bounded by from/to, and clients want it whole: it pages only when asked to with ?limit=.
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	if c.Query("limit") == "" {
		pg.Limit = max(len(out), 1)
	}
	l, err := web.Slice(out, pg)
	if err != nil {
		return err
	}
	return c.JSON(l)
}

// reservationHistory bounds the reservations a list walks through.
const reservationHistory = 1000

// pageJSON answers one page of a list computed whole (templates, models, projections: small and ordered).
func pageJSON[T any](c *fiber.Ctx, items []T) error {
	l, err := web.PageSlice(c, items)
	if err != nil {
		return err
	}
	return c.JSON(l)
}

func (h handler) templates(c *fiber.Ctx) error {
	lang, cat := web.Lang(c), i18n.Default()
	// Descriptions and notes are for people: in the reader's language (platform/i18n's template.* messages,
	// which a test keeps equal to the English here), else as written.
	say := func(key, english string) string {
		if s, ok := cat.Text(lang, key, nil); ok {
			return s
		}
		return english
	}
	var out []templateJSON
	for _, t := range Templates() {
		ports := append([]int{}, t.Ports...)
		out = append(out, templateJSON{Name: t.Name, Title: t.Title, Description: say("template."+t.Name+".description", t.Description), Command: t.Command,
			Env: t.Env, Ports: ports, Network: t.Network, CPUMillisPerGPU: t.CPUMillisPerGPU,
			MemoryBytesPerGPU: t.MemoryBytesPerGPU, Pids: t.Pids, IdleSignal: t.IdleSignal, IdleTimeoutMinutes: t.IdleMinutes,
			Notes: say("template."+t.Name+".notes", t.Notes), Image: t.Image})
	}
	return pageJSON(c, out)
}

func (h handler) gpuModels(c *fiber.Ctx) error {
	var out []gpuModelJSON
	for _, m := range GPUModels() {
		out = append(out, gpuModelJSON{Name: m, MemoryMiB: gpuModels[m]})
	}
	return pageJSON(c, out)
}

func (h handler) listings(c *fiber.Ctx) error {
	caller := callerOf(c)
	ls, err := h.svc.Listings(c.UserContext(), caller)
	if err != nil {
		return err
	}
	entitled, err := h.svc.entitledListings(c.UserContext(), caller)
	if err != nil {
		return err
	}
	var allowed map[string]bool
	if id := c.Query("image_listing_id"); id != "" {
		if allowed, err = h.svc.ImageAllowedOn(c.UserContext(), caller, id, ls); err != nil {
			return err
		}
	}
	pools, err := h.svc.ListPools(c.UserContext())
	if err != nil {
		return err
	}
	backendOf := map[string]string{}
	for _, p := range pools {
		backendOf[p.ID] = p.Backend
	}
	out := []listingJSON{}
	for _, l := range ls {
		j := listingJSON{ID: l.ID, VendorOrgID: l.VendorOrgID, Title: l.Title, PoolID: l.PoolID, GPUModel: l.GPUModel,
			Region: l.Region, MinDurationMinutes: l.MinMinutes, MaxDurationMinutes: l.MaxMinutes,
			PricePerGPUHour: l.PricePerGPUHour,
			Gated:           l.Gated, AccessRequired: l.Gated && !l.exempt(caller) && !entitled[l.ID], GPUCounts: []gpuCountJSON{}}
		if backendOf[l.PoolID] == "local" {
			j.DiskBytes = localHomeBytes
		}
		for _, cc := range h.svc.index().countCapacity(l.PoolID, l.GPUModel) {
			j.GPUCounts = append(j.GPUCounts, gpuCountJSON{GPUCount: cc.Count, FreeNow: cc.FreeNow})
		}
		if allowed != nil {
			ok := allowed[l.ID]
			j.ImageAllowed = &ok
		}
		out = append(out, j)
	}
	return pageJSON(c, out)
}

func (h handler) launch(c *fiber.Ctx) error {
	var req launchRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	sb, err := h.svc.Launch(c.UserContext(), callerOf(c), LaunchInput(req))
	if err != nil {
		return err
	}
	c.Location("/api/v1/testbed/sandboxes/" + sb.ID)
	return sandboxAnswer(c, 202, sb, h.svc.clock.Now())
}

func (h handler) listSandboxes(c *fiber.Ctx) error {
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	var cur *SandboxCursor
	if pg.Cursor != "" {
		cur = &SandboxCursor{}
		if err := web.DecodeCursor(pg.Cursor, cur); err != nil {
			return err
		}
	}
	state := c.Query("state")
	if state != "" && !validState(state) {
		return problem.Fields{{Field: "state", Code: "invalid", Message: "a sandbox state"}}.Err()
	}
	list, err := h.svc.ListSandboxes(c.UserContext(), callerOf(c), state, pg.Limit, cur)
	if err != nil {
		return err
	}
	now := h.svc.clock.Now()
	items := make([]sandboxJSON, len(list))
	for i, sb := range list {
		if items[i], err = toSandboxJSON(sb, now); err != nil {
			return err
		}
	}
	return c.JSON(web.NewList(items, pg.Limit, func(last sandboxJSON) any {
		return SandboxCursor{CreatedMS: last.CreatedAt.UnixMilli(), ID: last.ID}
	}))
}

func validState(s string) bool {
	switch s {
	case StateRequested, StateScheduled, StateProvisioning, StateRunning, StateStopping, StateStopped, StateFailed:
		return true
	}
	return false
}

func (h handler) getSandbox(c *fiber.Ctx) error {
	var sb Sandbox
	var err error
	if until := c.Query("wait_until"); until != "" {
		timeout := int(MaxWait / time.Second)
		if t := c.Query("timeout"); t != "" {
			if timeout, err = strconv.Atoi(t); err != nil || timeout < 1 || timeout > int(MaxWait/time.Second) {
				return problem.Fields{{Field: "timeout", Code: "invalid", Message: "whole seconds, 1 to " + strconv.Itoa(int(MaxWait/time.Second))}}.Err()
			}
		}
		sb, err = h.svc.WaitFor(c.UserContext(), callerOf(c), c.Params("id"), until, time.Duration(timeout)*time.Second)
	} else {
		sb, err = h.svc.Get(c.UserContext(), callerOf(c), c.Params("id"))
	}
	if err != nil {
		return err
	}
	return sandboxAnswer(c, 200, sb, h.svc.clock.Now())
}

// gpuMetricsJSON is a sandbox's GPU utilisation and memory over time, or why it is not measured.
type gpuMetricsJSON struct {
	// Measured is false when nothing measures the sandbox's GPUs; NotMeasuredReason then says why:
	// declared_devices (declared by the vendor, not found on a host), no_devices, no_sampler (the host that
	// runs it cannot measure them here). Clients say "not measured" rather than draw zeros.
	Measured          bool            `json:"measured"`
	NotMeasuredReason string          `json:"not_measured_reason,omitempty"`
	Items             []gpuSampleJSON `json:"items"`
}

// gpuSampleJSON is the sandbox's devices taken together at one instant: mean utilisation (null when the
// driver does not report it, as for MIG instances), summed memory.
type gpuSampleJSON struct {
	At             time.Time `json:"at"`
	UtilizationPct *int      `json:"utilization_pct"`
	MemoryUsedMiB  int64     `json:"memory_used_mib"`
	MemoryTotalMiB int64     `json:"memory_total_mib"`
}

func toGPUMetricsJSON(m GPUMetrics) gpuMetricsJSON {
	out := gpuMetricsJSON{Measured: m.Measured, NotMeasuredReason: m.Reason, Items: make([]gpuSampleJSON, len(m.Samples))}
	for i, g := range m.Samples {
		out.Items[i] = gpuSampleJSON{At: g.At, MemoryUsedMiB: g.MemoryUsedMiB, MemoryTotalMiB: g.MemoryTotalMiB}
		if g.UtilizationPct >= 0 {
			u := g.UtilizationPct
			out.Items[i].UtilizationPct = &u
		}
	}
	return out
}

func (h handler) gpuSamples(c *fiber.Ctx) error {
	m, err := h.svc.GPUMetricsOf(c.UserContext(), callerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toGPUMetricsJSON(m))
}

func (h handler) stop(c *fiber.Ctx) error {
	sb, err := h.svc.Stop(c.UserContext(), callerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return sandboxAnswer(c, 202, sb, h.svc.clock.Now())
}

func (h handler) extend(c *fiber.Ctx) error {
	var req extendRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	sb, err := h.svc.Extend(c.UserContext(), callerOf(c), c.Params("id"), req.Minutes)
	if err != nil {
		return err
	}
	return sandboxAnswer(c, 200, sb, h.svc.clock.Now())
}

func (h handler) token(c *fiber.Ctx) error {
	tok, exp, err := h.svc.IssueToken(c.UserContext(), callerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(201).JSON(tokenJSON{Token: tok, ExpiresAt: exp, Usage: "append ?token=<token> to the logs, terminal and proxy URLs"})
}

func (h handler) reserve(c *fiber.Ctx) error {
	var req reserveRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	r, err := h.svc.Reserve(c.UserContext(), callerOf(c), ReserveInput{ListingID: req.ListingID, GPUCount: req.GPUCount,
		StartsAt: req.StartsAt.UTC(), EndsAt: req.EndsAt.UTC()})
	if err != nil {
		return err
	}
	return c.Status(201).JSON(toReservationJSON(r))
}

func (h handler) listReservations(c *fiber.Ctx) error {
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	// The newest reservationHistory windows, paged; older ones are history kept in the database.
	rs, err := h.svc.ListReservations(c.UserContext(), callerOf(c), reservationHistory)
	if err != nil {
		return err
	}
	out := make([]reservationJSON, len(rs))
	for i, r := range rs {
		out[i] = toReservationJSON(r)
	}
	l, err := web.Slice(out, pg)
	if err != nil {
		return err
	}
	return c.JSON(l)
}

func (h handler) cancelReservation(c *fiber.Ctx) error {
	r, err := h.svc.CancelReservation(c.UserContext(), callerOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toReservationJSON(r))
}

type auditJSON struct {
	ID          string    `json:"id"`
	At          time.Time `json:"at"`
	ActorUserID string    `json:"actor_user_id"`
	ActorOrgID  string    `json:"actor_org_id"`
	Action      string    `json:"action"`
	Target      string    `json:"target"`
	Detail      string    `json:"detail"`
	// ActionDisplay names the action for people (catalogue key audit.testbed.<action>).
	ActionDisplay string `json:"action_display" doc:"the action named for people, in the language of Accept-Language (the action itself when no name is catalogued)"`
}

func (h handler) audit(c *fiber.Ctx) error {
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	// The cursor is the last entry's instant in Unix milliseconds and its ID: entries of the same millisecond
	// (one staff action can write several) are ordered by ID, so a page boundary between them skips none.
	// A cursor of the instant alone, as earlier versions gave, still reads.
	var before AuditCursor
	if pg.Cursor != "" {
		if err := web.DecodeCursor(pg.Cursor, &before); err != nil {
			var ms int64
			if web.DecodeCursor(pg.Cursor, &ms) != nil {
				return err
			}
			before = AuditCursor{AtMS: ms}
		}
	}
	list, err := h.svc.Audit(c.UserContext(), pg.Limit, before)
	if err != nil {
		return err
	}
	items := make([]auditJSON, len(list))
	lang := web.Lang(c)
	for i, a := range list {
		items[i] = auditJSON{ID: a.ID, At: a.At, ActorUserID: a.ActorUserID, ActorOrgID: a.ActorOrgID,
			Action: a.Action, Target: a.Target, Detail: a.Detail, ActionDisplay: i18n.AuditAction(lang, "testbed", a.Action)}
	}
	return c.JSON(web.NewList(items, pg.Limit, func(last auditJSON) any { return AuditCursor{AtMS: last.At.UnixMilli(), ID: last.ID} }))
}
