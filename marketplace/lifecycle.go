package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// ListingView is a listing as one caller may see it.
type ListingView struct {
	Listing    listingRow
	VendorName string
	Published  *VersionView // the live version, when there is one
	Pending    *VersionView // the newest unpublished version; only for its vendor and staff
	Rating     RatingSummary
	// Internal is true for its vendor and staff: they also see who wrote and decided, and review comments.
	Internal bool
	// Viewer is what the reader may do with the listing (GET /listings/:id only).
	Viewer *Viewer
	// HubRepo is the model's or dataset's Hugging Face Hub repository ID (GET /listings/:id only).
	HubRepo string
}

// VersionView is a version with its decoded content and artifacts.
type VersionView struct {
	Row       versionRow
	Content   Content
	Artifacts []artifactRow
}

// RatingSummary aggregates a listing's ratings.
type RatingSummary struct {
	Count   int64
	Average float64
}

// owns reports whether a acts for l's vendor.
func owns(a web.Principal, l listingRow) bool { return a.OrgID != "" && a.OrgID == l.VendorOrgID }

// requireVendor admits members of the listing's vendor organisation; anyone else learns nothing (404) unless
// the listing is public to them, in which case they are forbidden.
func requireVendor(a web.Principal, l listingRow, admin bool) error {
	if !owns(a, l) {
		if l.Status == StatusPublished || a.Staff {
			return ErrNotVendor
		}
		return fmt.Errorf("listing %s: %w", l.ID, ErrListingNotFound)
	}
	if admin && !a.IsOrgAdmin() {
		return ErrNotVendorAdmin
	}
	return nil
}

// CreateListing creates a listing in draft with its first version.
func (s *Service) CreateListing(ctx context.Context, a web.Principal, in CreateListingInput) (ListingView, error) {
	if a.OrgKind != "vendor" {
		return ListingView{}, problem.ErrForbidden.WithDetailMsg("problem.forbidden.vendors_list", nil)
	}
	if err := in.Validate(); err != nil {
		return ListingView{}, err
	}
	assignPlanIDs(in.Plans, nil)
	now := s.now()
	l := listingRow{ID: newID("lst"), VendorOrgID: a.OrgID, Kind: in.Kind, Slug: in.Slug, Status: StatusDraft,
		LatestVersion: 1, CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
	v := versionRow{ID: newID("ver"), ListingID: l.ID, Version: 1, State: StateDraft, Content: encodeContent(in.Content),
		CardHTML: RenderCard(in.CardMarkdown), CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := tx.Create(&l).Error; err != nil {
			if sqldb.IsDuplicate(err) {
				return fmt.Errorf("slug %s: %w", l.Slug, ErrSlugTaken)
			}
			return err
		}
		if err := tx.Create(&v).Error; err != nil {
			return err
		}
		return writeHistory(tx, l, v, a, "created", contentFields(in.Content), "", now)
	})
	if err != nil {
		return ListingView{}, err
	}
	return s.view(ctx, s.db.WithContext(ctx), a, l)
}

// assignPlanIDs gives every plan an ID, keeping the IDs of plans unchanged from prev (same name and kind) so
// that orders and the testbed's price references survive edits that do not touch a plan.
func assignPlanIDs(plans []Plan, prev []Plan) {
	for i := range plans {
		plans[i].ID = ""
		for _, p := range prev {
			if p.Name == plans[i].Name && p.Kind == plans[i].Kind && p.PriceMicro == plans[i].PriceMicro {
				plans[i].ID = p.ID
			}
		}
		if plans[i].ID == "" {
			plans[i].ID = newID("pln")
		}
	}
}

// patched is a version's content with p applied, normalised and validated for the listing's kind; plans that
// stay the same keep their IDs (orders and entitlements name them), new ones get new IDs.
func patched(v versionRow, kind string, p ContentPatch) (Content, []string, error) {
	c, err := decodeContent(v)
	if err != nil {
		return Content{}, nil, err
	}
	prevPlans := slices.Clone(c.Plans)
	changed := p.apply(&c)
	c.normalize()
	if err := c.validate(kind); err != nil {
		return Content{}, nil, err
	}
	assignPlanIDs(c.Plans, prevPlans)
	return c, changed, nil
}

func contentFields(c Content) []string {
	var m map[string]json.RawMessage
	b, _ := json.Marshal(c)
	_ = json.Unmarshal(b, &m)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// UpdateListing edits the listing's newest version while it is a draft or has changes requested.
func (s *Service) UpdateListing(ctx context.Context, a web.Principal, id string, p ContentPatch) (ListingView, error) {
	var l listingRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if l, err = getListing(tx, id, true); err != nil {
			return err
		}
		if err := requireVendor(a, l, false); err != nil {
			return err
		}
		v, err := getVersionByNumber(tx, l.ID, l.LatestVersion)
		if err != nil {
			return err
		}
		if v.State != StateDraft && v.State != StateChangesRequested {
			return fmt.Errorf("listing %s version %d is %s: %w", l.ID, v.Version, v.State, ErrNotEditable)
		}
		c, changed, err := patched(v, l.Kind, p)
		if err != nil {
			return err
		}
		now := s.now()
		if err := tx.Model(&versionRow{}).Where("id = ?", v.ID).Updates(map[string]any{
			"content": encodeContent(c), "card_html": RenderCard(c.CardMarkdown), "updated_at": now}).Error; err != nil {
			return err
		}
		if err := tx.Model(&listingRow{}).Where("id = ?", l.ID).Update("updated_at", now).Error; err != nil {
			return err
		}
		return writeHistory(tx, l, v, a, "edited", changed, "", now)
	})
	if err != nil {
		return ListingView{}, err
	}
	return s.view(ctx, s.db.WithContext(ctx), a, l)
}

// NewVersion starts a new draft version of a listing whose newest version is published or rejected, copying
// that version's content and artifacts and applying p. The published version stays live meanwhile.
func (s *Service) NewVersion(ctx context.Context, a web.Principal, id string, p ContentPatch) (ListingView, error) {
	var l listingRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if l, err = getListing(tx, id, true); err != nil {
			return err
		}
		if err := requireVendor(a, l, false); err != nil {
			return err
		}
		if l.Status == StatusRetired {
			return ErrAlreadyRetired
		}
		prev, err := getVersionByNumber(tx, l.ID, l.LatestVersion)
		if err != nil {
			return err
		}
		if prev.State != StatePublished && prev.State != StateRejected {
			return fmt.Errorf("listing %s version %d is %s: %w", l.ID, prev.Version, prev.State, ErrVersionPending)
		}
		c, changed, err := patched(prev, l.Kind, p)
		if err != nil {
			return err
		}
		now := s.now()
		v := versionRow{ID: newID("ver"), ListingID: l.ID, Version: prev.Version + 1, State: StateDraft,
			Content: encodeContent(c), CardHTML: RenderCard(c.CardMarkdown), CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&v).Error; err != nil {
			return err
		}
		// Artifacts carry over by reference: the blob is shared, the row is the new version's.
		var arts []artifactRow
		if err := tx.Where("version_id = ?", prev.ID).Find(&arts).Error; err != nil {
			return err
		}
		for _, ar := range arts {
			ar.ID, ar.VersionID = newID("art"), v.ID
			if err := tx.Create(&ar).Error; err != nil {
				return err
			}
		}
		if err := tx.Model(&listingRow{}).Where("id = ?", l.ID).Updates(map[string]any{
			"latest_version": v.Version, "updated_at": now}).Error; err != nil {
			return err
		}
		l.LatestVersion = v.Version
		return writeHistory(tx, l, v, a, "version_created", changed, "", now)
	})
	if err != nil {
		return ListingView{}, err
	}
	return s.view(ctx, s.db.WithContext(ctx), a, l)
}

// Submit sends the newest version to the staff review queue. Only verified vendors may submit, a compute
// listing must sell a pool its vendor owns, and a listing needs a plan.
func (s *Service) Submit(ctx context.Context, a web.Principal, id string) (ListingView, error) {
	deadline := time.Now().Add(s.cfg.PoolWait)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		v, err := s.submit(ctx, a, id)
		if !errors.Is(err, errPoolUnannounced) || time.Now().Add(wait).After(deadline) {
			return v, err
		}
		// The pool may be announced by the testbed's next event: wait for it rather than fail a vendor who
		// declared the pool a moment ago.
		if s.poolWaitHook != nil {
			s.poolWaitHook()
		}
		select {
		case <-ctx.Done():
			return ListingView{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// errPoolUnannounced marks the pool_not_owned answer given because the marketplace has not (yet) heard of
// the pool at all, which Submit waits out for a bounded time.
var errPoolUnannounced = errors.New("pool not announced by the testbed")

// poolUnannounced is that answer: the problem users see, and errPoolUnannounced for Submit.
type poolUnannounced struct{ *problem.Problem }

func (e poolUnannounced) Unwrap() []error { return []error{e.Problem, errPoolUnannounced} }

func (s *Service) submit(ctx context.Context, a web.Principal, id string) (ListingView, error) {
	var l listingRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if l, err = getListing(tx, id, true); err != nil {
			return err
		}
		if err := requireVendor(a, l, false); err != nil {
			return err
		}
		if l.Status == StatusRetired {
			return ErrAlreadyRetired
		}
		var org orgRow
		if err := tx.Where("org_id = ?", l.VendorOrgID).Take(&org).Error; err != nil && !sqldb.IsNotFound(err) {
			return err
		}
		if !org.Verified {
			return ErrNotVerified
		}
		v, err := getVersionByNumber(tx, l.ID, l.LatestVersion)
		if err != nil {
			return err
		}
		if v.State != StateDraft && v.State != StateChangesRequested {
			return fmt.Errorf("listing %s version %d is %s: %w", l.ID, v.Version, v.State, ErrNotSubmittable)
		}
		c, err := decodeContent(v)
		if err != nil {
			return err
		}
		if len(c.Plans) == 0 {
			return ErrNoPlans
		}
		if err := checkPool(tx, l, c); err != nil {
			return err
		}
		now := s.now()
		if err := tx.Model(&versionRow{}).Where("id = ?", v.ID).Updates(map[string]any{
			"state": StateSubmitted, "submitted_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		v.State = StateSubmitted
		if err := writeHistory(tx, l, v, a, "submitted", nil, "", now); err != nil {
			return err
		}
		return s.emit(tx, events.ListingSubmitted, l, v, c, a, "", false)
	})
	if err != nil {
		return ListingView{}, err
	}
	s.outbox.Kick()
	return s.view(ctx, s.db.WithContext(ctx), a, l)
}

func checkPool(tx *gorm.DB, l listingRow, c Content) error {
	if l.Kind != KindCompute || c.Compute == nil {
		return nil
	}
	var p poolRow
	if err := tx.Where("pool_id = ?", c.Compute.PoolID).Take(&p).Error; err != nil {
		if sqldb.IsNotFound(err) {
			return poolUnannounced{ErrPoolNotOwned.WithDetailMsg("problem.pool_not_owned.unknown", problem.Args{"Pool": c.Compute.PoolID})}
		}
		return err
	}
	if p.VendorOrgID != l.VendorOrgID {
		return ErrPoolNotOwned
	}
	if p.GPUModels != "" && !slices.Contains(strings.Split(p.GPUModels, ","), c.Compute.GPUModel) {
		return ErrPoolGPUMismatch.WithDetailMsg("problem.pool_gpu_mismatch.declares", problem.Args{"Pool": p.PoolID, "Models": p.GPUModels})
	}
	return nil
}

// Decision is a staff review decision.
type Decision struct {
	Decision string // approve, reject, request_changes
	Comment  string
}

// Validate requires a comment unless approving.
func (d *Decision) Validate() error {
	var f problem.Fields
	d.Comment = strings.TrimSpace(d.Comment)
	switch d.Decision {
	case "approve", "reject", "request_changes":
	case "":
		f.Add("decision", "required", "one of: approve, reject, request_changes")
	default:
		f.Add("decision", "oneof", "must be one of: approve, reject, request_changes")
	}
	f.Check(d.Decision == "approve" || d.Comment != "", "comment", "required", "is required unless approving")
	f.Check(len(d.Comment) <= 5000, "comment", "too_long", "at most 5000 characters")
	return f.Err()
}

// Decide records a staff decision on a submitted version. Approving publishes it at once (the previous
// published version is superseded and leaves the catalogue with it).
func (s *Service) Decide(ctx context.Context, a web.Principal, versionID string, d Decision) (VersionView, error) {
	if !a.Staff {
		return VersionView{}, problem.ErrForbidden.WithDetailMsg("problem.forbidden.staff_only", nil)
	}
	if err := d.Validate(); err != nil {
		return VersionView{}, err
	}
	var v versionRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if v, err = getVersion(tx, versionID); err != nil {
			return err
		}
		l, err := getListing(tx, v.ListingID, true)
		if err != nil {
			return err
		}
		if owns(a, l) {
			return ErrOwnListing
		}
		if l.Status == StatusRetired {
			return ErrAlreadyRetired // its vendor withdrew it while the version waited
		}
		if v, err = getVersion(tx, versionID); err != nil { // re-read under the listing lock
			return err
		}
		if v.State != StateSubmitted {
			return fmt.Errorf("version %s is %s: %w", v.ID, v.State, ErrNotSubmitted)
		}
		c, err := decodeContent(v)
		if err != nil {
			return err
		}
		now := s.now()
		upd := map[string]any{"decided_at": now, "decided_by": a.UserID, "comment": d.Comment, "updated_at": now}
		switch d.Decision {
		case "reject":
			upd["state"], v.State = StateRejected, StateRejected
		case "request_changes":
			upd["state"], v.State = StateChangesRequested, StateChangesRequested
		case "approve":
			if err := checkPool(tx, l, c); err != nil {
				return err
			}
			upd["state"], v.State = StatePublished, StatePublished
		}
		if err := tx.Model(&versionRow{}).Where("id = ?", v.ID).Updates(upd).Error; err != nil {
			return err
		}
		v.Comment, v.DecidedBy, v.DecidedAt = d.Comment, a.UserID, &now
		action := map[string]string{"approve": "approved", "reject": "rejected", "request_changes": "changes_requested"}[d.Decision]
		if err := writeHistory(tx, l, v, a, action, nil, d.Comment, now); err != nil {
			return err
		}
		if err := writeAudit(tx, a, "review."+action, l.ID, v.ID, d.Comment, now); err != nil {
			return err
		}
		switch d.Decision {
		case "reject":
			return s.emit(tx, events.ListingRejected, l, v, c, a, d.Comment, false)
		case "request_changes":
			return s.emit(tx, events.ListingChangesRequested, l, v, c, a, d.Comment, false)
		}
		if err := s.emit(tx, events.ListingApproved, l, v, c, a, d.Comment, false); err != nil {
			return err
		}
		return s.publish(tx, l, v, c, a, now)
	})
	if err != nil {
		return VersionView{}, err
	}
	s.catalogChanged(ctx, v.ListingID)
	s.outbox.Kick()
	return s.versionView(s.db.WithContext(ctx), v)
}

// publish makes v the live version of l: the previous one is superseded, the catalogue entry replaced, and
// the published event carries the plans (and compute terms) that billing and the testbed project.
func (s *Service) publish(tx *gorm.DB, l listingRow, v versionRow, c Content, a web.Principal, now time.Time) error {
	if l.PublishedVersionID != "" && l.PublishedVersionID != v.ID {
		if err := tx.Model(&versionRow{}).Where("id = ?", l.PublishedVersionID).
			Updates(map[string]any{"state": StateSuperseded, "updated_at": now}).Error; err != nil {
			return err
		}
	}
	if err := tx.Model(&listingRow{}).Where("id = ?", l.ID).Updates(map[string]any{
		"status": StatusPublished, "published_version_id": v.ID, "status_reason": "", "updated_at": now}).Error; err != nil {
		return err
	}
	l.Status, l.PublishedVersionID = StatusPublished, v.ID
	if err := putCatalog(tx, newCatalogRow(l, v, c, orgName(tx, l.VendorOrgID), now), c.Tags, c.VisibleTo); err != nil {
		return err
	}
	return s.emit(tx, events.ListingPublished, l, v, c, a, "", true)
}

// Suspend hides a published listing from the catalogue with a reason (staff). Entitled organisations keep
// their entitlements but cannot download while it is suspended.
func (s *Service) Suspend(ctx context.Context, a web.Principal, id, reason string) (ListingView, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 2000 {
		var f problem.Fields
		f.Add("reason", "required", "is required, at most 2000 characters")
		return ListingView{}, f.Err()
	}
	return s.hide(ctx, a, id, StatusSuspended, reason)
}

// Retire removes a listing from the catalogue for good (vendor admins); existing entitlements stay.
func (s *Service) Retire(ctx context.Context, a web.Principal, id string) (ListingView, error) {
	return s.hide(ctx, a, id, StatusRetired, "")
}

func (s *Service) hide(ctx context.Context, a web.Principal, id, status, reason string) (ListingView, error) {
	var l listingRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		var err error
		if l, err = getListing(tx, id, true); err != nil {
			return err
		}
		switch status {
		case StatusSuspended:
			if !a.Staff {
				return problem.ErrForbidden.WithDetailMsg("problem.forbidden.staff_only", nil)
			}
			if owns(a, l) {
				return ErrOwnListing
			}
			if l.Status != StatusPublished {
				return ErrNotPublished
			}
		case StatusRetired:
			if err := requireVendor(a, l, true); err != nil {
				return err
			}
			if l.Status == StatusRetired {
				return ErrAlreadyRetired
			}
		}
		now := s.now()
		if err := tx.Model(&listingRow{}).Where("id = ?", l.ID).Updates(map[string]any{
			"status": status, "status_reason": reason, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := dropCatalog(tx, l.ID); err != nil {
			return err
		}
		l.Status, l.StatusReason = status, reason
		vid := l.PublishedVersionID // empty when a never-published listing retires
		v := versionRow{ID: vid, ListingID: l.ID, Version: l.LatestVersion}
		c := Content{}
		if vid != "" {
			if v, err = getVersion(tx, vid); err != nil {
				return err
			}
			if c, err = decodeContent(v); err != nil {
				return err
			}
		}
		if err := writeHistory(tx, l, v, a, status, nil, reason, now); err != nil {
			return err
		}
		subj := events.ListingRetired
		if status == StatusSuspended {
			subj = events.ListingSuspended
			if err := writeAudit(tx, a, "listing.suspended", l.ID, vid, reason, now); err != nil {
				return err
			}
		}
		return s.emit(tx, subj, l, v, c, a, reason, false)
	})
	if err != nil {
		return ListingView{}, err
	}
	s.catalogChanged(ctx, l.ID)
	s.outbox.Kick()
	return s.view(ctx, s.db.WithContext(ctx), a, l)
}

// emit writes a listing event to the outbox in tx. Published events carry plans and compute terms.
func (s *Service) emit(tx *gorm.DB, subj eventbus.Subject[events.ListingChangedV1], l listingRow, v versionRow, c Content,
	a web.Principal, comment string, full bool) error {
	ev := events.ListingChangedV1{ListingID: l.ID, VersionID: v.ID, Version: v.Version, VendorOrgID: l.VendorOrgID,
		Kind: l.Kind, Title: c.Title, ActorUserID: a.UserID, Comment: comment, At: s.now()}
	if full {
		for _, p := range c.Plans {
			ev.Plans = append(ev.Plans, events.PlanV1{PlanID: p.ID, Name: p.Name, Kind: p.Kind, PriceMicro: p.PriceMicro})
		}
		if cp := c.Compute; cp != nil {
			ev.Compute = &events.ComputeV1{PoolID: cp.PoolID, GPUModel: cp.GPUModel, Region: cp.Region,
				MinDurationMinutes: cp.MinDurationMinutes, MaxDurationMinutes: cp.MaxDurationMinutes}
			if c.Visibility != "public" {
				ev.Compute.VisibleTo = slices.Clone(c.VisibleTo)
			}
			ev.Compute.Gated = c.Gated
			for _, p := range c.Plans {
				if p.Kind == PlanPerGPUHour {
					ev.Compute.PricePerGPUHour, ev.Compute.PlanID = p.PriceMicro, p.ID
					break
				}
			}
		}
		if t := c.TryIt; t != nil && l.Kind != KindCompute {
			ev.TryIt = &events.TryItV1{Image: t.Image, Command: slices.Clone(t.Command), Ports: slices.Clone(t.Ports), Gated: c.Gated}
			if c.Visibility != "public" {
				ev.TryIt.VisibleTo = slices.Clone(c.VisibleTo)
			}
		}
	}
	return eventbus.Write(tx, s.outbox, subj, newID("evt"), ev)
}

func writeHistory(tx *gorm.DB, l listingRow, v versionRow, a web.Principal, action string, fields []string, comment string, at time.Time) error {
	return tx.Create(&historyRow{ID: newID("his"), ListingID: l.ID, VersionID: v.ID, Version: v.Version, UserID: a.UserID,
		OrgID: a.OrgID, Action: action, Fields: strings.Join(fields, ","), Comment: comment, At: at}).Error
}

// AuditActions are the actions the marketplace writes to its audit log; each has a name for people in both
// catalogues (audit.marketplace.<action>), which GET /audit answers as action_display.
var AuditActions = []string{"review.approved", "review.rejected", "review.changes_requested", "listing.suspended"}

func writeAudit(tx *gorm.DB, a web.Principal, action, listingID, targetID, detail string, at time.Time) error {
	return tx.Create(&auditRow{ID: newID("aud"), ActorUserID: a.UserID, ActorOrgID: a.OrgID, Action: action,
		ListingID: listingID, TargetID: targetID, Detail: detail, At: at}).Error
}

// Listing returns a listing as a may see it: anyone sees a published listing visible to them; its vendor and
// staff see every state; entitled organisations still see a retired one. Anyone else gets not-found.
func (s *Service) Listing(ctx context.Context, a web.Principal, id string) (ListingView, error) {
	db := s.db.WithContext(ctx)
	l, err := getListing(db, id, false)
	if errors.Is(err, ErrListingNotFound) && slugRE.MatchString(id) {
		// Pages link listings by slug; the ID stays the canonical reference.
		if e := db.Where("slug = ?", id).Take(&l).Error; e == nil {
			err = nil
		}
	}
	if err != nil {
		return ListingView{}, err
	}
	if err := s.canSee(db, a, l); err != nil {
		return ListingView{}, err
	}
	out, err := s.view(ctx, db, a, l)
	if err != nil {
		return out, err
	}
	gated := out.Published != nil && out.Published.Content.Gated
	vw, err := s.viewer(db, a, out.Listing, gated)
	if err != nil {
		return out, err
	}
	out.Viewer = &vw
	if l.Kind != KindCompute {
		out.HubRepo = hfNamespace(db, l.VendorOrgID) + "/" + l.Slug
	}
	return out, nil
}

func (s *Service) canSee(db *gorm.DB, a web.Principal, l listingRow) error {
	if owns(a, l) || a.Staff {
		return nil
	}
	notFound := fmt.Errorf("listing %s: %w", l.ID, ErrListingNotFound)
	switch l.Status {
	case StatusPublished:
		v, err := getVersion(db, l.PublishedVersionID)
		if err != nil {
			return err
		}
		c, err := decodeContent(v)
		if err != nil {
			return err
		}
		if c.Visibility == "public" || (a.OrgID != "" && slices.Contains(c.VisibleTo, a.OrgID)) {
			return nil
		}
		if ok, err := entitled(db, a.OrgID, l.ID, s.now()); err != nil || ok {
			return err
		}
		return notFound
	case StatusRetired:
		if ok, err := entitled(db, a.OrgID, l.ID, s.now()); err != nil || ok {
			return err
		}
	}
	return notFound
}

func (s *Service) view(ctx context.Context, db *gorm.DB, a web.Principal, l listingRow) (ListingView, error) {
	if fresh, err := getListing(db, l.ID, false); err == nil {
		l = fresh
	}
	out := ListingView{Listing: l, VendorName: orgName(db, l.VendorOrgID), Internal: owns(a, l) || a.Staff}
	if l.PublishedVersionID != "" {
		v, err := getVersion(db, l.PublishedVersionID)
		if err != nil {
			return out, err
		}
		vv, err := s.versionView(db, v)
		if err != nil {
			return out, err
		}
		out.Published = &vv
	}
	if owns(a, l) || a.Staff {
		v, err := getVersionByNumber(db, l.ID, l.LatestVersion)
		if err != nil {
			return out, err
		}
		if v.ID != l.PublishedVersionID {
			vv, err := s.versionView(db, v)
			if err != nil {
				return out, err
			}
			out.Pending = &vv
		}
	}
	var agg struct {
		N   int64
		Avg float64
	}
	if err := db.Model(&ratingRow{}).Select("COUNT(*) AS n, COALESCE(AVG(stars), 0) AS avg").
		Where("listing_id = ?", l.ID).Scan(&agg).Error; err != nil {
		return out, err
	}
	out.Rating = RatingSummary{Count: agg.N, Average: agg.Avg}
	return out, nil
}

func (s *Service) versionView(db *gorm.DB, v versionRow) (VersionView, error) {
	c, err := decodeContent(v)
	if err != nil {
		return VersionView{}, err
	}
	arts, err := artifactsOf(db, v.ID)
	if err != nil {
		return VersionView{}, err
	}
	return VersionView{Row: v, Content: c, Artifacts: arts[v.ID]}, nil
}

// VersionHistory is a version with the changes made to it.
type VersionHistory struct {
	VersionView
	History []historyRow
}

// Versions lists a listing's versions, newest first, with who changed what (vendor and staff).
func (s *Service) Versions(ctx context.Context, a web.Principal, id string) ([]VersionHistory, error) {
	db := s.db.WithContext(ctx)
	l, err := getListing(db, id, false)
	if err != nil {
		return nil, err
	}
	if !owns(a, l) && !a.Staff {
		if err := s.canSee(db, a, l); err != nil {
			return nil, err
		}
		return nil, ErrNotVendor
	}
	vs, err := listVersions(db, l.ID)
	if err != nil {
		return nil, err
	}
	var hist []historyRow
	if err := db.Where("listing_id = ?", l.ID).Order("at, id").Find(&hist).Error; err != nil {
		return nil, err
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	arts, err := artifactsOf(db, ids...)
	if err != nil {
		return nil, err
	}
	out := make([]VersionHistory, 0, len(vs))
	for _, v := range vs {
		c, err := decodeContent(v)
		if err != nil {
			return nil, err
		}
		h := VersionHistory{VersionView: VersionView{Row: v, Content: c, Artifacts: arts[v.ID]}}
		for _, e := range hist {
			if e.VersionID == v.ID {
				h.History = append(h.History, e)
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// MyListings lists the caller's organisation's listings in every state, newest first.
func (s *Service) MyListings(ctx context.Context, a web.Principal, limit int, after string) ([]ListingView, error) {
	db := s.db.WithContext(ctx)
	q := db.Where("vendor_org_id = ?", a.OrgID).Order("id DESC").Limit(limit + 1)
	if after != "" {
		q = q.Where("id < ?", after)
	}
	var ls []listingRow
	if err := q.Find(&ls).Error; err != nil {
		return nil, err
	}
	out := make([]ListingView, 0, len(ls))
	for _, l := range ls {
		v, err := s.view(ctx, db, a, l)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// QueueItem is a version waiting for (or past) review, with its age and what changed since the published one.
type QueueItem struct {
	Version     versionRow
	Listing     listingRow
	VendorName  string
	Title       string
	Age         time.Duration
	Diff        []FieldDiff
	FirstReview bool
}

// FieldDiff is one changed top-level content field: its old and new JSON values.
type FieldDiff struct {
	Field string          `json:"field"`
	From  json.RawMessage `json:"from"`
	To    json.RawMessage `json:"to"`
}

// ReviewQueue lists versions in state (submitted by default), oldest submission first.
func (s *Service) ReviewQueue(ctx context.Context, a web.Principal, state string, limit, offset int) ([]QueueItem, error) {
	if !a.Staff {
		return nil, problem.ErrForbidden.WithDetailMsg("problem.forbidden.staff_only", nil)
	}
	if state == "" {
		state = StateSubmitted
	}
	if !slices.Contains([]string{StateSubmitted, StateChangesRequested, StateRejected, StatePublished}, state) {
		var f problem.Fields
		f.Add("state", "oneof", "must be one of: submitted, changes_requested, rejected, published")
		return nil, f.Err()
	}
	db := s.db.WithContext(ctx)
	var vs []versionRow
	if err := db.Where("state = ?", state).Order("submitted_at, id").Limit(limit + 1).Offset(offset).Find(&vs).Error; err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]QueueItem, 0, len(vs))
	for _, v := range vs {
		l, err := getListing(db, v.ListingID, false)
		if err != nil {
			return nil, err
		}
		c, err := decodeContent(v)
		if err != nil {
			return nil, err
		}
		it := QueueItem{Version: v, Listing: l, VendorName: orgName(db, l.VendorOrgID), Title: c.Title, FirstReview: true}
		if v.SubmittedAt != nil {
			it.Age = now.Sub(*v.SubmittedAt)
		}
		if l.PublishedVersionID != "" && l.PublishedVersionID != v.ID {
			pv, err := getVersion(db, l.PublishedVersionID)
			if err != nil {
				return nil, err
			}
			it.FirstReview = false
			it.Diff = diffContent(pv.Content, v.Content)
		} else {
			it.Diff = diffContent("{}", v.Content)
		}
		out = append(out, it)
	}
	return out, nil
}

// diffContent compares two content documents field by field (top-level JSON members).
func diffContent(from, to string) []FieldDiff {
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal([]byte(from), &a)
	_ = json.Unmarshal([]byte(to), &b)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	out := []FieldDiff{}
	for _, k := range names {
		x, y := a[k], b[k]
		if string(x) == string(y) {
			continue
		}
		if x == nil {
			x = json.RawMessage("null")
		}
		if y == nil {
			y = json.RawMessage("null")
		}
		out = append(out, FieldDiff{Field: k, From: x, To: y})
	}
	return out
}

// Audit lists staff actions, newest first (staff only).
func (s *Service) Audit(ctx context.Context, a web.Principal, limit int, before string) ([]auditRow, error) {
	if !a.Staff {
		return nil, problem.ErrForbidden.WithDetailMsg("problem.forbidden.staff_only", nil)
	}
	q := s.db.WithContext(ctx).Order("id DESC").Limit(limit + 1)
	if before != "" {
		q = q.Where("id < ?", before)
	}
	var rows []auditRow
	return rows, q.Find(&rows).Error
}
