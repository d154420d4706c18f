package marketplace

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Listing kinds.
const (
	KindModel   = "model"
	KindDataset = "dataset"
	KindCompute = "compute"
)

// Listing statuses (the listing as a whole) and version states (DESIGN.md §3).
const (
	StatusDraft     = "draft" // never published
	StatusPublished = "published"
	StatusSuspended = "suspended"
	StatusRetired   = "retired"

	StateDraft            = "draft"
	StateSubmitted        = "submitted"
	StateChangesRequested = "changes_requested"
	StateRejected         = "rejected"
	StateApproved         = "approved" // transient: an approved version is published in the same transaction
	StatePublished        = "published"
	StateSuperseded       = "superseded" // a formerly published version, replaced by its approved successor
)

// Plan kinds.
const (
	PlanFree         = "free"
	PlanOneTime      = "one_time"
	PlanSubscription = "subscription"
	PlanPerGPUHour   = "per_gpu_hour"
)

// Order and access-request states.
const (
	OrderPending   = "pending"
	OrderFulfilled = "fulfilled"
	OrderRejected  = "rejected"
	OrderCancelled = "cancelled"
	OrderFailed    = "failed"

	AccessPending   = "pending"
	AccessApproved  = "approved"
	AccessDenied    = "denied"
	AccessCancelled = "cancelled"
)

// listingRow is a listing: its owner, slug, kind and which version is live.
type listingRow struct {
	ID                 string `gorm:"primaryKey"`
	VendorOrgID        string
	Kind               string
	Slug               string
	Status             string
	PublishedVersionID string
	LatestVersion      int
	StatusReason       string
	CreatedBy          string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

func (listingRow) TableName() string { return "market_listings" }

// versionRow is one version of a listing; its content is the JSON of Content.
type versionRow struct {
	ID          string `gorm:"primaryKey"`
	ListingID   string
	Version     int
	State       string
	Content     string
	CardHTML    string
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	SubmittedAt *time.Time
	DecidedAt   *time.Time
	DecidedBy   string
	Comment     string
}

func (versionRow) TableName() string { return "market_versions" }

type historyRow struct {
	ID        string `gorm:"primaryKey"`
	ListingID string
	VersionID string
	Version   int
	UserID    string
	OrgID     string
	Action    string
	Fields    string // comma-separated changed fields
	Comment   string
	At        time.Time
}

func (historyRow) TableName() string { return "market_history" }

type artifactRow struct {
	ID          string `gorm:"primaryKey"`
	ListingID   string
	VersionID   string
	Name        string
	BlobKey     string
	SizeBytes   int64
	SHA256      string `gorm:"column:sha256"`
	ContentType string
	UploadedBy  string
	CreatedAt   time.Time
}

func (artifactRow) TableName() string { return "market_artifacts" }

type orderRow struct {
	ID          string `gorm:"primaryKey"`
	BuyerOrgID  string
	BuyerUserID string
	VendorOrgID string
	ListingID   string
	PlanID      string
	PlanKind    string
	Quantity    int
	AmountMicro int64
	State       string
	Reason      string
	TransferID  string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (orderRow) TableName() string { return "market_orders" }

type entitlementRow struct {
	ID        string `gorm:"primaryKey"`
	OrgID     string
	ListingID string
	Source    string // order, access_request
	SourceID  string
	PlanID    string
	ExpiresAt *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (entitlementRow) TableName() string { return "market_entitlements" }

type accessRequestRow struct {
	ID          string `gorm:"primaryKey"`
	ListingID   string
	VendorOrgID string
	OrgID       string
	UserID      string
	Purpose     string
	State       string
	Comment     string
	DecidedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (accessRequestRow) TableName() string { return "market_access_requests" }

type ratingRow struct {
	ID          string `gorm:"primaryKey"`
	ListingID   string
	OrgID       string
	UserID      string
	DisplayName string
	Stars       int
	Body        string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (ratingRow) TableName() string { return "market_ratings" }

type auditRow struct {
	ID          string `gorm:"primaryKey"`
	ActorUserID string
	ActorOrgID  string
	Action      string
	ListingID   string
	TargetID    string
	Detail      string
	At          time.Time
}

func (auditRow) TableName() string { return "market_audit" }

type orgRow struct {
	OrgID     string `gorm:"primaryKey"`
	Name      string
	Kind      string
	Verified  bool
	UpdatedAt time.Time
}

func (orgRow) TableName() string { return "market_orgs" }

type poolRow struct {
	PoolID      string `gorm:"primaryKey"`
	VendorOrgID string
	Name        string
	Region      string
	GPUModels   string `gorm:"column:gpu_models"` // comma-separated
	UpdatedAt   time.Time
}

func (poolRow) TableName() string { return "market_pools" }

// Content is everything a vendor writes in a version: the catalogue entry, the kind-specific details and the
// plans. It is stored as JSON so that a version is one immutable document once submitted.
type Content struct {
	Title   string `json:"title" openapi:"required"`
	Summary string `json:"summary"`
	// TitleFr and SummaryFr are the French title and summary (optional; readers whose language is French see
	// them, others the English ones, and each falls back to the other language when one is empty).
	TitleFr      string          `json:"title_fr,omitempty" doc:"French title, at most 200 characters; empty: readers see the English title"`
	SummaryFr    string          `json:"summary_fr,omitempty" doc:"French summary, at most 500 characters; empty: readers see the English summary"`
	CardMarkdown string          `json:"card_markdown" text:"multiline"`
	Tags         []string        `json:"tags"`
	License      License         `json:"license" openapi:"required"`
	Residency    string          `json:"residency"`    // ISO 3166-1 alpha-2 where the data or service lives, e.g. CA
	Jurisdiction string          `json:"jurisdiction"` // hosting jurisdiction, e.g. CA
	CanadianIP   bool            `json:"canadian_owned_ip"`
	Visibility   string          `json:"visibility"` // public, restricted
	VisibleTo    []string        `json:"visible_to"` // organisation IDs when restricted
	Gated        bool            `json:"gated"`
	Model        *ModelDetails   `json:"model,omitempty"`
	Dataset      *DatasetDetails `json:"dataset,omitempty"`
	Compute      *ComputeDetails `json:"compute,omitempty"`
	// TryIt is the image a model or dataset listing offers to try in a sandbox (absent: none).
	TryIt *TryIt `json:"try_it,omitempty"`
	Plans []Plan `json:"plans"`
}

// TryIt is a model's or dataset's "try it" image: an OCI image pinned by digest that organisations with
// access to the listing (an entitlement; its vendor and staff always) may start in a testbed sandbox on a
// compute listing's pool, whose staff allow-list still decides. Command is what the sandbox runs (empty: the
// image's own entrypoint and command); Ports are the ports it serves, reached through the testbed's proxy.
// It is part of the version staff review, like everything else in Content.
type TryIt struct {
	Image   string   `json:"image" openapi:"required" doc:"registry/repository@sha256:<64 hex>: pinned by digest, registry named; tags are refused"`
	Command []string `json:"command,omitempty" text:"multiline" doc:"what the sandbox runs; empty: the image's entrypoint and command"`
	Ports   []int    `json:"ports,omitempty" doc:"ports the command serves (1 to 65535, at most 8), proxied by the testbed"`
}

// License is an SPDX expression, or "custom" with a link to the terms.
type License struct {
	SPDX string `json:"spdx"`
	URL  string `json:"url,omitempty"`
}

// ModelDetails describe a model listing.
type ModelDetails struct {
	Framework   string       `json:"framework"`
	Task        string       `json:"task"`
	Parameters  int64        `json:"parameters"`
	BaseModel   string       `json:"base_model,omitempty"`
	Evaluations []Evaluation `json:"evaluations,omitempty"`
}

// Evaluation is one benchmark result of a model.
type Evaluation struct {
	Benchmark string `json:"benchmark"`
	Metric    string `json:"metric"`
	Value     string `json:"value"`
}

// DatasetDetails describe a dataset listing.
type DatasetDetails struct {
	Format        string `json:"format"`
	SizeBytes     int64  `json:"size_bytes"`
	Rows          int64  `json:"rows"`
	Schema        string `json:"schema,omitempty" text:"multiline"`
	SamplePreview string `json:"sample_preview,omitempty" text:"multiline"`
	PersonalData  bool   `json:"personal_data"`
}

// ComputeDetails describe accelerator time sold from a testbed pool.
type ComputeDetails struct {
	PoolID             string `json:"pool_id"`
	GPUModel           string `json:"gpu_model"`
	VRAMGB             int    `json:"vram_gb"`
	DevicesPerNode     int    `json:"devices_per_node"`
	Region             string `json:"region"`
	MinDurationMinutes int    `json:"min_duration_minutes"`
	MaxDurationMinutes int    `json:"max_duration_minutes"`
}

// Plan is a way to buy a listing. PriceMicro is per unit: once, per month, or per GPU-hour.
type Plan struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	PriceMicro int64  `json:"price_micro"`
}

var (
	slugRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$`)
	tagRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{0,39}$`)
	countryRE = regexp.MustCompile(`^[A-Z]{2}$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)
)

// normalize trims and canonicalises content in place before validation.
func (c *Content) normalize() {
	c.Title = strings.TrimSpace(c.Title)
	c.Summary = strings.TrimSpace(c.Summary)
	c.TitleFr = strings.TrimSpace(c.TitleFr)
	c.SummaryFr = strings.TrimSpace(c.SummaryFr)
	for i, t := range c.Tags {
		c.Tags[i] = strings.ToLower(strings.TrimSpace(t))
	}
	c.Residency = strings.ToUpper(strings.TrimSpace(c.Residency))
	c.Jurisdiction = strings.ToUpper(strings.TrimSpace(c.Jurisdiction))
	if c.Visibility == "" {
		c.Visibility = "public"
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	if c.VisibleTo == nil {
		c.VisibleTo = []string{}
	}
	if c.Plans == nil {
		c.Plans = []Plan{}
	}
	if t := c.TryIt; t != nil {
		t.Image = strings.TrimSpace(t.Image)
		if t.Image == "" && len(t.Command) == 0 && len(t.Ports) == 0 {
			c.TryIt = nil // {"try_it": {}} withdraws it
		}
	}
	if c.Compute != nil && c.Compute.VRAMGB == 0 {
		c.Compute.VRAMGB = gpuVRAM[c.Compute.GPUModel]
	}
	if id, ok := CanonicalSPDX(c.License.SPDX); ok {
		c.License.SPDX = id
	}
}

// validate lists every invalid field of content for a listing of kind.
func (c *Content) validate(kind string) error {
	var f problem.Fields
	if c.Title == "" {
		f.Add("title", "required", "is required, at most 200 characters")
	} else {
		f.Check(len(c.Title) <= 200, "title", "invalid", "is required, at most 200 characters")
	}
	f.Check(len(c.Summary) <= 500, "summary", "too_long", "must be at most 500 characters")
	f.Check(len(c.TitleFr) <= 200, "title_fr", "invalid", "at most 200 characters")
	f.Check(len(c.SummaryFr) <= 500, "summary_fr", "too_long", "must be at most 500 characters")
	f.Check(len(c.CardMarkdown) <= 100_000, "card_markdown", "too_long", "must be at most 100,000 characters")
	if hasScript(c.CardMarkdown) {
		f.Add("card_markdown", "script_not_allowed", "must not contain scripts, event handlers or javascript: links")
	}
	f.Check(len(c.Tags) <= 20, "tags", "too_many", "at most 20 tags")
	seen := map[string]bool{}
	for i, t := range c.Tags {
		if !tagRE.MatchString(t) {
			f.Add(fmt.Sprintf("tags[%d]", i), "invalid", "tags use lowercase letters, digits, '+', '.', '-' (at most 40)")
		} else if seen[t] {
			f.Add(fmt.Sprintf("tags[%d]", i), "duplicate", "is listed twice")
		}
		seen[t] = true
	}
	switch {
	case strings.EqualFold(c.License.SPDX, "custom"):
		c.License.SPDX = "custom"
		u, err := url.Parse(c.License.URL)
		f.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "license.url", "invalid_url",
			"a custom licence needs an http(s) link to its terms")
	case c.License.SPDX == "":
		f.Add("license.spdx", "required", "an SPDX licence identifier or expression, or \"custom\" with a url")
	default:
		if _, ok := CanonicalSPDX(c.License.SPDX); !ok {
			f.Add("license.spdx", "invalid_spdx", "must be a known SPDX licence identifier or expression, or \"custom\" with a url")
		}
	}
	f.Check(c.Residency == "" || countryRE.MatchString(c.Residency), "residency", "invalid", "must be an ISO 3166-1 alpha-2 country code such as CA")
	f.Check(c.Jurisdiction == "" || countryRE.MatchString(c.Jurisdiction), "jurisdiction", "invalid", "must be an ISO 3166-1 alpha-2 country code such as CA")
	switch c.Visibility {
	case "public":
		f.Check(len(c.VisibleTo) == 0, "visible_to", "not_allowed", "only restricted listings name organisations")
	case "restricted":
		f.Check(len(c.VisibleTo) > 0 && len(c.VisibleTo) <= 100, "visible_to", "required", "name 1 to 100 organisations")
	default:
		f.Add("visibility", "oneof", "must be one of: public, restricted")
	}
	f.Check((c.Model != nil) == (kind == KindModel), "model", "kind_mismatch", "model details belong to model listings (required there)")
	f.Check((c.Dataset != nil) == (kind == KindDataset), "dataset", "kind_mismatch", "dataset details belong to dataset listings (required there)")
	f.Check((c.Compute != nil) == (kind == KindCompute), "compute", "kind_mismatch", "compute details belong to compute listings (required there)")
	if m := c.Model; m != nil && kind == KindModel {
		f.Check(m.Framework != "" && len(m.Framework) <= 60, "model.framework", "required", "is required (e.g. pytorch)")
		f.Check(m.Task != "" && len(m.Task) <= 60, "model.task", "required", "is required (e.g. text-generation)")
		f.Check(m.Parameters >= 0, "model.parameters", "negative", "must not be negative")
		f.Check(len(m.Evaluations) <= 50, "model.evaluations", "too_many", "at most 50")
	}
	if d := c.Dataset; d != nil && kind == KindDataset {
		f.Check(d.Format != "" && len(d.Format) <= 60, "dataset.format", "required", "is required (e.g. parquet)")
		f.Check(d.SizeBytes >= 0, "dataset.size_bytes", "negative", "must not be negative")
		f.Check(d.Rows >= 0, "dataset.rows", "negative", "must not be negative")
		f.Check(len(d.Schema) <= 20_000, "dataset.schema", "too_long", "at most 20,000 characters")
		f.Check(len(d.SamplePreview) <= 20_000, "dataset.sample_preview", "too_long", "at most 20,000 characters")
		if hasScript(d.SamplePreview) {
			f.Add("dataset.sample_preview", "script_not_allowed", "must not contain scripts")
		}
	}
	if cp := c.Compute; cp != nil && kind == KindCompute {
		f.Check(cp.PoolID != "", "compute.pool_id", "required", "is required: the testbed pool sold")
		if !KnownGPUModel(cp.GPUModel) {
			f.AddMsg("compute.gpu_model", "unknown_gpu_model", "field.oneof", problem.Args{"Param": strings.Join(GPUModels, ", ")})
		}
		f.Check(cp.VRAMGB > 0, "compute.vram_gb", "invalid", "must be positive")
		f.Check(cp.DevicesPerNode >= 1 && cp.DevicesPerNode <= 64, "compute.devices_per_node", "invalid", "must be 1 to 64")
		f.Check(cp.Region != "" && len(cp.Region) <= 60, "compute.region", "required", "is required")
		f.Check(cp.MinDurationMinutes >= 1, "compute.min_duration_minutes", "invalid", "must be at least 1")
		f.Check(cp.MaxDurationMinutes >= cp.MinDurationMinutes && cp.MaxDurationMinutes <= 60*24*31,
			"compute.max_duration_minutes", "invalid", "must be at least the minimum and at most 31 days")
	}
	if c.TryIt != nil {
		if kind == KindCompute {
			f.Add("try_it", "kind_mismatch", "a try-it image belongs to model and dataset listings")
		} else {
			c.TryIt.validate(&f)
		}
	}
	f.Check(len(c.Plans) <= 10, "plans", "too_many", "at most 10 plans")
	names := map[string]bool{}
	for i, p := range c.Plans {
		at := fmt.Sprintf("plans[%d]", i)
		f.Check(p.Name != "" && len(p.Name) <= 80, at+".name", "required", "is required, at most 80 characters")
		if names[p.Name] {
			f.Add(at+".name", "duplicate", "two plans have this name")
		}
		names[p.Name] = true
		allowed := []string{PlanFree, PlanOneTime, PlanSubscription}
		if kind == KindCompute {
			allowed = []string{PlanPerGPUHour}
		}
		if !slices.Contains(allowed, p.Kind) {
			f.AddMsg(at+".kind", "oneof", "field.oneof", problem.Args{"Param": strings.Join(allowed, ", ")})
		}
		switch {
		case p.PriceMicro < 0:
			f.Add(at+".price_micro", "negative_price", "must not be negative")
		case p.Kind == PlanFree && p.PriceMicro != 0:
			f.Add(at+".price_micro", "invalid", "a free plan costs 0")
		case p.Kind != PlanFree && p.Kind != "" && p.PriceMicro == 0 && p.Kind != PlanPerGPUHour:
			f.Add(at+".price_micro", "invalid", "a paid plan costs more than 0 (use a free plan instead)")
		case p.PriceMicro > 1_000_000_000_000_000:
			f.Add(at+".price_micro", "too_large", "is beyond any sensible price")
		}
	}
	return f.Err()
}

// minPrice is the cheapest plan's unit price (the catalogue's "from" price and price sort key).
func (c *Content) minPrice() int64 {
	if len(c.Plans) == 0 {
		return 0
	}
	m := c.Plans[0].PriceMicro
	for _, p := range c.Plans[1:] {
		m = min(m, p.PriceMicro)
	}
	return m
}

func (c *Content) plan(id string) (Plan, bool) {
	for _, p := range c.Plans {
		if p.ID == id {
			return p, true
		}
	}
	return Plan{}, false
}

// CreateListingInput creates a listing and its first (draft) version.
type CreateListingInput struct {
	Kind string
	Slug string
	Content
}

// Validate lists every invalid field.
func (in *CreateListingInput) Validate() error {
	in.Slug = strings.TrimSpace(in.Slug)
	in.normalize()
	var f problem.Fields
	switch in.Kind {
	case KindModel, KindDataset, KindCompute:
	case "":
		f.Add("kind", "required", "one of: model, dataset, compute")
	default:
		f.Add("kind", "oneof", "must be one of: model, dataset, compute")
	}
	if in.Slug == "" {
		f.AddMsg("slug", "required", "field.text.slug", nil)
	} else {
		f.CheckMsg(slugRE.MatchString(in.Slug), "slug", "invalid", "field.text.slug", nil)
	}
	if err := in.Content.validate(in.Kind); err != nil {
		p, _ := problem.From(err)
		f = append(f, p.Fields...)
	}
	return f.Err()
}

// ContentPatch changes some fields of a version's content; absent fields stay as they are.
type ContentPatch struct {
	Title        *string         `json:"title,omitempty"`
	Summary      *string         `json:"summary,omitempty"`
	TitleFr      *string         `json:"title_fr,omitempty" doc:"French title; \"\" removes it"`
	SummaryFr    *string         `json:"summary_fr,omitempty" doc:"French summary; \"\" removes it"`
	CardMarkdown *string         `json:"card_markdown,omitempty" text:"multiline"`
	Tags         *[]string       `json:"tags,omitempty"`
	License      *License        `json:"license,omitempty"`
	Residency    *string         `json:"residency,omitempty"`
	Jurisdiction *string         `json:"jurisdiction,omitempty"`
	CanadianIP   *bool           `json:"canadian_owned_ip,omitempty"`
	Visibility   *string         `json:"visibility,omitempty"`
	VisibleTo    *[]string       `json:"visible_to,omitempty"`
	Gated        *bool           `json:"gated,omitempty"`
	Model        *ModelDetails   `json:"model,omitempty"`
	Dataset      *DatasetDetails `json:"dataset,omitempty"`
	Compute      *ComputeDetails `json:"compute,omitempty"`
	TryIt        *TryIt          `json:"try_it,omitempty" doc:"replaces the try-it image; {} withdraws it"`
	Plans        *[]Plan         `json:"plans,omitempty"`
}

// apply merges p into c and names the fields it touched.
func (p ContentPatch) apply(c *Content) []string {
	var changed []string
	patchField(&changed, "title", p.Title, &c.Title)
	patchField(&changed, "summary", p.Summary, &c.Summary)
	patchField(&changed, "title_fr", p.TitleFr, &c.TitleFr)
	patchField(&changed, "summary_fr", p.SummaryFr, &c.SummaryFr)
	patchField(&changed, "card_markdown", p.CardMarkdown, &c.CardMarkdown)
	patchSlice(&changed, "tags", p.Tags, &c.Tags)
	patchField(&changed, "license", p.License, &c.License)
	patchField(&changed, "residency", p.Residency, &c.Residency)
	patchField(&changed, "jurisdiction", p.Jurisdiction, &c.Jurisdiction)
	patchField(&changed, "canadian_owned_ip", p.CanadianIP, &c.CanadianIP)
	patchField(&changed, "visibility", p.Visibility, &c.Visibility)
	patchSlice(&changed, "visible_to", p.VisibleTo, &c.VisibleTo)
	patchField(&changed, "gated", p.Gated, &c.Gated)
	patchCopy(&changed, "model", p.Model, &c.Model)
	patchCopy(&changed, "dataset", p.Dataset, &c.Dataset)
	patchCopy(&changed, "compute", p.Compute, &c.Compute)
	if p.TryIt != nil {
		t := *p.TryIt
		t.Command, t.Ports = slices.Clone(t.Command), slices.Clone(t.Ports)
		c.TryIt = &t
		changed = append(changed, "try_it")
	}
	patchSlice(&changed, "plans", p.Plans, &c.Plans)
	return changed
}

// patchField sets *dst to *v when the patch carries v, and names the field among changed.
func patchField[T any](changed *[]string, name string, v, dst *T) {
	if v != nil {
		*dst = *v
		*changed = append(*changed, name)
	}
}

// patchSlice is patchField for a list: dst gets a copy of its own.
func patchSlice[T any](changed *[]string, name string, v, dst *[]T) {
	if v != nil {
		*dst = slices.Clone(*v)
		*changed = append(*changed, name)
	}
}

// patchCopy is patchField for details Content holds by pointer: dst points at a copy of its own.
func patchCopy[T any](changed *[]string, name string, v *T, dst **T) {
	if v != nil {
		cp := *v
		*dst = &cp
		*changed = append(*changed, name)
	}
}

// SearchInput is a catalogue query.
type SearchInput struct {
	Q           string
	Kind        string
	Tag         string
	License     string
	GPUModel    string
	Residency   string
	Vendor      string
	PriceMin    *int64
	PriceMax    *int64
	Sort        string // relevance (default with q), newest (default without), price
	Limit       int
	Cursor      string
	ViewerOrg   string // sees restricted listings naming it
	ViewerStaff bool
	// render asks the index for the page as rendered bodies and scores only (AppendCatalogueJSON), without
	// copying each item: the copies were most of a search's garbage.
	render bool
}

// Validate lists every invalid parameter.
func (in *SearchInput) Validate() error {
	var f problem.Fields
	in.Q = strings.TrimSpace(in.Q)
	f.Check(len(in.Q) <= 200, "q", "too_long", "at most 200 characters")
	f.Check(in.Kind == "" || in.Kind == KindModel || in.Kind == KindDataset || in.Kind == KindCompute, "kind", "oneof", "must be one of: model, dataset, compute")
	if in.GPUModel != "" && !KnownGPUModel(in.GPUModel) {
		// Only here: building the message's arguments on every search was its largest allocation.
		f.AddMsg("gpu_model", "unknown_gpu_model", "field.oneof", problem.Args{"Param": strings.Join(GPUModels, ", ")})
	}
	if in.Sort == "" {
		in.Sort = "newest"
		if in.Q != "" {
			in.Sort = "relevance"
		}
	}
	f.Check(in.Sort == "relevance" || in.Sort == "newest" || in.Sort == "price", "sort", "oneof", "must be one of: relevance, newest, price")
	f.Check(in.Sort != "relevance" || in.Q != "", "sort", "needs_query", "relevance sorting needs q")
	f.Check(in.PriceMin == nil || *in.PriceMin >= 0, "price_min", "negative_price", "must not be negative")
	f.Check(in.PriceMax == nil || *in.PriceMax >= 0, "price_max", "negative_price", "must not be negative")
	if in.Residency != "" {
		in.Residency = strings.ToUpper(in.Residency)
	}
	if in.License != "" && !strings.EqualFold(in.License, "custom") {
		if id, ok := CanonicalSPDX(in.License); ok {
			in.License = id
		}
	}
	return f.Err()
}
