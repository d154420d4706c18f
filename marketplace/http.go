package marketplace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// BasePath is where Routes is mounted (under /api/v1).
const BasePath = "/api/v1/marketplace"

// Routes mounts the marketplace's HTTP API on r, which must be the /api/v1/marketplace group of an app whose
// authentication middleware has run (anonymous callers pass through; guards decide per route).
func (s *Service) Routes(r fiber.Router) {
	h := handler{s}
	auth, write, staff := web.RequireAuth, web.RequireScope("write"), web.RequireStaff
	vendor := web.RequireOrgKind("vendor")
	// Artifacts stream to the blob store, bounded by Deps' upload limit; every other body by MaxBody.
	web.ReadsOwnBody("PUT", BasePath+"/listings/:id/versions/:version/artifacts/:name")
	r.Use(web.LimitBody(MaxBody))

	r.Get("/listings", h.search)
	r.Post("/listings", vendor, write, h.createListing)
	r.Get("/listings/:id", h.getListing)
	r.Patch("/listings/:id", auth, write, h.updateListing)
	r.Get("/listings/:id/versions", auth, h.versions)
	r.Post("/listings/:id/versions", auth, write, h.newVersion)
	r.Put("/listings/:id/versions/:version/artifacts/:name", auth, write, h.upload)
	r.Post("/listings/:id/submit", auth, write, h.submit)
	r.Post("/listings/:id/retire", auth, write, h.retire)
	r.Post("/listings/:id/suspend", staff, write, h.suspend)
	r.Get("/listings/:id/reviews", h.reviews)
	r.Post("/listings/:id/reviews", auth, write, h.createReview)
	r.Patch("/listings/:id/reviews", auth, write, h.updateReview)
	r.Post("/listings/:id/access-requests", auth, write, h.requestAccess)
	r.Get("/my/listings", vendor, h.myListings)

	r.Get("/reviews", staff, h.queue)
	r.Post("/reviews/:version_id/decision", staff, write, h.decide)
	r.Get("/audit", staff, h.audit)

	r.Post("/orders", auth, write, web.RequireVerifiedEmail, h.placeOrder)
	r.Get("/orders", auth, h.orders)
	r.Get("/orders/:id", auth, h.order)
	r.Get("/access-requests", auth, h.accessRequests)
	r.Post("/access-requests/:id/decision", auth, write, h.decideAccess)
	r.Post("/access-requests/:id/cancel", auth, write, h.cancelAccess)
	r.Get("/entitlements", auth, h.entitlements)

	r.Get("/artifacts/:id/download", auth, h.download)
	r.Get("/artifacts/:id/blob", h.blob)
}

// MaxBody caps the marketplace's JSON request bodies: a listing's card, schema and sample preview fit.
const MaxBody = 1 << 20

type handler struct{ s *Service }

func actorOf(c *fiber.Ctx) web.Principal {
	return web.PrincipalOf(c)
}

// JSON shapes.

type vendorJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type planJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	PriceMicro int64  `json:"price_micro"`
}

type artifactJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	SizeBytes   int64     `json:"size_bytes"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"content_type"`
	CreatedAt   time.Time `json:"created_at"`
	DownloadURL string    `json:"download_url"`
}

type versionJSON struct {
	ID           string          `json:"id"`
	Version      int             `json:"version"`
	State        string          `json:"state"`
	Title        string          `json:"title"`
	Summary      string          `json:"summary"`
	TitleFr      string          `json:"title_fr" doc:"French title; empty when the vendor wrote none (show title)"`
	SummaryFr    string          `json:"summary_fr" doc:"French summary; empty when the vendor wrote none (show summary)"`
	CardMarkdown string          `json:"card_markdown"`
	CardHTML     string          `json:"card_html"`
	Tags         []string        `json:"tags"`
	License      License         `json:"license"`
	Residency    string          `json:"residency"`
	Jurisdiction string          `json:"jurisdiction"`
	CanadianIP   bool            `json:"canadian_owned_ip"`
	Visibility   string          `json:"visibility"`
	VisibleTo    []string        `json:"visible_to,omitempty"`
	Gated        bool            `json:"gated"`
	Model        *ModelDetails   `json:"model,omitempty"`
	Dataset      *DatasetDetails `json:"dataset,omitempty"`
	Compute      *ComputeDetails `json:"compute,omitempty"`
	TryIt        *TryIt          `json:"try_it,omitempty"`
	Plans        []planJSON      `json:"plans"`
	Artifacts    []artifactJSON  `json:"artifacts"`
	CreatedBy    string          `json:"created_by,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	SubmittedAt  *time.Time      `json:"submitted_at,omitempty"`
	DecidedAt    *time.Time      `json:"decided_at,omitempty"`
	DecidedBy    string          `json:"decided_by,omitempty"`
	Comment      string          `json:"comment,omitempty"`
}

type ratingSummaryJSON struct {
	Count   int64   `json:"count"`
	Average float64 `json:"average"`
}

type listingJSON struct {
	ID               string            `json:"id"`
	Slug             string            `json:"slug"`
	Kind             string            `json:"kind"`
	Status           string            `json:"status"`
	StatusReason     string            `json:"status_reason,omitempty"`
	Vendor           vendorJSON        `json:"vendor"`
	PublishedVersion *versionJSON      `json:"published_version"`
	PendingVersion   *versionJSON      `json:"pending_version,omitempty"`
	Rating           ratingSummaryJSON `json:"rating"`
	Viewer           *viewerJSON       `json:"viewer,omitempty" doc:"what the caller may do (GET of one listing only)"`
	HubRepo          string            `json:"hub_repo,omitempty" doc:"models and datasets: the Hugging Face Hub repository ID for huggingface_hub and the CLI (GET of one listing only; docs/hf-api.md)"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

func toPlansJSON(ps []Plan) []planJSON {
	out := make([]planJSON, len(ps))
	for i, p := range ps {
		out[i] = planJSON{ID: p.ID, Name: p.Name, Kind: p.Kind, PriceMicro: p.PriceMicro}
	}
	return out
}

func toArtifactJSON(a artifactRow) artifactJSON {
	return artifactJSON{ID: a.ID, Name: a.Name, SizeBytes: a.SizeBytes, SHA256: a.SHA256, ContentType: a.ContentType,
		CreatedAt: a.CreatedAt, DownloadURL: BasePath + "/artifacts/" + a.ID + "/download"}
}

func toVersionJSON(v VersionView) *versionJSON {
	c := v.Content
	arts := make([]artifactJSON, len(v.Artifacts))
	for i, a := range v.Artifacts {
		arts[i] = toArtifactJSON(a)
	}
	return &versionJSON{ID: v.Row.ID, Version: v.Row.Version, State: v.Row.State, Title: c.Title, Summary: c.Summary,
		TitleFr: c.TitleFr, SummaryFr: c.SummaryFr, CardMarkdown: c.CardMarkdown, CardHTML: v.Row.CardHTML, Tags: c.Tags, License: c.License, Residency: c.Residency,
		Jurisdiction: c.Jurisdiction, CanadianIP: c.CanadianIP, Visibility: c.Visibility, VisibleTo: c.VisibleTo,
		Gated: c.Gated, Model: c.Model, Dataset: c.Dataset, Compute: c.Compute, TryIt: c.TryIt, Plans: toPlansJSON(c.Plans),
		Artifacts: arts, CreatedBy: v.Row.CreatedBy, CreatedAt: v.Row.CreatedAt, UpdatedAt: v.Row.UpdatedAt,
		SubmittedAt: v.Row.SubmittedAt, DecidedAt: v.Row.DecidedAt, DecidedBy: v.Row.DecidedBy, Comment: v.Row.Comment}
}

func toListingJSON(v ListingView) listingJSON {
	out := listingJSON{ID: v.Listing.ID, Slug: v.Listing.Slug, Kind: v.Listing.Kind, Status: v.Listing.Status,
		StatusReason: v.Listing.StatusReason, Vendor: vendorJSON{v.Listing.VendorOrgID, v.VendorName},
		Rating: ratingSummaryJSON{v.Rating.Count, v.Rating.Average}, CreatedAt: v.Listing.CreatedAt, UpdatedAt: v.Listing.UpdatedAt}
	if v.Published != nil {
		out.PublishedVersion = toVersionJSON(*v.Published)
		if !v.Internal {
			// Buyers see what is published, not who on either side wrote or reviewed it.
			pv := out.PublishedVersion
			// Nor, for a restricted listing, which other organisations it is for.
			pv.CreatedBy, pv.DecidedBy, pv.Comment, pv.VisibleTo = "", "", "", nil
		}
	}
	if v.Pending != nil {
		out.PendingVersion = toVersionJSON(*v.Pending)
	}
	if v.Viewer != nil {
		out.Viewer = toViewerJSON(*v.Viewer)
	}
	out.HubRepo = v.HubRepo
	return out
}

// viewerJSON tells a client what to offer the caller; the actions still decide for themselves.
type viewerJSON struct {
	Entitled         bool                     `json:"entitled" doc:"the caller's organisation holds a live entitlement"`
	CanDownload      bool                     `json:"can_download" doc:"the artifacts' downloads will be allowed"`
	CanRate          bool                     `json:"can_rate" doc:"the organisation may rate the listing (an entitlement)"`
	CanRequestAccess bool                     `json:"can_request_access" doc:"a gated listing with no pending request and no entitlement"`
	AccessRequest    *viewerAccessRequestJSON `json:"access_request" doc:"the organisation's newest access request for this listing; null if none"`
}

type viewerAccessRequestJSON struct {
	ID        string     `json:"id"`
	State     string     `json:"state" doc:"pending, approved, denied or cancelled"`
	Note      string     `json:"note" doc:"the vendor's comment on its decision"`
	CreatedAt time.Time  `json:"created_at"`
	DecidedAt *time.Time `json:"decided_at" doc:"when it was approved or denied; null otherwise"`
}

func toViewerJSON(v Viewer) *viewerJSON {
	out := &viewerJSON{Entitled: v.Entitled, CanDownload: v.CanDownload, CanRate: v.CanRate, CanRequestAccess: v.CanRequestAccess}
	if r := v.AccessRequest; r != nil {
		out.AccessRequest = &viewerAccessRequestJSON{ID: r.ID, State: r.State, Note: r.Comment, CreatedAt: r.CreatedAt, DecidedAt: decidedAt(*r)}
	}
	return out
}

// Catalogue.

type catalogItemJSON struct {
	ID             string     `json:"id"`
	Slug           string     `json:"slug"`
	Kind           string     `json:"kind"`
	Title          string     `json:"title"`
	Summary        string     `json:"summary"`
	TitleFr        string     `json:"title_fr" doc:"French title; empty: show title"`
	SummaryFr      string     `json:"summary_fr" doc:"French summary; empty: show summary"`
	Vendor         vendorJSON `json:"vendor"`
	Tags           []string   `json:"tags"`
	License        string     `json:"license"`
	GPUModel       string     `json:"gpu_model,omitempty"`
	Residency      string     `json:"residency,omitempty"`
	CanadianIP     bool       `json:"canadian_owned_ip"`
	Gated          bool       `json:"gated"`
	PriceFromMicro int64      `json:"price_from_micro"`
	PublishedAt    time.Time  `json:"published_at"`
	Score          float64    `json:"score,omitempty"`
}

type searchJSON struct {
	Items      []catalogItemJSON       `json:"items"`
	NextCursor string                  `json:"next_cursor,omitempty"`
	Total      int64                   `json:"total"`
	Facets     map[string][]FacetValue `json:"facets"`
}

func (h handler) search(c *fiber.Ctx) error {
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	p := web.PrincipalOf(c)
	in := SearchInput{Q: c.Query("q"), Kind: c.Query("kind"), Tag: c.Query("tag"), License: c.Query("license"),
		GPUModel: c.Query("gpu_model"), Residency: c.Query("residency"), Vendor: c.Query("vendor"), Sort: c.Query("sort"),
		Limit: pg.Limit, Cursor: pg.Cursor, ViewerOrg: p.OrgID, ViewerStaff: p.Staff}
	var f problem.Fields
	for _, q := range []struct {
		name string
		dst  **int64
	}{{"price_min", &in.PriceMin}, {"price_max", &in.PriceMax}} {
		if v := c.Query(q.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				f.Add(q.name, "wrong_type", "must be an integer number of micro-credits")
				continue
			}
			*q.dst = &n
		}
	}
	if err := f.Err(); err != nil {
		return err
	}
	if h.s.cache != nil {
		body, err := h.s.CatalogueJSON(c.UserContext(), in)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(body)
	}
	// Without the cache the answer is rendered into a pooled buffer and copied into the response's own (pooled)
	// body: allocating tens of kB per search was most of the garbage collector's work.
	buf := answerBuffers.Get().(*[]byte)
	defer answerBuffers.Put(buf)
	body, err := h.s.AppendCatalogueJSON(c.UserContext(), (*buf)[:0], in)
	*buf = body
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(body)
	return nil
}

var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// Listings.

type createListingRequest struct {
	Kind string `json:"kind" openapi:"required" doc:"model, dataset or compute"`
	Slug string `json:"slug" openapi:"required"`
	Content
}

func (h handler) createListing(c *fiber.Ctx) error {
	var req createListingRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	v, err := h.s.CreateListing(c.UserContext(), actorOf(c), CreateListingInput(req))
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(toListingJSON(v))
}

func (h handler) getListing(c *fiber.Ctx) error {
	v, err := h.s.Listing(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toListingJSON(v))
}

func (h handler) updateListing(c *fiber.Ctx) error {
	var p ContentPatch
	if err := web.Bind(c, &p); err != nil {
		return err
	}
	v, err := h.s.UpdateListing(c.UserContext(), actorOf(c), c.Params("id"), p)
	if err != nil {
		return err
	}
	return c.JSON(toListingJSON(v))
}

func (h handler) newVersion(c *fiber.Ctx) error {
	var p ContentPatch
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := web.Bind(c, &p); err != nil {
			return err
		}
	}
	v, err := h.s.NewVersion(c.UserContext(), actorOf(c), c.Params("id"), p)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(toListingJSON(v))
}

type historyJSON struct {
	Action  string    `json:"action"`
	UserID  string    `json:"user_id"`
	OrgID   string    `json:"org_id"`
	Fields  []string  `json:"fields,omitempty"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

type versionHistoryJSON struct {
	*versionJSON
	History []historyJSON `json:"history"`
}

func (h handler) versions(c *fiber.Ctx) error {
	vs, err := h.s.Versions(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	out := web.List[versionHistoryJSON]{Items: make([]versionHistoryJSON, len(vs))}
	for i, v := range vs {
		hj := versionHistoryJSON{versionJSON: toVersionJSON(v.VersionView), History: []historyJSON{}}
		for _, e := range v.History {
			var fields []string
			if e.Fields != "" {
				fields = strings.Split(e.Fields, ",")
			}
			hj.History = append(hj.History, historyJSON{Action: e.Action, UserID: e.UserID, OrgID: e.OrgID, Fields: fields, Comment: e.Comment, At: e.At})
		}
		out.Items[i] = hj
	}
	return c.JSON(out)
}

func (h handler) upload(c *fiber.Ctx) error {
	n, err := strconv.Atoi(c.Params("version"))
	if err != nil || n < 1 {
		return fmt.Errorf("version %q: %w", c.Params("version"), ErrVersionNotFound)
	}
	var body io.Reader = c.Context().RequestBodyStream()
	if body == nil {
		body = bytes.NewReader(c.Body())
	} else if conn := c.Context().Conn(); conn != nil {
		// The server's read timeout counts from the request's start; a large upload instead gets a deadline
		// that moves with progress, so only a stalled client is cut off.
		body = &progressDeadline{r: body, conn: conn, idle: time.Minute}
	}
	length := int64(c.Request().Header.ContentLength())
	if length < 0 {
		length = -1
	}
	sum := c.Get("X-Checksum-Sha256")
	if sum == "" {
		sum = c.Get("Digest")
	}
	// Uploads outlive the API's 30 s request deadline; the server's read timeout still bounds a stalled client.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), 2*time.Hour)
	defer cancel()
	a, err := h.s.Upload(ctx, actorOf(c), UploadInput{ListingID: c.Params("id"), Version: n,
		Name: c.Params("name"), Body: body, Length: length, SHA256: sum})
	if err != nil {
		// The rest of a refused upload is never read: close the connection rather than parse it as a request.
		c.Context().SetConnectionClose()
		return err
	}
	return c.Status(http.StatusCreated).JSON(toArtifactJSON(a))
}

func (h handler) submit(c *fiber.Ctx) error {
	v, err := h.s.Submit(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toListingJSON(v))
}

func (h handler) retire(c *fiber.Ctx) error {
	v, err := h.s.Retire(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toListingJSON(v))
}

type suspendRequest struct {
	Reason string `json:"reason" text:"multiline" openapi:"required"`
}

func (h handler) suspend(c *fiber.Ctx) error {
	var req suspendRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	v, err := h.s.Suspend(c.UserContext(), actorOf(c), c.Params("id"), req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(toListingJSON(v))
}

func (h handler) myListings(c *fiber.Ctx) error {
	pg, after, err := idPage(c)
	if err != nil {
		return err
	}
	vs, err := h.s.MyListings(c.UserContext(), actorOf(c), pg.Limit, after)
	if err != nil {
		return err
	}
	items := make([]listingJSON, len(vs))
	for i, v := range vs {
		items[i] = toListingJSON(v)
	}
	return c.JSON(web.NewList(items, pg.Limit, func(l listingJSON) any { return idCursor{l.ID} }))
}

type idCursor struct {
	ID string `json:"id"`
}

func idPage(c *fiber.Ctx) (web.Page, string, error) {
	pg, err := web.PageOf(c)
	if err != nil {
		return pg, "", err
	}
	if pg.Cursor == "" {
		return pg, "", nil
	}
	var cur idCursor
	if err := web.DecodeCursor(pg.Cursor, &cur); err != nil || cur.ID == "" {
		return pg, "", problem.ErrBadCursor
	}
	return pg, cur.ID, nil
}

// Review queue.

type queueItemJSON struct {
	VersionID   string      `json:"version_id"`
	ListingID   string      `json:"listing_id"`
	Version     int         `json:"version"`
	Kind        string      `json:"kind"`
	Slug        string      `json:"slug"`
	Title       string      `json:"title"`
	Vendor      vendorJSON  `json:"vendor"`
	State       string      `json:"state"`
	SubmittedAt *time.Time  `json:"submitted_at"`
	AgeSeconds  int64       `json:"age_seconds"`
	FirstReview bool        `json:"first_review"`
	Diff        []FieldDiff `json:"diff"`
}

type offsetCursor struct {
	O int `json:"o"`
}

func (h handler) queue(c *fiber.Ctx) error {
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	var cur offsetCursor
	if pg.Cursor != "" {
		if err := web.DecodeCursor(pg.Cursor, &cur); err != nil || cur.O < 0 {
			return problem.ErrBadCursor
		}
	}
	items, err := h.s.ReviewQueue(c.UserContext(), actorOf(c), c.Query("state"), pg.Limit, cur.O)
	if err != nil {
		return err
	}
	out := make([]queueItemJSON, len(items))
	for i, it := range items {
		out[i] = queueItemJSON{VersionID: it.Version.ID, ListingID: it.Listing.ID, Version: it.Version.Version,
			Kind: it.Listing.Kind, Slug: it.Listing.Slug, Title: it.Title, Vendor: vendorJSON{it.Listing.VendorOrgID, it.VendorName},
			State: it.Version.State, SubmittedAt: it.Version.SubmittedAt, AgeSeconds: int64(it.Age / time.Second),
			FirstReview: it.FirstReview, Diff: it.Diff}
	}
	next := cur.O + pg.Limit
	return c.JSON(web.NewList(out, pg.Limit, func(queueItemJSON) any { return offsetCursor{next} }))
}

type decisionRequest struct {
	Decision string `json:"decision" openapi:"required" doc:"approve, reject or request_changes"`
	Comment  string `json:"comment" text:"multiline" doc:"required unless approving"`
}

func (h handler) decide(c *fiber.Ctx) error {
	var req decisionRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	v, err := h.s.Decide(c.UserContext(), actorOf(c), c.Params("version_id"), Decision(req))
	if err != nil {
		return err
	}
	return c.JSON(toVersionJSON(v))
}

type auditJSON struct {
	ID          string    `json:"id"`
	ActorUserID string    `json:"actor_user_id"`
	ActorOrgID  string    `json:"actor_org_id"`
	Action      string    `json:"action"`
	ListingID   string    `json:"listing_id,omitempty"`
	TargetID    string    `json:"target_id,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	At          time.Time `json:"at"`
	// ActionDisplay names the action for people (catalogue key audit.marketplace.<action>).
	ActionDisplay string `json:"action_display" doc:"the action named for people, in the language of Accept-Language (the action itself when no name is catalogued)"`
}

func (h handler) audit(c *fiber.Ctx) error {
	pg, before, err := idPage(c)
	if err != nil {
		return err
	}
	rows, err := h.s.Audit(c.UserContext(), actorOf(c), pg.Limit, before)
	if err != nil {
		return err
	}
	out := make([]auditJSON, len(rows))
	lang := web.Lang(c)
	for i, r := range rows {
		out[i] = auditJSON{ID: r.ID, ActorUserID: r.ActorUserID, ActorOrgID: r.ActorOrgID, Action: r.Action, ListingID: r.ListingID,
			TargetID: r.TargetID, Detail: r.Detail, At: r.At, ActionDisplay: i18n.AuditAction(lang, "marketplace", r.Action)}
	}
	return c.JSON(web.NewList(out, pg.Limit, func(a auditJSON) any { return idCursor{a.ID} }))
}

// Orders, entitlements, access requests.

type orderRequest struct {
	ListingID string `json:"listing_id" openapi:"required"`
	PlanID    string `json:"plan_id" openapi:"required"`
	Quantity  int    `json:"quantity"`
}

type orderJSON struct {
	ID          string    `json:"id"`
	ListingID   string    `json:"listing_id"`
	PlanID      string    `json:"plan_id"`
	PlanKind    string    `json:"plan_kind"`
	Quantity    int       `json:"quantity"`
	AmountMicro int64     `json:"amount_micro"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	BuyerOrgID  string    `json:"buyer_org_id"`
	VendorOrgID string    `json:"vendor_org_id"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func toOrderJSON(o orderRow) orderJSON {
	return orderJSON{ID: o.ID, ListingID: o.ListingID, PlanID: o.PlanID, PlanKind: o.PlanKind, Quantity: o.Quantity,
		AmountMicro: o.AmountMicro, State: o.State, Reason: o.Reason,
		BuyerOrgID: o.BuyerOrgID, VendorOrgID: o.VendorOrgID, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

func (h handler) placeOrder(c *fiber.Ctx) error {
	var req orderRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	o, err := h.s.PlaceOrder(c.UserContext(), actorOf(c), OrderInput(req))
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(toOrderJSON(o))
}

func (h handler) orders(c *fiber.Ctx) error {
	pg, before, err := idPage(c)
	if err != nil {
		return err
	}
	rows, err := h.s.Orders(c.UserContext(), actorOf(c), pg.Limit, before)
	if err != nil {
		return err
	}
	out := make([]orderJSON, len(rows))
	for i, o := range rows {
		out[i] = toOrderJSON(o)
	}
	return c.JSON(web.NewList(out, pg.Limit, func(o orderJSON) any { return idCursor{o.ID} }))
}

func (h handler) order(c *fiber.Ctx) error {
	o, err := h.s.Order(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(toOrderJSON(o))
}

type entitlementJSON struct {
	ID        string     `json:"id"`
	ListingID string     `json:"listing_id"`
	Title     string     `json:"title"`
	TitleFr   string     `json:"title_fr" doc:"the listing's French title; empty: show title"`
	Kind      string     `json:"kind"`
	Slug      string     `json:"slug"`
	Source    string     `json:"source"`
	SourceID  string     `json:"source_id"`
	PlanID    string     `json:"plan_id,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

func (h handler) entitlements(c *fiber.Ctx) error {
	pg, before, err := idPage(c)
	if err != nil {
		return err
	}
	rows, err := h.s.Entitlements(c.UserContext(), actorOf(c), pg.Limit, before)
	if err != nil {
		return err
	}
	out := make([]entitlementJSON, len(rows))
	for i, e := range rows {
		out[i] = entitlementJSON{e.ID, e.ListingID, e.Title, e.TitleFr, e.Kind, e.Slug, e.Source, e.SourceID, e.PlanID, e.ExpiresAt, e.CreatedAt}
	}
	return c.JSON(web.NewList(out, pg.Limit, func(e entitlementJSON) any { return idCursor{e.ID} }))
}

type accessRequestBody struct {
	Purpose string `json:"purpose" text:"multiline" openapi:"required"`
}

type accessDecisionRequest struct {
	Decision string `json:"decision" openapi:"required" doc:"approve or deny"`
	Comment  string `json:"comment" text:"multiline"`
}

type accessRequestJSON struct {
	ID          string     `json:"id"`
	ListingID   string     `json:"listing_id"`
	VendorOrgID string     `json:"vendor_org_id"`
	OrgID       string     `json:"organization_id"`
	OrgName     string     `json:"requester_org_name"` // from the projection of identity's organisations; "" when unknown
	UserID      string     `json:"user_id"`
	Purpose     string     `json:"purpose"`
	State       string     `json:"state"`
	Comment     string     `json:"comment,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	DecidedAt   *time.Time `json:"decided_at,omitempty" doc:"when it was approved or denied"`
}

func toAccessJSON(r accessRequestRow, orgName string) accessRequestJSON {
	return accessRequestJSON{r.ID, r.ListingID, r.VendorOrgID, r.OrgID, orgName, r.UserID, r.Purpose, r.State, r.Comment,
		r.CreatedAt, r.UpdatedAt, decidedAt(r)}
}

// requesterNames reads the requesting organisations' names from the market_orgs projection in one query.
func (h handler) requesterNames(c *fiber.Ctx, rows ...accessRequestRow) map[string]string {
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		ids = append(ids, r.OrgID)
	}
	out := map[string]string{}
	if len(ids) == 0 {
		return out
	}
	var orgs []orgRow
	if err := h.s.db.WithContext(c.UserContext()).Where("org_id IN ?", ids).Find(&orgs).Error; err != nil {
		return out // names are a convenience: the ids are still there
	}
	for _, o := range orgs {
		out[o.OrgID] = o.Name
	}
	return out
}

func (h handler) toAccessJSON(c *fiber.Ctx, r accessRequestRow) accessRequestJSON {
	return toAccessJSON(r, h.requesterNames(c, r)[r.OrgID])
}

func (h handler) requestAccess(c *fiber.Ctx) error {
	var req accessRequestBody
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	r, err := h.s.RequestAccess(c.UserContext(), actorOf(c), c.Params("id"), req.Purpose)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(h.toAccessJSON(c, r))
}

func (h handler) accessRequests(c *fiber.Ctx) error {
	pg, before, err := idPage(c)
	if err != nil {
		return err
	}
	rows, err := h.s.AccessRequests(c.UserContext(), actorOf(c), pg.Limit, before)
	if err != nil {
		return err
	}
	names := h.requesterNames(c, rows...)
	out := make([]accessRequestJSON, len(rows))
	for i, r := range rows {
		out[i] = toAccessJSON(r, names[r.OrgID])
	}
	return c.JSON(web.NewList(out, pg.Limit, func(r accessRequestJSON) any { return idCursor{r.ID} }))
}

func (h handler) decideAccess(c *fiber.Ctx) error {
	var req accessDecisionRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	r, err := h.s.DecideAccess(c.UserContext(), actorOf(c), c.Params("id"), req.Decision, req.Comment)
	if err != nil {
		return err
	}
	return c.JSON(h.toAccessJSON(c, r))
}

func (h handler) cancelAccess(c *fiber.Ctx) error {
	r, err := h.s.CancelAccess(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(h.toAccessJSON(c, r))
}

// Ratings and reviews.

type reviewRequest struct {
	Stars       int    `json:"stars" openapi:"required" doc:"1 to 5"`
	Body        string `json:"body" text:"multiline" doc:"at most 4000 characters"`
	DisplayName string `json:"display_name" doc:"shown with the review instead of who wrote it: 1 to 60 printable characters; default \"Verified buyer\" (an edit without it keeps the current name)"`
}

// reviewJSON is a review as its reader may see it: the public, other organisations and the listing's vendor read
// the rater's chosen name; which organisation and user rated is for the rater's organisation and staff.
type reviewJSON struct {
	ID          string    `json:"id"`
	ListingID   string    `json:"listing_id"`
	DisplayName string    `json:"display_name"`
	Stars       int       `json:"stars"`
	Body        string    `json:"body"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Mine        bool      `json:"mine" doc:"the caller's organisation wrote it (and may edit it)"`
	OrgID       string    `json:"organization_id,omitempty" doc:"only for the rater's organisation and staff"`
	UserID      string    `json:"user_id,omitempty" doc:"only for the rater's organisation and staff"`
}

func toReviewJSON(r ratingRow, a web.Principal) reviewJSON {
	out := reviewJSON{ID: r.ID, ListingID: r.ListingID, DisplayName: r.DisplayName, Stars: r.Stars, Body: r.Body,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Mine: a.OrgID != "" && a.OrgID == r.OrgID}
	if out.Mine || a.Staff {
		out.OrgID, out.UserID = r.OrgID, r.UserID
	}
	return out
}

func (h handler) reviews(c *fiber.Ctx) error {
	pg, before, err := idPage(c)
	if err != nil {
		return err
	}
	a := actorOf(c)
	rows, err := h.s.Reviews(c.UserContext(), a, c.Params("id"), pg.Limit, before)
	if err != nil {
		return err
	}
	out := make([]reviewJSON, len(rows))
	for i, r := range rows {
		out[i] = toReviewJSON(r, a)
	}
	return c.JSON(web.NewList(out, pg.Limit, func(r reviewJSON) any { return idCursor{r.ID} }))
}

func (h handler) createReview(c *fiber.Ctx) error {
	var req reviewRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	a := actorOf(c)
	r, err := h.s.CreateReview(c.UserContext(), a, c.Params("id"), ReviewInput(req))
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(toReviewJSON(r, a))
}

func (h handler) updateReview(c *fiber.Ctx) error {
	var req reviewRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	a := actorOf(c)
	r, err := h.s.UpdateReview(c.UserContext(), a, c.Params("id"), ReviewInput(req))
	if err != nil {
		return err
	}
	return c.JSON(toReviewJSON(r, a))
}

// Downloads.

type downloadJSON struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (h handler) download(c *fiber.Ctx) error {
	u, err := h.s.DownloadURL(c.UserContext(), actorOf(c), c.Params("id"))
	if err != nil {
		return err
	}
	if c.Query("redirect") == "false" {
		return c.JSON(downloadJSON{URL: u, ExpiresAt: h.s.now().Add(h.s.cfg.DownloadTTL)})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(u, http.StatusFound)
}

var errRange = problem.New(http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", "The requested range is outside the file.")

func (h handler) blob(c *fiber.Ctx) error {
	art, b, err := h.s.OpenSigned(c.UserContext(), c.Params("id"), c.Query("org"), c.Query("g"), c.Query("exp"), c.Query("sig"))
	if err != nil {
		return err
	}
	size := b.Size()
	rng, ok := ParseRange(c.Get(fiber.HeaderRange), size)
	if !ok {
		_ = b.Close()
		c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", size))
		return errRange
	}
	c.Set(fiber.HeaderContentType, art.ContentType)
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", art.Name))
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	c.Set(fiber.HeaderETag, `"`+art.SHA256+`"`)
	c.Set("X-Checksum-Sha256", art.SHA256)
	c.Set(fiber.HeaderCacheControl, "private, no-store")
	if rng == nil {
		return c.SendStream(readCloser{b, b}, int(size))
	}
	if _, err := b.Seek(rng.Start, io.SeekStart); err != nil {
		_ = b.Close()
		return err
	}
	c.Status(http.StatusPartialContent)
	c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", rng.Start, rng.Start+rng.Length-1, size))
	return c.SendStream(readCloser{io.LimitReader(b, rng.Length), b}, int(rng.Length))
}

type progressDeadline struct {
	r    io.Reader
	conn interface{ SetReadDeadline(time.Time) error }
	idle time.Duration
	last time.Time
}

func (p *progressDeadline) Read(b []byte) (int, error) {
	if now := time.Now(); now.Sub(p.last) > time.Second {
		p.last = now
		_ = p.conn.SetReadDeadline(now.Add(p.idle))
	}
	return p.r.Read(b)
}

// readCloser lets fasthttp close the blob once the (possibly limited) body is sent.
type readCloser struct {
	io.Reader
	io.Closer
}
