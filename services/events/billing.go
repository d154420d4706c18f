package events

import (
	"time"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
)

// HoldRequestV1 asks billing to reserve credits before a sandbox starts (Action "place") or for more time
// (Action "extend"). The price is the listing's per-GPU-hour price as the testbed knows it; the hold locks it
// for the sandbox's life. A refusal is a problem reply with code insufficient_credits and the shortfall.
type HoldRequestV1 struct {
	Action          string `json:"action"` // place, extend
	SandboxID       string `json:"sandbox_id"`
	OrganizationID  string `json:"organization_id"`
	ListingID       string `json:"listing_id"`
	VendorOrgID     string `json:"vendor_org_id"`
	PoolID          string `json:"pool_id"`
	GPUModel        string `json:"gpu_model"`
	GPUCount        int    `json:"gpu_count"`
	PricePerGPUHour int64  `json:"price_per_gpu_hour_micro"`
	Seconds         int64  `json:"seconds"` // requested (place) or additional (extend) time
	// RequestID, when set, makes the request idempotent: a retried extend with the same ID reserves once.
	RequestID string `json:"request_id,omitempty"`
}

func (e HoldRequestV1) Validate() error {
	var c check
	c.need(e.Action == "place" || e.Action == "extend", "action")
	c.need(e.SandboxID != "", "sandbox_id")
	c.need(e.OrganizationID != "", "organization_id")
	c.need(e.GPUCount > 0, "gpu_count")
	c.need(e.PricePerGPUHour >= 0, "price_per_gpu_hour_micro")
	c.need(e.Seconds > 0, "seconds")
	return c.err("hold request")
}

// HoldReplyV1 confirms a hold.
type HoldReplyV1 struct {
	HoldID      string `json:"hold_id"`
	AmountMicro int64  `json:"amount_micro"` // total now held for the sandbox
}

// Hold is the request/reply endpoint (core NATS; no stream captures it). No reply in time means "no".
var Hold = eventbus.Endpoint[HoldRequestV1, HoldReplyV1]{Name: "tamarack.billing.hold.v1"}

// OrderSettledV1 / OrderFailedV1 answer an order.placed.
type OrderSettledV1 struct {
	OrderID    string    `json:"order_id"`
	TransferID string    `json:"transfer_id"`
	At         time.Time `json:"at"`
}

func (e OrderSettledV1) Validate() error {
	var c check
	c.need(e.OrderID != "", "order_id")
	c.need(set(e.At), "at")
	return c.err("order.settled")
}

type OrderFailedV1 struct {
	OrderID        string    `json:"order_id"`
	Reason         string    `json:"reason"` // insufficient_credits, invalid
	ShortfallMicro int64     `json:"shortfall_micro"`
	At             time.Time `json:"at"`
}

func (e OrderFailedV1) Validate() error {
	var c check
	c.need(e.OrderID != "", "order_id")
	c.need(e.Reason != "", "reason")
	c.need(set(e.At), "at")
	return c.err("order.failed")
}

// WalletExhaustedV1 says an organisation's wallet cannot cover its running sandboxes' next interval; the
// testbed stops them after a grace period.
type WalletExhaustedV1 struct {
	OrganizationID string    `json:"organization_id"`
	SandboxID      string    `json:"sandbox_id,omitempty"` // the sandbox whose charge failed, when one did
	At             time.Time `json:"at"`
}

func (e WalletExhaustedV1) Validate() error {
	var c check
	c.need(e.OrganizationID != "", "organization_id")
	c.need(set(e.At), "at")
	return c.err("wallet.exhausted")
}

// BudgetThresholdV1 says a grant or budget crossed 80% or 100% use.
type BudgetThresholdV1 struct {
	OrganizationID string    `json:"organization_id"`
	GrantID        string    `json:"grant_id,omitempty"`
	Percent        int       `json:"percent"`
	UsedMicro      int64     `json:"used_micro"`
	LimitMicro     int64     `json:"limit_micro"`
	At             time.Time `json:"at"`
}

func (e BudgetThresholdV1) Validate() error {
	var c check
	c.need(e.OrganizationID != "", "organization_id")
	c.need(e.Percent > 0, "percent")
	c.need(set(e.At), "at")
	if e.UsedMicro < 0 || e.LimitMicro < 0 {
		return errNegative
	}
	return c.err("budget.threshold")
}

var (
	OrderSettled    = eventbus.Subject[OrderSettledV1]{Stream: StreamBilling, Name: "tamarack.billing.order.settled.v1"}
	OrderFailed     = eventbus.Subject[OrderFailedV1]{Stream: StreamBilling, Name: "tamarack.billing.order.failed.v1"}
	WalletExhausted = eventbus.Subject[WalletExhaustedV1]{Stream: StreamBilling, Name: "tamarack.billing.wallet.exhausted.v1"}
	BudgetThreshold = eventbus.Subject[BudgetThresholdV1]{Stream: StreamBilling, Name: "tamarack.billing.budget.threshold.v1"}
)

// BillingStream captures billing's events (not the hold endpoint).
var BillingStream = eventbus.Stream{Name: StreamBilling, Subjects: []string{
	OrderSettled.Name, OrderFailed.Name, WalletExhausted.Name, BudgetThreshold.Name,
}}

// AllStreams lists every stream, for set-up and tools.
func AllStreams() []eventbus.Stream {
	return []eventbus.Stream{IdentityStream, MarketplaceStream, TestbedStream, BillingStream, AgentStream}
}
