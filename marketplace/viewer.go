package marketplace

import (
	"errors"
	"time"

	"github.com/tamarack-ai/tamarack/platform/web"
	"gorm.io/gorm"
)

// Viewer is what the caller may do with a listing, decided by the same rules the actions enforce (mayDownload,
// CreateReview, RequestAccess), so that a client shows only what will work: a download button only where the
// download is allowed, a rating form only to an entitled organisation, an access form only where a request
// can be made. It is advice, never a permission: every action still checks for itself.
type Viewer struct {
	Entitled         bool
	CanDownload      bool
	CanRate          bool
	CanRequestAccess bool
	// AccessRequest is the caller's organisation's newest access request for the listing (any state), if any.
	AccessRequest *accessRequestRow
}

// viewer works out Viewer for a on l (which a may see).
func (s *Service) viewer(db *gorm.DB, a web.Principal, l listingRow, gated bool) (Viewer, error) {
	var v Viewer
	if a.OrgID == "" {
		return v, nil
	}
	ok, err := entitled(db, a.OrgID, l.ID, s.now())
	if err != nil {
		return v, err
	}
	live := l.Status == StatusPublished || l.Status == StatusRetired
	v.Entitled = ok
	// mayDownload: its vendor and staff always, others with an entitlement to a live (or retired) listing.
	v.CanDownload = owns(a, l) || a.Staff || (ok && live)
	// CreateReview: an entitlement, whoever holds it.
	v.CanRate = ok
	var r accessRequestRow
	err = db.Where("listing_id = ? AND org_id = ?", l.ID, a.OrgID).Order("created_at DESC, id DESC").Take(&r).Error
	switch {
	case err == nil:
		v.AccessRequest = &r
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return v, err
	}
	// RequestAccess: a published gated listing of another organisation, with no request pending.
	v.CanRequestAccess = gated && l.Status == StatusPublished && !owns(a, l) && !ok &&
		(v.AccessRequest == nil || v.AccessRequest.State != AccessPending)
	return v, nil
}

// decidedAt is when a request was approved or denied (its last change), nil while pending or after a cancel.
func decidedAt(r accessRequestRow) *time.Time {
	if r.State != AccessApproved && r.State != AccessDenied {
		return nil
	}
	t := r.UpdatedAt
	return &t
}
