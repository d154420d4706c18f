package marketplace

import (
	"github.com/tamarack-ai/tamarack/platform/openapi"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// OpenAPI declares every marketplace route.
func (s *Service) OpenAPI(d *openapi.Doc) {
	const tag = "marketplace"
	p := func(path string) string { return BasePath + path }
	page := []openapi.Param{{Name: "limit", Type: "integer", Description: "1 to 200, default 50"}, {Name: "cursor", Description: "next_cursor of the previous page"}}
	search := append([]openapi.Param{
		{Name: "q", Description: "full-text query (every word must match; the last one also as a prefix)"},
		{Name: "kind", Description: "model, dataset or compute"}, {Name: "tag"}, {Name: "license", Description: "SPDX expression or custom"},
		{Name: "gpu_model", Description: "one of the known GPU models"}, {Name: "residency", Description: "ISO country code, e.g. CA"},
		{Name: "vendor", Description: "vendor organisation ID"},
		{Name: "price_min", Type: "integer", Description: "lowest plan price at least (micro-credits)"},
		{Name: "price_max", Type: "integer", Description: "lowest plan price at most (micro-credits)"},
		{Name: "sort", Description: "relevance (default with q), newest (default without), price"},
	}, page...)
	listing := listingJSON{}
	d.Add(
		openapi.Op{Method: "GET", Path: p("/listings"), Summary: "Search the published catalogue, with facet counts", Tag: tag,
			Response: searchJSON{}, Query: search, Problems: []string{"validation_failed", "invalid_cursor"}},
		openapi.Op{Method: "POST", Path: p("/listings"), Summary: "Create a listing in draft with its first version", Tag: tag,
			Auth: "vendor member", Request: createListingRequest{}, Response: listing, Status: 201,
			Problems: []string{"validation_failed", "slug_taken"}},
		openapi.Op{Method: "GET", Path: p("/listings/:id"), Summary: "A listing (by ID or slug) with its published version (its vendor and staff also see the pending one)", Tag: tag,
			Response: listing, Problems: []string{"listing_not_found"}},
		openapi.Op{Method: "PATCH", Path: p("/listings/:id"), Summary: "Edit the draft or changes_requested version (absent fields stay)", Tag: tag,
			Auth: "vendor member", Request: ContentPatch{}, Response: listing, Problems: []string{"validation_failed", "version_not_editable", "listing_not_found"}},
		openapi.Op{Method: "GET", Path: p("/listings/:id/versions"), Summary: "Version history with who changed what", Tag: tag,
			Auth: "vendor member or staff", Response: web.List[versionHistoryJSON]{}, Problems: []string{"listing_not_found"}},
		openapi.Op{Method: "POST", Path: p("/listings/:id/versions"), Summary: "Start a new version of a published listing (optional body: fields to change); it goes through review again", Tag: tag,
			Auth: "vendor member", Request: ContentPatch{}, OptionalBody: true, Response: listing, Status: 201, Problems: []string{"version_pending", "validation_failed", "listing_retired"}},
		openapi.Op{Method: "PUT", Path: p("/listings/:id/versions/:version/artifacts/:name"), Summary: "Upload (or replace) an artifact, streamed; X-Checksum-Sha256 (hex or base64) or Digest: sha-256=... is checked", Tag: tag,
			Auth: "vendor member", ContentType: "application/octet-stream", Response: artifactJSON{}, Status: 201,
			Problems: []string{"artifact_too_large", "checksum_mismatch", "invalid_checksum", "invalid_artifact_name", "version_not_editable", "artifact_exists"}},
		openapi.Op{Method: "POST", Path: p("/listings/:id/submit"), Summary: "Submit the draft or changes_requested version for review", Tag: tag,
			Auth: "vendor member", Response: listing, Problems: []string{"vendor_not_verified", "pool_not_owned", "pool_gpu_mismatch", "no_plans", "version_not_submittable"}},
		openapi.Op{Method: "POST", Path: p("/listings/:id/retire"), Summary: "Remove the listing from the catalogue; entitlements stay", Tag: tag,
			Auth: "vendor admin", Response: listing, Problems: []string{"listing_retired"}},
		openapi.Op{Method: "POST", Path: p("/listings/:id/suspend"), Summary: "Hide a published listing, with a reason", Tag: tag,
			Auth: "staff", Request: suspendRequest{}, Response: listing, Problems: []string{"own_listing", "listing_not_published"}},
		openapi.Op{Method: "GET", Path: p("/listings/:id/reviews"), Summary: "Ratings and reviews of a listing, newest first: stars, text, dates and the name each rater chose (which organisation rated is shown to it and to staff only)", Tag: tag,
			Response: web.List[reviewJSON]{}, Query: page},
		openapi.Op{Method: "POST", Path: p("/listings/:id/reviews"), Summary: "Rate a listing (entitled organisations, once each)", Tag: tag,
			Auth: "user", Request: reviewRequest{}, Response: reviewJSON{}, Status: 201, Problems: []string{"entitlement_required", "review_exists"}},
		openapi.Op{Method: "PATCH", Path: p("/listings/:id/reviews"), Summary: "Edit your organisation's review", Tag: tag,
			Auth: "user", Request: reviewRequest{}, Response: reviewJSON{}, Problems: []string{"review_not_found"}},
		openapi.Op{Method: "POST", Path: p("/listings/:id/access-requests"), Summary: "Ask for access to a gated listing", Tag: tag,
			Auth: "user", Request: accessRequestBody{}, Response: accessRequestJSON{}, Status: 201,
			Problems: []string{"forbidden", "listing_not_gated", "access_request_pending", "own_listing"}},
		openapi.Op{Method: "GET", Path: p("/my/listings"), Summary: "The caller's vendor organisation's listings in every state", Tag: tag,
			Auth: "vendor member", Response: web.List[listingJSON]{}, Query: page},
		openapi.Op{Method: "GET", Path: p("/reviews"), Summary: "Review queue, oldest submission first, with age and the diff against the published version", Tag: tag,
			Auth: "staff", Response: web.List[queueItemJSON]{},
			Query: append([]openapi.Param{{Name: "state", Description: "submitted (default), changes_requested, rejected, published"}}, page...)},
		openapi.Op{Method: "POST", Path: p("/reviews/:version_id/decision"), Summary: "Approve (publishes), reject or request changes; comment required unless approving", Tag: tag,
			Auth: "staff", Request: decisionRequest{}, Response: versionJSON{}, Problems: []string{"own_listing", "version_not_submitted", "validation_failed"}},
		openapi.Op{Method: "GET", Path: p("/audit"), Summary: "Staff actions on listings, newest first", Tag: tag,
			Auth: "staff", Response: web.List[auditJSON]{}, Query: page},
		openapi.Op{Method: "POST", Path: p("/orders"), Summary: "Order a plan: free plans are fulfilled at once, paid ones settle through billing", Tag: tag,
			Auth: "user", Request: orderRequest{}, Response: orderJSON{}, Status: 201,
			Problems: []string{"forbidden", "plan_not_found", "compute_not_orderable", "access_request_required", "own_listing", "listing_not_published"}},
		openapi.Op{Method: "GET", Path: p("/orders"), Summary: "Orders of the caller's organisation, as buyer or vendor", Tag: tag,
			Auth: "user", Response: web.List[orderJSON]{}, Query: page},
		openapi.Op{Method: "GET", Path: p("/orders/:id"), Summary: "One order", Tag: tag, Auth: "user", Response: orderJSON{}, Problems: []string{"order_not_found"}},
		openapi.Op{Method: "GET", Path: p("/access-requests"), Summary: "Access requests the caller's organisation made or received", Tag: tag,
			Auth: "user", Response: web.List[accessRequestJSON]{}, Query: page},
		openapi.Op{Method: "POST", Path: p("/access-requests/:id/decision"), Summary: "Approve (grants an entitlement) or deny", Tag: tag,
			Auth: "vendor admin", Request: accessDecisionRequest{}, Response: accessRequestJSON{}, Problems: []string{"access_request_decided", "access_request_not_found"}},
		openapi.Op{Method: "POST", Path: p("/access-requests/:id/cancel"), Summary: "Withdraw your organisation's pending request", Tag: tag,
			Auth: "user", Response: accessRequestJSON{}, Problems: []string{"access_request_decided", "access_request_not_found"}},
		openapi.Op{Method: "GET", Path: p("/entitlements"), Summary: "What the caller's organisation may use", Tag: tag,
			Auth: "user", Response: web.List[entitlementJSON]{}, Query: page},
		openapi.Op{Method: "GET", Path: p("/artifacts/:id/download"), Summary: "302 to a signed, expiring URL (?redirect=false answers it as JSON)", Tag: tag,
			Auth: "entitled organisation, its vendor, staff", Status: 302, Response: downloadJSON{}, Problems: []string{"artifact_not_found"}},
		openapi.Op{Method: "GET", Path: p("/artifacts/:id/blob"), Summary: "The artifact's bytes through a signed link (Range supported)", Tag: tag,
			Query:    []openapi.Param{{Name: "exp"}, {Name: "org"}, {Name: "g"}, {Name: "sig"}},
			Problems: []string{"invalid_signature", "range_not_satisfiable"}},
	)
	hfOpenAPI(d)
}

// hfOpenAPI declares the Hugging Face Hub download API (hfapi.go). Its errors are the Hub's (X-Error-Code and
// {"error"}), not problems: see docs/hf-api.md.
func hfOpenAPI(d *openapi.Doc) {
	const tag = "huggingface"
	auth := "anyone for what the marketplace shows them; files need an entitlement (Bearer API token, hf_ prefix allowed)"
	tree := []openapi.Param{{Name: "limit", Type: "integer", Description: "1 to 1000, default 1000"},
		{Name: "cursor", Description: "from the Link: rel=\"next\" header of the previous page"},
		{Name: "recursive", Type: "boolean", Description: "accepted; the tree is flat"}, {Name: "expand", Type: "boolean", Description: "accepted; ignored"}}
	for _, k := range []struct{ plural, resolve string }{{"models", ""}, {"datasets", "/datasets"}} {
		api := "/api/" + k.plural + "/:ns/:repo"
		d.Add(
			openapi.Op{Method: "GET", Path: api, Summary: "Hub API: the " + k.plural + " repository at main (a listing's live version)", Tag: tag, Auth: auth, Response: hfInfoJSON{}},
			openapi.Op{Method: "GET", Path: api + "/revision/:rev", Summary: "Hub API: a revision (main, v<N>, or its sha) with its files", Tag: tag, Auth: auth, Response: hfInfoJSON{}},
			openapi.Op{Method: "GET", Path: api + "/tree/:rev", Summary: "Hub API: the revision's files, paged by Link headers", Tag: tag, Auth: auth, Response: []hfTreeJSON{}, Query: tree},
			openapi.Op{Method: "GET", Path: api + "/tree/:rev/:path", Summary: "Hub API: a directory of the revision (none: the tree is flat)", Tag: tag, Auth: auth, Response: []hfTreeJSON{}, Query: tree},
			openapi.Op{Method: "GET", Path: k.resolve + "/:ns/:repo/resolve/:rev/:file", Summary: "Hub API: a file's bytes (HEAD for its headers; Range supported)", Tag: tag, Auth: auth},
		)
	}
}

// Schema names a client sees where the Go name is vague or taken by another service (see package openapi).

func (auditJSON) SchemaName() string         { return "MarketplaceAuditEntry" }
func (reviewJSON) SchemaName() string        { return "ListingReview" }
func (reviewRequest) SchemaName() string     { return "ListingReviewRequest" }
func (queueItemJSON) SchemaName() string     { return "ReviewQueueItem" }
func (decisionRequest) SchemaName() string   { return "ReviewDecisionRequest" }
func (accessRequestBody) SchemaName() string { return "CreateAccessRequestRequest" }
func (historyJSON) SchemaName() string       { return "VersionHistoryEntry" }
func (searchJSON) SchemaName() string        { return "SearchResult" }
func (downloadJSON) SchemaName() string      { return "DownloadLink" }
func (hfInfoJSON) SchemaName() string        { return "HubRepoInfo" }
func (hfTreeJSON) SchemaName() string        { return "HubTreeEntry" }
func (hfSiblingJSON) SchemaName() string     { return "HubSibling" }
func (hfLFSJSON) SchemaName() string         { return "HubLFSInfo" }

// Plan is what a vendor sends; planJSON (with its id) is what readers get, under the plain name.
func (Plan) SchemaName() string { return "PlanInput" }
