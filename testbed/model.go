package testbed

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// Sandbox states (DESIGN.md §3).
const (
	StateRequested    = "requested"
	StateScheduled    = "scheduled"
	StateProvisioning = "provisioning"
	StateRunning      = "running"
	StateStopping     = "stopping"
	StateStopped      = "stopped"
	StateFailed       = "failed"
)

// Stop and failure reasons recorded on sandboxes.
const (
	ReasonUser            = "user"
	ReasonStaff           = "staff"
	ReasonExpired         = "expired"
	ReasonIdle            = "idle"
	ReasonWalletExhausted = "wallet_exhausted"
	// ReasonAccessRevoked: the organisation lost its access to the gated listing the sandbox was launched from,
	// or to the listing whose files it mounts.
	ReasonAccessRevoked = "access_revoked"
	ReasonNodeLost      = "node_lost"
	ReasonExited        = "exited"
	ReasonOOMKilled     = "oom_killed"
	ReasonKilled        = "killed"
	ReasonNoCapacity    = "no_capacity"
	ReasonStartFailed   = "start_failed"
	ReasonOrphan        = "orphan"
	ReasonInterrupted   = "provisioning_interrupted"
	// The template's image could not be used: not pinned by digest or not on the pool's allow-list
	// (image_not_allowed), refused on inspection (image_invalid: a digest that does not match, an unsafe
	// entry, an unsupported format, too large), or not obtained (image_unavailable: registry unreachable or
	// refusing, a built-in image not seeded, the pull timed out). The sandbox never ran.
	ReasonImageNotAllowed  = "image_not_allowed"
	ReasonImageInvalid     = "image_invalid"
	ReasonImageUnavailable = "image_unavailable"
)

// Node health.
const (
	NodeReady    = "ready"
	NodeDraining = "draining"
	NodeDown     = "down"
)

// Reservation states.
const (
	ResPending   = "pending"
	ResActive    = "active"
	ResCompleted = "completed"
	ResCancelled = "cancelled"
)

// Backend kinds a pool may name.
var backendKinds = map[string]bool{"local": true, "simulator": true, "slurm": true, "kubernetes": true}

// poolRuntime is the setting by which a local pool chooses its sandboxes' OCI runtime (the local
// backend's SettingRuntime): runc, the default, or runsc (gVisor) for a hardened pool.
const poolRuntime = "runtime"

var poolRuntimes = map[string]bool{"runc": true, "runsc": true}

// slurmSettings are the settings by which a Slurm pool overrides its agent's partition, account and QOS (the
// Slurm backend's Setting* keys): each a Slurm name.
var slurmSettings = []string{"slurm.partition", "slurm.account", "slurm.qos"}

// slurmName is what Slurm accepts as a partition, account or QOS name (and nothing a job script or a
// slurmrestd field could read as more than a name).
var slurmName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// kubeSettings are the settings by which a Kubernetes pool pins its namespace and chooses its RuntimeClass
// (the Kubernetes backend's Setting* keys), and what each must be: a DNS label, a DNS subdomain.
var kubeSettings = map[string]func(string) bool{
	"kubernetes.namespace":     func(v string) bool { return dnsLabel.MatchString(v) },
	"kubernetes.runtime_class": func(v string) bool { return len(v) <= 253 && dnsSubdomain.MatchString(v) },
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// checkSettings adds a field error for each backend setting of a pool on backend that cannot work.
func checkSettings(f *problem.Fields, backend string, settings map[string]string) {
	if rt, ok := settings[poolRuntime]; ok && backend == "local" {
		f.Check(poolRuntimes[rt], "settings.runtime", "invalid", "runc or runsc (gVisor)")
	}
	if backend == "slurm" {
		for _, k := range slices.Sorted(maps.Keys(settings)) {
			switch {
			case slices.Contains(slurmSettings, k):
				f.Check(slurmName.MatchString(settings[k]), "settings."+k, "invalid", "a Slurm name: 1-64 of A-Z a-z 0-9 _ . -")
			case strings.HasPrefix(k, "slurm."):
				f.AddMsg("settings."+k, "invalid", "field.text.unknown_setting", problem.Args{"Backend": "Slurm", "Known": strings.Join(slurmSettings, ", ")})
			}
		}
	}
	if backend == "kubernetes" {
		for _, k := range slices.Sorted(maps.Keys(settings)) {
			switch valid := kubeSettings[k]; {
			case k == "kubernetes.namespace":
				f.Check(valid(settings[k]), "settings."+k, "invalid", "a namespace name: 1-63 of a-z 0-9 -, alphanumeric at both ends")
			case valid != nil:
				f.Check(valid(settings[k]), "settings."+k, "invalid", "a RuntimeClass name: a DNS subdomain (a-z 0-9 - .)")
			case strings.HasPrefix(k, "kubernetes."):
				f.AddMsg("settings."+k, "invalid", "field.text.unknown_setting", problem.Args{"Backend": "Kubernetes", "Known": strings.Join(slices.Sorted(maps.Keys(kubeSettings)), ", ")})
			}
		}
	}
}

// stamp is an instant as the testbed stores it: UTC, to the millisecond. Milliseconds are the metering unit:
// usage intervals computed from stored instants then add up exactly, and an instant reads back the same on
// both engines (Postgres keeps microseconds, SQLite's text keeps whatever it is given). UTC also keeps
// SQLite's text comparisons (expires_at < ?) in time order.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// stampPtr is stamp for an optional column (nil: not yet).
func stampPtr(t time.Time) *time.Time {
	v := stamp(t)
	return &v
}

// orZero is an optional instant, or the zero time when it is not set.
func orZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// The rows' CreatedAt and UpdatedAt opt out of GORM's automatic timestamps: the service's clock decides them
// (tests drive it), and writing one column of a row (touchSandbox) must not move its updated_at.

// Pool is a vendor's group of nodes run by one backend.
type Pool struct {
	ID          string `gorm:"primaryKey"`
	VendorOrgID string
	Name        string
	Region      string
	Backend     string
	Settings    string    // JSON object of strings
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
	UpdatedAt   time.Time `gorm:"autoUpdateTime:false"`
}

func (Pool) TableName() string { return "testbed_pools" }

// SettingsMap decodes the pool's backend settings.
func (p Pool) SettingsMap() map[string]string {
	m := map[string]string{}
	_ = json.Unmarshal([]byte(p.Settings), &m)
	return m
}

// Node is a machine of a pool.
type Node struct {
	ID          string `gorm:"primaryKey"`
	PoolID      string
	Name        string
	Health      string
	CPUMillis   int64 `gorm:"column:cpu_millis"`
	MemoryBytes int64
	HeartbeatAt time.Time
	CreatedAt   time.Time `gorm:"autoCreateTime:false"`
	// AgentID is the site agent that registered the node and runs its sandboxes; empty for the platform
	// host's own nodes (the agent tamarack serve embeds, or a backend of this process).
	AgentID string
	// AgentHealth is the health the node's agent imposed by reporting the node draining or down ('' none):
	// the agent's "ready" lifts that, never a drain staff set (SetNodeHealth clears it).
	AgentHealth string
}

func (Node) TableName() string { return "testbed_nodes" }

// Agent is a site agent enrolled for a pool.
type Agent struct {
	ID          string `gorm:"primaryKey"`
	PoolID      string
	Name        string
	Version     string
	Backend     string
	Problem     string // its backend's last Check error: why it cannot start sandboxes now
	Boot        string // changes at each start of the agent process
	NATSUser    string `gorm:"column:nats_user"` // the public key its NATS credentials were issued to
	CreatedBy   string
	CreatedAt   time.Time  `gorm:"autoCreateTime:false"`
	HeartbeatAt *time.Time // nil until its first heartbeat
	RevokedAt   *time.Time
	// GPUSampler: its heartbeats carry its host's GPU measurements (it has nvidia-smi); its sandboxes' GPUs
	// are "not measured" otherwise.
	GPUSampler bool `gorm:"column:gpu_sampler"`
}

func (Agent) TableName() string { return "testbed_agents" }

// AgentToken is a one-time enrolment token for a pool, stored hashed.
type AgentToken struct {
	ID        string `gorm:"primaryKey"`
	PoolID    string
	TokenHash string
	Note      string
	CreatedBy string
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt time.Time
	UsedAt    *time.Time
	AgentID   string
	RevokedAt *time.Time
}

func (AgentToken) TableName() string { return "testbed_agent_tokens" }

// Device is one accelerator of a node.
type Device struct {
	ID          string `gorm:"primaryKey"`
	NodeID      string
	PoolID      string
	Idx         int `gorm:"column:idx"`
	UUID        string
	GPUModel    string `gorm:"column:gpu_model"`
	MemoryMiB   int64  `gorm:"column:memory_mib"`
	MIGProfiles string `gorm:"column:mig_profiles"` // comma-separated
	Declared    bool
}

func (Device) TableName() string { return "testbed_devices" }

// MIG lists the device's MIG profiles.
func (d Device) MIG() []string {
	if d.MIGProfiles == "" {
		return nil
	}
	return strings.Split(d.MIGProfiles, ",")
}

// DeviceClaim is an active hold of one device by one sandbox.
type DeviceClaim struct {
	DeviceID  string `gorm:"primaryKey"`
	SandboxID string
	NodeID    string
	PoolID    string
	GPUModel  string `gorm:"column:gpu_model"`
	ExpiresAt time.Time
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (DeviceClaim) TableName() string { return "testbed_device_claims" }

// Listing is the projection of a published compute listing.
type Listing struct {
	ID              string `gorm:"primaryKey"`
	VendorOrgID     string
	Title           string
	PoolID          string
	GPUModel        string `gorm:"column:gpu_model"`
	Region          string
	MinMinutes      int
	MaxMinutes      int
	PricePerGPUHour int64 `gorm:"column:price_per_gpu_hour"`
	PlanID          string
	Version         int
	UpdatedAt       time.Time `gorm:"autoUpdateTime:false"`
	// VisibleTo lists, comma-separated, the organisations a restricted listing is for; empty = public.
	VisibleTo string
	// Gated listings need an entitlement of the caller's organisation to launch or reserve.
	Gated bool
}

func (Listing) TableName() string { return "testbed_listings" }

// Entitlement is the projection of a marketplace entitlement of an organisation to a listing. Active is
// false after a revocation; ExpiresAt (nil = never) ends a subscription; At is the time of the event that set
// the row (a newer event wins, whatever the order of delivery).
type Entitlement struct {
	OrgID         string `gorm:"primaryKey"`
	ListingID     string `gorm:"primaryKey"`
	EntitlementID string
	Active        bool
	ExpiresAt     *time.Time
	At            time.Time
	UpdatedAt     time.Time `gorm:"autoUpdateTime:false"`
}

func (Entitlement) TableName() string { return "testbed_entitlements" }

// exempt reports whether c may use a gated listing without an entitlement: its vendor and staff.
func (l Listing) exempt(c web.Principal) bool {
	return c.Staff || (c.OrgID != "" && c.OrgID == l.VendorOrgID)
}

// VisibleFor reports whether c may see and use the listing: public, or restricted to c's organisation, or
// c is its vendor or staff.
func (l Listing) VisibleFor(c web.Principal) bool {
	if l.VisibleTo == "" || c.Staff || (c.OrgID != "" && c.OrgID == l.VendorOrgID) {
		return true
	}
	return c.OrgID != "" && slices.Contains(strings.Split(l.VisibleTo, ","), c.OrgID)
}

// Sandbox is one sandbox's record: its request, placement, lifecycle and metering cursor.
type Sandbox struct {
	ID              string `gorm:"primaryKey"`
	OrgID           string
	UserID          string
	ListingID       string
	VendorOrgID     string
	PoolID          string
	Backend         string
	NodeID          string
	Devices         string // JSON []SandboxDevice
	GPUModel        string `gorm:"column:gpu_model"`
	GPUCount        int    `gorm:"column:gpu_count"`
	MIGProfile      string `gorm:"column:mig_profile"`
	Template        string
	CPUMillis       int64 `gorm:"column:cpu_millis"`
	MemoryBytes     int64
	DurationMinutes int
	PricePerGPUHour int64 `gorm:"column:price_per_gpu_hour"`
	HoldID          string
	State           string
	StopReason      string
	Message         string
	CreatedAt       time.Time  `gorm:"autoCreateTime:false"`
	UpdatedAt       time.Time  `gorm:"autoUpdateTime:false"`
	StartedAt       *time.Time // backend-observed start
	ExpiresAt       *time.Time // the end of its devices' claim: set when it is placed, from its start once it runs
	EndedAt         *time.Time // backend-observed end
	ActivityAt      time.Time
	WalletStopAt    *time.Time
	// Metering cursor: the last published usage sample's sequence and end (nil until it starts). Written in
	// the same transaction as the sample's outbox row, so a restart continues exactly where the published
	// intervals stop.
	UsageSeq       uint64 `gorm:"column:usage_seq"`
	UsageEndAt     *time.Time
	BackendRemoved bool
	// Image is the template's image (a built-in name or a pinned reference) on pools whose backend starts
	// sandboxes from images, and a listing's try-it image on every pool (see ImageListingID); ImageDigest is the digest of the image that was unpacked and started (what
	// exactly ran), set before the backend starts it.
	Image       string
	ImageDigest string
	// AgentID is the site agent that runs the sandbox (its node's); empty on the platform host's own nodes.
	// UnreachableAt is when that agent was found unreachable (nil while it answers): the sandbox is shown as
	// unreachable and not metered past the agent's last heartbeat.
	AgentID       string
	UnreachableAt *time.Time
	// Progress is a JSON Progress while the sandbox is provisioning (pulling, unpacking, starting); cleared
	// when it runs, kept as it was when it failed or stopped before running.
	Progress string
	// ImageListingID names the model or dataset listing whose "try it" image the sandbox runs (Image is then
	// that image, on every backend); Command (a JSON array, empty: the image's own) and Ports (comma-separated)
	// are what the listing said at launch and replace the template's.
	ImageListingID string
	Command        string
	Ports          string
	// MountListingID names the model or dataset listing whose published artifacts the sandbox sees read-only
	// at /artifacts/<MountListingID>; Mounts is a JSON []MountedFile of those files at launch.
	MountListingID string
	Mounts         string
}

func (Sandbox) TableName() string { return "testbed_sandboxes" }

// Progress phases of a provisioning sandbox: its image is downloaded (pulling), written out (unpacking),
// then the backend starts it (starting).
const (
	PhasePulling   = "pulling"
	PhaseUnpacking = "unpacking"
	PhaseStarting  = "starting"
)

// Progress is how far a provisioning sandbox is. Done and Total count the image's compressed layer bytes
// (those not cached yet while pulling, all of them while unpacking); Digest is the image's digest as far as
// it is known (the reference's while pulling, the unpacked image's from starting on).
type Progress struct {
	Phase  string `json:"phase"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
	Digest string `json:"digest,omitempty"`
	// AtMS (Unix milliseconds) is when it was reported. Progress is a JSON document stored in the sandbox's
	// row, not a column: it keeps the form the rows already hold.
	AtMS int64 `json:"at_ms"`
}

// ProgressOf decodes the sandbox's progress; ok is false when it has none.
func (s Sandbox) ProgressOf() (p Progress, ok bool) {
	if s.Progress == "" {
		return Progress{}, false
	}
	return p, json.Unmarshal([]byte(s.Progress), &p) == nil
}

// SandboxDevice is a device as assigned to a sandbox.
type SandboxDevice struct {
	ID       string `json:"id"`
	Index    int    `json:"index"`
	UUID     string `json:"uuid"`
	Model    string `json:"gpu_model"`
	Declared bool   `json:"declared"`
}

// DeviceList decodes the assigned devices.
func (s Sandbox) DeviceList() []SandboxDevice {
	var out []SandboxDevice
	_ = json.Unmarshal([]byte(s.Devices), &out)
	return out
}

// Terminal reports whether the sandbox has reached an end state.
func (s Sandbox) Terminal() bool { return s.State == StateStopped || s.State == StateFailed }

// UsageMillis is the metered time so far.
func (s Sandbox) UsageMillis() int64 {
	if s.StartedAt == nil || s.UsageEndAt == nil {
		return 0
	}
	return s.UsageEndAt.Sub(*s.StartedAt).Milliseconds()
}

// SandboxToken is a short-lived credential for one sandbox's streams (terminal, logs, proxy).
type SandboxToken struct {
	TokenHash string `gorm:"primaryKey"`
	SandboxID string
	ExpiresAt time.Time
}

func (SandboxToken) TableName() string { return "testbed_sandbox_tokens" }

// Reservation books GPUs of a listing's pool and model for a future window.
type Reservation struct {
	ID        string `gorm:"primaryKey"`
	OrgID     string
	UserID    string
	ListingID string
	PoolID    string
	GPUModel  string `gorm:"column:gpu_model"`
	GPUCount  int    `gorm:"column:gpu_count"`
	StartsAt  time.Time
	EndsAt    time.Time
	State     string
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
}

func (Reservation) TableName() string { return "testbed_reservations" }

// CreatePoolInput declares a pool.
type CreatePoolInput struct {
	VendorOrgID string // set from the caller unless staff names one
	Name        string
	Region      string
	Backend     string
	Settings    map[string]string
}

func (in CreatePoolInput) Validate() error {
	var f problem.Fields
	f.Check(strings.TrimSpace(in.Name) != "" && len(in.Name) <= 200, "name", "required", "1-200 characters")
	f.Check(strings.TrimSpace(in.Region) != "" && len(in.Region) <= 100, "region", "required", "1-100 characters")
	if in.Backend == "" {
		f.Add("backend", "required", "one of local, simulator, slurm, kubernetes")
	} else {
		f.Check(backendKinds[in.Backend], "backend", "invalid", "one of local, simulator, slurm, kubernetes")
	}
	f.Check(in.VendorOrgID != "", "vendor_org_id", "required", "the vendor organisation owning the pool")
	checkSettings(&f, in.Backend, in.Settings)
	return f.Err()
}

// UpdatePoolInput changes a pool's name, region or settings.
type UpdatePoolInput struct {
	Name     *string
	Region   *string
	Settings map[string]string
}

// DeviceInput declares one device of a node.
type DeviceInput struct {
	Index       int
	UUID        string
	GPUModel    string
	MemoryMiB   int64
	MIGProfiles []string
}

// AddNodeInput adds a node with declared devices, or discovers them with nvidia-smi on this host.
type AddNodeInput struct {
	Name        string
	CPUMillis   int64
	MemoryBytes int64
	Devices     []DeviceInput
	Discover    bool
}

func (in AddNodeInput) Validate() error {
	var f problem.Fields
	f.Check(strings.TrimSpace(in.Name) != "" && len(in.Name) <= 100, "name", "required", "1-100 characters")
	positive := func(v int64, field string) {
		if v == 0 {
			f.Add(field, "required", "must be positive")
		} else {
			f.Check(v > 0, field, "invalid", "must be positive")
		}
	}
	positive(in.CPUMillis, "cpu_millis")
	positive(in.MemoryBytes, "memory_bytes")
	f.Check(in.Discover || len(in.Devices) > 0, "devices", "required", "declare devices or set discover")
	f.Check(len(in.Devices) <= 64, "devices", "too_many", "at most 64 devices per node")
	seen := map[int]bool{}
	for _, d := range in.Devices {
		if d.GPUModel == "" {
			f.AddMsg("devices.gpu_model", "required", "field.text.one_of", problem.Args{"Values": strings.Join(GPUModels(), ", ")})
		} else if !KnownGPUModel(d.GPUModel) {
			f.AddMsg("devices.gpu_model", "unknown_gpu_model", "field.text.unknown_gpu_named", problem.Args{"Model": d.GPUModel})
		}
		if d.Index < 0 || seen[d.Index] {
			f.Add("devices.index", "invalid", "indexes must be distinct and non-negative")
		}
		seen[d.Index] = true
	}
	return f.Err()
}

// LaunchInput asks for a sandbox.
type LaunchInput struct {
	ListingID       string
	GPUModel        string // "": the listing's GPU model (a compute listing offers exactly one)
	GPUCount        int
	MIGProfile      string
	Template        string
	DurationMinutes int
	CPUMillis       int64 // 0: template default
	MemoryBytes     int64 // 0: template default
	// ImageListingID starts the sandbox from that model or dataset listing's "try it" image (its command and
	// ports) instead of the template's; the template (default "tryit") then only sets limits and idleness.
	ImageListingID string
	// MountListingID mounts that model or dataset listing's published artifacts read-only at
	// /artifacts/<MountListingID> (its access decided by the marketplace, as for a download).
	MountListingID string
}

// MaxGPUsPerSandbox bounds a request: a sandbox runs on one node.
const MaxGPUsPerSandbox = 8

// Validate lists every invalid field. A field left out (its zero value) is "required", as the struct-tag
// validation of other inputs says; a value given but wrong has its own code.
func (in LaunchInput) Validate() error {
	var f problem.Fields
	f.Check(in.ListingID != "", "listing_id", "required", "the compute listing to launch from")
	if in.GPUModel != "" && !KnownGPUModel(in.GPUModel) {
		f.AddMsg("gpu_model", "unknown_gpu_model", "field.text.unknown_gpu_known", problem.Args{"Known": strings.Join(GPUModels(), ", ")})
	}
	switch {
	case in.GPUCount == 0:
		f.Add("gpu_count", "required", "at least 1 device")
	case in.GPUCount < 1:
		f.Add("gpu_count", "too_small", "at least 1 device")
	case in.GPUCount > MaxGPUsPerSandbox:
		f.Add("gpu_count", "too_large", "at most 8 devices (one node)")
	}
	switch _, ok := templateNamed(in.Template); {
	case in.Template == "" && in.ImageListingID == "":
		f.AddMsg("template", "required", "field.text.one_of", problem.Args{"Values": strings.Join(templateNames(), ", ")})
	case in.Template == tryItTemplate.Name && in.ImageListingID == "":
		f.Add("template", "needs_image_listing", "the tryit template runs a listing's image: give image_listing_id")
	case in.Template != "" && !ok:
		f.AddMsg("template", "unknown_template", "field.text.unknown_template_known", problem.Args{"Known": strings.Join(templateNames(), ", ")})
	}
	f.Check(len(in.ImageListingID) <= 200, "image_listing_id", "invalid", "a listing ID")
	f.Check(len(in.MountListingID) <= 200 && !strings.ContainsAny(in.MountListingID, "/. \x00"), "mount_listing_id", "invalid", "a listing ID")
	switch {
	case in.DurationMinutes == 0:
		f.Add("duration_minutes", "required", "at least 1 minute")
	case in.DurationMinutes < 1:
		f.Add("duration_minutes", "too_small", "at least 1 minute")
	}
	f.Check(in.CPUMillis >= 0, "cpu_millis", "invalid", "must not be negative")
	f.Check(in.MemoryBytes >= 0, "memory_bytes", "invalid", "must not be negative")
	return f.Err()
}

func templateNames() []string {
	var out []string
	for _, t := range Templates() {
		out = append(out, t.Name)
	}
	return out
}

// ReserveInput books devices for a future window.
type ReserveInput struct {
	ListingID string
	GPUCount  int
	StartsAt  time.Time
	EndsAt    time.Time
}
