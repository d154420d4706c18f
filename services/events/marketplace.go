package events

import (
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// ListingChangedV1 announces a review-workflow transition of a listing version. The subject says which one.
// Published events carry the full commercial picture other services project: testbed (compute listings:
// pool, GPU model, durations, price) and billing (prices, vendor).
type ListingChangedV1 struct {
	ListingID   string    `json:"listing_id"`
	VersionID   string    `json:"version_id"`
	Version     int       `json:"version"`
	VendorOrgID string    `json:"vendor_org_id"`
	Kind        string    `json:"kind"` // model, dataset, compute
	Title       string    `json:"title"`
	ActorUserID string    `json:"actor_user_id"`
	Comment     string    `json:"comment,omitempty"`
	At          time.Time `json:"at"`

	Plans   []PlanV1   `json:"plans,omitempty"`   // on published
	Compute *ComputeV1 `json:"compute,omitempty"` // on published, compute listings only
	// TryIt is on published model and dataset listings that offer a "try it" image (absent otherwise: a
	// published version without one withdraws the previous version's). Added within v1: optional.
	TryIt *TryItV1 `json:"try_it,omitempty"`
}

// PlanV1 is a plan of a published listing. PriceMicro is per unit: once, per month, or per GPU-hour.
type PlanV1 struct {
	PlanID     string `json:"plan_id"`
	Name       string `json:"name"`
	Kind       string `json:"kind"` // free, one_time, subscription, per_gpu_hour
	PriceMicro int64  `json:"price_micro"`
}

// ComputeV1 is what a compute listing sells.
type ComputeV1 struct {
	PoolID             string `json:"pool_id"`
	GPUModel           string `json:"gpu_model"`
	Region             string `json:"region"`
	MinDurationMinutes int    `json:"min_duration_minutes"`
	MaxDurationMinutes int    `json:"max_duration_minutes"`
	PricePerGPUHour    int64  `json:"price_per_gpu_hour_micro"`
	PlanID             string `json:"plan_id"`
	// VisibleTo names the organisations that may see and launch a restricted listing (besides its vendor
	// and staff); empty means public.
	VisibleTo []string `json:"visible_to,omitempty"`
	// Gated: an organisation needs an entitlement (EntitlementGranted, e.g. from an approved access request)
	// to use the listing; its vendor and staff are exempt.
	Gated bool `json:"gated,omitempty"`
}

// TryItV1 is the "try it" image a model or dataset listing offers: an OCI image pinned by digest
// (registry/repository@sha256:…) that organisations with access to the listing may start in a sandbox on a
// compute listing's pool, where the pool's allow-list still decides. Command and Ports are what it serves
// (empty Command: the image's own entrypoint and command).
type TryItV1 struct {
	Image   string   `json:"image"`
	Command []string `json:"command,omitempty"`
	Ports   []int    `json:"ports,omitempty"`
	// VisibleTo and Gated repeat the listing's terms (as ComputeV1 does): a restricted listing's image is for
	// the organisations it names; using it always needs an entitlement to the listing (its vendor and staff
	// are exempt).
	VisibleTo []string `json:"visible_to,omitempty"`
	Gated     bool     `json:"gated,omitempty"`
}

func (e ListingChangedV1) Validate() error {
	var c check
	c.need(e.ListingID != "", "listing_id")
	c.need(e.VendorOrgID != "", "vendor_org_id")
	c.need(e.Kind == "model" || e.Kind == "dataset" || e.Kind == "compute", "kind")
	c.need(set(e.At), "at")
	for _, p := range e.Plans {
		c.need(p.PlanID != "" && p.PriceMicro >= 0, "plans")
	}
	if e.Compute != nil {
		c.need(e.Compute.PoolID != "" && e.Compute.GPUModel != "" && e.Compute.PricePerGPUHour >= 0, "compute")
	}
	if e.TryIt != nil {
		c.need(e.TryIt.Image != "" && (e.Kind == "model" || e.Kind == "dataset"), "try_it")
	}
	return c.err("listing event")
}

// OrderPlacedV1 asks billing to settle a paid order in credits.
type OrderPlacedV1 struct {
	OrderID     string    `json:"order_id"`
	BuyerOrgID  string    `json:"buyer_org_id"`
	BuyerUserID string    `json:"buyer_user_id"`
	VendorOrgID string    `json:"vendor_org_id"`
	ListingID   string    `json:"listing_id"`
	PlanID      string    `json:"plan_id"`
	PlanKind    string    `json:"plan_kind"`
	Quantity    int       `json:"quantity"`
	AmountMicro int64     `json:"amount_micro"` // total to charge the buyer
	At          time.Time `json:"at"`
}

func (e OrderPlacedV1) Validate() error {
	var c check
	c.need(e.OrderID != "", "order_id")
	c.need(e.BuyerOrgID != "", "buyer_org_id")
	c.need(e.VendorOrgID != "", "vendor_org_id")
	c.need(e.Quantity > 0, "quantity")
	c.need(e.AmountMicro > 0, "amount_micro")
	c.need(set(e.At), "at")
	return c.err("order.placed")
}

// EntitlementChangedV1 announces that an organisation may (granted) or may no longer (revoked) use a listing.
// An entitlement is unique per (organization, listing) and keeps its ID across grants; a later grant (a
// renewal, an approval) is a new event with the new terms. ExpiresAt is set for subscriptions (nil: no end).
// Consumers apply the newest At per (organization, listing): the two subjects are not ordered together.
type EntitlementChangedV1 struct {
	EntitlementID  string     `json:"entitlement_id"`
	ListingID      string     `json:"listing_id"`
	OrganizationID string     `json:"organization_id"`
	VendorOrgID    string     `json:"vendor_org_id,omitempty"`
	Source         string     `json:"source,omitempty"` // order, access_request
	SourceID       string     `json:"source_id,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	Reason         string     `json:"reason,omitempty"` // on revoked
	At             time.Time  `json:"at"`
}

func (e EntitlementChangedV1) Validate() error {
	var c check
	c.need(e.EntitlementID != "", "entitlement_id")
	c.need(e.ListingID != "", "listing_id")
	c.need(e.OrganizationID != "", "organization_id")
	c.need(set(e.At), "at")
	return c.err("entitlement event")
}

var (
	EntitlementGranted = eventbus.Subject[EntitlementChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.entitlement.granted.v1"}
	EntitlementRevoked = eventbus.Subject[EntitlementChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.entitlement.revoked.v1"}
)

var (
	ListingSubmitted        = eventbus.Subject[ListingChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.listing.submitted.v1"}
	ListingApproved         = eventbus.Subject[ListingChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.listing.approved.v1"}
	ListingRejected         = eventbus.Subject[ListingChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.listing.rejected.v1"}
	ListingChangesRequested = eventbus.Subject[ListingChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.listing.changes_requested.v1"}
	ListingPublished        = eventbus.Subject[ListingChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.listing.published.v1"}
	ListingSuspended        = eventbus.Subject[ListingChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.listing.suspended.v1"}
	ListingRetired          = eventbus.Subject[ListingChangedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.listing.retired.v1"}
	OrderPlaced             = eventbus.Subject[OrderPlacedV1]{Stream: StreamMarketplace, Name: "tamarack.marketplace.order.placed.v1"}
)

// MarketplaceStream captures the marketplace's events.
var MarketplaceStream = eventbus.Stream{Name: StreamMarketplace, Subjects: []string{
	ListingSubmitted.Name, ListingApproved.Name, ListingRejected.Name, ListingChangesRequested.Name,
	ListingPublished.Name, ListingSuspended.Name, ListingRetired.Name, OrderPlaced.Name,
	EntitlementGranted.Name, EntitlementRevoked.Name,
}}

// ArtifactLinksV1 asks the marketplace for the artifacts of a model's or dataset's published version that an
// organisation may download, with signed links to fetch them (the testbed, mounting them into a sandbox). The
// marketplace decides as for its download endpoint: the listing's vendor and staff always; others need an
// entitlement to it (for a gated listing, an approved access request).
type ArtifactLinksV1 struct {
	ListingID      string `json:"listing_id"`
	OrganizationID string `json:"organization_id"`
	Staff          bool   `json:"staff,omitempty"`
}

func (r ArtifactLinksV1) Validate() error {
	var c check
	c.need(r.ListingID != "", "listing_id")
	c.need(r.OrganizationID != "" || r.Staff, "organization_id")
	return c.err("artifact links")
}

// ArtifactLinksReplyV1 is the listing's published version and its artifacts with their links. Problems:
// 404 listing_not_found (not published, not visible to the organisation, or not a model or dataset), 403
// access_required (visible, but no entitlement: Gated says whether it takes an access request), 422
// no_artifacts (the published version has none).
type ArtifactLinksReplyV1 struct {
	ListingID string           `json:"listing_id"`
	Kind      string           `json:"kind"`
	Title     string           `json:"title"`
	Slug      string           `json:"slug"`
	Version   int              `json:"version"`
	Artifacts []ArtifactLinkV1 `json:"artifacts"`
}

// ArtifactLinkV1 is one artifact and a signed, expiring link to its bytes (absolute, or a path on the platform).
type ArtifactLinkV1 struct {
	ArtifactID string `json:"artifact_id"`
	Name       string `json:"name"`
	SHA256     string `json:"sha256"`
	SizeBytes  int64  `json:"size_bytes"`
	URL        string `json:"url"`
}

// ArtifactLinks is served by the marketplace.
var ArtifactLinks = eventbus.Endpoint[ArtifactLinksV1, ArtifactLinksReplyV1]{Name: "tamarack.marketplace.artifact.links.v1"}
