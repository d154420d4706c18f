package testbed

import (
	"strconv"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Problem sentinels. Handlers return them (wrapped with context); web.ErrorHandler renders them.
var (
	ErrPoolNotFound         = problem.New(404, "pool_not_found", "Pool not found.")
	ErrNodeNotFound         = problem.New(404, "node_not_found", "Node not found.")
	ErrListingNotFound      = problem.New(404, "listing_not_found", "Compute listing not found or not published.")
	ErrSandboxNotFound      = problem.New(404, "sandbox_not_found", "Sandbox not found.")
	ErrReservationNotFound  = problem.New(404, "reservation_not_found", "Reservation not found.")
	ErrTemplateNotFound     = problem.New(404, "template_not_found", "Template not found.")
	ErrImageListingNotFound = problem.New(404, "image_listing_not_found",
		"Model or dataset listing not found, not published, or without a try-it image.")
	ErrPoolExists          = problem.New(409, "pool_exists", "A pool with this name already exists for this vendor.")
	ErrNodeExists          = problem.New(409, "node_exists", "A node with this name already exists in this pool.")
	ErrNoCapacity          = problem.New(409, "no_capacity", "No free devices match the request.")
	ErrNotRunning          = problem.New(409, "sandbox_not_running", "The sandbox is not running.")
	ErrSandboxEnded        = problem.New(409, "sandbox_ended", "The sandbox has already ended.")
	ErrBadTransition       = problem.New(409, "invalid_transition", "The sandbox cannot move to that state.")
	ErrReservationLimit    = problem.New(409, "reservation_limit", "Too many concurrent reservations for this organisation.")
	ErrReservationState    = problem.New(409, "reservation_not_cancellable", "The reservation has already ended or been cancelled.")
	ErrInsufficientCredits = problem.New(402, "insufficient_credits", "Not enough credits to cover the requested time.")
	ErrBillingUnavailable  = problem.New(503, "billing_unavailable", "Billing did not answer; the sandbox was not started.")
	ErrBackendUnavailable  = problem.New(503, "backend_unavailable", "The pool's sandbox backend is not available in this deployment.")
	ErrNotPoolOwner        = problem.New(403, "not_pool_owner", "Only the pool's vendor or staff may change it.")
	ErrImageSettingsStaff  = problem.New(403, "image_settings_staff_only", "Only programme staff may change a pool's images.* settings (allowed images, registry credentials).")
	ErrForbidden           = problem.New(403, "forbidden", "You may not do this.")
	ErrAccessRequired      = problem.New(403, "access_required", "This listing is gated: your organisation needs the vendor's approval to use it.")
	ErrImageAccessRequired = problem.New(403, "access_required", "Your organisation needs access to the listing whose image the sandbox would run.")
	ErrImageNotAllowed     = problem.New(422, "image_not_allowed", "The image is not allowed on the pool of this compute listing.")
	ErrHostBackendStaff    = problem.New(403, "host_backend_staff_only",
		"Pools on the platform's own host (local, simulator) and GPU discovery are managed by programme staff.")
	ErrBadSandboxToken = problem.New(401, "invalid_sandbox_token", "The sandbox token is invalid or expired.")
)

// A listing's artifacts mounted into a sandbox.
var (
	ErrMountListingNotFound = problem.New(404, "mount_listing_not_found",
		"Model or dataset listing not found, not published, or not visible to your organisation.")
	ErrArtifactsAccessRequired = problem.New(403, "access_required", "Your organisation needs access to the listing whose artifacts the sandbox would mount.")
	ErrNoArtifacts             = problem.New(422, "no_artifacts", "The listing's published version has no artifacts to mount.")
	ErrMountUnsupported        = problem.New(422, "artifacts_mount_unsupported",
		"This compute listing's pool cannot mount a listing's artifacts into its sandboxes.")
	ErrArtifactsUnavailable = problem.New(503, "artifacts_unavailable", "The marketplace did not answer with the listing's artifacts; the sandbox was not started.")
)

// Site agents.
var (
	ErrAgentNotFound      = problem.New(404, "agent_not_found", "Agent not found.")
	ErrAgentTokenNotFound = problem.New(404, "agent_token_not_found", "Enrolment token not found.")
	ErrBadEnrolToken      = problem.New(401, "invalid_enrolment_token", "The enrolment token is invalid, used, revoked or expired.")
	ErrAgentBackend       = problem.New(422, "pool_not_agent_run", "Agents run sandboxes of local, slurm and kubernetes pools only.")
)

// cpuText writes CPU millis as CPUs for messages: "4", "0.5".
func cpuText(millis int64) string {
	return strconv.FormatFloat(float64(millis)/1000, 'f', -1, 64)
}
