package billing

import (
	"net/http"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Problem sentinels of the billing service.
var (
	ErrInsufficientCredits = problem.New(http.StatusPaymentRequired, "insufficient_credits", "Not enough credits.")
	ErrPaymentsDisabled    = problem.New(http.StatusServiceUnavailable, "payments_disabled",
		"Card purchases are disabled on this platform (no Stripe key is configured). Ask programme staff to record an offline payment (purchase order) instead.")
	ErrInvalidSignature  = problem.New(http.StatusBadRequest, "invalid_signature", "The Stripe signature is missing, invalid or stale.")
	ErrOrgNotVerified    = problem.New(http.StatusUnprocessableEntity, "organization_not_verified", "Grants and co-funding are for verified organisations only.")
	ErrGrantNotFound     = problem.New(http.StatusNotFound, "grant_not_found", "No such grant.")
	ErrHoldNotFound      = problem.New(http.StatusNotFound, "hold_not_found", "No active hold for this sandbox.")
	ErrBadMonth          = problem.New(http.StatusBadRequest, "invalid_month", "The month must be written yyyy-mm.")
	ErrNothingToPay      = problem.New(http.StatusUnprocessableEntity, "nothing_to_pay", "The vendor has no payable balance.")
	ErrStripeFailed      = problem.New(http.StatusBadGateway, "stripe_error", "Stripe refused or failed the request.")
	ErrVendorNotFound    = problem.New(http.StatusNotFound, "vendor_not_found", "No such vendor organisation.")
	ErrOrgNotFound       = problem.New(http.StatusNotFound, "organization_not_found", "No such organisation.")
	ErrRefundNotCredited = problem.New(http.StatusConflict, "refund_before_payment",
		"The refunded payment is not credited yet; the refund is applied when Stripe retries it after the payment.")
	ErrPurchaseNotFound = problem.New(http.StatusNotFound, "purchase_not_found", "No such credited purchase in this organisation.")
	ErrFutureMonth      = problem.New(http.StatusUnprocessableEntity, "future_month", "That month has not started yet: there is no statement for it.")
	ErrBadRange         = problem.New(http.StatusBadRequest, "invalid_range", "The date range is invalid.")
	ErrInvalidAmount    = problem.New(http.StatusBadRequest, "invalid_amount",
		"An amount in the Stripe event is negative, larger than its charge or purchase, or out of range; nothing was applied.")
)
