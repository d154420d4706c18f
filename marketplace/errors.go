package marketplace

import (
	"net/http"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// The marketplace's problems. Another organisation's object answers the same not-found problem as a missing one.
var (
	ErrListingNotFound       = problem.New(http.StatusNotFound, "listing_not_found", "No such listing.")
	ErrVersionNotFound       = problem.New(http.StatusNotFound, "version_not_found", "No such listing version.")
	ErrArtifactNotFound      = problem.New(http.StatusNotFound, "artifact_not_found", "No such artifact.")
	ErrOrderNotFound         = problem.New(http.StatusNotFound, "order_not_found", "No such order.")
	ErrAccessRequestNotFound = problem.New(http.StatusNotFound, "access_request_not_found", "No such access request.")
	ErrReviewNotFound        = problem.New(http.StatusNotFound, "review_not_found", "Your organisation has not reviewed this listing.")
	ErrPlanNotFound          = problem.New(http.StatusUnprocessableEntity, "plan_not_found", "The listing has no such plan.")

	ErrSlugTaken         = problem.New(http.StatusConflict, "slug_taken", "Another listing already uses this slug.")
	ErrNotEditable       = problem.New(http.StatusConflict, "version_not_editable", "Only a draft or a version with changes requested can be edited.")
	ErrNotSubmittable    = problem.New(http.StatusConflict, "version_not_submittable", "Only a draft or a version with changes requested can be submitted.")
	ErrNotSubmitted      = problem.New(http.StatusConflict, "version_not_submitted", "The version is not waiting for review.")
	ErrVersionPending    = problem.New(http.StatusConflict, "version_pending", "The listing already has a version in progress; edit or submit it.")
	ErrNotPublished      = problem.New(http.StatusConflict, "listing_not_published", "The listing is not published.")
	ErrAlreadyRetired    = problem.New(http.StatusConflict, "listing_retired", "The listing is retired.")
	ErrOwnListing        = problem.New(http.StatusForbidden, "own_listing", "You cannot do this on your own organisation's listing.")
	ErrNotVerified       = problem.New(http.StatusForbidden, "vendor_not_verified", "Only verified vendor organisations can submit listings.")
	ErrNotVendor         = problem.New(http.StatusForbidden, "forbidden", "Only members of the listing's vendor organisation may do this.")
	ErrNotVendorAdmin    = problem.New(http.StatusForbidden, "forbidden", "Only owners and admins of the listing's vendor organisation may do this.")
	ErrPoolNotOwned      = problem.New(http.StatusUnprocessableEntity, "pool_not_owned", "A compute listing must reference a testbed pool its vendor owns.")
	ErrPoolGPUMismatch   = problem.New(http.StatusUnprocessableEntity, "pool_gpu_mismatch", "The pool does not declare this GPU model.")
	ErrNoPlans           = problem.New(http.StatusUnprocessableEntity, "no_plans", "A listing needs at least one plan before it is submitted.")
	ErrComputeNotOrdered = problem.New(http.StatusUnprocessableEntity, "compute_not_orderable", "Accelerator time is used through the testbed, not ordered here.")
	ErrGated             = problem.New(http.StatusForbidden, "access_request_required", "This listing is gated: request access first.")
	ErrNotGated          = problem.New(http.StatusConflict, "listing_not_gated", "This listing is not gated: order a plan instead.")
	ErrRequestPending    = problem.New(http.StatusConflict, "access_request_pending", "Your organisation already has a pending access request for this listing.")
	ErrRequestDecided    = problem.New(http.StatusConflict, "access_request_decided", "The access request is no longer pending.")
	ErrEntitlementNeeded = problem.New(http.StatusForbidden, "entitlement_required", "Only organisations entitled to the listing may review it.")
	ErrReviewExists      = problem.New(http.StatusConflict, "review_exists", "Your organisation already reviewed this listing; edit the review instead.")

	ErrTooLarge         = problem.New(http.StatusRequestEntityTooLarge, "artifact_too_large", "The artifact exceeds the size limit.")
	ErrChecksumMismatch = problem.New(http.StatusUnprocessableEntity, "checksum_mismatch", "The uploaded bytes do not match the declared checksum.")
	ErrBadChecksum      = problem.New(http.StatusBadRequest, "invalid_checksum", "The checksum header is not a SHA-256 digest.")
	ErrArtifactExists   = problem.New(http.StatusConflict, "artifact_exists", "The version already has an artifact with this name.")
	ErrBadName          = problem.New(http.StatusUnprocessableEntity, "invalid_artifact_name", "Artifact names use letters, digits, '.', '-' and '_' (at most 200).")
	ErrBadSignature     = problem.New(http.StatusForbidden, "invalid_signature", "The download link is invalid or expired.")
)
