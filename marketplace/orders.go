package marketplace

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// OrderInput orders a plan of a published listing.
type OrderInput struct {
	ListingID string
	PlanID    string
	Quantity  int
}

// Validate lists every invalid field.
func (in *OrderInput) Validate() error {
	var f problem.Fields
	f.Check(in.ListingID != "", "listing_id", "required", "is required")
	f.Check(in.PlanID != "", "plan_id", "required", "is required")
	if in.Quantity == 0 {
		in.Quantity = 1
	}
	f.Check(in.Quantity >= 1 && in.Quantity <= 120, "quantity", "out_of_range", "must be 1 to 120")
	return f.Err()
}

// PlaceOrder orders a plan: a free plan is fulfilled at once with an entitlement; a paid plan stays pending
// and asks billing, through order.placed, to charge the buyer's wallet.
func (s *Service) PlaceOrder(ctx context.Context, a web.Principal, in OrderInput) (orderRow, error) {
	if err := web.ActsForOrg(a); err != nil {
		return orderRow{}, err
	}
	if err := in.Validate(); err != nil {
		return orderRow{}, err
	}
	var o orderRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		l, err := getListing(tx, in.ListingID, false)
		if err != nil {
			return err
		}
		if err := s.canSee(tx, a, l); err != nil {
			return err
		}
		if l.Status != StatusPublished {
			return ErrNotPublished
		}
		if l.Kind == KindCompute {
			return ErrComputeNotOrdered
		}
		if owns(a, l) {
			return ErrOwnListing
		}
		v, err := getVersion(tx, l.PublishedVersionID)
		if err != nil {
			return err
		}
		c, err := decodeContent(v)
		if err != nil {
			return err
		}
		if c.Gated {
			var n int64
			if err := tx.Model(&accessRequestRow{}).Where("listing_id = ? AND org_id = ? AND state = ?",
				l.ID, a.OrgID, AccessApproved).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return ErrGated
			}
		}
		p, ok := c.plan(in.PlanID)
		if !ok {
			return fmt.Errorf("plan %s: %w", in.PlanID, ErrPlanNotFound)
		}
		qty := in.Quantity
		if p.Kind != PlanSubscription {
			qty = 1
		}
		amount := p.PriceMicro * int64(qty)
		now := s.now()
		o = orderRow{ID: newID("ord"), BuyerOrgID: a.OrgID, BuyerUserID: a.UserID, VendorOrgID: l.VendorOrgID,
			ListingID: l.ID, PlanID: p.ID, PlanKind: p.Kind, Quantity: qty, AmountMicro: amount, State: OrderPending,
			CreatedAt: now, UpdatedAt: now}
		if amount == 0 {
			o.State = OrderFulfilled
		}
		if err := tx.Create(&o).Error; err != nil {
			return err
		}
		if o.State == OrderFulfilled {
			return s.grant(tx, o, now)
		}
		return eventbus.Write(tx, s.outbox, events.OrderPlaced, "evt_order_"+o.ID, events.OrderPlacedV1{
			OrderID: o.ID, BuyerOrgID: o.BuyerOrgID, BuyerUserID: o.BuyerUserID, VendorOrgID: o.VendorOrgID,
			ListingID: o.ListingID, PlanID: o.PlanID, PlanKind: o.PlanKind, Quantity: o.Quantity,
			AmountMicro: o.AmountMicro, At: now})
	})
	if err != nil {
		return orderRow{}, err
	}
	s.outbox.Kick()
	return o, nil
}

// grant gives the order's organisation an entitlement: a subscription for its months from now (or from the
// end of a running one), anything else for good. Insert-or-nothing first, then lock and extend, so concurrent
// orders of one organisation never collide on the (org, listing) key. The entitlement.granted event goes
// through the outbox in tx.
func (s *Service) grant(tx *gorm.DB, o orderRow, now time.Time) error {
	var expires *time.Time
	if o.PlanKind == PlanSubscription {
		t := now.AddDate(0, o.Quantity, 0)
		expires = &t
	}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&entitlementRow{ID: newID("ent"), OrgID: o.BuyerOrgID,
		ListingID: o.ListingID, Source: "order", SourceID: o.ID, PlanID: o.PlanID, ExpiresAt: expires, CreatedAt: now, UpdatedAt: now})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		var cur entitlementRow
		if err := sqldb.ForUpdate(tx).Where("org_id = ? AND listing_id = ?", o.BuyerOrgID, o.ListingID).Take(&cur).Error; err != nil {
			return err
		}
		switch {
		case cur.ExpiresAt == nil:
			expires = nil // a perpetual entitlement is never shortened by a subscription
		case expires != nil && cur.ExpiresAt.After(now):
			t := cur.ExpiresAt.AddDate(0, o.Quantity, 0)
			expires = &t
		}
		if err := tx.Model(&entitlementRow{}).Where("id = ?", cur.ID).Updates(map[string]any{
			"source": "order", "source_id": o.ID, "plan_id": o.PlanID, "expires_at": expires, "updated_at": now}).Error; err != nil {
			return err
		}
	}
	return s.announceGrant(tx, o.BuyerOrgID, o.ListingID, o.VendorOrgID, "evt_ent_granted_"+o.ID, now)
}

// announceGrant writes entitlement.granted for the (org, listing) entitlement as it now stands, in tx.
// eventID is derived from what granted it (an order, an access request), so a retried grant is one event.
func (s *Service) announceGrant(tx *gorm.DB, orgID, listingID, vendorOrgID, eventID string, now time.Time) error {
	var e entitlementRow
	if err := tx.Where("org_id = ? AND listing_id = ?", orgID, listingID).Take(&e).Error; err != nil {
		return fmt.Errorf("entitlement of %s to %s: %w", orgID, listingID, err)
	}
	ev := events.EntitlementChangedV1{EntitlementID: e.ID, ListingID: e.ListingID, OrganizationID: e.OrgID,
		VendorOrgID: vendorOrgID, Source: e.Source, SourceID: e.SourceID, At: now}
	if e.ExpiresAt != nil {
		t := e.ExpiresAt.UTC()
		ev.ExpiresAt = &t
	}
	return eventbus.Write(tx, s.outbox, events.EntitlementGranted, eventID, ev)
}

// settleOrder fulfils (ok) or fails a pending order once per event.
func (s *Service) settleOrder(ctx context.Context, eventID, consumer, orderID string, ok bool, reason, transferID string) error {
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		now := s.now()
		fresh, err := processed.Mark(tx, consumer, eventID, now)
		if err != nil || !fresh {
			return err
		}
		var o orderRow
		if err := sqldb.ForUpdate(tx).Where("id = ?", orderID).Take(&o).Error; err != nil {
			if sqldb.IsNotFound(err) {
				s.log.Warn("settlement for an unknown order ignored", "order_id", orderID, "event_id", eventID)
				return nil
			}
			return err
		}
		if o.State != OrderPending {
			return nil // already settled by an earlier event
		}
		state := OrderFailed
		if ok {
			state = OrderFulfilled
		}
		if err := tx.Model(&orderRow{}).Where("id = ?", o.ID).Updates(map[string]any{
			"state": state, "reason": reason, "transfer_id": transferID, "updated_at": now}).Error; err != nil {
			return err
		}
		if ok {
			return s.grant(tx, o, now)
		}
		return nil
	})
	if err == nil {
		s.outbox.Kick()
	}
	return err
}

// Orders lists the orders of the caller's organisation, as buyer and as vendor, newest first.
func (s *Service) Orders(ctx context.Context, a web.Principal, limit int, before string) ([]orderRow, error) {
	q := s.db.WithContext(ctx).Where("buyer_org_id = ? OR vendor_org_id = ?", a.OrgID, a.OrgID).Order("id DESC").Limit(limit + 1)
	if before != "" {
		q = q.Where("id < ?", before)
	}
	var rows []orderRow
	return rows, q.Find(&rows).Error
}

// Order returns one order of the caller's organisation (buyer or vendor).
func (s *Service) Order(ctx context.Context, a web.Principal, id string) (orderRow, error) {
	var o orderRow
	err := s.db.WithContext(ctx).Where("id = ? AND (buyer_org_id = ? OR vendor_org_id = ?)", id, a.OrgID, a.OrgID).Take(&o).Error
	if sqldb.IsNotFound(err) {
		return o, fmt.Errorf("order %s: %w", id, ErrOrderNotFound)
	}
	return o, err
}

// EntitlementView is an entitlement with its listing's title.
type EntitlementView struct {
	entitlementRow
	Title, TitleFr, Kind, Slug string
}

// Entitlements lists what the caller's organisation may use, newest first.
func (s *Service) Entitlements(ctx context.Context, a web.Principal, limit int, before string) ([]EntitlementView, error) {
	db := s.db.WithContext(ctx)
	q := db.Where("org_id = ?", a.OrgID).Order("id DESC").Limit(limit + 1)
	if before != "" {
		q = q.Where("id < ?", before)
	}
	var rows []entitlementRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]EntitlementView, 0, len(rows))
	for _, r := range rows {
		ev := EntitlementView{entitlementRow: r}
		if l, err := getListing(db, r.ListingID, false); err == nil {
			ev.Kind, ev.Slug = l.Kind, l.Slug
			vid := l.PublishedVersionID
			if vid != "" {
				if v, err := getVersion(db, vid); err == nil {
					if c, err := decodeContent(v); err == nil {
						ev.Title, ev.TitleFr = c.Title, c.TitleFr
					}
				}
			}
		}
		out = append(out, ev)
	}
	return out, nil
}

// RequestAccess asks a gated listing's vendor for access.
func (s *Service) RequestAccess(ctx context.Context, a web.Principal, listingID, purpose string) (accessRequestRow, error) {
	if err := web.ActsForOrg(a); err != nil {
		return accessRequestRow{}, err
	}
	purpose = strings.TrimSpace(purpose)
	if purpose == "" || len(purpose) > 4000 {
		var f problem.Fields
		f.Add("purpose", "required", "is required, at most 4000 characters")
		return accessRequestRow{}, f.Err()
	}
	var r accessRequestRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		l, err := getListing(tx, listingID, true)
		if err != nil {
			return err
		}
		if err := s.canSee(tx, a, l); err != nil {
			return err
		}
		if l.Status != StatusPublished {
			return ErrNotPublished
		}
		if owns(a, l) {
			return ErrOwnListing
		}
		v, err := getVersion(tx, l.PublishedVersionID)
		if err != nil {
			return err
		}
		c, err := decodeContent(v)
		if err != nil {
			return err
		}
		if !c.Gated {
			return ErrNotGated
		}
		var n int64
		if err := tx.Model(&accessRequestRow{}).Where("listing_id = ? AND org_id = ? AND state = ?", l.ID, a.OrgID, AccessPending).
			Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrRequestPending
		}
		now := s.now()
		r = accessRequestRow{ID: newID("acc"), ListingID: l.ID, VendorOrgID: l.VendorOrgID, OrgID: a.OrgID, UserID: a.UserID,
			Purpose: purpose, State: AccessPending, CreatedAt: now, UpdatedAt: now}
		return tx.Create(&r).Error
	})
	return r, err
}

// AccessRequests lists access requests the caller's organisation made or received, newest first.
func (s *Service) AccessRequests(ctx context.Context, a web.Principal, limit int, before string) ([]accessRequestRow, error) {
	q := s.db.WithContext(ctx).Where("org_id = ? OR vendor_org_id = ?", a.OrgID, a.OrgID).Order("id DESC").Limit(limit + 1)
	if before != "" {
		q = q.Where("id < ?", before)
	}
	var rows []accessRequestRow
	return rows, q.Find(&rows).Error
}

// DecideAccess approves (granting an entitlement) or denies a pending request (vendor admins).
func (s *Service) DecideAccess(ctx context.Context, a web.Principal, id, decision, comment string) (accessRequestRow, error) {
	var f problem.Fields
	switch decision {
	case "approve", "deny":
	case "":
		f.Add("decision", "required", "one of: approve, deny")
	default:
		f.Add("decision", "oneof", "must be one of: approve, deny")
	}
	f.Check(len(comment) <= 4000, "comment", "too_long", "at most 4000 characters")
	if err := f.Err(); err != nil {
		return accessRequestRow{}, err
	}
	var r accessRequestRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := sqldb.ForUpdate(tx).Where("id = ?", id).Take(&r).Error; err != nil {
			if sqldb.IsNotFound(err) {
				return ErrAccessRequestNotFound
			}
			return err
		}
		if r.VendorOrgID != a.OrgID {
			return ErrAccessRequestNotFound
		}
		if !a.IsOrgAdmin() {
			return ErrNotVendorAdmin
		}
		if r.State != AccessPending {
			return ErrRequestDecided
		}
		now := s.now()
		r.State, r.Comment, r.DecidedBy, r.UpdatedAt = AccessDenied, comment, a.UserID, now
		if decision == "approve" {
			r.State = AccessApproved
		}
		if err := tx.Model(&accessRequestRow{}).Where("id = ?", r.ID).Updates(map[string]any{
			"state": r.State, "comment": comment, "decided_by": a.UserID, "updated_at": now}).Error; err != nil {
			return err
		}
		if r.State != AccessApproved {
			return nil
		}
		// Approval grants access for good, like a fresh entitlement (an expired subscription does not
		// shorten it).
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "org_id"}, {Name: "listing_id"}},
			DoUpdates: clause.Assignments(map[string]any{"source": "access_request", "source_id": r.ID, "expires_at": nil, "updated_at": now})}).
			Create(&entitlementRow{ID: newID("ent"), OrgID: r.OrgID, ListingID: r.ListingID, Source: "access_request",
				SourceID: r.ID, CreatedAt: now, UpdatedAt: now}).Error; err != nil {
			return err
		}
		return s.announceGrant(tx, r.OrgID, r.ListingID, r.VendorOrgID, "evt_ent_granted_"+r.ID, now)
	})
	if err == nil {
		s.outbox.Kick()
	}
	return r, err
}

// CancelAccess withdraws the caller's organisation's pending request.
func (s *Service) CancelAccess(ctx context.Context, a web.Principal, id string) (accessRequestRow, error) {
	var r accessRequestRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		if err := sqldb.ForUpdate(tx).Where("id = ? AND org_id = ?", id, a.OrgID).Take(&r).Error; err != nil {
			if sqldb.IsNotFound(err) {
				return ErrAccessRequestNotFound
			}
			return err
		}
		if r.State != AccessPending {
			return ErrRequestDecided
		}
		r.State, r.UpdatedAt = AccessCancelled, s.now()
		return tx.Model(&accessRequestRow{}).Where("id = ?", r.ID).Updates(map[string]any{"state": r.State, "updated_at": r.UpdatedAt}).Error
	})
	return r, err
}

// DefaultReviewerName is shown with a review whose rater chose no name. Only entitled organisations may rate, so
// every rater is a verified buyer; who they are stays private unless they name themselves, as on the software
// marketplaces that let a reviewer stay anonymous.
const DefaultReviewerName = "Verified buyer"

// MaxReviewerName bounds a reviewer's display name, in characters.
const MaxReviewerName = 60

// ReviewInput is a rating with an optional text and the name to show with it.
type ReviewInput struct {
	Stars int
	Body  string
	// DisplayName is shown with the review instead of who wrote it; empty means DefaultReviewerName for a new
	// review and the current name for an edit.
	DisplayName string
}

// Validate trims the display name and lists every invalid field.
func (in *ReviewInput) Validate() error {
	in.DisplayName = strings.TrimSpace(in.DisplayName)
	var f problem.Fields
	if in.Stars == 0 {
		f.Add("stars", "required", "1 to 5")
	} else {
		f.Check(in.Stars >= 1 && in.Stars <= 5, "stars", "out_of_range", "must be 1 to 5")
	}
	f.Check(len(in.Body) <= 4000, "body", "too_long", "at most 4000 characters")
	if utf8.RuneCountInString(in.DisplayName) > MaxReviewerName {
		f.AddMsg("display_name", "too_long", "field.max_chars", problem.Args{"Param": MaxReviewerName})
	} else if strings.IndexFunc(in.DisplayName, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		// No control, format (bidirectional overrides, zero-width) or line-breaking characters: the name is
		// shown on one line beside other people's words.
		f.Add("display_name", "invalid", "letters, digits, punctuation, symbols and spaces only")
	}
	return f.Err()
}

// Reviews lists a listing's ratings, newest first.
func (s *Service) Reviews(ctx context.Context, a web.Principal, listingID string, limit int, before string) ([]ratingRow, error) {
	db := s.db.WithContext(ctx)
	l, err := getListing(db, listingID, false)
	if err != nil {
		return nil, err
	}
	if err := s.canSee(db, a, l); err != nil {
		return nil, err
	}
	q := db.Where("listing_id = ?", l.ID).Order("id DESC").Limit(limit + 1)
	if before != "" {
		q = q.Where("id < ?", before)
	}
	var rows []ratingRow
	return rows, q.Find(&rows).Error
}

// CreateReview rates a listing once per organisation; only entitled organisations may.
func (s *Service) CreateReview(ctx context.Context, a web.Principal, listingID string, in ReviewInput) (ratingRow, error) {
	if err := in.Validate(); err != nil {
		return ratingRow{}, err
	}
	var r ratingRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		l, err := getListing(tx, listingID, false)
		if err != nil {
			return err
		}
		if err := s.canSee(tx, a, l); err != nil {
			return err
		}
		if ok, err := entitled(tx, a.OrgID, l.ID, s.now()); err != nil {
			return err
		} else if !ok {
			return ErrEntitlementNeeded
		}
		now := s.now()
		name := in.DisplayName
		if name == "" {
			name = DefaultReviewerName
		}
		r = ratingRow{ID: newID("rat"), ListingID: l.ID, OrgID: a.OrgID, UserID: a.UserID, DisplayName: name, Stars: in.Stars,
			Body: in.Body, CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&r).Error; err != nil {
			if sqldb.IsDuplicate(err) {
				return ErrReviewExists
			}
			return err
		}
		return nil
	})
	return r, err
}

// UpdateReview edits the caller's organisation's rating of a listing.
func (s *Service) UpdateReview(ctx context.Context, a web.Principal, listingID string, in ReviewInput) (ratingRow, error) {
	if err := in.Validate(); err != nil {
		return ratingRow{}, err
	}
	var r ratingRow
	err := sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		l, err := getListing(tx, listingID, false)
		if err != nil {
			return err
		}
		if err := s.canSee(tx, a, l); err != nil {
			return err
		}
		if err := tx.Where("listing_id = ? AND org_id = ?", l.ID, a.OrgID).Take(&r).Error; err != nil {
			if sqldb.IsNotFound(err) {
				return ErrReviewNotFound
			}
			return err
		}
		r.Stars, r.Body, r.UserID, r.UpdatedAt = in.Stars, in.Body, a.UserID, s.now()
		if in.DisplayName != "" {
			r.DisplayName = in.DisplayName
		}
		return tx.Model(&ratingRow{}).Where("id = ?", r.ID).Updates(map[string]any{
			"stars": r.Stars, "body": r.Body, "display_name": r.DisplayName, "user_id": r.UserID, "updated_at": r.UpdatedAt}).Error
	})
	return r, err
}
